"""One query of many tasks, timed and traced: what the elasticity, skew and fault
experiments run.

`heavy_sql(table, work)`: a grouped aggregate over a lineitem-shaped table whose
cost per row is `work` chained md5 calls, so each file's task takes long enough to
see where it ran; the planner splits it into a partial task per file and a merge.
`run_traced` sends it through ADBC, checks the answer against DuckDB in-process,
and returns the wall time with every task run the timeline saw.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from bench.datasets import lineitem_parts
from bench.fleet import adbc_connect, fetch
from bench.progress import say
from bench.report import Span
from bench.timeline import TaskRun, Timeline
from duckfleet.control import QueryStore
from duckfleet.local_fleet import LocalFleet
from duckfleet.planner.quoting import quote_literal
from duckfleet.table_files import expand_paths
from duckfleet.verify import difference


def add_heavy_query_arguments(p: argparse.ArgumentParser) -> None:
    """The query of many tasks that elasticity and faults time (`heavy_query`)."""
    p.add_argument("--scale", type=float, default=1.0, help="lineitem scale (default 1)")
    p.add_argument("--files", type=int, default=32, help="files, so tasks (default 32)")
    p.add_argument("--work", type=int, default=16, help="md5 calls per row (default 16)")


def heavy_query(args: argparse.Namespace, table: str) -> tuple[str, str, pa.Table]:
    """lineitem at `args.scale` in `args.files` equal files, the CPU-heavy query over
    them as `table`, and its answer from DuckDB in-process: (folder, sql, answer)."""
    name = f"lineitem_{args.files}"
    folder = lineitem_parts(args.data_dir, args.scale, name, [1] * args.files)
    sql = heavy_sql(table, args.work)
    say("computing the answer with DuckDB in-process")
    return folder, sql, reference(sql, {table: folder})


def heavy_sql(table: str, work: int) -> str:
    expr = "l_comment"
    for _ in range(work):
        expr = f"md5({expr})"
    return (
        f"select l_returnflag, l_linestatus, count(*) as n, sum(l_quantity) as qty, "
        f"min({expr}) as h from {table} group by l_returnflag, l_linestatus"
    )


def reference(sql: str, tables: dict[str, str]) -> pa.Table:
    """DuckDB in-process over the same files (name -> folder), all cores."""
    with duckdb.connect() as con:
        for name, folder in tables.items():
            files = ", ".join(quote_literal(f) for f in expand_paths(folder))
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}])")
        return con.sql(sql).to_arrow_table()


@dataclass
class Traced:
    seconds: float
    started: float  # time.monotonic() when the query was sent
    query: str  # its id in the fleet
    runs: list[TaskRun] = field(default_factory=list)
    ntasks: int = 0

    def spans(self, lost_after: dict[str, float] | None = None) -> list[Span]:
        """Task runs as plot spans, seconds from the start; a run of a worker in
        `lost_after` (worker -> kill time) that ended after its kill is lost."""
        lost_after = lost_after or {}
        out = []
        for r in self.runs:
            end = (r.end if r.end is not None else time.monotonic()) - self.started
            killed = lost_after.get(r.worker)
            lost = killed is not None and end > killed
            out.append(Span(r.worker, r.start - self.started, end, lost=lost))
        return out


def latest_query(fleet: LocalFleet, sql: str) -> tuple[str, int]:
    store = fleet.store()
    try:
        records = [r for r in QueryStore(store).all_records() if r.sql.strip() == sql.strip()]
    finally:
        store.close()
    record = max(records, key=lambda r: r.created)
    return record.id, record.ntasks


def run_traced(
    fleet: LocalFleet,
    timeline: Timeline,
    sql: str,
    expected: pa.Table,
    during: Callable[[float], None] | None = None,
) -> Traced:
    """Run `sql` once, timed; `during(started)` runs in this thread right after the
    query is sent (it may sleep, start or kill processes) while another thread waits
    for the answer. Raises AssertionError if the answer differs from `expected`."""
    timeline.wait_idle()
    out: dict[str, object] = {}

    def client() -> None:
        try:
            with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:
                out["table"] = fetch(cur, sql)
        except Exception as exc:  # re-raised below
            out["error"] = exc
        out["done"] = time.monotonic()

    started = time.monotonic()
    thread = threading.Thread(target=client, name="bench-query")
    thread.start()
    if during is not None:
        during(started)
    thread.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    seconds = float(out["done"]) - started  # type: ignore[arg-type]
    table = out["table"]
    assert isinstance(table, pa.Table)
    diff = difference(table, expected, ordered=False)
    if diff is not None:
        raise AssertionError(f"wrong answer: {diff}")
    q, ntasks = latest_query(fleet, sql)
    timeline.wait_idle()
    return Traced(seconds, started, q, timeline.runs(q), ntasks)
