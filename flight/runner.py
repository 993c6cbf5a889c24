"""The front door's QueryBackend: plan, publish to etcd, wait, describe the result.

The front door never executes a fragment. It plans with the catalog read from
etcd, publishes the query, waits on a watch of the status keys and answers with
one partition per output task, located at the worker holding it and then at this
front door as the fallback.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa

from duckfleet import tracing
from duckfleet.auth import ADMIN, Identity
from duckfleet.catalog import Catalog
from duckfleet.config import FrontDoorConfig
from duckfleet.control import QueryStore, Store
from duckfleet.control.errors import (
    ControlError,
    NoWorkers,
    QueryCancelled,
    QueryNotFound,
    QueryTimeout,
    ResultsLost,
)
from duckfleet.control.fingerprints import Fingerprints, Waiter, fingerprint
from duckfleet.control.lease_pool import LeasePool
from duckfleet.control.offers import Offer
from duckfleet.control.queries import StatusWatch, new_record
from duckfleet.control.queries import timeout_status as ran_too_long
from duckfleet.control.query_progress import ProgressReader
from duckfleet.control.records import EndReason, QueryState, QueryStatus, ResultInfo
from duckfleet.flight.access import AccessControl
from duckfleet.flight.admission import Admission, explained, timeout_status
from duckfleet.flight.backend import Partition, Polled, QueryOutcome
from duckfleet.flight.describe import Describer, Prepared
from duckfleet.flight.explain import explain_table
from duckfleet.flight.fast_path import FastPath, WorkerLost
from duckfleet.flight.fleet_view import FleetView
from duckfleet.flight.orphans import adopt
from duckfleet.flight.plan_cache import PlanCache
from duckfleet.flight.query_errors import ended_error
from duckfleet.flight.relay import PartitionRelay
from duckfleet.flight.statements import parse_statement_text
from duckfleet.flight.system_tables import fill_snapshots
from duckfleet.flight.writes import IngestRequest, TableWriter
from duckfleet.ids import MemberId, QueryId, TaskId, new_query_id
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.explain import Explain, explain_statement
from duckfleet.planner.fast_path import PathChoice, choose_path
from duckfleet.planner.grant_statements import GrantChange
from duckfleet.planner.plan import Plan
from duckfleet.wire.auth import ClientSecurity
from duckfleet.wire.clients import FlightClients
from duckfleet.wire.tickets import (
    ExplainTicket,
    InvalidTicket,
    explain_ticket,
    parse_result_ticket,
    parse_ticket,
    result_ticket,
)

log = logging.getLogger("duckfleet.flight")


# how a query ends when its client cancelled the call or went away
CLIENT_GONE = QueryStatus(
    QueryState.CANCELLED,
    error="the client cancelled the call or went away",
    reason=EndReason.CLIENT,
)

# what DuckDB's memory_limit accepts: 512MB, 1.5 GB, 2GiB, 80%, ...
MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s*(%|[kmgt]i?b?|b|bytes?)", re.IGNORECASE)


class FleetBackend:
    def __init__(
        self,
        cfg: FrontDoorConfig,
        store: Store,
        member_id: MemberId,
        location: str,
        client_security: ClientSecurity | None = None,  # TLS roots, token for workers
    ) -> None:
        check_memory_limit(cfg.query_memory_limit)
        self.cfg = cfg
        self.store = store
        self.member_id = member_id
        self.location = location
        self.queries = QueryStore(store)
        self.fingerprints = Fingerprints(store)
        self.status_watch = StatusWatch(store).start()
        self.progress = ProgressReader(store)  # PollFlightInfo
        self.leases = LeasePool(store, int(cfg.query_timeout + cfg.result_ttl)).start()
        self.clients = FlightClients(client_security)
        self.plans = PlanCache(cfg.plan_cache)
        self.fleet = FleetView(store, cfg.session_ttl)
        self.access = AccessControl(store)  # SELECT grants (flight/access.py)
        self.admission = Admission(store, cfg, member_id)  # resource groups (flight/admission.py)
        self.settings = PlannerSettings(
            broadcast_max_bytes=cfg.broadcast_max_bytes,
            split_bytes=cfg.split_bytes,
            pack_bytes=cfg.pack_bytes,
            split_joins=cfg.split_joins != "never",
        )
        if cfg.split_joins == "always":  # every split that keeps the answer right
            self.settings = replace(self.settings, max_cost_share=math.inf)
        self.fast = FastPath(self.clients, cfg.query_timeout)
        self.describer = Describer(self.settings)
        self.relay = PartitionRelay(  # the fallback location of every endpoint
            self.queries, self.status_watch, self.clients, lambda q, plan: self._execute(q, plan)
        )
        self.writer = TableWriter(
            self.fleet.catalog_store, cfg.data_dir, self.run_plan, self.describer, self.settings
        )

    def close(self) -> None:
        self.fast.close()
        self.fleet.close()
        self.access.close()
        self.admission.close()
        self.leases.stop()
        self.status_watch.stop()
        self.clients.close()
        self.describer.close()

    def catalog(self) -> Catalog:
        return self.fleet.catalog()

    def _planner_settings(self) -> PlannerSettings:
        """The planner's settings, with the fleet's parallelism as of now (re-read
        from the workers' records at most once a second: flight/fleet_view.py)."""
        if self.cfg.parallelism > 0:
            return replace(self.settings, parallelism=self.cfg.parallelism)
        return replace(self.settings, parallelism=max(1, self.fleet.slots()))

    def prepare(self, sql: str) -> Prepared:
        return self.fleet.with_catalog(lambda catalog: self.describer.prepare(sql, catalog))

    def check_read(self, sql: str, who: Identity) -> None:
        """PERMISSION_DENIED unless ``who`` may read what ``sql`` reads (a write
        statement is for admins, checked when it runs)."""
        if not who.is_admin and not parse_statement_text(sql).is_update:
            self.access.check(sql, self.fleet.catalog(), who)

    def readable_catalog(self, who: Identity) -> Catalog:
        """The catalog's tables and views ``who`` may read (metadata commands)."""
        return self.access.readable(self.fleet.catalog(), who)

    def update(self, sql: str, *, priority: int = 0) -> int:
        change = parse_statement_text(sql).write
        if isinstance(change, GrantChange):  # GRANT / REVOKE (the caller is an admin)
            self.access.apply(change, self.fleet.catalog(fresh=True), ADMIN_IDENTITY)
            return 0
        try:
            return self.writer.update(sql, priority)
        finally:  # read our own writes: the watch tells a moment later
            self.fleet.catalog_changed()

    def ingest(self, request: IngestRequest, data: pa.Table) -> int:
        try:
            return self.writer.ingest(request, data)
        finally:
            self.fleet.catalog_changed()

    def session(self, session_id: str) -> dict[str, Any] | None:
        return self.fleet.session(session_id)

    def save_session(self, session_id: str, options: dict[str, Any]) -> None:
        self.fleet.save_session(session_id, options)

    def close_session(self, session_id: str) -> bool:
        return self.fleet.close_session(session_id)

    def run_plan(self, plan: Plan, priority: int = 0) -> None:
        """Run a plan to its end (its results are not fetched: writes)."""
        q = new_query_id()
        started = time.perf_counter()
        plan = fill_snapshots(plan, self.store, ADMIN_IDENTITY)  # writes: admins only
        with tracing.span("query", attributes={"duckfleet.query_id": q, "duckfleet.write": True}):
            self._execute(q, plan, priority=priority)
        log.info(
            "query=%s finished: %d task(s); total %.1f ms",
            q,
            len(plan.tasks),
            (time.perf_counter() - started) * 1000,
        )

    def run(
        self,
        sql: str,
        *,
        priority: int = 0,
        cancelled: Callable[[], bool] | None = None,
        user: str = "",
        role: str = ADMIN,
        dialect: str | None = None,
    ) -> QueryOutcome:
        """Plan, publish and wait for `sql`. ``priority``: higher is scheduled first;
        ``cancelled``: asked while waiting (the Flight call's ``is_cancelled``): once
        it says yes the query is cancelled fleet-wide. ``user`` and ``role``: who
        asked (wire/auth.py); "" when auth is off. ``dialect``: the one the client
        wrote `sql` in, when it was transpiled to the DuckDB SQL given (EXPLAIN
        says so)."""
        with (
            tracing.span("query", attributes={"db.statement": sql[:2000]}) as span,
            self.admission.admitted(user, role, cancelled, sql),  # its resource group's turn
        ):
            outcome = self._run(sql, priority, cancelled, user, role, dialect)
            if span is not None:
                span.set_attribute("duckfleet.query_id", outcome.query_id)
            return outcome

    def _run(
        self,
        sql: str,
        priority: int,
        cancelled: Callable[[], bool] | None,
        user: str,
        role: str,
        dialect: str | None,
    ) -> QueryOutcome:
        started = time.perf_counter()
        who = Identity(user, role, math.inf)
        explain = explain_statement(sql)
        if explain is not None:
            return self._explain(sql, explain, who, dialect)
        with tracing.span("plan"):
            plan, path = self._planned(sql, who)
            plan = fill_snapshots(plan, self.store, who)  # system tables: etcd as `who` sees it
        planned = time.perf_counter()
        fast, started_once = (
            self._run_fast(plan, priority, cancelled, user=user) if path.fast else (None, ())
        )
        if fast is not None:
            q, index = fast
        else:
            asker = {"user": user, "role": role} if user else {}
            f = fingerprint(sql, priority=priority, **asker)  # a retry by someone else is not this
            adopted = self._adopted(f, cancelled)
            if adopted is not None:
                return adopted
            q = new_query_id()
            index = self._execute(
                q,
                plan,
                priority=priority,
                cancelled=cancelled,
                fingerprint=f,
                started=started_once,
                user=user,
            )
        outcome = self._outcome(q, [t.id for t in plan.output_tasks], index)
        log.info(
            "query=%s finished%s: %d task(s), %d partition(s), %d rows; plan %.1f ms, "
            "total %.1f ms%s",
            q,
            " on the fast path" if fast is not None else "",
            len(plan.tasks),
            len(outcome.partitions),
            outcome.rows,
            (planned - started) * 1000,
            (time.perf_counter() - started) * 1000,
            f"; user={user} role={role}" if user else "",
        )
        return outcome

    def _run_fast(
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
        options = self._query_options(priority, user)
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

    def _query_options(self, priority: int, user: str = "") -> dict[str, Any]:
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

    def _outcome(
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

    def _adopted(self, f: str, cancelled: Callable[[], bool] | None) -> QueryOutcome | None:
        """The outcome of the query a client started with this very request through a
        front door that died before answering, if there is one (flight/orphans.py)."""
        q = adopt(self.fingerprints, self.queries, f, Waiter(self.member_id, self.location))
        if q is None:
            return None
        record = self.queries.record(q)
        left = record.created + record.timeout - time.time() if record.timeout else None
        with self.status_watch.waiting(q) as changed:
            status = self._wait_then_forget(q, changed, cancelled, f, left)
        index = self._results(q, record.outputs, status, f)
        return self._outcome(q, list(record.outputs), index)

    def _planned(self, sql: str, who: Identity | None = None) -> tuple[Plan, PathChoice]:
        """The plan (from the plan cache) and the path it takes: the fast path or the
        queue (planner/fast_path.py). ``who``'s grants are checked first, on the very
        catalog it is planned on, before the plan cache is asked (flight/access.py)."""

        def plan_on(catalog: Catalog) -> tuple[Plan, PathChoice]:
            if who is not None:
                self.access.check(sql, catalog, who)
            plan = self.plans.plan(sql, catalog, self._planner_settings(), plan_query)
            return plan, choose_path(plan, catalog, self.cfg.fast_path_bytes)

        return self.fleet.with_catalog(plan_on)

    def _explain(
        self, sql: str, explain: Explain, who: Identity, dialect: str | None = None
    ) -> QueryOutcome:
        """EXPLAIN: the plan as a table; EXPLAIN ANALYZE: run it, then the same with
        each task's run. One endpoint, answered by any front door."""
        plan, path = self._planned(explain.sql, who)
        q = new_query_id()
        records = None
        if explain.analyze:
            plan = fill_snapshots(plan, self.store, who)
            with self.status_watch.waiting(q) as changed:
                ran, started = (
                    self._run_fast(plan, 0, None, q, who.user) if path.fast else (None, ())
                )
                if ran is None:
                    q = new_query_id()
                    self._execute(q, plan, started=started, user=who.user)
                else:  # its completion commits just after the answer: wait for it
                    self.queries.wait(q, self.admission.limits().timeout, changed)
            records = self.queries.task_records(q)
        table = explain_table(plan, records, path.reason, dialect)
        ticket = explain_ticket(sql, q if explain.analyze else None, dialect)
        log.info("query=%s explained: %d task(s)%s", q, len(plan.tasks), " (ran)" * bool(records))
        partition = Partition(ticket=ticket, locations=(), rows=table.num_rows, bytes=table.nbytes)
        return QueryOutcome(q, table.schema, (partition,))

    def _explain_again(self, ticket: ExplainTicket) -> pa.RecordBatchReader:
        explain = explain_statement(ticket.sql)
        if explain is None:
            raise InvalidTicket("invalid ticket: the explain ticket carries no EXPLAIN")
        plan, path = self._planned(explain.sql)
        records = None
        if ticket.query_id is not None:
            self.queries.record(ticket.query_id)  # QueryNotFound once its keys expired
            records = self.queries.task_records(ticket.query_id)
        return explain_table(plan, records, path.reason, ticket.dialect).to_reader()

    def _execute(
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
            self._publish_query(q, plan, priority, fingerprint, started, user)
            with tracing.span("wait", attributes={"duckfleet.query_id": q}):
                status = self._wait_then_forget(q, changed, cancelled, fingerprint)
        return self._results(q, [t.id for t in plan.output_tasks], status, fingerprint)

    def _publish_query(
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
        options = self._query_options(priority, user)  # here: the query's span is current
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

    def _results(
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

    # --- PollFlightInfo (flight/poll.py) ---------------------------------------------

    def start(
        self,
        sql: str,
        *,
        priority: int = 0,
        user: str = "",
        role: str = ADMIN,
        dialect: str | None = None,
    ) -> QueryId | QueryOutcome:
        """Plan and publish `sql` through the queue without waiting for it: its query
        id, to `poll`. A statement answered at once anyway (EXPLAIN, a query on the
        fast path) is run here, and its outcome returned instead. A polled query
        waits for its resource group's turn and takes its limits (run time, memory)
        here; it does not hold a running slot of the group between polls."""
        who = Identity(user, role, math.inf)
        if explain_statement(sql) is None:
            plan, path = self._planned(sql, who)
            if not path.fast:
                q = new_query_id()
                with (
                    tracing.span("query", attributes={"db.statement": sql[:2000]}),
                    self.admission.admitted(user, role, None, sql),
                ):
                    plan = fill_snapshots(plan, self.store, who)
                    self._publish_query(q, plan, priority, user=user)
                log.info("query=%s published to be polled: %d task(s)", q, len(plan.tasks))
                return q
        return self.run(sql, priority=priority, user=user, role=role, dialect=dialect)

    def poll(self, q: QueryId, who: Identity, given: Sequence[TaskId] = ()) -> Polled:
        """Where query `q` is: its progress (finished tasks over all), and its output
        partitions: those the client was `given` before, in that order, then the ones
        with a result since, in output order; once it finished, every one. Raises the
        query's error if it failed, and ends a query past its timeout (nobody else
        may be waiting for it)."""
        record = self.queries.record(q)
        if not who.is_admin and record.user != who.user:
            raise QueryNotFound(f"query {q} is unknown or its results have expired")
        progress = self.progress.read(q, record.outputs)
        status = progress.status
        if status is None:
            raise QueryNotFound(f"query {q} is unknown or its results have expired")
        late = record.timeout and time.time() > record.created + record.timeout
        if status.state == QueryState.RUNNING and late:
            status = self.queries.end(q, ran_too_long(record.timeout))
        outputs = set(record.outputs)
        first = list(dict.fromkeys(t for t in given if t in outputs))  # kept where they were
        if status.terminal:
            index = self._results(q, record.outputs, status)
            order = first + [t for t in record.outputs if t not in first]
            elapsed = max(0.0, time.time() - record.created)
            return Polled(self._outcome(q, order, index), 1.0, True, elapsed)
        found = progress.results
        order = first + [t for t in record.outputs if t in found and t not in first]
        partitions = tuple(
            Partition(  # one given before whose result is gone: its front door recomputes it
                ticket=result_ticket(q, t),
                locations=(found[t].location, self.location) if t in found else (self.location,),
                rows=found[t].rows if t in found else 0,
                bytes=found[t].bytes if t in found else 0,
            )
            for t in order
        )
        schema = next((found[t].schema for t in order if t in found), None)
        outcome = QueryOutcome(q, schema or self._result_schema(record.sql), partitions)
        share = progress.done / max(1, record.ntasks)
        return Polled(outcome, min(share, RUNNING_PROGRESS_CAP), False)

    def _result_schema(self, sql: str) -> pa.Schema:
        """A running query's result schema, before any partition has one."""
        try:
            return self.prepare(sql).dataset_schema
        except Exception as exc:  # the schema is a courtesy: the last poll has it
            log.info("no result schema for a polled query yet: %s", exc)
            return pa.schema([])

    def cancel(self, q: QueryId) -> QueryStatus:
        """Cancel query `q` fleet-wide (CancelFlightInfo, CancelQuery): a running
        query stops and its tasks are interrupted; a finished one's results are
        freed. The query's status afterwards."""
        status = QueryStatus(
            QueryState.CANCELLED, error="cancelled at the client's request", reason=EndReason.CLIENT
        )
        return self.queries.end(q, status, finished_too=True)

    def open_partition(self, ticket: bytes) -> pa.RecordBatchReader:
        """Stream a partition from its worker, or recompute it if that worker is gone
        (flight/relay.py); an EXPLAIN's answer is made again here."""
        parsed = parse_ticket(ticket)
        if isinstance(parsed, ExplainTicket):
            return self._explain_again(parsed)
        q, t = parse_result_ticket(ticket)
        return self.relay.open(q, t, ticket)


# a running query's progress stays below 1.0 (1.0: it ended)
RUNNING_PROGRESS_CAP = 0.999


# who carries out a GRANT or REVOKE: the server let admins alone send one
ADMIN_IDENTITY = Identity("", ADMIN, math.inf)


def check_memory_limit(text: str) -> None:
    """Refuse, at start, a DUCKFLEET_QUERY_MEMORY_LIMIT that DuckDB would refuse later."""
    if text.strip() and not MEMORY_LIMIT.fullmatch(text.strip()):
        raise ValueError(
            f"DUCKFLEET_QUERY_MEMORY_LIMIT={text!r} is not a memory size: "
            "write it as DuckDB does, e.g. 512MB, 2GB or 50%"
        )
