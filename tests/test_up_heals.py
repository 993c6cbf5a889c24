"""`duckfleet up` heals itself: a child that exits is started again, with backoff.

The backoff policy is pure and tested tick by tick; the fleet is tested for real:
SIGKILL the etcd under `duckfleet up` (and then a worker) and the same URI answers
again within seconds, with the catalog intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import duckdb

from duckfleet.netutil import free_port
from duckfleet.supervisor import Backoff, Child, Supervisor


def test_backoff_doubles_and_resets_after_a_healthy_minute():
    b = Backoff()
    b.started(0.0)
    assert [b.delay_after_exit(t) for t in (1.0, 2.0, 3.0)] == [0.5, 1.0, 2.0]
    b.started(10.0)
    assert b.delay_after_exit(80.0) == 0.5  # up for 70 s: a fresh start
    b = Backoff()
    assert max(b.delay_after_exit(0.0) for _ in range(20)) == 30.0


def test_supervisor_restarts_what_exits_when_due():
    state = {"code": None, "starts": 0}

    def restart() -> None:
        state["starts"] += 1
        state["code"] = None

    child = Child("worker 0", lambda: state["code"], restart)
    sup = Supervisor([child])
    assert sup.tick(100.0) == []
    state["code"] = -9
    assert sup.tick(100.0) == [] and child.due == 100.5  # scheduled, not yet
    assert sup.tick(100.4) == []
    assert sup.tick(100.6) == ["worker 0"] and state["starts"] == 1
    state["code"] = 1  # exits again at once: twice the wait
    assert sup.tick(101.0) == [] and child.due == 102.0


def test_a_restart_that_fails_is_tried_again_later():
    calls = []

    def restart() -> None:
        calls.append(1)
        raise RuntimeError("port in use")

    child = Child("etcd", lambda: 1, restart)
    sup = Supervisor([child])
    sup.tick(0.0)
    assert sup.tick(0.5) == [] and len(calls) == 1 and child.due == 1.5


def _children(parent: int, fragment: str) -> list[int]:
    """Child processes of `parent` whose command line holds `fragment`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent and fragment in cmdline:
                pids.append(int(entry.name))
    return pids


def _answer(uri: str, sql: str, within: float) -> tuple[list, float]:
    """The rows of `sql` once the fleet answers, and how long that took."""
    start = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - start < within:
        try:
            with flightsql.connect(uri) as conn, conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall(), time.monotonic() - start
        except Exception as exc:  # UNAVAILABLE while etcd or a worker comes back
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"no answer within {within}s: {last}")


def test_up_restarts_a_killed_etcd_and_worker(tmp_path, tpch_dir):
    port = free_port()
    log = tmp_path / "up.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "duckfleet", "up", "--no-auth", "--port", str(port),
         "--workers", "2", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "DUCKFLEET_NAMESPACE": f"/up-{uuid.uuid4().hex[:6]}"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        etcd_url, uri = None, f"grpc://127.0.0.1:{port}"
        for line in proc.stdout:
            if line.startswith("etcd: "):
                etcd_url = line.split()[1]
            if line.strip() == uri:
                break
        assert etcd_url is not None, "duckfleet up never said where etcd is"
        env = {**os.environ, "DUCKFLEET_ETCD": etcd_url}
        added = subprocess.run(
            [sys.executable, "-m", "duckfleet", "table", "add", "orders", str(tpch_dir / "orders")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert added.returncode == 0, added.stderr
        sql = "SELECT o_orderstatus, count(*) FROM orders GROUP BY 1 ORDER BY 1"
        files = f"'{tpch_dir}/orders/*.parquet'"
        expected = duckdb.sql(sql.replace("FROM orders", f"FROM {files}")).fetchall()
        assert _answer(uri, sql, 30)[0] == expected

        (etcd_pid,) = _children(proc.pid, f"--listen-client-urls {etcd_url}")
        os.kill(etcd_pid, signal.SIGKILL)
        rows, took = _answer(uri, sql, 30)
        assert rows == expected  # the catalog survived: etcd came back from its data
        new_etcd = _children(proc.pid, f"--listen-client-urls {etcd_url}")
        assert new_etcd and new_etcd != [etcd_pid]
        print(f"answered again {took:.1f}s after etcd was killed")

        workers = _children(proc.pid, "duckfleet.cli worker")
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = _children(proc.pid, "duckfleet.cli worker")
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the killed worker was not started again")
        assert _answer(uri, sql, 30)[0] == expected

        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        said = log.read_text()
        assert "etcd exited with status -9; starting it again" in said
        assert "etcd started again (restart 1)" in said
        assert "exited with status -9" in said.split("etcd started again")[1]
        assert not _children(proc.pid, f"--listen-client-urls {etcd_url}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
