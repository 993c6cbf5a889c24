"""Queue throughput: how many trivial tasks per second the etcd task queue sustains
with 1, 2 and 4 workers, and how many etcd operations a query costs.

1. Tasks per second: a table of many 10-row files; a grouped count over it is one
   partial task per file plus a merge, each of which does almost nothing, so the
   time goes to claiming, completing and fetching. Several clients run it back to
   back for a fixed time with 1, 2, 4 workers (one core, one slot each); tasks/s =
   tasks of the answered queries / elapsed. Every answer is checked.
2. etcd operations per query, from etcd's own /metrics (grpc_server_handled_total
   by method) read before and after a batch of identical queries; the fleet's
   background traffic (workers rescanning the queue every 2 s) is measured over an
   idle stretch of the same length and subtracted.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow as pa

from bench.datasets import tiny_parts
from bench.fleet import (
    adbc_connect,
    fetch,
    fleet_setup,
    register,
    running_fleet,
    set_workers,
    tasks_of,
)
from bench.machine import environment
from bench.one_query import reference
from bench.progress import say
from bench.report import Table, percentile, publish
from duckfleet.local_fleet import LocalFleet
from duckfleet.verify import difference

HELP = "queue throughput: trivial tasks/s with 1, 2, 4 workers; etcd operations per query"
NAME = "queue"
TABLE = "tiny_parts"
ONE = "tiny_one"
METRIC = re.compile(r"^grpc_server_handled_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", type=int, default=64, help="10-row files (default 64)")
    p.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per worker count")
    p.add_argument("--ops-queries", type=int, default=20, help="queries per etcd-ops case")


def etcd_calls(url: str) -> dict[str, float]:
    """etcd's gRPC calls handled so far, by method (all codes)."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = METRIC.match(line)
        if m:
            method = re.search(r'grpc_method="([^"]+)"', m["labels"])
            if method:
                out[method[1]] = out.get(method[1], 0.0) + float(m["value"])
    return out


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(after) | set(before)}


def hammer(
    fleet: LocalFleet, sql: str, expected: pa.Table, clients: int, seconds: float
) -> tuple[list[float], int, int, float]:
    """`clients` threads running `sql` back to back: (latencies ms, wrong, errors, s)."""
    ms: list[float] = []
    bad = [0, 0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    table = fetch(cur, sql)
                except Exception as exc:
                    say(f"error: {exc!s:.200}")
                    with lock:
                        bad[1] += 1
                    continue
                took = (time.perf_counter() - started) * 1000
                with lock:
                    if difference(table, expected, ordered=False) is None:
                        ms.append(took)
                    else:
                        bad[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ms, bad[0], bad[1], time.monotonic() - started


def run_queue(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    folder = tiny_parts(args.data_dir, args.files)
    one = str(sorted(Path(folder).glob("*.parquet"))[0])
    sql = f"select part, count(*) as n, sum(id) as s from {TABLE} group by part"
    expected = reference(sql, {TABLE: folder})
    counts = [int(w) for w in args.workers.split(",")]
    columns = "workers,queries,tasks per query,tasks/s,p50 ms,p99 ms,wrong,errors".split(",")
    table = Table(columns, digits={"tasks/s": 0})
    ops = Table(
        ["query", "tasks", "queries", "etcd calls / query", "per task", "by method / query"],
        digits={"etcd calls / query": 1, "per task": 1},
    )
    # one task per file, as the benchmark is defined: the files are not packed
    # together (DUCKFLEET_PACK_BYTES=0), so every query is 65 tasks through the queue
    pack = {"DUCKFLEET_PACK_BYTES": "0"}
    with running_fleet(counts[0], args.log_dir, per_worker=1, env=pack) as fleet:
        setup = fleet_setup(fleet).replace(f"{counts[0]} worker(s)", "N worker(s)")
        register(fleet, **{TABLE: folder, ONE: one})
        ntasks = 0
        for w in counts:
            set_workers(fleet, w)
            hammer(fleet, sql, expected, args.clients, min(2.0, args.seconds / 2))  # warm-up
            ms, wrong, errors, elapsed = hammer(fleet, sql, expected, args.clients, args.seconds)
            ntasks = tasks_of(fleet, sql) or 0
            rate = len(ms) * ntasks / elapsed
            say(f"{w} worker(s): {rate:.0f} tasks/s, {len(ms)} queries")
            table.add(
                w, len(ms), ntasks, rate, percentile(ms, 50), percentile(ms, 99), wrong, errors
            )
        set_workers(fleet, 2)
        assert fleet.etcd is not None
        url = fleet.etcd.url
        cases = {
            "SELECT 1": "SELECT 1",
            f"count over 1 file ({ONE})": f"select count(*) as n from {ONE}",
            f"grouped count over {args.files} files": sql,
        }
        with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:
            for label, q in cases.items():
                fetch(cur, q)  # warm-up
                started, before = time.monotonic(), etcd_calls(url)
                for _ in range(args.ops_queries):
                    fetch(cur, q)
                busy = delta(etcd_calls(url), before)
                seconds = time.monotonic() - started
                idle_before = etcd_calls(url)
                time.sleep(seconds)
                idle = delta(etcd_calls(url), idle_before)
                per_query = {
                    k: (busy[k] - idle.get(k, 0.0)) / args.ops_queries
                    for k in busy
                    if busy[k] - idle.get(k, 0.0) > 0
                }
                total = sum(per_query.values())
                n = tasks_of(fleet, q) or 0
                methods = ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(per_query.items(), key=lambda kv: -kv[1])
                )
                ops.add(label, n, args.ops_queries, total, total / n if n else None, methods)
                say(f"{label}: {total:.1f} etcd calls per query ({methods})")
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup + "; workers stopped (SIGTERM) or started between counts"
    header["query"] = f"`{sql}` over {args.files} Parquet files of 10 rows"
    header["method"] = (
        f"{args.clients} clients back to back, {args.seconds:g} s per worker count after a "
        f"warm-up; etcd calls from etcd's /metrics over {args.ops_queries} sequential "
        "queries per case, less the same stretch of idle background"
    )

    def plot(path: Path) -> None:
        from bench.report import grouped_bars

        grouped_bars(
            path,
            f"Trivial tasks per second through the etcd queue ({args.clients} clients)",
            [f"{r[0]} worker(s)" for r in table.rows],
            {"tasks/s": [r[3] for r in table.rows]},  # type: ignore[misc]
            "tasks/s",
        )

    paths = publish(
        Path(args.out),
        NAME,
        "Queue throughput and etcd operations per query",
        header,
        table,
        plot,
        sections=[("etcd calls per query (gRPC calls handled by etcd)", ops)],
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(args: argparse.Namespace) -> int:
    run_queue(args)
    return 0
