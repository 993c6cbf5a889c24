"""The benchmark harness end to end, small, through its command line, so it never
rots: every experiment at a tiny scale on a real fleet; the outputs must exist,
hold what the experiment measures, and every answer must equal DuckDB's. No timing
is asserted, only that the numbers are there and consistent with each other."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tpch_data import tpchgen_cli

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
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
        *("--scale", "0.01", "--runs", "1", "--queries", "1,3", "--engines", "duckdb,spark"),
        *tiny(tmp_path),
    )
    rows = read_csv(out / "tpch_sf0.01.csv")
    spark = {r["query"]: r for r in rows if r["engine"] == "spark"}
    assert set(spark) == {"q01", "q03"}
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
        "1-row DoGet, pyarrow.flight (floor)",
    ]
    for r in rows:
        assert int(r["runs"]) == 20
        p50, p95, p99 = (float(r[k]) for k in ("p50 ms", "p95 ms", "p99 ms"))
        assert 0 < p50 <= p95 <= p99 <= float(r["max ms"]), r
    assert "p99 ms" in (out / "latency.md").read_text()
