"""The worker process: claim runnable tasks while there is a free slot, run them in
DuckDB, keep the results, serve them over Flight.

Every decision is the state machine's (worker/state.py): the threads here tell it
what happened as events and carry out the instructions it returns (`drive`).
Threads: the Flight server (results by ticket; fast-path offers, worker/offers.py);
watches on runnable/, claims/, copies/, queries/ and status/, whose events become
state events (`_on_change`); the claim loop, which lists the queue when the state
asks for a claim round, claims what it picks, copies stragglers with idle slots
(speculation) and cancels queries past their timeout; and one thread per slot,
which fetches a task's inputs, runs it in DuckDB and commits it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from duckfleet import tracing
from duckfleet.config import WorkerConfig
from duckfleet.control import ClaimedTask, Membership, PrefixWatch, QueryStore, Store, TaskQueue
from duckfleet.control.detection import DetectionSettings
from duckfleet.control.errors import ControlError
from duckfleet.control.offers import Offer
from duckfleet.control.queries import runnable_marker, runnable_task, timeout_status
from duckfleet.control.records import (
    Claim,
    MemberInfo,
    QueryState,
    QueryStatus,
    ResultInfo,
)
from duckfleet.control.scheduling import spread_ties
from duckfleet.control.speculation import Attempt, SpeculationPolicy
from duckfleet.health import HealthServer
from duckfleet.ids import MemberId, QueryId, TaskId, new_member_id
from duckfleet.metrics import ServedResults, WorkerMetrics, serve_logged
from duckfleet.planner.plan import TaskPlan
from duckfleet.wire.auth import ProcessSecurity
from duckfleet.wire.clients import FlightClients
from duckfleet.worker.buckets import split_buckets
from duckfleet.worker.errors import TaskStopped
from duckfleet.worker.flight_service import WorkerFlightServer
from duckfleet.worker.inputs import InputFetcher
from duckfleet.worker.limits import check_result_size, expected, failure
from duckfleet.worker.offers import OfferDesk, Taken
from duckfleet.worker.prober import Prober
from duckfleet.worker.results import ResultStore
from duckfleet.worker.running import RunningTask
from duckfleet.worker.sandbox import open_database, run_sandboxed, storage_dirs
from duckfleet.worker.speculate import look_for_stragglers
from duckfleet.worker.startup import process_start_time
from duckfleet.worker.state import (
    LOST,
    ClaimAdded,
    ClaimCopy,
    ClaimMissed,
    ClaimRemoved,
    ClaimRound,
    ClaimWon,
    Commit,
    CommitFailed,
    CommitRefused,
    Committed,
    Computed,
    ControlFailed,
    CopyRemoved,
    CopyWanted,
    DrainStarted,
    DropResult,
    DropResults,
    Event,
    Execute,
    FailQuery,
    Fetch,
    InputsFetched,
    Instruction,
    Interrupt,
    InvalidTransition,
    OfferArrived,
    QueryExpired,
    QueueKnown,
    QueueListed,
    Record,
    Release,
    RoundDone,
    RunnableAdded,
    RunnableRemoved,
    Speculate,
    StatusChanged,
    TaskFailed,
    TaskKey,
    Wake,
    WatchesReset,
    WorkerState,
)
from duckfleet.worker.state import (
    Claim as ClaimTask,
)

log = logging.getLogger("duckfleet.worker")

RESCAN_SECONDS = 2.0  # safety net only: the watches wake the loop
TIMEOUT_GRACE = 1.0  # the front door cancels at the timeout; workers a little later
MAX_CLAIMS_PER_TXN = 16  # claims nested in one etcd transaction (etcd allows 128 ops)


@dataclass(frozen=True)
class _Forget:
    """The worker's own last step of a task the state machine let go: its objects."""

    task: TaskKey
    run: RunningTask | None


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.id: MemberId = new_member_id("worker")
        self.results = ResultStore()
        self.metrics = WorkerMetrics(  # duckfleet/metrics.py; gauges read when scraped
            lambda: self._read_state(lambda st: st.queue.depth()),
            lambda: self._read_state(lambda st: len(st.tasks)),
            lambda: self.results.nbytes,
        )
        self.security = ProcessSecurity.from_config(cfg)  # before anything starts
        self.server = WorkerFlightServer(
            f"{cfg.scheme}://{cfg.host}:{cfg.port}",
            ServedResults(self.results, self.metrics.served_bytes),  # type: ignore[arg-type]
            on_offer=self._take_offer,
            **self.security.server_kwargs(),
        )
        self.location = cfg.location(self.server.port)
        self.store = Store(cfg.etcd, namespace=cfg.namespace, metrics=self.metrics.etcd)
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
        # every decision is the state machine's (worker/state.py); what each task it
        # holds needs to run (its claim, DuckDB connections, inputs, result) is here
        self.state = WorkerState(
            self.slots, short_slots=cfg.short_slots, fifo=cfg.scheduling == "fifo"
        )
        self._runs: dict[TaskKey, RunningTask] = {}
        self._current = threading.local()  # .run: the RunningTask of this task thread
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()  # set whenever a task ends
        self._listing_wanted = True  # the next claim round lists the queue
        self._listed_at = 0.0
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
            PrefixWatch(
                self.store, prefix, self._on_change, self._rewatched, f"watch-{name}", kinds
            )
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
        # failure detection (control/detection.py): claim holders probed, deaths declared
        self.prober = Prober(
            self.store,
            self.id,
            DetectionSettings(
                max(0.0, cfg.probe_interval), max(1, cfg.probe_failures), cfg.probe_timeout
            ),
            claims_known=self._claims_known,
            on_declared=self.metrics.declared_dead.inc,
        )
        self._joined_at: float | None = None  # wall clock; None: not yet
        self._first_claim_logged = False

    # lifecycle
    def start(self) -> Worker:
        self.health.start()
        serve_logged(self.metrics, f"worker {self.id}", self.cfg.host, self.cfg.metrics_port)
        threading.Thread(target=self.server.serve, name="flight", daemon=True).start()
        # DuckDB, the Flight server and the health port are ready before it announces
        # itself: the first claim follows the join within milliseconds
        self.membership.start_when_reachable(self._stop)
        self._joined_at = time.time()
        for w in self._watches:
            w.start()
        self._wake.set()  # a worker that joins mid-query takes remaining tasks at once
        self._loop.start()
        self.health.set_serving(True)
        self.prober.start()
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
        self._handle(DrainStarted())
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._runs:
                log.info("worker %s draining %d task(s)", self.id, len(self._runs))
        while self._busy() and time.monotonic() < deadline:
            self._idle.wait(0.1)
            self._idle.clear()

    def stop(self) -> None:
        """Drain (DUCKFLEET_DRAIN_TIMEOUT), release what still runs, and leave the fleet."""
        self.health.set_serving(False)
        self.drain(self.cfg.drain_timeout)
        self._stop.set()
        self._wake.set()
        self.prober.stop()
        for w in self._watches:
            w.stop()
        with self._lock:
            running = list(self._runs.values())
        self.metrics.retried.inc(len(running))  # past the drain timeout: they run elsewhere
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
        self.metrics.stop()
        self.inputs.close()
        self.clients.close()
        self.store.close()
        log.info("worker %s stopped", self.id)

    def wait(self) -> None:
        self._stop.wait()

    def _read_state(self, read: Callable[[WorkerState], int]) -> int:
        """A figure of the state machine's, read under its lock (a metrics scrape)."""
        with self._lock:
            return read(self.state)

    def _claims_known(self) -> bool:
        """Does the queue mirror know of a claim in the fleet (or not know the queue)?"""
        with self._lock:
            return bool(self.state.queue.claimed) or not self.state.queue.synced

    def _busy(self) -> bool:
        with self._lock:
            return bool(self.state.tasks)

    # the state machine (worker/state.py): every decision is its; the threads carry
    # out its instructions and tell it what happened
    def _handle(self, event: Event) -> list[Instruction]:
        task = getattr(event, "task", None)
        with self._lock:
            held = task in self.state.tasks
            out = self.state.handle(event)
            if held and task not in self.state.tasks:  # this event let it go: forget
                out.append(_Forget(task, self._runs.get(task)))  # after its last steps
        return out

    def drive(self, todo: list[Instruction], until: tuple[type, ...] = ()) -> list[Instruction]:
        """Carry out instructions, and those the events they lead to bring, in order,
        on this thread; stop before an instruction of type `until` and return it with
        what is left."""
        queue = deque(todo)
        while queue:
            ins = queue.popleft()
            if until and isinstance(ins, until):
                return [ins, *queue]
            event = self._carry_out(ins)
            if event is not None:
                queue.extendleft(reversed(self._handle(event)))
        return []

    def _carry_out(self, ins: Instruction) -> Event | None:
        match ins:
            case ClaimRound(listing):
                if listing:
                    self._listing_wanted = True
                self._wake.set()  # the claim loop claims
            case Fetch(task):  # on a slot thread, which then carries on with the task
                self.pool.submit(self._in_slot, self._runs[task])
            case Execute(task):
                return self._run_fragment(self._runs[task])
            case Commit(task):
                return self._commit(self._runs[task])
            case Release(task):
                self.metrics.retried.inc(0 if self._runs[task].stopped else 1)  # not interrupts
                self.release_quietly(self._runs[task].ct)
            case FailQuery(task):
                run = self._runs[task]
                run.status = self.fail_task(run.ct, run.error or RuntimeError("failed"))
            case DropResult((q, t)):
                self.results.drop(q, t)
            case DropResults(q, keep):
                self._drop_results(q, keep)
            case Interrupt(task, why):
                run = self._runs.get(task)
                if run is not None:
                    run.stop(why)
                if why == LOST:  # perhaps declared dead (lease revoked): look now
                    self.membership.check_soon()
            case Record(task):
                return self.offers.record(self._runs[task])
            case _Forget(task, run):
                with self._lock:
                    if run is not None and self._runs.get(task) is run:  # not a later claim
                        del self._runs[task]
                self._idle.set()
            case _:
                raise InvalidTransition(f"{ins!r} cannot be carried out on this thread")
        return None

    def _in_slot(self, run: RunningTask) -> None:
        try:
            with self._span(run, "task"):  # its steps' spans are children of it
                self.drive(self._handle(self._fetch(run)))
        except Exception:  # a bug: never leave the slot taken by a thread that died
            log.exception("query=%s task=%s: worker error", run.ct.query_id, run.ct.task_id)
            key = (run.ct.query_id, run.ct.task_id)
            with self._lock:
                self._runs.pop(key, None)
                self.state.tasks.pop(key, None)
            self.release_quietly(run.ct)

    def _on_change(self, kind: str, key: bytes, value: bytes) -> None:
        """A watch event, told to the state machine as what it means."""
        keys = self.store.keys
        text = key.decode()
        event: Event
        if text.startswith(keys.all_runnable()):
            task = keys.split_task_key(text, keys.all_runnable())
            if kind == "put":
                event = RunnableAdded(task, runnable_marker(*task, value))
            else:
                event = RunnableRemoved(task)
        elif text.startswith(keys.all_claims()):
            task = keys.split_task_key(text, keys.all_claims())
            if kind == "put":
                event = ClaimAdded(task, Claim.from_json(value).offered)
            else:
                event = ClaimRemoved(task)
        elif text.startswith(keys.all_copies()):
            event = CopyRemoved(keys.split_task_key(text, keys.all_copies()))
        elif text.startswith(keys.all_statuses()):
            q = QueryId(keys.tail(text, keys.all_statuses()))
            event = StatusChanged(q, QueryStatus.from_json(value))
        elif text.startswith(keys.queries()):
            event = QueryExpired(QueryId(keys.tail(text, keys.queries())))
        else:
            return
        self.drive(self._handle(event))

    def _drop_results(self, q: QueryId, keep: tuple[TaskId, ...] | None) -> None:
        """Drop a query's results but `keep`'s (None: its outputs, read from its record;
        unreadable: keep everything, and its expiry drops it)."""
        if keep is None:
            try:
                keep = self.queries.record(q).outputs
            except ControlError:
                return
        dropped = self.results.drop_query(q, keep=set(keep))
        if dropped:
            what = "intermediate result(s)" if keep else "result(s)"
            log.info("query=%s ended: dropped %d %s", q, dropped, what)

    def _on_lease_lost(self) -> None:
        # every claim and result index entry of ours went with the lease; the claims
        # watch tells each deletion, which stops the tasks
        with self._lock:
            lost = list(self._runs)
        for q, t in lost:
            log.warning("query=%s task=%s: lease lost, result will be discarded", q, t)

    # the fast path (worker/offers.py)
    def _take_offer(self, offer: Offer) -> Taken:
        return self.offers.take(offer)

    def offer_arrived(self, run: RunningTask) -> list[Instruction]:
        """Tell the state machine of an offer; what to do about it."""
        key = (run.ct.query_id, run.ct.task_id)
        tracing.QUERIES.remember(key[0], run.ct.record.traceparent)  # its DoGet's trace
        with self._lock:
            self._runs.setdefault(key, run)
        out = self._handle(OfferArrived(key, run.ct.record.outputs))
        with self._lock:
            if key not in self.state.tasks and self._runs.get(key) is run:
                del self._runs[key]
        return out

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
    def _claim_loop(self) -> None:
        wait = RESCAN_SECONDS
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                todo = self._handle(Wake())
                if todo:
                    wait = min(RESCAN_SECONDS, self._claim_round(todo[0].listing))
                else:
                    wait = RESCAN_SECONDS
                wait = min(wait, self._enforce_timeouts())
            except ControlError as exc:
                log.warning("worker %s: claim round failed: %s", self.id, exc)
                self._handle(RoundDone())
                self._stop.wait(0.5)
            except Exception:  # a bug: log it, and keep the worker claiming
                log.exception("worker %s: claim round failed", self.id)
                self._handle(RoundDone())
                self._stop.wait(0.5)

    def _claim_round(self, listing: bool) -> float:
        """Claim what the state machine picks from the queue as the watches told it,
        or, when it asks (or a listing is RESCAN_SECONDS old: a safety net), from a
        listing (one read); copy stragglers if slots stay idle. Seconds until it is
        worth looking again."""
        started = time.monotonic()
        running: list[Attempt] | None = None
        if listing or self._listing_wanted or started - self._listed_at >= RESCAN_SECONDS:
            self._listing_wanted = False
            view = self.queue.view()
            self._listed_at = started
            running = view.running
            listed = spread_ties(view.runnable, random.randrange(1 << 16), self.state.fifo)
            claimed = tuple((a.query, a.task) for a in view.running if not a.copied)
            todo = self._handle(QueueListed(tuple(listed), claimed))
        else:
            todo = self._handle(QueueKnown(random.randrange(1 << 16)))
        look_again, done = RESCAN_SECONDS, False
        while todo or not done:
            if not todo:  # every claim asked for is tried: copies, if slots stay idle
                done, todo = True, self._handle(RoundDone())
                continue
            if isinstance(todo[0], ClaimTask):  # the claims asked together: one txn
                n = next((i for i, x in enumerate(todo) if not isinstance(x, ClaimTask)), len(todo))
                n = min(n, MAX_CLAIMS_PER_TXN)
                todo[:n] = self._claim_together(todo[:n], started)
                started = time.monotonic()
                continue
            ins = todo.pop(0)
            if isinstance(ins, Speculate):
                if running is None:
                    running = self.queue.running_attempts()
                look_again = self._speculate(running)
            else:
                self.drive([ins])
        return look_again

    def _claim_together(self, claims: list[ClaimTask], started: float) -> list[Instruction]:
        """Make `claims` in one etcd transaction; what the state machine makes of
        the outcome of each."""
        lease = self.membership.lease_id
        markers = [c.marker for c in claims]
        assert all(m is not None for m in markers)
        won = self.queue.claim_many(markers, self.id, self.location, lease)  # type: ignore[arg-type]
        out: list[Instruction] = []
        for c, ct in zip(claims, won, strict=True):
            out += self._claimed(ct, c.task, started)
        return out

    def _rewatched(self) -> None:
        """A watch broke and is back: what it missed is read by a listing."""
        self.drive(self._handle(WatchesReset()))

    def _claimed(self, ct: ClaimedTask | None, key: TaskKey, started: float) -> list[Instruction]:
        if ct is None:
            return self._handle(ClaimMissed(key))
        with self._lock:
            self._runs[key] = RunningTask(ct)
        tracing.QUERIES.remember(ct.query_id, ct.record.traceparent)  # its DoGet's trace
        (self.metrics.speculated if ct.copy else self.metrics.claimed).inc()
        if not self._first_claim_logged:
            self._log_first_claim()
        what = "copy of a straggler claimed" if ct.copy else "claimed"
        took = (time.monotonic() - started) * 1000
        log.info("query=%s task=%s %s in %.1f ms", ct.query_id, ct.task_id, what, took)
        return self._handle(ClaimWon(key, ct.record.outputs, ct.copy))

    def _log_first_claim(self) -> None:
        """One line: how long from process start (and from joining) to the first claim."""
        self._first_claim_logged = True
        now = time.time()
        joined = self._joined_at or now
        log.info(
            "worker %s first claim %.0f ms after process start (%.0f ms after joining)",
            self.id,
            (now - process_start_time()) * 1000,
            (now - joined) * 1000,
        )

    def _enforce_timeouts(self) -> float:
        """Cancel the queries of running tasks that are past their timeout (the
        front door that would have done it may be gone); seconds until the next
        such deadline."""
        with self._lock:
            records = {r.ct.query_id: r.ct.record for r in self._runs.values()}
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

    def _speculate(self, running: list[Attempt]) -> float:
        """Idle slots, nothing to claim: copy stragglers running elsewhere. Seconds
        until it is worth looking again."""
        copies, look_again = look_for_stragglers(self.queue, self.speculation, self.id, running)
        by_key = {(a.query, a.task): a for a in copies}
        for key, attempt in by_key.items():
            for ins in self._handle(CopyWanted(key)):
                assert isinstance(ins, ClaimCopy)
                lease = self.membership.lease_id
                ct = self.queue.claim_copy(attempt, self.id, self.location, lease)
                self.drive(self._claimed(ct, key, time.monotonic()))
        return RESCAN_SECONDS if look_again is None else max(0.05, look_again)

    # running: each step's outcome is an event
    def _fetch(self, run: RunningTask) -> Event:
        def fetch() -> Event:
            ct = run.ct
            with self._span(run, "fetch inputs"):
                run.inputs = self.inputs.inputs(
                    ct.query_id, ct.task.plan, run.recomputed, ct.results
                )
            run.fetched = time.monotonic()
            return InputsFetched((ct.query_id, ct.task_id))

        return self._step(run, fetch)

    def _run_fragment(self, run: RunningTask) -> Event:
        def compute() -> Event:
            ct = run.ct
            with self._span(run, "run"):
                out = self._execute(ct.task.plan, run.inputs)
            run.computed()
            run.inputs = {}
            if isinstance(out, pa.Table):  # buckets feed other tasks, never the client
                check_result_size(ct, out)
            run.info = self.keep_result(ct, out)
            run.ran = time.monotonic()
            return Computed((ct.query_id, ct.task_id))

        return self._step(run, compute)

    def _step(self, run: RunningTask, body: Callable[[], Event]) -> Event:
        """Run one step of a task on this thread (so a stop interrupts it): its
        event, or what its failure means."""
        key = (run.ct.query_id, run.ct.task_id)
        self._current.run = run
        try:
            return body()
        except ControlError as exc:
            log.warning("query=%s task=%s: control plane error: %s", *key, exc)
            return ControlFailed(key)
        except Exception as exc:
            return self._failed(run, exc)
        finally:
            self._current.run = None

    def _failed(self, run: RunningTask, exc: BaseException) -> Event:
        key = (run.ct.query_id, run.ct.task_id)
        if run.stopped or isinstance(exc, TaskStopped):
            log.info("query=%s task=%s stopped: %s", *key, run.stopped or exc)
            return TaskFailed(key, stopped=True)
        run.error = exc
        return TaskFailed(key)

    def _commit(self, run: RunningTask) -> Event:
        ct, info = run.ct, run.info
        key = (ct.query_id, ct.task_id)
        assert info is not None
        try:
            seconds = (run.ran or time.monotonic()) - run.started
            ready: list[TaskId] = []  # consumers this commit makes runnable
            with self._span(run, "commit"):
                done = self.queue.complete(
                    ct, info, self.membership.lease_id, tuple(run.recomputed), seconds, ready
                )
            if not done:
                log.warning("query=%s task=%s: completion refused, result discarded", *key)
                return CommitRefused(key)
        except ControlError as exc:
            log.warning("query=%s task=%s: completion failed: %s", *key, exc)
            return CommitFailed(key)
        for c in ready:  # runnable by this very commit: the mirror learns it before a watch
            marker = runnable_task(ct.record, c, inputs=True)
            self.drive(self._handle(RunnableAdded((ct.query_id, c), marker)))
        now = time.monotonic()
        self.metrics.completed.inc()
        self.metrics.task_seconds.observe(now - run.started)
        log.info(
            "query=%s task=%s done: %d rows%s in %.1f ms (inputs %.1f, run %.1f, commit %.1f)",
            *key,
            info.rows,
            f" in {len(info.bucket_rows)} buckets" if info.bucket_rows else "",
            (now - run.started) * 1000,
            ((run.fetched or run.started) - run.started) * 1000,
            ((run.ran or now) - (run.fetched or run.started)) * 1000,
            (now - (run.ran or now)) * 1000,
        )
        return Committed(key)

    def _span(self, run: RunningTask, name: str) -> contextlib.AbstractContextManager[object]:
        """A span of `run`'s task: a child of the current span (its task's), else of
        the query's span at the front door (duckfleet/tracing.py)."""
        ct = run.ct
        attributes = {"duckfleet.query_id": ct.query_id, "duckfleet.task_id": ct.task_id}
        if name == "task":
            attributes["duckfleet.worker"] = self.id
        return tracing.span(name, traceparent=ct.record.traceparent, attributes=attributes)

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
