"""TPC-H on the same Parquet files through duckfleet (ADBC), DuckDB in-process,
DataFusion in-process and PySpark in local mode.

Per query: one run through each engine, its answer compared with DuckDB's
(bench.engines.engine_difference); an engine whose answer differs is WRONG, one that
cannot run the query is ERROR, and neither timing counts. Then `runs` warm runs,
interleaved (every engine once, then again, ...) so drift hits all alike; the
median of each counts. Totals are sums of medians over the queries an engine got
right, and its ratio is to DuckDB's sum over the same queries.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import sqlglot

from bench import QUERIES_DIR
from bench.engines import DIALECT, ENGINES, Engine, engine_difference, make_engine
from bench.fleet import fleet_setup, register, running_fleet, tasks_of
from bench.machine import cores, environment, java_version
from bench.progress import say
from bench.report import Table, grouped_bars, median, publish
from duckfleet.local_fleet import LocalFleet, generate_tpch

OK, WRONG, ERROR = "OK", "WRONG", "ERROR"
NAME = "tpch"


def query_text(n: int) -> str:
    return (QUERIES_DIR / f"q{n:02d}.sql").read_text()


def is_ordered(sql: str) -> bool:
    """Whether the answer has an order to compare: an ORDER BY on the outermost query."""
    return sqlglot.parse_one(sql, dialect="duckdb").args.get("order") is not None


def experiment_name(scale: float, workers: int) -> str:
    return f"tpch_sf{scale:g}" + ("" if workers == 2 else f"_w{workers}")


@dataclass
class Outcome:
    """One query on one engine."""

    status: str = OK
    detail: str = ""  # what differed, or the error
    first_ms: float | None = None  # the checked run
    runs_ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return median(self.runs_ms) if self.status == OK and self.runs_ms else None


@dataclass
class QueryResult:
    n: int
    tasks: int | None = None  # duckfleet's tasks for the query
    by_engine: dict[str, Outcome] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"q{self.n:02d}"

    def ratio(self, engine: str) -> float | None:
        e, d = self.by_engine[engine].median, self.by_engine["duckdb"].median
        return e / d if e is not None and d else None


def timed(run: Callable[[], pa.Table]) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    table = run()
    return table, (time.perf_counter() - started) * 1000


def first_line(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}".strip().splitlines() or [""])[0][:300]


def run_queries(
    engines: dict[str, Engine], fleet: LocalFleet | None, runs: int, queries: list[int]
) -> list[QueryResult]:
    results = []
    reference = engines["duckdb"]
    for n in queries:
        sql = query_text(n)
        r = QueryResult(n)
        results.append(r)
        expected, ms = timed(lambda sql=sql: reference.run(sql))
        r.by_engine["duckdb"] = Outcome(first_ms=ms)
        for name, engine in engines.items():
            if name == "duckdb":
                continue
            o = r.by_engine[name] = Outcome()
            try:
                actual, o.first_ms = timed(lambda e=engine, sql=sql: e.run(sql))
            except Exception as exc:  # reported as ERROR, the run goes on
                o.status, o.detail = ERROR, first_line(exc)
                say(f"{r.name} {name}: ERROR {o.detail}")
                continue
            diff = engine_difference(
                actual, expected, ordered=is_ordered(sql), exact=name == "duckfleet"
            )
            if diff is not None:
                o.status, o.detail = WRONG, diff
                say(f"{r.name} {name}: WRONG {diff}")
        if fleet is not None and "duckfleet" in engines:
            r.tasks = tasks_of(fleet, sql)
        for i in range(runs):
            line = []
            for name, engine in engines.items():
                o = r.by_engine[name]
                if o.status != OK:
                    continue
                try:
                    _, ms = timed(lambda e=engine, sql=sql: e.run(sql))
                except Exception as exc:
                    o.status, o.detail = ERROR, f"in warm run {i + 1}: {first_line(exc)}"
                    say(f"{r.name} {name}: ERROR {o.detail}")
                    continue
                o.runs_ms.append(ms)
                line.append(f"{name} {ms:.1f} ms")
            say(f"{r.name}: run {i + 1}/{runs}: " + ", ".join(line))
    return results


def totals(results: list[QueryResult], engines: Sequence[str]) -> Table:
    """Per engine: queries right, sum of medians, DuckDB's sum over the same queries."""
    table = Table(
        ["engine", "queries OK", "total ms", "duckdb ms (same queries)", "ratio"],
        digits={"ratio": 2},
    )
    for name in engines:
        ok = [r for r in results if r.by_engine[name].median is not None]
        ok = [r for r in ok if r.by_engine["duckdb"].median is not None]
        mine = sum(r.by_engine[name].median or 0.0 for r in ok)
        base = sum(r.by_engine["duckdb"].median or 0.0 for r in ok)
        table.add(name, f"{len(ok)}/{len(results)}", mine, base, mine / base if base else None)
    return table


def per_query(results: list[QueryResult], engines: Sequence[str]) -> Table:
    columns = ["query"]
    for name in engines:
        columns += [f"{name} ms"] + ([] if name == "duckdb" else [f"{name} x"])
    if "duckfleet" in engines:
        columns.append("duckfleet tasks")
    table = Table(columns, digits={c: 2 for c in columns if c.endswith(" x")})
    for r in results:
        row: list[str | float | int | None] = [r.name]
        for name in engines:
            o = r.by_engine[name]
            row.append(o.median if o.status == OK else o.status)
            if name != "duckdb":
                row.append(r.ratio(name))
        if "duckfleet" in engines:
            row.append(r.tasks)
        table.add(*row)
    return table


def detail_table(results: list[QueryResult], engines: Sequence[str]) -> Table:
    """Every run, for the CSV: one row per query and engine."""
    table = Table(
        "query engine status median_ms ratio_to_duckdb first_ms runs_ms tasks detail".split(),
        digits={"median_ms": 2, "ratio_to_duckdb": 3, "first_ms": 2},
    )
    for r in results:
        for name in engines:
            o = r.by_engine[name]
            runs = " ".join(f"{v:.2f}" for v in o.runs_ms)
            ratio = None if name == "duckdb" else r.ratio(name)
            tasks = r.tasks if name == "duckfleet" else None
            table.add(r.name, name, o.status, o.median, ratio, o.first_ms, runs, tasks, o.detail)
    return table


def run_tpch(
    scale: float = 1.0,
    workers: int = 2,
    runs: int = 3,
    data_dir: str = "/tmp/bench-tpch",
    out: str | Path = "bench/results",
    log_dir: str | None = None,
    queries: list[int] | None = None,
    engines: Sequence[str] = ENGINES,
) -> dict[str, Path]:
    """Run the TPC-H comparison; write <name>.md, .csv and .png under `out`."""
    header = environment()
    queries = queries or list(range(1, 23))
    names = ["duckdb"] + [e for e in ENGINES if e in engines and e != "duckdb"]
    name = experiment_name(scale, workers)
    say(f"TPC-H scale {scale:g}: data in {data_dir} (generated if missing)")
    started = time.perf_counter()
    root = generate_tpch(data_dir, scale, parts=4)
    say(f"data ready in {time.perf_counter() - started:.1f} s: {root}")
    threads = cores()
    opened: dict[str, Engine] = {}
    setup = ""
    try:
        for e in names:
            if e != "duckfleet":
                say(f"starting {e}")
                opened[e] = make_engine(e, root, threads)
        if "duckfleet" in names:
            with running_fleet(workers, log_dir) as fleet:
                register(fleet, root)
                setup = fleet_setup(fleet)
                opened["duckfleet"] = make_engine("duckfleet", root, threads, fleet.uri)
                ordered = {e: opened[e] for e in names}
                results = run_queries(ordered, fleet, runs, queries)
                opened.pop("duckfleet").close()
        else:
            results = run_queries({e: opened[e] for e in names}, None, runs, queries)
    finally:
        for engine in opened.values():
            engine.close()

    summary = totals(results, names)
    table = per_query(results, names)
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["data"] = f"TPC-H SF{scale:g} from tpchgen-cli, Parquet, 4 files per table"
    described = {
        "duckdb": f"duckdb in this process, {threads} threads",
        "duckfleet": f"duckfleet: {setup}, client ADBC Flight SQL (one connection)",
        "datafusion": f"datafusion in this process, {threads} target partitions",
        "spark": f"spark: local[{threads}], driver memory 4g, {java_version()}",
    }
    header["engines"] = "; ".join(described[e] for e in names)
    header["dialects"] = "; ".join(f"{e}: {DIALECT[e]}" for e in names)
    header["method"] = (
        f"per query one checked run of each engine (answer compared with DuckDB's: "
        f"duckfleet exactly, the others by column position with numbers as doubles to a "
        f"relative 1e-6 or an absolute 1e-6), then median of {runs} warm run(s), "
        "interleaved; times include fetching the whole result as Arrow; x = engine / "
        "DuckDB; totals over the queries an engine answered right"
    )
    notes = [
        f"- {r.name} {e} {r.by_engine[e].status}: {r.by_engine[e].detail}"
        for r in results
        for e in names
        if r.by_engine[e].status != OK
    ]
    if notes:
        notes.insert(0, "Queries an engine could not run or got wrong (times not counted):\n")

    def plot(path: Path) -> None:
        others = [e for e in names if e != "duckdb"]
        labels = [r.name for r in results] + ["total"]
        total_ratio = {row[0]: row[4] for row in summary.rows}
        grouped_bars(
            path,
            f"TPC-H SF{scale:g}: time / DuckDB in-process time (log scale; no bar: not OK)",
            labels,
            {
                f"{e} (total {total_ratio[e]:.2f}x)" if isinstance(total_ratio[e], float) else e: [
                    r.ratio(e) for r in results
                ]
                + [total_ratio[e] if isinstance(total_ratio[e], float) else None]
                for e in others
            },
            "time / DuckDB time",
            log=True,
            hline=1.0,
        )

    paths = publish(
        Path(out),
        name,
        f"TPC-H SF{scale:g}: " + ", ".join(names) + " on the same Parquet files",
        header,
        summary,
        plot,
        csv_table=detail_table(results, names),
        sections=[("Per query: median ms, and x = time / DuckDB's", table)],
        notes=notes,
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


HELP = "TPC-H: duckfleet, DuckDB, DataFusion and PySpark on the same files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    p.add_argument("--workers", type=int, default=2, help="duckfleet workers (default 2)")
    p.add_argument("--runs", type=int, default=3, help="warm runs per query and engine")
    p.add_argument("--queries", help="comma-separated query numbers (default: all 22)")
    p.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated, from {','.join(ENGINES)} (duckdb always runs: the reference)",
    )


def main(args: argparse.Namespace) -> int:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engine(s) {sorted(unknown)}; choose from {ENGINES}")
    run_tpch(
        scale=args.scale,
        workers=args.workers,
        runs=args.runs,
        data_dir=args.data_dir,
        out=args.out,
        log_dir=args.log_dir,
        queries=[int(q) for q in args.queries.split(",")] if args.queries else None,
        engines=engines,
    )
    return 0
