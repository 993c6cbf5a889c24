"""How far one etcd carries a fleet: the task queue's ceiling with many lightweight
simulated workers.

A simulated worker is a process that does what a worker does to the control plane
and nothing else: it joins (a lease), lists the queue, claims up to its slots in
one transaction (`TaskQueue.claim_many`) and completes each claim with the real
fenced completion, with a made-up result and no DuckDB, no Flight. Publishers keep
a fixed number of 65-task queries (64 partials and a merge, as `bench queue`) in
flight through `QueryStore.publish`, waiting on the real status watch. So every
etcd call is one the fleet makes, and the only work is etcd's.

For 1, 8 and 32 simulated workers: tasks completed per second, and from etcd's own
/metrics over the same stretch: gRPC calls by method, WAL fsyncs and their mean
time, backend commits, and the CPU etcd used. From those the README says how many
tasks, and queries of TPC-H's size, one etcd serves.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import re
import shlex
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.machine import environment
from bench.progress import say
from bench.report import Table, publish
from duckfleet.control import Membership, QueryStore, Store, TaskQueue
from duckfleet.control.readonly import parse_version
from duckfleet.control.records import MemberInfo, QueryState, ResultInfo
from duckfleet.control.scheduling import spread_ties
from duckfleet.etcd_server import EtcdServer, binary_version, local_binaries
from duckfleet.ids import MemberId, new_query_id, task_id
from duckfleet.planner.plan import InputBinding, Plan, Stage, StageKind, TaskPlan

HELP = "etcd's ceiling: trivial tasks/s with 1, 8, 32 simulated workers; etcd disk and CPU"
NAME = "etcd_ceiling"
PARTIALS = 64
SCHEMA = pa.schema([("x", pa.int64())])
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", default="1,8,32", help="simulated worker counts")
    p.add_argument("--slots", type=int, default=2, help="slots per simulated worker")
    p.add_argument("--in-flight", type=int, default=8, help="queries kept in flight")
    p.add_argument("--seconds", type=float, default=15.0, help="seconds per worker count")


def plan_of(n: int) -> Plan:
    partials = tuple(TaskPlan(task_id(i), 0, f"select {i} as x") for i in range(n))
    merge = TaskPlan(
        task_id(n),
        1,
        "select sum(x) as x from __stage0",
        inputs=(InputBinding("__stage0", tuple(t.id for t in partials)),),
    )
    return Plan(
        sql="bench",
        stages=(Stage(0, StageKind.PARTIAL, partials), Stage(1, StageKind.MERGE, (merge,))),
        reason="bench",
    )


def simulated_worker(url: str, ns: str, name: str, slots: int, stop: Any, done: Any) -> None:
    """Claim and complete trivial tasks until `stop` is set; count them in `done`."""
    store = Store(url, namespace=ns)
    info = MemberInfo(MemberId(name), "worker", f"grpc://127.0.0.1:1/{name}", slots)
    member = Membership(store, info, ttl=10).start()
    queue = TaskQueue(store)
    result = ResultInfo(MemberId(name), info.location, 1, 8, SCHEMA)
    try:
        while not stop.is_set():
            # as a worker does: each starts at its own place among equal tasks
            runnable = spread_ties(queue.runnable(), random.randrange(1 << 16))[:slots]
            if not runnable:
                time.sleep(0.002)
                continue
            for ct in queue.claim_many(runnable, info.id, info.location, member.lease_id):
                if ct is not None and queue.complete(ct, result, member.lease_id):
                    with done.get_lock():
                        done.value += 1
    finally:
        member.stop()
        store.close()


def etcd_metrics(url: str) -> dict[str, float]:
    """The etcd /metrics samples this benchmark reads, summed over labels but
    gRPC's method."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    wanted = (
        "grpc_server_handled_total",
        "etcd_disk_wal_fsync_duration_seconds_sum",
        "etcd_disk_wal_fsync_duration_seconds_count",
        "etcd_disk_backend_commit_duration_seconds_sum",
        "etcd_disk_backend_commit_duration_seconds_count",
        "process_cpu_seconds_total",
    )
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or m["name"] not in wanted:
            continue
        name = m["name"]
        if name == "grpc_server_handled_total":
            method = re.search(r'grpc_method="([^"]+)"', m["labels"] or "")
            name = f"grpc {method[1]}" if method else name
        out[name] = out.get(name, 0.0) + float(m["value"])
    return out


def publisher(url: str, ns: str, stop: threading.Event, finished: list[int]) -> None:
    """Publish a 65-task query, wait for it to finish, again, until `stop`."""
    store = Store(url, namespace=ns)
    qs = QueryStore(store)
    try:
        while not stop.is_set():
            q = new_query_id()
            qs.publish(q, plan_of(PARTIALS), frontdoor=MemberId("bench"), ttl=120)
            status = qs.wait(q, timeout=60)
            if status.state == QueryState.FINISHED:
                finished.append(1)
    finally:
        store.close()


def one_count(url: str, workers: int, args: argparse.Namespace) -> dict[str, float]:
    ns = f"/ceiling-{workers}-{int(time.time())}"
    ctx = mp.get_context("spawn")
    stop, done = ctx.Event(), ctx.Value("l", 0)
    procs = [
        ctx.Process(
            target=simulated_worker, args=(url, ns, f"sim{i}", args.slots, stop, done), daemon=True
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    time.sleep(2.0)  # every process up and joined before anything is published
    halt, finished = threading.Event(), []
    pubs = [
        threading.Thread(target=publisher, args=(url, ns, halt, finished), daemon=True)
        for _ in range(args.in_flight)
    ]
    for t in pubs:
        t.start()
    time.sleep(2.0)  # warm-up
    before, tasks0, started = etcd_metrics(url), done.value, time.monotonic()
    time.sleep(args.seconds)
    after, tasks1, elapsed = etcd_metrics(url), done.value, time.monotonic() - started
    halt.set()
    for t in pubs:
        t.join(70)
    stop.set()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    d["tasks"] = tasks1 - tasks0
    d["seconds"] = elapsed
    d["queries"] = len(finished)
    return d


def run(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    # the newest etcd on this machine
    binary = max(local_binaries(), key=lambda b: parse_version(binary_version(b)) or (0, 0, 0))
    table = Table(
        [
            "workers",
            "tasks/s",
            "etcd calls/s",
            "calls/task",
            "Txn/task",
            "fsyncs/s",
            "fsync ms",
            "commit ms",
            "etcd CPU cores",
        ],
        digits={"tasks/s": 0, "etcd calls/s": 0, "fsyncs/s": 0, "fsync ms": 2, "commit ms": 2},
    )
    with EtcdServer(binary=binary) as server:
        version = next(iter(Store(server.url).check_versions().values()), "?")
        header["etcd"] = f"{version} ({binary}), one member, data on this machine's disk"
        for w in [int(x) for x in args.workers.split(",")]:
            say(f"{w} simulated worker(s)")
            d = one_count(server.url, w, args)
            calls = sum(v for k, v in d.items() if k.startswith("grpc "))
            tasks = max(1.0, d["tasks"])
            fsyncs = d.get("etcd_disk_wal_fsync_duration_seconds_count", 0.0)
            commits = d.get("etcd_disk_backend_commit_duration_seconds_count", 0.0)
            table.add(
                w,
                d["tasks"] / d["seconds"],
                calls / d["seconds"],
                calls / tasks,
                d.get("grpc Txn", 0.0) / tasks,
                fsyncs / d["seconds"],
                1000 * d.get("etcd_disk_wal_fsync_duration_seconds_sum", 0.0) / max(1.0, fsyncs),
                1000
                * d.get("etcd_disk_backend_commit_duration_seconds_sum", 0.0)
                / max(1.0, commits),
                d.get("process_cpu_seconds_total", 0.0) / d["seconds"],
            )
            say(f"{w}: {d['tasks'] / d['seconds']:.0f} tasks/s, {d['queries']} queries")
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = (
        f"simulated workers (processes: the real control plane, no DuckDB, no Flight) with "
        f"{args.slots} slot(s) each; {args.in_flight} queries of {PARTIALS + 1} tasks kept in "
        f"flight; {args.seconds:g} s per count after a 2 s warm-up; all on this machine"
    )

    def plot(path: Path) -> None:
        from bench.report import grouped_bars

        grouped_bars(
            path,
            "Trivial tasks per second one etcd sustains",
            [f"{r[0]} simulated worker(s)" for r in table.rows],
            {"tasks/s": [r[1] for r in table.rows]},  # type: ignore[misc]
            "tasks/s",
        )

    paths = publish(Path(args.out), NAME, "etcd's ceiling for the task queue", header, table, plot)
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(args: argparse.Namespace) -> int:
    run(args)
    return 0
