"""The worker process: claim runnable tasks while there is a free slot, run them in
DuckDB, keep the results, serve them over Flight.

Threads: the Flight server; a watch on runnable/ and claims/ that wakes the claim
loop; a watch on queries/ that drops results of expired queries; a watch on
status/ that stops (interrupts) the tasks of a query that ended and drops its
results; a watch on copies/ (with claims/) that stops a task whose other copy won;
the claim loop, which also cancels queries past their timeout and, with slots
idle, copies stragglers (speculation); and one executor thread per slot.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from duckfleet.config import WorkerConfig
from duckfleet.control import ClaimedTask, Membership, PrefixWatch, QueryStore, Store, TaskQueue
from duckfleet.control.errors import ControlError
from duckfleet.control.offers import Offer
from duckfleet.control.queries import timeout_status
from duckfleet.control.records import Claim, MemberInfo, QueryState, QueryStatus, ResultInfo
from duckfleet.control.scheduling import spread_ties
from duckfleet.control.speculation import Attempt, SpeculationPolicy
from duckfleet.health import HealthServer
from duckfleet.ids import MemberId, QueryId, TaskId, new_member_id
from duckfleet.planner.plan import TaskPlan
from duckfleet.wire.auth import ProcessSecurity
from duckfleet.wire.clients import FlightClients
from duckfleet.worker.buckets import split_buckets
from duckfleet.worker.errors import TaskStopped
from duckfleet.worker.flight_service import WorkerFlightServer
from duckfleet.worker.inputs import InputFetcher
from duckfleet.worker.limits import check_result_size, expected, failure
from duckfleet.worker.offers import OfferDesk, Taken
from duckfleet.worker.results import ResultStore
from duckfleet.worker.running import RunningTask
from duckfleet.worker.sandbox import open_database, run_sandboxed, storage_dirs
from duckfleet.worker.speculate import look_for_stragglers

log = logging.getLogger("duckfleet.worker")

RESCAN_SECONDS = 2.0  # safety net only: the watches wake the loop
TIMEOUT_GRACE = 1.0  # the front door cancels at the timeout; workers a little later
MAX_OUTPUTS_KEPT = 10_000  # queries whose outputs a worker remembers (past it: read)


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.id: MemberId = new_member_id("worker")
        self.results = ResultStore()
        self.security = ProcessSecurity.from_config(cfg)  # before anything starts
        self.server = WorkerFlightServer(
            f"{cfg.scheme}://{cfg.host}:{cfg.port}",
            self.results,
            on_offer=self._take_offer,
            **self.security.server_kwargs(),
        )
        self.location = cfg.location(self.server.port)
        self.store = Store(cfg.etcd, namespace=cfg.namespace)
        self.queue = TaskQueue(self.store, fifo=cfg.scheduling == "fifo")
        self.queries = QueryStore(self.store)
        self.clients = FlightClients(self.security.client(self.id))
        self.inputs = InputFetcher(self.queries, self.results, self.clients, self._execute)
        # files DuckDB may touch (worker/sandbox.py): the table storage, and where
        # tables written through Flight SQL go when the storage is limited at all
        storage = cfg.storage
        if storage and cfg.data_dir:
            storage = f"{storage},{cfg.data_dir}"
        self.storage = storage_dirs(storage)
        self.db = open_database(cfg.cores, cfg.memory_limit, self.storage)
        self.slots = cfg.task_slots
        self.speculation = SpeculationPolicy(
            enabled=cfg.speculation != "off",
            factor=cfg.speculation_factor,
            min_seconds=cfg.speculation_min_seconds,
        )
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="task")
        self._running: dict[tuple[str, str], RunningTask] = {}
        # claims of fast-path queries seen by the claims watch: their deletion frees
        # no task, so it wakes no claim round
        self._offered: set[tuple[QueryId, TaskId]] = set()
        # unclaimed runnable tasks as far as this worker knows: the last queue view,
        # then the watches' puts, deletes and claims. A slot that frees up starts a
        # claim round only if there may be one (the rescan is the safety net).
        self._maybe_runnable: set[tuple[QueryId, TaskId]] = set()
        # the outputs of each query this worker ran a task of (from its record), so
        # that the query's end needs no read to know which results to keep
        self._outputs: dict[QueryId, tuple[TaskId, ...]] = {}
        self._current = threading.local()  # .run: the RunningTask of this task thread
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
        both = ("put", "delete")
        self._watches = [
            PrefixWatch(self.store, prefix, self._on_change, self._wake.set, f"watch-{name}", kinds)
            for name, prefix, kinds in (
                ("runnable", keys.all_runnable(), both),
                ("claims", keys.all_claims(), both),
                ("copies", keys.all_copies(), ("delete",)),
                ("queries", keys.queries(), ("delete",)),  # expiry: drop the results
                ("status", keys.all_statuses(), ("put",)),
            )
        ]
        self._loop = threading.Thread(target=self._claim_loop, name="claim-loop", daemon=True)
        self.offers = OfferDesk(self)

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
            "worker %s serving at %s with %d slot(s), %d DuckDB thread(s); %s; files: %s",
            self.id,
            self.location,
            self.slots,
            self.cfg.cores,
            self.security.describe(),
            ", ".join(self.storage),
        )
        if self.storage == ("/",):
            log.warning(
                "worker %s: DUCKFLEET_STORAGE is not set, so DuckDB may read any local file "
                "this process can; set it to the directories that hold table files",
                self.id,
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
        for run in running:
            try:
                self.queue.release(run.ct)
            except ControlError:
                pass
            run.stop("the worker is stopping")
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.membership.stop()
        self.server.shutdown()
        self.health.stop()
        self.inputs.close()
        self.clients.close()
        self.store.close()
        log.info("worker %s stopped", self.id)

    def wait(self) -> None:
        self._stop.wait()

    # events
    def _on_change(self, kind: str, key: bytes, value: bytes) -> None:
        keys = self.store.keys
        text = key.decode()
        if text.startswith(keys.all_runnable()):
            task = keys.split_task_key(text, keys.all_runnable())
            with self._lock:
                if kind == "put":
                    self._maybe_runnable.add(task)
                else:
                    self._maybe_runnable.discard(task)
            if kind == "put":
                self._wake.set()
        elif text.startswith(keys.all_claims()) and kind == "put":
            task = keys.split_task_key(text, keys.all_claims())
            with self._lock:
                self._maybe_runnable.discard(task)
                if Claim.from_json(value).offered:  # a fast-path query's (control/offers.py)
                    self._offered.add(task)
        elif text.startswith(keys.all_claims()) and kind == "delete":
            q, t = keys.split_task_key(text, keys.all_claims())
            with self._lock:
                offered = (q, t) in self._offered
                self._offered.discard((q, t))
            if not offered:  # released or expired: the task may be free to claim
                self._wake.set()
            self._stop_if_lost(q, t, copy=False)
        elif text.startswith(keys.all_copies()) and kind == "delete":
            self._stop_if_lost(*keys.split_task_key(text, keys.all_copies()), copy=True)
        elif text.startswith(keys.all_statuses()) and kind == "put":
            q = QueryId(keys.tail(text, keys.all_statuses()))
            status = QueryStatus.from_json(value)
            if status.terminal:
                self._stop_tasks_of(q, status)
            if q in self.results.queries():
                self._drop_unneeded(q, status)
        elif text.startswith(keys.queries()) and kind == "delete":
            q = QueryId(keys.tail(text, keys.queries()))
            with self._lock:
                self._outputs.pop(q, None)
            dropped = self.results.drop_query(q)
            if dropped:
                log.info("query=%s expired: dropped %d result(s)", q, dropped)

    def _drop_unneeded(self, q: QueryId, status: QueryStatus) -> None:
        """Once a query has ended only its output partitions are ever read again."""
        if status.state == QueryState.RUNNING:
            return
        keep: set[str] = set()
        with self._lock:
            outputs = self._outputs.pop(q, None)
        if status.state == QueryState.FINISHED:
            try:
                keep = set(outputs if outputs is not None else self.queries.record(q).outputs)
            except ControlError:
                return  # keep everything; the query's expiry drops it
        dropped = self.results.drop_query(q, keep=keep)
        if dropped:
            log.info("query=%s %s: dropped %d intermediate result(s)", q, status.state, dropped)

    def _stop_if_lost(self, q: QueryId, t: TaskId, copy: bool) -> None:
        """Our claim (or copy) of a running task is gone: the other copy committed
        first, or our lease expired. Whatever we would produce is refused: stop."""
        with self._lock:
            run = self._running.get((q, t))
        if run is not None and run.ct.copy == copy:
            run.stop("its claim is gone: another copy finished first, or the lease expired")

    def _stop_tasks_of(self, q: QueryId, status: QueryStatus) -> None:
        """The query ended: whatever of it still runs here is useless."""
        with self._lock:
            runs = [r for (rq, _), r in self._running.items() if rq == q]
        for run in runs:
            run.stop(f"query {status.state}" + (f": {status.error}" if status.error else ""))

    def _on_lease_lost(self) -> None:
        # every claim and result index entry of ours went with the lease
        with self._lock:
            lost = list(self._running.values())
        for run in lost:
            log.warning(
                "query=%s task=%s: lease lost, result will be discarded",
                run.ct.query_id,
                run.ct.task_id,
            )

    # the fast path (worker/offers.py)
    def _take_offer(self, offer: Offer) -> Taken:
        return self.offers.take(offer)

    def reserve_slot(self, run: RunningTask) -> str:
        """Take a slot for `run` (an offered query) if one is free: "", or why not."""
        with self._lock:
            if self._draining.is_set() or self._stop.is_set():
                return "the worker is draining"
            if len(self._running) >= self.slots:
                return "no free slot"
            if self._maybe_runnable:  # queued work goes first: priorities decide it
                return "tasks are waiting in the queue"
            self._running[(run.ct.query_id, run.ct.task_id)] = run
        return ""

    def free_slot(self, run: RunningTask) -> None:
        with self._lock:
            self._running.pop((run.ct.query_id, run.ct.task_id), None)
        self._idle.set()
        self._wake_if_work()

    def _wake_if_work(self) -> None:
        """A slot freed up: a claim round, if a task may be waiting for one."""
        with self._lock:
            waiting = bool(self._maybe_runnable)
        if waiting:
            self._wake.set()

    def execute_as(
        self, run: RunningTask, task: TaskPlan, inputs: Mapping[str, pa.Table]
    ) -> pa.Table | list[pa.Table]:
        """Run `task` as `run` on this thread (so a stop interrupts it)."""
        self._current.run = run
        try:
            return self._execute(task, inputs)
        finally:
            self._current.run = None

    # claiming
    def _free_slots(self) -> int:
        with self._lock:
            return self.slots - len(self._running)

    def _claim_loop(self) -> None:
        wait = RESCAN_SECONDS
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                free, running = self._fill_slots()
                wait = min(RESCAN_SECONDS, self._enforce_timeouts())
                if free > 0:
                    wait = min(wait, self._speculate(free, running))
            except ControlError as exc:
                log.warning("worker %s: claim round failed: %s", self.id, exc)
                self._stop.wait(0.5)

    def _enforce_timeouts(self) -> float:
        """Cancel the queries of running tasks that are past their timeout (the
        front door that would have done it may be gone); seconds until the next
        such deadline."""
        with self._lock:
            records = {r.ct.query_id: r.ct.record for r in self._running.values()}
        now, soonest = time.time(), RESCAN_SECONDS
        for q, record in records.items():
            if not record.timeout:
                continue
            left = record.created + record.timeout + TIMEOUT_GRACE - now
            if left <= 0:
                status = self.queries.end(q, timeout_status(record.timeout))
                log.warning("query=%s: past its timeout, %s", q, status.state)
            else:
                soonest = min(soonest, left)
        return soonest

    def _fill_slots(self) -> tuple[int, list[Attempt]]:
        """Claim runnable tasks while slots are free: the slots still free, and the
        attempts running in the fleet as listed (for speculation)."""
        free = self._free_slots()
        if free <= 0 or self._draining.is_set():
            return 0, []
        started = time.monotonic()
        view = self.queue.view()
        with self._lock:
            self._maybe_runnable = {(rt.query, rt.task) for rt in view.runnable}
        fifo = self.cfg.scheduling == "fifo"
        for rt in spread_ties(view.runnable, random.randrange(1 << 16), fifo):
            lease = self.membership.lease_id
            ct = self.queue.claim(rt, self.id, self.location, lease)
            if ct is None:
                continue  # another worker was faster
            self._start(ct, time.monotonic() - started)
            started = time.monotonic()
            free -= 1
            if free <= 0:
                return 0, []
        return free, view.running

    def _speculate(self, free: int, running: list[Attempt]) -> float:
        """Idle slots, nothing to claim: copy stragglers running elsewhere. Seconds
        until it is worth looking again."""
        copies, look_again = look_for_stragglers(self.queue, self.speculation, self.id, running)
        for attempt in copies[:free]:
            ct = self.queue.claim_copy(attempt, self.id, self.location, self.membership.lease_id)
            if ct is not None:
                self._start(ct)
        return RESCAN_SECONDS if look_again is None else max(0.05, look_again)

    def _start(self, ct: ClaimedTask, took: float = 0.0) -> None:
        run = RunningTask(ct)
        with self._lock:
            self._running[(ct.query_id, ct.task_id)] = run
        what = "copy of a straggler claimed" if ct.copy else "claimed"
        log.info("query=%s task=%s %s in %.1f ms", ct.query_id, ct.task_id, what, took * 1000)
        self.pool.submit(self._run, run)

    # running
    def _run(self, run: RunningTask) -> None:
        ct = run.ct
        q, t = ct.query_id, ct.task_id
        self._current.run = run
        try:
            recomputed: list[TaskId] = []
            inputs = self.inputs.inputs(q, ct.task.plan, recomputed, ct.results)
            fetched = time.monotonic()
            out = self._execute(ct.task.plan, inputs)
            run.computed()
            if isinstance(out, pa.Table):  # buckets feed other tasks, never the client
                check_result_size(ct, out)
            info = self.keep_result(ct, out)
            ran = time.monotonic()
            if self.commit_result(ct, info, tuple(recomputed), ran - run.started):
                log.info(
                    "query=%s task=%s done: %d rows%s in %.1f ms (inputs %.1f, run %.1f, "
                    "commit %.1f)",
                    q,
                    t,
                    info.rows,
                    f" in {len(info.bucket_rows)} buckets" if info.bucket_rows else "",
                    (time.monotonic() - run.started) * 1000,
                    (fetched - run.started) * 1000,
                    (ran - fetched) * 1000,
                    (time.monotonic() - ran) * 1000,
                )
        except ControlError as exc:
            log.warning("query=%s task=%s: control plane error: %s", q, t, exc)
            self.release_quietly(ct)
        except Exception as exc:
            if run.stopped or isinstance(exc, TaskStopped):
                log.info("query=%s task=%s stopped: %s", q, t, run.stopped or exc)
                self.release_quietly(ct)
                return
            self.fail_task(ct, exc)
        finally:
            self._current.run = None
            self.free_slot(run)

    def commit_result(
        self,
        ct: ClaimedTask,
        info: ResultInfo,
        recomputed: tuple[TaskId, ...] = (),
        seconds: float = 0.0,
    ) -> bool:
        """Commit a task's completion (fenced); if it is refused (the query ended, the
        claim was lost), drop the result and release the claim if it is still ours."""
        if self.queue.complete(ct, info, self.membership.lease_id, recomputed, seconds):
            return True
        self.results.drop(ct.query_id, ct.task_id)
        self.release_quietly(ct)
        log.warning(
            "query=%s task=%s: completion refused, result discarded", ct.query_id, ct.task_id
        )
        return False

    def fail_task(self, ct: ClaimedTask, exc: BaseException) -> QueryStatus:
        """Fail the task's query with what `exc` says (fenced on the claim; a claim
        that no longer fences is released). The status the query was given."""
        error, reason = failure(ct, exc, self.cfg.memory_limit)
        trace = None if expected(exc) else exc
        log.warning("query=%s task=%s failed: %s", ct.query_id, ct.task_id, error, exc_info=trace)
        try:
            if not self.queue.fail(ct, error, reason):
                self.release_quietly(ct)
        except ControlError:
            pass
        return QueryStatus(QueryState.FAILED, error=error, task=ct.task_id, reason=reason)

    def keep_result(self, ct: ClaimedTask, out: pa.Table | list[pa.Table]) -> ResultInfo:
        """Hold a task's result; its results index entry (one per task, listing the
        buckets of a partitioned one)."""
        q, t = ct.query_id, ct.task_id
        with self._lock:
            if len(self._outputs) < MAX_OUTPUTS_KEPT:
                self._outputs[q] = ct.record.outputs
        if isinstance(out, list):
            self.results.put_buckets(q, t, out)
            rows = tuple(b.num_rows for b in out)
            nbytes = sum(b.nbytes for b in out)
            return ResultInfo(self.id, self.location, sum(rows), nbytes, out[0].schema, rows)
        self.results.put(q, t, out)
        return ResultInfo(self.id, self.location, out.num_rows, out.nbytes, out.schema)

    def _execute(self, task: TaskPlan, inputs: Mapping[str, pa.Table]) -> pa.Table | list[pa.Table]:
        """Run `task`: its result, or for a partitioned task its buckets."""
        run: RunningTask = self._current.run
        limit = run.ct.record.memory_limit
        if limit:  # a database of its own, so the limit is this task's alone
            threads = max(1, self.cfg.cores // self.slots)
            open_connection = functools.partial(open_database, threads, limit, self.storage)
        else:
            open_connection = self.db.cursor
        with run.connection(open_connection) as con:
            table = run_sandboxed(con, task, inputs, self.storage)
            if task.partitioned:
                return split_buckets(con, table, task.partition_by, task.buckets)
            return table

    def release_quietly(self, ct: ClaimedTask) -> None:
        try:
            self.queue.release(ct)
        except ControlError:
            pass
