"""TPC-H through the fleet against DuckDB in-process, on the same Parquet files.

Per query: one run through each engine, compared with duckfleet.verify.difference
(a query whose answers differ is WRONG and its timing does not count); then `runs`
warm runs, interleaved (fleet, DuckDB, fleet, DuckDB, ...) so drift hits both; the
median of each counts.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlglot

from bench import QUERIES_DIR
from bench.fleet import adbc_connect, cores_per_worker, running_fleet, tasks_of
from bench.machine import cores, environment
from bench.progress import say
from bench.report import Table, median, ratio_bars, write_markdown
from duckfleet.local_fleet import TPCH_TABLES, LocalFleet, generate_tpch, register_tables
from duckfleet.table_files import expand_paths
from duckfleet.verify import difference
from duckfleet.worker.fragment import quote_ident, quote_literal

OK, WRONG, ERROR = "OK", "WRONG", "ERROR"


def query_text(n: int) -> str:
    return (QUERIES_DIR / f"q{n:02d}.sql").read_text()


def is_ordered(sql: str) -> bool:
    """Whether the answer has an order to compare: an ORDER BY on the outermost query."""
    return sqlglot.parse_one(sql, dialect="duckdb").args.get("order") is not None


def experiment_name(scale: float, workers: int) -> str:
    return f"tpch_sf{scale:g}" + ("" if workers == 2 else f"_w{workers}")


@dataclass
class QueryResult:
    n: int
    status: str = OK
    detail: str = ""  # what differed, or the error
    tasks: int | None = None
    duckdb_first_ms: float | None = None
    fleet_first_ms: float | None = None
    duckdb_ms: list[float] = field(default_factory=list)
    fleet_ms: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"q{self.n:02d}"

    @property
    def counts(self) -> bool:
        return self.status == OK and bool(self.duckdb_ms) and bool(self.fleet_ms)

    @property
    def duckdb_median(self) -> float | None:
        return median(self.duckdb_ms) if self.duckdb_ms else None

    @property
    def fleet_median(self) -> float | None:
        return median(self.fleet_ms) if self.fleet_ms else None

    @property
    def ratio(self) -> float | None:
        d, f = self.duckdb_median, self.fleet_median
        return f / d if self.counts and d and f is not None else None


def duckdb_reference(root: str, threads: int) -> duckdb.DuckDBPyConnection:
    """DuckDB in-process: a view per TPC-H table over all of its Parquet files."""
    con = duckdb.connect(config={"threads": str(threads)})
    for name in TPCH_TABLES:
        files = ", ".join(quote_literal(f) for f in expand_paths(str(Path(root) / name)))
        con.execute(f"CREATE VIEW {quote_ident(name)} AS SELECT * FROM read_parquet([{files}])")
    return con


def timed(run: Callable[[], pa.Table]) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    table = run()
    return table, (time.perf_counter() - started) * 1000


def run_queries(
    fleet: LocalFleet, con: duckdb.DuckDBPyConnection, runs: int, queries: list[int]
) -> list[QueryResult]:
    results = []
    with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:

        def on_fleet(sql: str) -> Callable[[], pa.Table]:
            def run() -> pa.Table:
                cur.execute(sql)
                return cur.fetch_arrow_table()

            return run

        for n in queries:
            sql = query_text(n)
            r = QueryResult(n)
            results.append(r)
            say(f"{r.name}: checking the fleet's answer against DuckDB")
            expected, r.duckdb_first_ms = timed(lambda sql=sql: con.sql(sql).to_arrow_table())
            try:
                actual, r.fleet_first_ms = timed(on_fleet(sql))
            except Exception as exc:  # reported as ERROR, the run goes on
                r.status, r.detail = ERROR, f"{type(exc).__name__}: {exc}".splitlines()[0]
                say(f"{r.name}: ERROR {r.detail}")
                continue
            r.tasks = tasks_of(fleet, sql)
            diff = difference(actual, expected, ordered=is_ordered(sql))
            if diff is not None:
                r.status, r.detail = WRONG, diff
                say(f"{r.name}: WRONG {diff}")
                continue
            for i in range(runs):
                try:
                    _, ms_fleet = timed(on_fleet(sql))
                except Exception as exc:
                    r.status, r.detail = ERROR, f"{type(exc).__name__}: {exc}".splitlines()[0]
                    say(f"{r.name}: ERROR in run {i + 1}: {r.detail}")
                    break
                _, ms_duck = timed(lambda sql=sql: con.sql(sql).to_arrow_table())
                r.fleet_ms.append(ms_fleet)
                r.duckdb_ms.append(ms_duck)
                say(
                    f"{r.name}: run {i + 1}/{runs}: duckfleet {ms_fleet:.1f} ms, "
                    f"duckdb {ms_duck:.1f} ms"
                )
    return results


def result_table(results: list[QueryResult]) -> Table:
    table = Table(
        ["query", "duckdb ms", "duckfleet ms", "ratio", "tasks", "status"],
        digits={"ratio": 2},
    )
    for r in results:
        table.add(r.name, r.duckdb_median, r.fleet_median, r.ratio, r.tasks, r.status)
    counted = [r for r in results if r.counts]
    d = sum(r.duckdb_median or 0.0 for r in counted)
    f = sum(r.fleet_median or 0.0 for r in counted)
    status = f"{len(counted)}/{len(results)} OK"
    table.add("total", d, f, f / d if d else None, sum(r.tasks or 0 for r in results), status)
    return table


def detail_table(results: list[QueryResult]) -> Table:
    """Every run, for the CSV: first (checked) run and each warm run of both engines."""
    table = Table(
        [
            "query",
            "duckdb_ms",
            "duckfleet_ms",
            "ratio",
            "tasks",
            "status",
            "duckdb_first_ms",
            "duckfleet_first_ms",
            "duckdb_runs_ms",
            "duckfleet_runs_ms",
            "detail",
        ],
        digits={"ratio": 3},
    )

    def runs(values: list[float]) -> str:
        return " ".join(f"{v:.2f}" for v in values)

    for r in results:
        table.add(
            r.name,
            r.duckdb_median,
            r.fleet_median,
            r.ratio,
            r.tasks,
            r.status,
            r.duckdb_first_ms,
            r.fleet_first_ms,
            runs(r.duckdb_ms),
            runs(r.fleet_ms),
            r.detail,
        )
    total = result_table(results).rows[-1]
    table.add(*total, None, None, "", "", "")
    return table


def run_tpch(
    scale: float = 1.0,
    workers: int = 2,
    runs: int = 3,
    data_dir: str = "/tmp/bench-tpch",
    out: str | Path = "bench/results",
    log_dir: str | None = None,
    queries: list[int] | None = None,
) -> dict[str, Path]:
    """Run the TPC-H comparison; write <name>.md, .csv and .png under `out`."""
    queries = queries or list(range(1, 23))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = experiment_name(scale, workers)
    say(f"TPC-H scale {scale:g}: data in {data_dir} (generated if missing)")
    started = time.perf_counter()
    root = generate_tpch(data_dir, scale, parts=4)
    say(f"data ready in {time.perf_counter() - started:.1f} s: {root}")
    threads = cores()
    con = duckdb_reference(root, threads)
    try:
        with running_fleet(workers, log_dir) as fleet:
            store = fleet.store()
            try:
                register_tables(store, root)
            finally:
                store.close()
            results = run_queries(fleet, con, runs, queries)
    finally:
        con.close()

    table = result_table(results)
    print(table.text())
    paths = {
        "md": out / f"{name}.md",
        "csv": out / f"{name}.csv",
        "png": out / f"{name}.png",
    }
    detail_table(results).write_csv(paths["csv"])
    total_ratio = table.rows[-1][3]
    ratio_bars(
        paths["png"],
        f"TPC-H SF{scale:g}: duckfleet ({workers} workers) time / DuckDB in-process time",
        [r.name for r in results],
        [r.ratio for r in results],
        [r.status for r in results],
        total_ratio if isinstance(total_ratio, float) else None,
        [r.tasks for r in results],
    )
    header = environment()
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = (
        f"TPC-H SF{scale:g} from tpchgen-cli, Parquet, 4 files per table; duckfleet: "
        f"1 front door, {workers} worker(s) x {cores_per_worker(workers)} core(s), "
        f"etcd, all on this machine, client ADBC Flight SQL (one connection); "
        f"DuckDB in-process: views over the same files, threads={threads}"
    )
    header["method"] = (
        f"per query one checked run of each engine (answers compared with "
        f"duckfleet.verify), then median of {runs} warm run(s), interleaved; "
        "times include fetching the whole result as Arrow; ratio = duckfleet / DuckDB; "
        "total = sums of the medians of the OK queries"
    )
    notes = [f"- {r.name} {r.status}: {r.detail}" for r in results if r.status != OK]
    if notes:
        notes.insert(0, "Queries whose timings do not count:\n")
    write_markdown(
        paths["md"],
        f"TPC-H SF{scale:g}: duckfleet vs DuckDB in-process",
        header,
        table,
        notes,
        image=paths["png"].name,
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths
