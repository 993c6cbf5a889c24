"""Concurrency, and the latency promise.

1. Throughput: K clients (1, 2, 4, 8, 16), each with its own ADBC connection, run a
   mix of TPC-H queries back to back for a fixed time; queries per second, and
   p50/p95/p99 latency per query and overall. Every answer is checked against
   DuckDB in-process; a wrong one is counted, and its time is not.
2. Latency promise: one long query of many tasks runs again and again, filling every
   task slot, while short queries arrive (Poisson arrivals, each on a client of its
   own); their p50/p99 with the workers scheduling fair share and FIFO
   (DUCKFLEET_SCHEDULING=fair|fifo), against the same short queries on the idle
   fleet. Fair share: a free slot goes to the query with the fewest running tasks,
   so a short query waits for one long task at most; FIFO: for all of the long
   query's remaining tasks.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from bench.datasets import lineitem_parts
from bench.engines import DuckDBEngine
from bench.fleet import adbc_connect, fetch, fleet_setup, register, running_fleet
from bench.machine import environment
from bench.one_query import heavy_sql, reference
from bench.progress import say
from bench.report import Table, percentile, publish
from bench.tpch import is_ordered, query_text
from duckfleet.local_fleet import LocalFleet, generate_tpch
from duckfleet.verify import difference

HELP = "concurrency: K clients' throughput; short-query latency under a long query"
NAME = "concurrency"
MIX = (1, 3, 5, 6, 10, 12, 14, 19)
SHORT = "select n_regionkey, count(*) as n from nation group by n_regionkey"
LONG_TABLE = "lineitem_many"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, default=0.1, help="TPC-H scale of the mix")
    p.add_argument("--clients", default="1,2,4,8,16", help="client counts")
    p.add_argument("--seconds", type=float, default=15.0, help="seconds per client count")
    p.add_argument("--queries", default=",".join(map(str, MIX)), help="TPC-H queries in the mix")
    p.add_argument("--long-scale", type=float, default=1.0, help="lineitem scale, long query")
    p.add_argument("--long-files", type=int, default=32, help="files (tasks) of the long query")
    p.add_argument("--work", type=int, default=16, help="md5 calls per row, long query")
    p.add_argument("--window", type=float, default=20.0, help="seconds of short arrivals")
    p.add_argument("--rate", type=float, default=2.0, help="short queries per second")


@dataclass
class Sample:
    query: str
    ms: float
    ok: bool  # answer equal to DuckDB's


def check(table: pa.Table, expected: pa.Table, sql: str) -> bool:
    return difference(table, expected, ordered=is_ordered(sql)) is None


def throughput(
    fleet: LocalFleet, k: int, seconds: float, mix: dict[str, tuple[str, pa.Table]]
) -> tuple[list[Sample], int, float]:
    """K clients for `seconds`: the samples, errors, and the elapsed time."""
    names = list(mix)
    samples: list[Sample] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(i: int) -> None:
        with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:
            n = i
            while time.monotonic() < deadline:
                name = names[n % len(names)]
                sql, expected = mix[name]
                n += 1
                started = time.perf_counter()
                try:
                    table = fetch(cur, sql)
                except Exception as exc:
                    say(f"{name}: error {exc!s:.200}")
                    with lock:
                        errors[0] += 1
                    continue
                ms = (time.perf_counter() - started) * 1000
                with lock:
                    samples.append(Sample(name, ms, check(table, expected, sql)))

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples, errors[0], time.monotonic() - started


@contextmanager
def long_query_loop(fleet: LocalFleet, sql: str, expected: pa.Table) -> Iterator[list[float]]:
    """Run `sql` back to back in a thread until the block ends; yields its times (s)."""
    stop = threading.Event()
    times: list[float] = []

    def loop() -> None:
        with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:
            while not stop.is_set():
                started = time.monotonic()
                table = fetch(cur, sql)
                if difference(table, expected, ordered=False) is not None:
                    raise AssertionError("the long query's answer differs from DuckDB's")
                times.append(time.monotonic() - started)

    thread = threading.Thread(target=loop, name="long-query")
    thread.start()
    try:
        yield times
    finally:
        stop.set()
        thread.join()


def short_arrivals(
    fleet: LocalFleet, window: float, rate: float, expected: pa.Table, seed: int
) -> list[Sample]:
    """Short queries arriving at `rate` per second (Poisson) for `window` seconds,
    each on a client thread of its own (a pool of connections, one per thread)."""
    rng = random.Random(seed)
    local = threading.local()
    conns = []
    lock = threading.Lock()

    def run_one() -> Sample:
        if not hasattr(local, "cur"):
            local.conn = adbc_connect(fleet.uri)
            local.cur = local.conn.cursor()
            with lock:
                conns.append(local.conn)
        started = time.perf_counter()
        table = fetch(local.cur, SHORT)
        ms = (time.perf_counter() - started) * 1000
        return Sample("short", ms, check(table, expected, SHORT))

    futures = []
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="short") as pool:
        end = time.monotonic() + window
        while time.monotonic() < end:
            futures.append(pool.submit(run_one))
            time.sleep(rng.expovariate(rate))
        samples = [f.result() for f in futures]
    for conn in conns:
        conn.close()
    return samples


def run_concurrency(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    ks = [int(k) for k in args.clients.split(",")]
    numbers = [int(q) for q in args.queries.split(",")]
    root = generate_tpch(args.data_dir, args.scale, parts=4)
    folder = lineitem_parts(
        args.data_dir, args.long_scale, f"lineitem_{args.long_files}", [1] * args.long_files
    )
    duck = DuckDBEngine(root, 2)
    try:
        mix = {f"q{n:02d}": (query_text(n), duck.run(query_text(n))) for n in numbers}
        short_expected = duck.run(SHORT)
    finally:
        duck.close()
    long_sql = heavy_sql(LONG_TABLE, args.work)
    say("computing the long query's answer with DuckDB in-process")
    long_expected = reference(long_sql, {LONG_TABLE: folder})

    per_k: dict[int, tuple[list[Sample], int, float]] = {}
    promise: dict[str, list[Sample]] = {}
    long_times: dict[str, list[float]] = {}
    setup = ""
    for mode in ("fair", "fifo"):
        env = {"DUCKFLEET_SCHEDULING": mode}
        with running_fleet(2, args.log_dir, per_worker=1, env=env) as fleet:
            setup = fleet_setup(fleet).split("; DUCKFLEET_SCHEDULING")[0]
            register(fleet, root, **{LONG_TABLE: folder})
            if mode == "fair":
                for k in ks:
                    throughput(fleet, k, min(2.0, args.seconds / 2), mix)  # warm-up
                    per_k[k] = throughput(fleet, k, args.seconds, mix)
                    s, errors, elapsed = per_k[k]
                    say(f"{k} client(s): {len(s) / elapsed:.1f} queries/s, {errors} error(s)")
            settle = min(1.0, args.window / 3)
            short_arrivals(fleet, settle, args.rate, short_expected, 0)  # warm-up
            promise[f"idle fleet ({mode})"] = short_arrivals(
                fleet, args.window, args.rate, short_expected, 1
            )
            with long_query_loop(fleet, long_sql, long_expected) as times:
                time.sleep(settle)  # the long query's tasks fill the slots
                promise[f"long query running, {mode}"] = short_arrivals(
                    fleet, args.window, args.rate, short_expected, 2
                )
            long_times[mode] = times
            for case in (f"idle fleet ({mode})", f"long query running, {mode}"):
                ms = [x.ms for x in promise[case]]
                say(f"{case}: short p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f}")

    cols = ["clients", "queries", "queries/s", "p50 ms", "p95 ms", "p99 ms", "wrong", "errors"]
    table = Table(cols, digits={"queries/s": 1})
    detail = Table(["clients", "query", "runs", "p50 ms", "p95 ms", "p99 ms", "wrong"])
    for k, (samples, errors, elapsed) in per_k.items():
        good = [x.ms for x in samples if x.ok]
        table.add(
            k,
            len(samples),
            len(good) / elapsed,
            percentile(good, 50),
            percentile(good, 95),
            percentile(good, 99),
            sum(1 for x in samples if not x.ok),
            errors,
        )
        for name in mix:
            mine = [x.ms for x in samples if x.query == name and x.ok]
            detail.add(
                k,
                name,
                len(mine),
                percentile(mine, 50),
                percentile(mine, 95),
                percentile(mine, 99),
                sum(1 for x in samples if x.query == name and not x.ok),
            )
    short = Table(["case", "short queries", "p50 ms", "p95 ms", "p99 ms", "max ms", "wrong"])
    for case, samples in promise.items():
        ms = [x.ms for x in samples if x.ok]
        short.add(
            case,
            len(samples),
            percentile(ms, 50),
            percentile(ms, 95),
            percentile(ms, 99),
            max(ms, default=None),
            sum(1 for x in samples if not x.ok),
        )
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup + "; the workers schedule fair share, then FIFO (a fleet each)"
    header["throughput"] = (
        f"TPC-H SF{args.scale:g} queries {', '.join(mix)} in turn, each client on its own "
        f"ADBC connection, {args.seconds:g} s per client count after a warm-up; "
        "latency of answers equal to DuckDB's"
    )
    header["latency promise"] = (
        f"short query `{SHORT}` (1 task) arriving at {args.rate:g}/s (Poisson) for "
        f"{args.window:g} s; long query: {args.work} md5 calls per row over lineitem "
        f"SF{args.long_scale:g} in {args.long_files} files ({args.long_files + 1} tasks), "
        "run back to back; long query times (s): "
        + "; ".join(f"{m}: {', '.join(f'{t:.1f}' for t in ts)}" for m, ts in long_times.items())
    )

    def plot(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
        xs = list(per_k)
        a.plot(xs, [r[2] for r in table.rows], marker="o", label="queries/s")
        a.set_xscale("log", base=2)
        a.set_xlabel("clients")
        a.set_ylabel("queries/s")
        a2 = a.twinx()
        for col, style in (("p50 ms", "--"), ("p99 ms", ":")):
            i = cols.index(col)
            a2.plot(xs, [r[i] for r in table.rows], style, marker="s", label=col)
        a2.set_ylabel("latency ms")
        h1, l1 = a.get_legend_handles_labels()
        h2, l2 = a2.get_legend_handles_labels()
        a.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
        a.set_title("TPC-H mix: throughput and latency vs clients")
        cases = list(promise)
        for j, (p, label) in enumerate(((2, "p50"), (4, "p99"))):
            b.bar(
                [i + (j - 0.5) * 0.4 for i in range(len(cases))],
                [short.rows[i][p] or 0 for i in range(len(cases))],
                0.4,
                label=label,
            )
        b.set_yscale("log")
        b.set_xticks(range(len(cases)), [c.replace(", ", "\n") for c in cases], fontsize=8)
        b.set_ylabel("short query latency ms (log)")
        b.set_title("Short queries while a long query fills the fleet")
        b.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    paths = publish(
        Path(args.out),
        NAME,
        "Concurrency and the latency promise",
        header,
        table,
        plot,
        csv_table=detail,
        sections=[
            ("Short queries while a long query fills the fleet: fair share vs FIFO", short),
            ("Per query (latency of right answers)", detail),
        ],
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(args: argparse.Namespace) -> int:
    run_concurrency(args)
    return 0
