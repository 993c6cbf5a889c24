"""duckfleet as a user installs it: run with the Python of a venv that holds the built
wheel, from outside the source tree, with -P (scripts/test.sh does).

* ``duckfleet`` and every component package come from that venv, not a source folder;
* its console script's ``duckfleet --version`` is the installed distribution's;
* ``duckfleet up --demo tpch`` starts etcd, a front door and two workers and
  registers TPC-H; a join through ``duckfleet query`` answers exactly what DuckDB
  answers on the same Parquet files; Ctrl-C stops the fleet, exit status 0.

Prints one line per step; exits non-zero, saying why, at the first that fails.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NoReturn

import duckdb

JOIN = (
    "SELECT o_orderpriority, count(*) AS late_lines "
    "FROM orders JOIN lineitem ON l_orderkey = o_orderkey "
    "WHERE l_commitdate < l_receiptdate GROUP BY o_orderpriority ORDER BY o_orderpriority"
)
PACKAGES = ("flight.server", "planner.joins.plan_joins", "worker.worker", "control.task_queue")


def fail(message: str) -> NoReturn:
    print(f"check_install: FAILED: {message}", flush=True)
    sys.exit(1)


def check_imports() -> None:
    import duckfleet

    prefix = Path(sys.prefix).resolve()
    for name in ("", *PACKAGES):
        try:
            module = importlib.import_module(f"duckfleet.{name}" if name else "duckfleet")
        except ImportError as exc:
            fail(f"the install lacks a module: {exc}")
        where = Path(module.__file__ or "").resolve()
        if prefix not in where.parents:
            fail(f"{module.__name__} is imported from {where}, not from the venv {prefix}")
    print(f"check_install: duckfleet imported from {Path(duckfleet.__file__).parent}", flush=True)


def check_version(cli: Path) -> None:
    done = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=60)
    expected = f"duckfleet {importlib.metadata.version('duckfleet')}"
    if done.returncode != 0 or done.stdout.strip() != expected:
        fail(f"`duckfleet --version` said {done.stdout!r} {done.stderr!r}, not {expected!r}")
    print(f"check_install: {expected}", flush=True)


def start_fleet(
    cli: Path, data_dir: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str, str]:
    from duckfleet.netutil import free_port

    port = free_port()
    proc = subprocess.Popen(
        [cli, "up", "--demo", "tpch", "--scale", "0.01", "--data-dir", str(data_dir),
         "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    uri, data_root = f"grpc://127.0.0.1:{port}", ""
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("registered TPC-H"):
            data_root = line.rsplit(" from ", 1)[1].strip()
        if line.strip() == uri:
            return proc, uri, data_root
    proc.kill()
    fail(f"`duckfleet up` exited with {proc.wait()} or never printed {uri}")


def check_join(cli: Path, uri: str, data_root: str, env: dict[str, str]) -> None:
    from duckfleet.client import format_table

    done = subprocess.run(
        [cli, "query", JOIN, "--uri", uri, "--user", "admin"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        fail(f"the join failed: {done.stderr.strip()}")
    con = duckdb.connect()
    for table in ("orders", "lineitem"):
        files = str(Path(data_root) / table / "*.parquet")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}')")
    expected = format_table(con.sql(JOIN).arrow().read_all())
    if done.stdout.strip() != expected.strip():
        fail(f"the fleet answered\n{done.stdout}\nDuckDB answers\n{expected}")
    print(f"check_install: a join on the fleet at {uri} answers what DuckDB answers", flush=True)


def main() -> None:
    started = time.monotonic()
    check_imports()
    cli = Path(sys.prefix) / "bin" / "duckfleet"
    check_version(cli)
    password = f"pw-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "DUCKFLEET_ADMIN_PASSWORD": password, "DUCKFLEET_PASSWORD": password}
    with tempfile.TemporaryDirectory(prefix="duckfleet-check-", dir=".") as scratch:
        proc, uri, data_root = start_fleet(cli, Path(scratch) / "data", env)
        try:
            check_join(cli, uri, data_root, env)
            proc.send_signal(signal.SIGINT)
            if proc.wait(60) != 0:
                fail(f"`duckfleet up` stopped with exit status {proc.returncode}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print(f"check_install: OK in {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
