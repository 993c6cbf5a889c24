"""The worker process: claim runnable tasks while there is a free slot, run them in
DuckDB, keep the results, serve them over Flight.

Threads: the Flight server; a watch on runnable/ and claims/ that wakes the claim
loop; a watch on queries/ that drops results of expired queries; the claim loop;
and one executor thread per slot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa

from duckfleet.config import WorkerConfig
from duckfleet.control import ClaimedTask, Membership, PrefixWatch, QueryStore, Store, TaskQueue
from duckfleet.control.errors import ControlError
from duckfleet.control.records import MemberInfo, QueryState, QueryStatus, ResultInfo
from duckfleet.health import HealthServer
from duckfleet.ids import MemberId, QueryId, TaskId, new_member_id
from duckfleet.planner.plan import TaskPlan
from duckfleet.worker.buckets import split_buckets
from duckfleet.worker.flight_service import WorkerFlightServer
from duckfleet.worker.fragment import run_fragment
from duckfleet.worker.inputs import FlightClients, InputFetcher
from duckfleet.worker.results import ResultStore

log = logging.getLogger("duckfleet.worker")

RESCAN_SECONDS = 2.0  # safety net only: the watches wake the loop


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.id: MemberId = new_member_id("worker")
        self.results = ResultStore()
        self.server = WorkerFlightServer(f"grpc://{cfg.host}:{cfg.port}", self.results)
        self.location = cfg.location(self.server.port)
        self.store = Store(cfg.etcd, namespace=cfg.namespace)
        self.queue = TaskQueue(self.store, fifo=cfg.scheduling == "fifo")
        self.queries = QueryStore(self.store)
        self.clients = FlightClients()
        self.inputs = InputFetcher(self.queries, self.results, self.clients, self._produce)
        # the object cache keeps Parquet footers between tasks: split-aligned and
        # shuffle tasks read the same files over and over
        db_config = {"threads": str(cfg.cores), "enable_object_cache": "true"}
        if cfg.memory_limit:
            db_config["memory_limit"] = cfg.memory_limit
        self.db = duckdb.connect(config=db_config)
        self.slots = cfg.task_slots
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="task")
        self._running: dict[tuple[str, str], ClaimedTask] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._idle = threading.Event()  # set whenever a task ends
        self.health = HealthServer(cfg.host, cfg.health_port)
        self.membership = Membership(
            self.store,
            MemberInfo(
                self.id,
                "worker",
                self.location,
                self.slots,
                time.time(),
                os.getpid(),
                self.health.port,
            ),
            ttl=cfg.lease_ttl,
            on_lost=self._on_lease_lost,
        )
        keys = self.store.keys
        self._watches = [
            PrefixWatch(self.store, prefix, self._on_change, self._wake.set, f"watch-{name}")
            for name, prefix in (
                ("runnable", keys.all_runnable()),
                ("claims", keys.all_claims()),
                ("queries", keys.queries()),
                ("status", keys.all_statuses()),
            )
        ]
        self._loop = threading.Thread(target=self._claim_loop, name="claim-loop", daemon=True)

    # lifecycle
    def start(self) -> Worker:
        self.health.start()
        threading.Thread(target=self.server.serve, name="flight", daemon=True).start()
        self.membership.start_when_reachable(self._stop)
        for w in self._watches:
            w.start()
        self._wake.set()  # a worker that joins mid-query takes remaining tasks at once
        self._loop.start()
        self.health.set_serving(True)
        log.info(
            "worker %s serving at %s with %d slot(s), %d DuckDB thread(s)",
            self.id,
            self.location,
            self.slots,
            self.cfg.cores,
        )
        return self

    def drain(self, timeout: float) -> None:
        """Claim nothing more and let running tasks finish, for at most `timeout` s."""
        self._draining.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._running:
                log.info("worker %s draining %d task(s)", self.id, len(self._running))
        while self._free_slots() < self.slots and time.monotonic() < deadline:
            self._idle.wait(0.1)
            self._idle.clear()

    def stop(self) -> None:
        """Drain (DUCKFLEET_DRAIN_TIMEOUT), release what still runs, and leave the fleet."""
        self.health.set_serving(False)
        self.drain(self.cfg.drain_timeout)
        self._stop.set()
        self._wake.set()
        for w in self._watches:
            w.stop()
        with self._lock:
            running = list(self._running.values())
        for ct in running:
            try:
                self.queue.release(ct)
            except ControlError:
                pass
        self.db.interrupt()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.membership.stop()
        self.server.shutdown()
        self.health.stop()
        self.clients.close()
        self.store.close()
        log.info("worker %s stopped", self.id)

    def wait(self) -> None:
        self._stop.wait()

    # events
    def _on_change(self, kind: str, key: bytes, value: bytes) -> None:
        keys = self.store.keys
        text = key.decode()
        if text.startswith(keys.all_runnable()) and kind == "put":
            self._wake.set()
        elif text.startswith(keys.all_claims()) and kind == "delete":
            self._wake.set()  # a claim was released or expired: the task may be free
        elif text.startswith(keys.all_statuses()) and kind == "put":
            q = QueryId(keys.tail(text, keys.all_statuses()))
            if q in self.results.queries():
                self._drop_unneeded(q, QueryStatus.from_json(value))
        elif text.startswith(keys.queries()) and kind == "delete":
            q = QueryId(keys.tail(text, keys.queries()))
            dropped = self.results.drop_query(q)
            if dropped:
                log.info("query=%s expired: dropped %d result(s)", q, dropped)

    def _drop_unneeded(self, q: QueryId, status: QueryStatus) -> None:
        """Once a query has ended only its output partitions are ever read again."""
        if status.state == QueryState.RUNNING:
            return
        keep: set[str] = set()
        if status.state == QueryState.FINISHED:
            try:
                keep = set(self.queries.record(q).outputs)
            except ControlError:
                return  # keep everything; the query's expiry drops it
        dropped = self.results.drop_query(q, keep=keep)
        if dropped:
            log.info("query=%s %s: dropped %d intermediate result(s)", q, status.state, dropped)

    def _on_lease_lost(self) -> None:
        # every claim and result index entry of ours went with the lease
        with self._lock:
            lost = list(self._running.values())
        for ct in lost:
            log.warning(
                "query=%s task=%s: lease lost, result will be discarded", ct.query_id, ct.task_id
            )

    # claiming
    def _free_slots(self) -> int:
        with self._lock:
            return self.slots - len(self._running)

    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(RESCAN_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._fill_slots()
            except ControlError as exc:
                log.warning("worker %s: claim round failed: %s", self.id, exc)
                self._stop.wait(0.5)

    def _fill_slots(self) -> None:
        free = self._free_slots()
        if free <= 0 or self._draining.is_set():
            return
        for rt in self.queue.runnable():
            lease = self.membership.lease_id
            ct = self.queue.claim(rt, self.id, self.location, lease)
            if ct is None:
                continue  # another worker was faster
            with self._lock:
                self._running[(ct.query_id, ct.task_id)] = ct
            log.info("query=%s task=%s claimed", ct.query_id, ct.task_id)
            self.pool.submit(self._run, ct)
            free -= 1
            if free <= 0:
                return

    # running
    def _run(self, ct: ClaimedTask) -> None:
        q, t = ct.query_id, ct.task_id
        started = time.perf_counter()
        try:
            recomputed: list[TaskId] = []
            inputs = self.inputs.inputs(q, ct.task.plan, recomputed)
            info = self._keep(q, t, self._produce(ct.task.plan, inputs))
            lease = self.membership.lease_id
            if self.queue.complete(ct, info, lease, tuple(recomputed)):
                log.info(
                    "query=%s task=%s done: %d rows%s in %.1f ms",
                    q,
                    t,
                    info.rows,
                    f" in {len(info.bucket_rows)} buckets" if info.bucket_rows else "",
                    (time.perf_counter() - started) * 1000,
                )
            else:
                self.results.drop(q, t)
                log.warning("query=%s task=%s: completion refused (claim lost)", q, t)
        except ControlError as exc:
            log.warning("query=%s task=%s: control plane error: %s", q, t, exc)
            self._release_quietly(ct)
        except Exception as exc:
            log.warning("query=%s task=%s failed: %s", q, t, exc)
            try:
                self.queue.fail(ct, f"{type(exc).__name__}: {exc}")
            except ControlError:
                pass
        finally:
            with self._lock:
                self._running.pop((q, t), None)
            self._idle.set()
            self._wake.set()

    def _keep(self, q: QueryId, t: TaskId, out: pa.Table | list[pa.Table]) -> ResultInfo:
        """Hold a task's result; its results index entry (one per task, listing the
        buckets of a partitioned one)."""
        if isinstance(out, list):
            self.results.put_buckets(q, t, out)
            rows = tuple(b.num_rows for b in out)
            nbytes = sum(b.nbytes for b in out)
            return ResultInfo(self.id, self.location, sum(rows), nbytes, out[0].schema, rows)
        self.results.put(q, t, out)
        return ResultInfo(self.id, self.location, out.num_rows, out.nbytes, out.schema)

    def _produce(self, task: TaskPlan, inputs: Mapping[str, pa.Table]) -> pa.Table | list[pa.Table]:
        """Run `task`: its result, or for a partitioned task its buckets."""
        cur = self.db.cursor()
        try:
            table = run_fragment(cur, task, inputs)
            if task.partitioned:
                return split_buckets(cur, table, task.partition_by, task.buckets)
            return table
        finally:
            cur.close()

    def _release_quietly(self, ct: ClaimedTask) -> None:
        try:
            self.queue.release(ct)
        except ControlError:
            pass
