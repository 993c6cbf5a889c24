"""The benchmark harness end to end, small, through its command line: TPC-H at
scale 0.01 with one warm run, and 20 latency requests per case, each on a real
fleet; the outputs must exist and every fleet answer must equal DuckDB's."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from tpch_data import tpchgen_cli

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_tpch_writes_22_checked_queries(tmp_path):
    tpchgen_cli()  # skips if tpchgen-cli is missing
    out = tmp_path / "out"
    done = bench(
        "tpch",
        *("--scale", "0.01", "--runs", "1", "--data-dir", str(tmp_path / "data")),
        *("--out", str(out), "--log-dir", str(tmp_path)),
    )
    assert "q22: run 1/1" in done.stderr  # progress on stderr
    names = {"tpch_sf0.01.md", "tpch_sf0.01.csv", "tpch_sf0.01.png"}
    assert {p.name for p in out.iterdir()} == names
    assert all((out / n).stat().st_size > 0 for n in names)
    rows = read_csv(out / "tpch_sf0.01.csv")
    queries, total = rows[:-1], rows[-1]
    assert [r["query"] for r in queries] == [f"q{n:02d}" for n in range(1, 23)]
    assert [(r["query"], r["detail"]) for r in queries if r["status"] != "OK"] == []
    for r in queries:
        assert float(r["duckdb_ms"]) > 0 and float(r["duckfleet_ms"]) > 0, r
        assert int(r["tasks"]) >= 1, r
    assert total["query"] == "total" and total["status"] == "22/22 OK"
    assert float(total["ratio"]) == pytest.approx(
        float(total["duckfleet_ms"]) / float(total["duckdb_ms"])
    )
    md = (out / "tpch_sf0.01.md").read_text()
    assert "| q22 |" in md and "| total |" in md and "duckdb 2" in md.lower()
    assert "WRONG" not in md and "WRONG" not in done.stdout


def test_latency_writes_percentiles(tmp_path):
    out = tmp_path / "out"
    bench("latency", "--runs", "20", "--out", str(out), "--log-dir", str(tmp_path))
    assert {p.name for p in out.iterdir()} == {"latency.md", "latency.csv", "latency.png"}
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
