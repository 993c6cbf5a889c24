"""The benchmark harness end to end, small, through its command line, so it never
rots: every experiment at a tiny scale on a real fleet; the outputs must exist,
hold what the experiment measures, and every answer must equal DuckDB's. No timing
is asserted, only that the numbers are there and consistent with each other."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path

from tpch_data import tpchgen_cli

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m bench ARGS`. Past `timeout` it is interrupted (SIGINT), so its
    `with` blocks stop the fleet it started (etcd runs in a session of its own and
    would outlive a SIGKILL of the bench), and killed only if that does not end it."""
    cmd = [sys.executable, "-m", "bench", *args]
    with subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            late = f"bench {args[0]} ran past {timeout:g} s:\n{err[-3000:]}"
            raise AssertionError(late) from None
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def outputs(out: Path, name: str) -> None:
    names = {f"{name}.md", f"{name}.csv", f"{name}.png"}
    assert names <= {p.name for p in out.iterdir()}
    assert all((out / n).stat().st_size > 0 for n in names)
    md = (out / f"{name}.md").read_text()
    assert "machine load at start" in md and f"]({name}.png)" in md


def tiny(tmp_path: Path) -> list[str]:
    """The options every smoke run shares: its own output, logs and data."""
    data = str(tmp_path / "data")
    return ["--out", str(tmp_path / "out"), "--log-dir", str(tmp_path), "--data-dir", data]


def test_tpch_writes_22_checked_queries(tmp_path):
    tpchgen_cli()  # skips if tpchgen-cli is missing
    out = tmp_path / "out"
    done = bench(
        "tpch",
        *("--scale", "0.01", "--runs", "1", "--engines", "duckdb,duckfleet,datafusion"),
        *tiny(tmp_path),
    )
    assert "q22: run 1/1" in done.stderr  # progress on stderr
    outputs(out, "tpch_sf0.01")
    rows = read_csv(out / "tpch_sf0.01.csv")
    assert [(r["query"], r["engine"]) for r in rows] == [
        (f"q{n:02d}", e) for n in range(1, 23) for e in ("duckdb", "duckfleet", "datafusion")
    ]
    assert [(r["query"], r["engine"], r["detail"]) for r in rows if r["status"] != "OK"] == []
    for r in rows:
        assert float(r["median_ms"]) > 0, r
        if r["engine"] == "duckfleet":
            assert int(r["tasks"]) >= 1, r
            assert float(r["ratio_to_duckdb"]) > 0, r
    md = (out / "tpch_sf0.01.md").read_text()
    assert "| duckfleet | 22/22 |" in md and "| datafusion | 22/22 |" in md
    assert "| q22 |" in md and "duckdb 2" in md.lower()
    assert "WRONG" not in md and "WRONG" not in done.stdout


def test_tpch_runs_pyspark_on_the_same_files(tmp_path):
    tpchgen_cli()
    out = tmp_path / "out"
    bench(
        "tpch",
        *("--scale", "0.01", "--runs", "1", "--queries", "1", "--engines", "duckdb,spark"),
        *tiny(tmp_path),
    )
    rows = read_csv(out / "tpch_sf0.01.csv")
    spark = {r["query"]: r for r in rows if r["engine"] == "spark"}
    assert set(spark) == {"q01"}
    assert [r["detail"] for r in spark.values() if r["status"] != "OK"] == []
    assert all(float(r["ratio_to_duckdb"]) > 0 for r in spark.values())
    assert "sqlglot.transpile(read='duckdb', write='spark')" in (out / "tpch_sf0.01.md").read_text()


def test_latency_writes_percentiles(tmp_path):
    out = tmp_path / "out"
    bench("latency", "--runs", "20", *tiny(tmp_path))
    outputs(out, "latency")
    rows = read_csv(out / "latency.csv")
    assert [r["case"] for r in rows] == [
        "SELECT 1, ADBC",
        "10-row table, ADBC",
        "SELECT 1, ADBC, queue only",
        "10-row table, ADBC, queue only",
        "1-row DoGet, pyarrow.flight (floor)",
        "SELECT 1, ADBC to a one-row Flight SQL server (floor)",
    ]
    paths = {r["case"]: r["path"] for r in rows}
    assert paths["SELECT 1, ADBC"] == "fast path"
    assert paths["SELECT 1, ADBC, queue only"] == "queue"
    for r in rows:
        assert int(r["runs"]) == 20
        p50, p95, p99 = (float(r[k]) for k in ("p50 ms", "p95 ms", "p99 ms"))
        assert 0 < p50 <= p95 <= p99 <= float(r["max ms"]), r
    assert "p99 ms" in (out / "latency.md").read_text()


def test_latency_runs_on_the_grpc_front_door(tmp_path):
    out = tmp_path / "out"
    bench("latency", "--runs", "20", "--frontdoor-server", "grpc", *tiny(tmp_path))
    rows = read_csv(out / "latency.csv")
    assert [r["case"] for r in rows][:2] == [
        "SELECT 1, ADBC, grpc front door",
        "10-row table, ADBC, grpc front door",
    ]
    assert {r["case"]: r["path"] for r in rows}["SELECT 1, ADBC, grpc front door"] == "fast path"
    assert "front door server grpc" in (out / "latency.md").read_text()


def test_concurrency_measures_throughput_and_fair_vs_fifo(tmp_path):
    tpchgen_cli()
    out = tmp_path / "out"
    bench(
        "concurrency",
        *("--scale", "0.01", "--clients", "1,2", "--seconds", "1", "--long-scale", "0.01"),
        *("--long-files", "8", "--work", "1", "--window", "1.5", "--rate", "4"),
        *tiny(tmp_path),
    )
    outputs(out, "concurrency")
    rows = read_csv(out / "concurrency.csv")
    assert {(r["clients"], r["query"]) for r in rows} == {
        (k, f"q{n:02d}") for k in ("1", "2") for n in (1, 3, 5, 6, 10, 12, 14, 19)
    }
    assert all(r["wrong"] == "0" for r in rows)
    assert sum(int(r["runs"]) for r in rows) > 0
    md = (out / "concurrency.md").read_text()
    for case in ("idle fleet (fair)", "long query running, fair", "long query running, fifo"):
        assert f"| {case} |" in md


def test_elasticity_traces_a_joining_worker(tmp_path):
    tpchgen_cli()
    out = tmp_path / "out"
    bench(
        "elasticity",
        *("--scale", "0.01", "--files", "8", "--work", "1", "--runs", "1"),
        *tiny(tmp_path),
    )
    outputs(out, "elasticity")
    rows = read_csv(out / "elasticity.csv")
    assert [r["case"] for r in rows] == [
        "one worker throughout",
        "second worker started at 25%",
        "two workers throughout",
    ]
    assert all(r["tasks"] == "9" and float(r["seconds"]) > 0 for r in rows)
    assert rows[0]["tasks on the 2nd worker"] == "0"
    md = (out / "elasticity.md").read_text()
    assert "second worker joined the fleet" in md
    assert "| process start to first claim |" in md  # from the new worker's log line


def test_skew_reports_makespan_against_the_ideal(tmp_path):
    tpchgen_cli()
    out = tmp_path / "out"
    bench("skew", "--scale", "0.01", "--work", "1", "--runs", "1", *tiny(tmp_path))
    outputs(out, "skew")
    rows = read_csv(out / "skew.csv")
    assert [r["table"] for r in rows] == ["8 equal files", "7 equal files + 1 eight times larger"]
    for r in rows:
        assert r["tasks"] == "9"
        work, ideal = float(r["total work s"]), float(r["ideal s"])
        assert work > 0 and abs(ideal - work / 2) < 0.01
    assert "busy / makespan" in (out / "skew.md").read_text()


def test_fault_cost_kills_a_worker_mid_query(tmp_path):
    tpchgen_cli()
    out = tmp_path / "out"
    bench(
        "faults",
        *("--scale", "0.01", "--files", "8", "--work", "1", "--runs", "1", "--lease-ttl", "2"),
        *("--at", "0.5"),  # a query this small has ended by 85%
        *tiny(tmp_path),
    )
    outputs(out, "faults")
    rows = read_csv(out / "faults.csv")
    assert rows[0]["case"] == "undisturbed" and rows[1]["case"].startswith("a worker SIGKILLed")
    assert all(float(r["seconds"]) > 0 for r in rows)
    assert float(rows[1]["x ideal"]) > 0  # time / the ideal with instant detection
    assert "detection s" in rows[1]  # from the SIGKILL to its claim being freed


def test_streaming_compares_adbc_with_the_flight_floor(tmp_path):
    tpchgen_cli()
    out = tmp_path / "out"
    bench("streaming", "--scale", "0.01", "--runs", "1", *tiny(tmp_path))
    outputs(out, "streaming")
    rows = read_csv(out / "streaming.csv")
    assert [r["case"].split(",")[0] for r in rows] == ["duckfleet", "raw pyarrow.flight DoGet"]
    assert {r["rows"] for r in rows} == {"60175"}  # lineitem at SF 0.01
    assert all(float(r["MB/s"]) > 0 for r in rows)


def test_queue_counts_tasks_per_second_and_etcd_calls(tmp_path):
    out = tmp_path / "out"
    bench(
        "queue",
        *("--files", "8", "--workers", "1,2", "--seconds", "1", "--ops-queries", "3"),
        *tiny(tmp_path),
    )
    outputs(out, "queue")
    rows = read_csv(out / "queue.csv")
    assert [r["workers"] for r in rows] == ["1", "2"]
    assert all(r["tasks per query"] == "9" and float(r["tasks/s"]) > 0 for r in rows)
    assert all(r["wrong"] == "0" and r["errors"] == "0" for r in rows)
    md = (out / "queue.md").read_text()
    assert "| SELECT 1 |" in md and "Txn" in md and "Range" in md


def test_task_cost_reads_cpu_per_task_by_role(tmp_path):
    out = tmp_path / "out"
    bench(
        "task-cost",
        *("--files", "8", "--seconds", "1", "--clients", "2", "--scale", "0.01"),
        *tiny(tmp_path),
    )
    outputs(out, "task_cost")
    rows = {r["role"]: r for r in read_csv(out / "task_cost.csv")}
    assert set(rows) == {"worker", "front door", "etcd", "all"}
    parts = sum(float(rows[k]["CPU ms per task"]) for k in ("worker", "front door", "etcd"))
    assert float(rows["worker"]["CPU ms per task"]) > 0
    assert abs(parts - float(rows["all"]["CPU ms per task"])) < 0.05
    assert "task_cost = worker CPU per task x scan rate" in (out / "task_cost.md").read_text()


def test_observability_cost_runs_both_modes_and_checks_every_answer(tmp_path):
    out = tmp_path / "out"
    bench("observability", "--scale", "0.01", "--rounds", "1", "--runs", "1", *tiny(tmp_path))
    outputs(out, "observability")
    rows = {r["mode"]: r for r in read_csv(out / "observability.csv")}
    assert set(rows) == {"off", "on"}
    assert all(float(r["median ratio"]) > 0 for r in rows.values())
    md = (out / "observability.md").read_text()
    assert "on / off:" in md and " 0 exports" not in md
