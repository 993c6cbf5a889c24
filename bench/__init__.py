"""duckfleet's benchmark harness: `python -m bench <experiment>|all`.

Each experiment prints its table and writes <name>.md, .csv and .png under
bench/results/ (or --out); every answer is compared with DuckDB in-process before a
timing counts; every report records the machine and its load when it started.

Experiments (one module each):

* `tpch`: the 22 TPC-H queries through duckfleet (ADBC), DuckDB, DataFusion and
  PySpark on the same Parquet files (`bench.engines`).
* `planning`: planning time per TPC-H query, cold and with a warm plan cache.
* `latency`: SELECT 1 and a 10-row table through ADBC; raw Flight DoGet floor.
* `concurrency`: K clients' throughput; short queries under a long one, fair vs FIFO.
* `elasticity`: a second worker joining at 25% of a query of many tasks.
* `skew`: one file eight times the others; makespan against the ideal.
* `faults`: a worker killed during a query (at half and near the end), against the ideal
  with instant detection and an undisturbed run.
* `streaming`: SELECT * of lineitem through ADBC vs raw Flight DoGet, MB/s.
* `queue`: trivial tasks per second with 1, 2, 4 workers; etcd calls per query.
* `chaos`: the soak of issue 5 (kills under load; wrong and hung must be 0).
* `dashboard`: 8 ADBC clients looping over short BI queries, against DuckDB
  in-process serving the same loop from 8 threads, at SF1 and SF0.01.
* `observability`: TPC-H with metrics and tracing on vs off, median of rounds.
* `task-cost`: CPU per trivial task by process role; its worth in bytes read.
* `etcd-reads`: the fleet's read-only reads as one Txn against Range calls (the
  way around etcd issue 14110 on 3.5.0-3.5.4).

Helpers: `bench.fleet` (LocalFleet, real processes), `bench.one_query` and
`bench.timeline` (a query of many tasks, traced from the claims in etcd),
`bench.datasets` (derived tables, cached), `bench.report` (tables, plots),
`bench.machine` (what the numbers were measured on).
"""

from __future__ import annotations

import os
from pathlib import Path


def _queries_dir() -> Path:
    """shared/tpch/queries beside the repository or a folder above it (worktrees), or
    where DUCKFLEET_TPCH_QUERIES says."""
    if os.environ.get("DUCKFLEET_TPCH_QUERIES"):
        return Path(os.environ["DUCKFLEET_TPCH_QUERIES"]).resolve()
    for parent in Path(__file__).resolve().parents[1:]:
        candidate = parent / "shared" / "tpch" / "queries"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "tpch" / "queries"


QUERIES_DIR = _queries_dir()
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# `python -m bench NAME` -> the module that runs it (each has HELP, add_arguments, main)
EXPERIMENTS = {
    "tpch": "tpch",
    "planning": "planning",
    "latency": "latency",
    "concurrency": "concurrency",
    "elasticity": "elasticity",
    "skew": "skew",
    "faults": "faults",
    "streaming": "streaming",
    "queue": "queue",
    "chaos": "chaos",
    "etcd-reads": "etcd_reads",
    "etcd-ceiling": "etcd_ceiling",
    "dashboard": "dashboard",
    "observability": "observability",
    "task-cost": "task_cost",
}
