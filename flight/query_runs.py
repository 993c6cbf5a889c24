"""Running a planned query on the fleet, for a front door: publish it to etcd and
wait for its end, or offer it to a worker on the fast path; then locate its output
partitions (capped by DUCKFLEET_MAX_RESULT_BYTES); and answer a retried request with
the query a dead front door left running (flight/orphans.py).

The front door never executes a fragment. A query is published with its record and
tasks in one transaction (control/queries.py), waited for on a watch of its status
key, and answered with one partition per output task, located at the worker holding
it and then at this front door as the fallback (flight/relay.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from duckfleet import tracing
from duckfleet.config import FrontDoorConfig
from duckfleet.control import QueryStore, Store
from duckfleet.control.errors import (
    ControlError,
    NoWorkers,
    QueryCancelled,
    QueryTimeout,
    ResultsLost,
)
from duckfleet.control.fingerprints import Fingerprints, Waiter
from duckfleet.control.lease_pool import LeasePool
from duckfleet.control.offers import Offer
from duckfleet.control.queries import StatusWatch, new_record
from duckfleet.control.records import EndReason, QueryState, QueryStatus, ResultInfo
from duckfleet.flight.admission import Admission, explained, timeout_status
from duckfleet.flight.backend import Partition, QueryOutcome
from duckfleet.flight.fast_path import FastPath, WorkerLost
from duckfleet.flight.fleet_view import FleetView
from duckfleet.flight.orphans import adopt
from duckfleet.flight.query_errors import ended_error
from duckfleet.ids import MemberId, QueryId, TaskId, new_query_id
from duckfleet.planner.plan import Plan
from duckfleet.wire.tickets import result_ticket

log = logging.getLogger("duckfleet.flight")

# how a query ends when its client cancelled the call or went away
CLIENT_GONE = QueryStatus(
    QueryState.CANCELLED,
    error="the client cancelled the call or went away",
    reason=EndReason.CLIENT,
)


class QueryRuns:
    def __init__(
        self,
        cfg: FrontDoorConfig,
        store: Store,
        member_id: MemberId,
        location: str,
        fleet: FleetView,
        admission: Admission,
        fast: FastPath,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.member_id = member_id
        self.location = location
        self.fleet = fleet  # the workers: the fast path's candidates, whether any joined
        self.admission = admission  # the running query's limits (flight/admission.py)
        self.fast = fast
        self.queries = QueryStore(store)
        self.fingerprints = Fingerprints(store)
        self.status_watch = StatusWatch(store).start()
        self.leases = LeasePool(store, int(cfg.query_timeout + cfg.result_ttl)).start()

    def close(self) -> None:
        self.leases.stop()
        self.status_watch.stop()

    def run_fast(
        self,
        plan: Plan,
        priority: int,
        cancelled: Callable[[], bool] | None,
        q: QueryId | None = None,
        user: str = "",
    ) -> tuple[tuple[QueryId, dict[TaskId, ResultInfo]] | None, tuple[TaskId, ...]]:
        """Offer a one-task plan to a worker with a free slot (flight/fast_path.py):
        the query's id and where its result is, or None if every worker asked refused
        or the one that took it was lost (the caller runs it through the queue); and
        the tasks that were started on a worker that was lost (they count as an
        attempt of the query the caller publishes)."""
        workers = self.fleet.workers()
        if not workers:
            return None, ()
        q = q or new_query_id()
        lease = int(self.leases.take().id)
        options = self.options(priority, user)
        record = new_record(q, plan, frontdoor=self.member_id, lease=lease, **options)
        record = replace(record, path="fast")
        tracing.QUERIES.remember(q, record.traceparent)
        try:
            with tracing.span("fast path offer", attributes={"duckfleet.query_id": q}):
                answer = self.fast.offer(Offer(record, plan.tasks[0]), workers, cancelled)
        except WorkerLost as exc:
            log.warning("query=%s: %s; running it again through the queue", q, exc)
            self._end_quietly(q, "its worker was lost; it runs again through the queue")
            return None, tuple(t.id for t in plan.tasks)
        except QueryCancelled:
            raise ended_error(q, self.queries.end(q, CLIENT_GONE)) from None
        if answer is None:
            return None, ()
        if answer.status is not None:
            raise ended_error(q, explained(answer.status, self.admission.limits()))
        assert answer.result is not None
        (task,) = plan.tasks
        self._check_result_size(q, [answer.result])
        return (q, {task.id: answer.result}), ()

    def options(self, priority: int, user: str = "") -> dict[str, Any]:
        """What every query record carries from this front door's configuration, and
        who asked; the limits of its resource group (flight/admission.py)."""
        limits = self.admission.limits()
        return {
            "user": user,
            "priority": priority,
            "max_attempts": self.cfg.max_attempts,
            "timeout": limits.timeout,
            "memory_limit": limits.memory_limit,
            "resource_group": limits.group,
            "max_result_bytes": self.cfg.max_result_bytes,
            # the current span's (the query's): its tasks' spans are its children
            "traceparent": tracing.current_traceparent(),
        }

    def _end_quietly(self, q: QueryId, why: str) -> None:
        """End a query that may or may not be in etcd."""
        try:
            self.queries.end(q, QueryStatus(QueryState.CANCELLED, error=why))
        except ControlError as exc:
            log.info("query=%s: not ended (%s)", q, exc)

    def outcome(
        self, q: QueryId, outputs: list[TaskId], index: dict[TaskId, ResultInfo]
    ) -> QueryOutcome:
        partitions = tuple(
            Partition(
                ticket=result_ticket(q, t),
                locations=(index[t].location, self.location),
                rows=index[t].rows,
                bytes=index[t].bytes,
            )
            for t in outputs
        )
        return QueryOutcome(q, index[outputs[0]].schema, partitions)

    def adopted(self, f: str, cancelled: Callable[[], bool] | None) -> QueryOutcome | None:
        """The outcome of the query a client started with this very request through a
        front door that died before answering, if there is one (flight/orphans.py)."""
        q = adopt(self.fingerprints, self.queries, f, Waiter(self.member_id, self.location))
        if q is None:
            return None
        record = self.queries.record(q)
        left = record.created + record.timeout - time.time() if record.timeout else None
        with self.status_watch.waiting(q) as changed:
            status = self._wait_then_forget(q, changed, cancelled, f, left)
        index = self.results(q, record.outputs, status, f)
        return self.outcome(q, list(record.outputs), index)

    def execute(
        self,
        q: QueryId,
        plan: Plan,
        *,
        priority: int = 0,
        cancelled: Callable[[], bool] | None = None,
        fingerprint: str = "",
        started: tuple[TaskId, ...] = (),
        user: str = "",
    ) -> dict[TaskId, ResultInfo]:
        """Publish `plan` as query `q`, wait for it, and locate its output partitions.
        With a `fingerprint`, another front door can answer a retry of the request
        if this one dies while it waits (flight/orphans.py). `started`: tasks already
        started once on a worker that was lost (the fast path), one attempt each."""
        with self.status_watch.waiting(q) as changed:
            self.publish_query(q, plan, priority, fingerprint, started, user)
            with tracing.span("wait", attributes={"duckfleet.query_id": q}):
                status = self._wait_then_forget(q, changed, cancelled, fingerprint)
        return self.results(q, [t.id for t in plan.output_tasks], status, fingerprint)

    def publish_query(
        self,
        q: QueryId,
        plan: Plan,
        priority: int = 0,
        fingerprint: str = "",
        started: tuple[TaskId, ...] = (),
        user: str = "",
    ) -> None:
        """Publish `plan` as query `q` through the queue (not waiting for it)."""
        if not self.fleet.has_workers():
            raise NoWorkers(
                "no worker has joined the fleet, so nothing can run the query; "
                "start one with `duckfleet worker --etcd URL` and retry"
            )
        ttl = int(self.cfg.query_timeout + self.cfg.result_ttl)
        options = self.options(priority, user)  # here: the query's span is current
        tracing.QUERIES.remember(q, options["traceparent"])
        attributes = {"duckfleet.query_id": q, "duckfleet.tasks": len(plan.tasks)}
        with tracing.span("publish", attributes=attributes):
            self._publish(q, plan, ttl, options, fingerprint, started)

    def _publish(
        self,
        q: QueryId,
        plan: Plan,
        ttl: int,
        options: dict[str, Any],
        fingerprint: str,
        started: tuple[TaskId, ...],
    ) -> None:
        waiter = (fingerprint, Waiter(self.member_id, self.location)) if fingerprint else None
        self.queries.publish(
            q,
            plan,
            frontdoor=self.member_id,
            ttl=ttl,
            **options,
            fingerprint=waiter,
            lease=self.leases.take(),
            started=started,
        )

    def _wait_then_forget(
        self,
        q: QueryId,
        changed: threading.Event,
        cancelled: Callable[[], bool] | None,
        fingerprint: str,
        left: float | None = None,
    ) -> QueryStatus:
        """`_wait`; the fingerprint is forgotten here unless the query finished (then
        `_results` forgets it in the same round trip as it reads them)."""
        status = None
        try:
            status = self._wait(q, changed, cancelled, left)
            return status
        finally:
            if fingerprint and (status is None or status.state != QueryState.FINISHED):
                self._forget(fingerprint, q)

    def _forget(self, f: str, q: QueryId) -> None:
        """The client is being answered: no other front door may adopt the query."""
        try:
            self.fingerprints.forget(f, q)
        except ControlError as exc:  # the key expires with the query anyway
            log.warning("query=%s: could not drop its fingerprint: %s", q, exc)

    def results(
        self, q: QueryId, outputs: Sequence[TaskId], status: QueryStatus, fingerprint: str = ""
    ) -> dict[TaskId, ResultInfo]:
        """Where the output partitions of a query that ended with `status` are; the
        request's `fingerprint` is forgotten in the same round trip (the client is
        being answered: no other front door may adopt the query)."""
        if status.state != QueryState.FINISHED:
            raise ended_error(q, explained(status, self.admission.limits()))
        forget = self.store.keys.fingerprint(fingerprint, q) if fingerprint else ""
        try:
            index = self.queries.results(q, outputs, delete=forget)
        except ControlError:
            if fingerprint:
                self._forget(fingerprint, q)
            raise
        missing = [t for t in outputs if t not in index]
        if missing:
            raise ResultsLost(
                f"query {q}: result partition(s) {missing} were lost with their worker; "
                "run the query again"
            )
        self._check_result_size(q, [index[t] for t in outputs])
        return index

    def _check_result_size(self, q: QueryId, parts: list[ResultInfo]) -> None:
        cap, size = self.cfg.max_result_bytes, sum(p.bytes for p in parts)
        if not cap or size <= cap:
            return
        status = QueryStatus(
            QueryState.FAILED,
            error=f"its result is {size:,} bytes, more than DUCKFLEET_MAX_RESULT_BYTES={cap}; "
            "select fewer rows or columns (LIMIT, an aggregate), or raise the cap",
            reason=EndReason.LIMIT,
        )
        raise ended_error(q, self.queries.end(q, status, finished_too=True))

    def _wait(
        self,
        q: QueryId,
        changed: threading.Event,
        cancelled: Callable[[], bool] | None,
        left: float | None = None,
    ) -> QueryStatus:
        """The query's terminal status; on timeout (`left` seconds, by default the
        query timeout) or a cancelled call, end it first."""
        limits = self.admission.limits()
        try:
            return self.queries.wait(
                q, limits.timeout if left is None else left, changed, cancelled
            )
        except QueryTimeout:
            status = timeout_status(limits)
        except QueryCancelled:
            status = CLIENT_GONE
        return self.queries.end(q, status)

    def cancel(self, q: QueryId) -> QueryStatus:
        """Cancel query `q` fleet-wide (CancelFlightInfo, CancelQuery): a running
        query stops and its tasks are interrupted; a finished one's results are
        freed. The query's status afterwards."""
        status = QueryStatus(
            QueryState.CANCELLED, error="cancelled at the client's request", reason=EndReason.CLIENT
        )
        return self.queries.end(q, status, finished_too=True)
