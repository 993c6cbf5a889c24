"""Dashboard load: many BI clients looping over short queries, fleet against DuckDB.

`clients` ADBC connections (auth on, as `duckfleet up` starts a fleet), each looping
for `seconds` over the six dashboard queries of issue 14 (each client starting at a
different one), against DuckDB in-process serving the same loop from as many
threads (one cursor each, views over the same Parquet files). Every answer is
compared with DuckDB's before it counts. Reported per engine and scale: queries/s,
p50 and p99 latency, wrong answers and errors, and the fleet's share of DuckDB's
throughput; per query, each engine's p50 and the path the fleet took (EXPLAIN).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from bench.engines import DuckDBEngine
from bench.fleet import adbc_connect, fetch, fleet_setup, register, running_fleet
from bench.machine import cores, environment
from bench.progress import say
from bench.report import Table, latency_cdf, percentile, publish
from duckfleet.local_fleet import generate_tpch
from duckfleet.verify import difference

HELP = "dashboard load: 8 ADBC clients over short queries, fleet vs DuckDB in-process"
NAME = "dashboard"

QUERIES = (
    "SELECT l_returnflag, l_linestatus, count(*) AS n, sum(l_extendedprice) AS s "
    "FROM lineitem WHERE l_shipdate >= DATE '1998-09-01' GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT n_name, count(*) AS c FROM customer JOIN nation ON c_nationkey = n_nationkey "
    "GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    "SELECT o_orderpriority, count(*) AS c FROM orders "
    "WHERE o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1995-01-31' GROUP BY 1 ORDER BY 1",
    "SELECT * FROM nation ORDER BY n_nationkey",
    "SELECT r_name, count(*) AS k FROM region JOIN nation ON r_regionkey = n_regionkey "
    "GROUP BY 1 ORDER BY 1",
    "SELECT count(*) AS c FROM supplier WHERE s_acctbal > 9000",
)


# Query 2 keeps the first 5 of 25 nations by a count that ties: which tied nation
# makes the cut varies from run to run in DuckDB too, so its answer is compared by
# the counts, in order.
TIES_BY = {1: "c"}


def same_answer(query: int, table: pa.Table, expected: pa.Table) -> bool:
    column = TIES_BY.get(query)
    if column is not None:
        return table.column(column).to_pylist() == expected.column(column).to_pylist()
    return difference(table, expected, ordered=True) is None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scales", default="1,0.01", help="TPC-H scale factors (default 1,0.01)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--seconds", type=float, default=15.0, help="seconds per engine and scale")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")


class Loop:
    """Samples of one engine at one scale: (query index, ms) of each right answer."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, float]] = []
        self.wrong = 0
        self.errors = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def record(self, query: int, ms: float | None, right: bool) -> None:
        with self._lock:
            if ms is None:
                self.errors += 1
            elif right:
                self.samples.append((query, ms))
            else:
                self.wrong += 1

    def ms(self, query: int | None = None) -> list[float]:
        return [m for q, m in self.samples if query is None or q == query]

    @property
    def rate(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0


def run_loop(
    clients: int,
    seconds: float,
    connect: Callable[[], tuple[Callable[[str], pa.Table], Callable[[], None]]],
    expected: Sequence[pa.Table],
) -> Loop:
    """`clients` threads, each with its own connection from `connect()` (a run
    function and a close function), looping over QUERIES for `seconds`."""
    loop = Loop()
    ready = threading.Barrier(clients + 1)
    deadline: list[float] = []

    def client(n: int) -> None:
        run, close = connect()
        try:
            ready.wait()
            i = n
            while time.monotonic() < deadline[0]:
                q = i % len(QUERIES)
                i += 1
                started = time.perf_counter()
                try:
                    table = run(QUERIES[q])
                except Exception as exc:
                    say(f"query {q + 1}: error: {exc!s:.200}")
                    loop.record(q, None, False)
                    continue
                ms = (time.perf_counter() - started) * 1000
                right = same_answer(q, table, expected[q])
                loop.record(q, ms, right)
        finally:
            close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    deadline.append(time.monotonic() + seconds)
    started = time.monotonic()
    ready.wait()
    for t in threads:
        t.join()
    loop.seconds = time.monotonic() - started
    return loop


def run_dashboard(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    scales = [float(s) for s in args.scales.split(",")]
    table = Table(
        [
            "scale",
            "engine",
            "queries",
            "queries/s",
            "p50 ms",
            "p99 ms",
            "wrong",
            "errors",
            "x DuckDB",
        ],
        digits={"queries/s": 1, "p50 ms": 2, "p99 ms": 2, "x DuckDB": 2},
    )
    detail = Table(
        ["scale", "query", "path", "fleet p50 ms", "DuckDB p50 ms", "fleet / DuckDB"],
        digits={"fleet p50 ms": 2, "DuckDB p50 ms": 2, "fleet / DuckDB": 2},
    )
    samples: dict[str, list[float]] = {}
    setup = ""
    for scale in scales:
        root = generate_tpch(args.data_dir, scale, parts=4)
        reference = DuckDBEngine(root, cores())
        expected = [reference.run(q) for q in QUERIES]

        def duckdb_cursor(
            ref: DuckDBEngine = reference,
        ) -> tuple[Callable[[str], pa.Table], Callable[[], None]]:
            cur = ref.con.cursor()
            return (lambda sql: cur.sql(sql).to_arrow_table()), cur.close

        say(f"SF{scale:g}: DuckDB in-process, {args.clients} threads, {args.seconds:g} s")
        run_loop(args.clients, min(2.0, args.seconds), duckdb_cursor, expected)  # warm-up
        duck = run_loop(args.clients, args.seconds, duckdb_cursor, expected)
        reference.close()
        with running_fleet(args.workers, args.log_dir, auth=True) as fleet:
            setup = fleet_setup(fleet)
            register(fleet, root)

            def fleet_cursor() -> tuple[Callable[[str], pa.Table], Callable[[], None]]:
                conn = adbc_connect(fleet.uri, login=fleet)
                cur = conn.cursor()

                def close() -> None:
                    cur.close()
                    conn.close()

                return (lambda sql: fetch(cur, sql)), close

            run_fn, done = fleet_cursor()
            try:
                paths = []
                for text in QUERIES:
                    rows = run_fn(f"EXPLAIN {text}").to_pylist()
                    path = next((r["detail"] for r in rows if r["kind"] == "path"), "")
                    tasks = sum(1 for r in rows if r["task"] is not None)
                    paths.append(f"{path.split(':')[0]}, {tasks} task(s)")
            finally:
                done()
            say(f"SF{scale:g}: the fleet, {args.clients} ADBC clients, {args.seconds:g} s")
            run_loop(args.clients, min(2.0, args.seconds), fleet_cursor, expected)  # warm-up
            ours = run_loop(args.clients, args.seconds, fleet_cursor, expected)
        for name, loop in (("duckfleet", ours), ("DuckDB in-process", duck)):
            ms = loop.ms()
            table.add(
                f"SF{scale:g}",
                name,
                len(ms),
                loop.rate,
                percentile(ms, 50) if ms else None,
                percentile(ms, 99) if ms else None,
                loop.wrong,
                loop.errors,
                loop.rate / duck.rate if duck.rate else None,
            )
            samples[f"{name}, SF{scale:g}"] = ms
        for q in range(len(QUERIES)):
            a, b = ours.ms(q), duck.ms(q)
            pa50 = percentile(a, 50) if a else None
            pb50 = percentile(b, 50) if b else None
            detail.add(
                f"SF{scale:g}",
                q + 1,
                paths[q],
                pa50,
                pb50,
                pa50 / pb50 if pa50 and pb50 else None,
            )
        say(f"SF{scale:g}: fleet {ours.rate:.1f} q/s, DuckDB {duck.rate:.1f} q/s")
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = (
        f"{setup}; auth on (each client logged in once); {args.clients} ADBC clients, one "
        f"connection each; DuckDB in-process: one connection, {args.clients} cursors in as "
        f"many threads, {cores()} DuckDB threads, views over the same Parquet files"
    )
    header["method"] = (
        f"each client loops over the {len(QUERIES)} queries for {args.seconds:g} s (after a "
        "2 s warm-up), starting at a different one; an answer counts only if it equals "
        "DuckDB's; TPC-H from tpchgen-cli, 4 Parquet files per table"
    )
    header["queries"] = "; ".join(f"({i + 1}) `{q}`" for i, q in enumerate(QUERIES))
    return publish(
        Path(args.out),
        NAME,
        f"Dashboard load: {args.clients} clients, duckfleet vs DuckDB in-process",
        header,
        table,
        lambda path: latency_cdf(path, "Dashboard query latency", samples),
        sections=[("per query", detail)],
    )


def main(args: argparse.Namespace) -> int:
    run_dashboard(args)
    return 0
