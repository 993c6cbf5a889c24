"""duckfleet's benchmark harness: `python -m bench tpch|planning|latency|all`.

* `bench.tpch`: the 22 TPC-H queries through the fleet (ADBC) and through DuckDB
  in-process over the same Parquet files; every fleet answer checked first.
* `bench.planning`: planning time per TPC-H query, cold and with a warm plan cache,
  and how each query is planned.
* `bench.latency`: small-query latency through the fleet, and the bare Flight DoGet
  round trip as the transport floor.
* `bench.fleet`: the fleet the benchmarks talk to (LocalFleet, real processes).
* `bench.report`: tables as text, Markdown and CSV; plots; run statistics.
* `bench.machine`: what the numbers were measured on.
"""

from __future__ import annotations

from pathlib import Path

QUERIES_DIR = Path(__file__).resolve().parents[2] / "shared" / "tpch" / "queries"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
