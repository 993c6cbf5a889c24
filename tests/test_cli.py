"""The `duckfleet` command as users run it: catalog management, queries, `up`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from duckfleet.netutil import free_port, wait_port

README = Path(__file__).resolve().parents[1] / "README.md"


def duckfleet(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "duckfleet", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def test_table_add_list_drop(etcd, tpch_dir):
    env = {"DUCKFLEET_ETCD": etcd.url, "DUCKFLEET_NAMESPACE": f"/cli-{uuid.uuid4().hex[:8]}"}
    added = duckfleet("table", "add", "Orders", str(tpch_dir / "orders"), env=env)
    assert added.returncode == 0, added.stderr
    assert "orders: 4 file(s), 15000 rows" in added.stdout
    glob = duckfleet("table", "add", "n", str(tpch_dir / "nation" / "*.parquet"), env=env)
    assert glob.returncode == 0, glob.stderr
    listed = duckfleet("table", "list", env=env)
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["n", "orders"]
    assert duckfleet("table", "drop", "orders", env=env).returncode == 0
    missing = duckfleet("table", "drop", "orders", env=env)
    assert missing.returncode == 1 and "no table 'orders'" in missing.stderr
    nothing = duckfleet("table", "add", "x", str(tpch_dir / "nope*.parquet"), env=env)
    assert nothing.returncode == 1 and "no Parquet files" in nothing.stderr


def test_query_prints_the_result(fleet):
    out = duckfleet("query", "select n_name from nation where n_nationkey = 7", "--uri", fleet.uri)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["n_name ", "-------", "GERMANY", "(1 row)"]
    bad = duckfleet("query", "select * from nowhere", "--uri", fleet.uri)
    assert bad.returncode != 0 and "nowhere" in bad.stderr


def readme_adbc_example() -> str:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    examples = [b for b in blocks if "adbc_driver_flightsql" in b]
    return examples[0]  # the one under "Connect"


def test_up_with_demo_data_serves_the_readme_example_and_stops_cleanly(tmp_path):
    port = free_port()
    password = {"DUCKFLEET_ADMIN_PASSWORD": f"pw-{uuid.uuid4().hex[:8]}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "duckfleet", "up", "--demo", "tpch", "--scale", "0.01",
         "--data-dir", str(tmp_path / "data"), "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **password},
    )  # fmt: skip
    try:
        uri = None
        etcd_url = None
        said = []
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while uri is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            said.append(line)
            if line.startswith("etcd: "):
                etcd_url = line.split()[1]
            if line.strip() == f"grpc://127.0.0.1:{port}":
                uri = line.strip()
        assert uri, "duckfleet up never printed its URI"
        # auth is on by default, and up says so; so does the password's origin
        assert any(s.startswith("auth: basic; admin user 'admin'") for s in said), said
        assert any("from DUCKFLEET_ADMIN_PASSWORD" in s for s in said), said
        example = readme_adbc_example().replace("31337", str(port))
        ran = subprocess.run(
            [sys.executable, "-c", example],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **password},
        )
        assert ran.returncode == 0, ran.stderr
        assert "l_returnflag" in ran.stdout and "n: [" in ran.stdout
        # Ctrl-C stops every child: the front door and etcd stop listening
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not wait_port("127.0.0.1", port, 0.5)
        assert etcd_url is not None
        etcd_port = int(etcd_url.rsplit(":", 1)[1])
        assert not wait_port("127.0.0.1", etcd_port, 0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("role", ["frontdoor", "worker"])
def test_component_help_names_its_flags(role):
    out = duckfleet(role, "--help")
    assert out.returncode == 0 and "--etcd" in out.stdout and "--port" in out.stdout
