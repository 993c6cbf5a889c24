"""duckfleet's benchmark harness: `python -m bench tpch|latency|all`.

* `bench.tpch`: the 22 TPC-H queries through the fleet (ADBC) and through DuckDB
  in-process over the same Parquet files; every fleet answer checked first.
* `bench.latency`: small-query latency through the fleet, and the bare Flight DoGet
  round trip as the transport floor.
* `bench.fleet`: the fleet the benchmarks talk to (LocalFleet, real processes).
* `bench.report`: tables as text, Markdown and CSV; plots; run statistics.
* `bench.machine`: what the numbers were measured on.
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
    "latency": "latency",
    "concurrency": "concurrency",
    "elasticity": "elasticity",
    "skew": "skew",
    "faults": "faults",
    "streaming": "streaming",
    "queue": "queue",
    "chaos": "chaos",
}
