"""The `duckfleet` command as users run it: catalog management, queries, `up`, and
what it prints when something is wrong (one line, `duckfleet: error: ...`, exit 2 for
usage and 1 otherwise; `--verbose` adds the traceback)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from secure_fleet import ADMIN

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


def one_line_error(done: subprocess.CompletedProcess[str], status: int) -> str:
    """The error a person sees: one line on stderr, that exit status."""
    assert done.returncode == status, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("duckfleet: error: "), lines
    return lines[0]


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
    assert "no table 'orders'" in one_line_error(missing, 1)
    nothing = duckfleet("table", "add", "x", str(tpch_dir / "nope*.parquet"), env=env)
    assert "no Parquet files" in one_line_error(nothing, 1)


def test_catalog_flags_go_before_or_after_the_subcommand(etcd, tpch_dir):
    where = ["--etcd", etcd.url, "--namespace", f"/cli-{uuid.uuid4().hex[:8]}"]
    clean = {"DUCKFLEET_ETCD": "http://127.0.0.1:9"}  # flags, not the environment, decide
    added = duckfleet("table", "add", "nation", str(tpch_dir / "nation"), *where, env=clean)
    assert added.returncode == 0, added.stderr
    listed = duckfleet("table", *where, "list", env=clean)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["nation"]
    dropped = duckfleet("table", "drop", *where[:2], "nation", *where[2:], env=clean)
    assert dropped.returncode == 0, dropped.stderr


def test_query_prints_the_result(fleet):
    out = duckfleet("query", "select n_name from nation where n_nationkey = 7", "--uri", fleet.uri)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["n_name ", "-------", "GERMANY", "(1 row)"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["table", "add", "x"], "the following arguments are required: path"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["worker", "--port", "abc"], "argument --port: invalid int value: 'abc'"),
        (["query"], "the following arguments are required: sql"),
        (["query", "SELECT 1", "--colour"], "unrecognized arguments: --colour"),
        (["user", "list"], "--users-file or DUCKFLEET_USERS_FILE is needed"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, words):
    line = one_line_error(duckfleet(*args, env={"DUCKFLEET_USERS_FILE": ""}), 2)
    assert words in line
    assert "--help" in line  # where to read how it is done


def test_query_errors_are_one_line_and_exit_1(fleet, secure_fleet, tmp_path):
    cases = [
        (["SELECT * FROM nowhere", "--uri", fleet.uri], {}, "unknown table 'nowhere'"),
        (["SELEC 1", "--uri", fleet.uri], {}, "SQL syntax error at line 1"),
        (["SELECT 'x'::INTEGER", "--uri", fleet.uri], {}, "Could not convert string 'x'"),
        (
            ["SELECT 1", "--uri", secure_fleet.uri, "--user", ADMIN],
            {"DUCKFLEET_PASSWORD": "wrong"},
            "wrong user name or password",
        ),
        (
            ["SELECT 1", "--uri", f"grpc://127.0.0.1:{free_port()}"],
            {},
            "is unavailable: failed to connect",
        ),
        (
            ["SELECT 1", "--uri", fleet.uri, "--tls-ca", str(tmp_path / "nope.pem")],
            {},
            "No such file or directory",
        ),
    ]
    for args, env, words in cases:
        line = one_line_error(duckfleet("query", *args, env=env), 1)
        assert words in line, (args, line)
        assert "Detail:" not in line and "Flight returned" not in line, line


def test_an_unreachable_etcd_is_one_line(tmp_path):
    etcd = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(duckfleet("table", "list", "--etcd", etcd), 1)
    assert "etcd" in line and "unreachable" in line


def test_verbose_adds_the_traceback():
    unreachable = f"grpc://127.0.0.1:{free_port()}"
    done = duckfleet("query", "SELECT 1", "--uri", unreachable, "--verbose")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1].startswith(f"duckfleet: error: {unreachable} is unavailable")


def test_version():
    done = duckfleet("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"duckfleet {importlib.metadata.version('duckfleet')}"


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
        # up printed each process's /metrics URL; the front door counted that query
        shown = dict(re.findall(r"^metrics: (.+) at (http://\S+)$", "".join(said), flags=re.M))
        assert sorted(shown) == ["front door 0", "worker 0", "worker 1"], said
        with urllib.request.urlopen(shown["front door 0"], timeout=10) as response:
            scraped = response.read().decode()
        assert 'duckfleet_queries_total{outcome="finished"} 1.0' in scraped, scraped
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
