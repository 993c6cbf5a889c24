"""The front door's QueryBackend: the parts a query meets, put together.

Each part has a home of its own: what the front door knows of the fleet (the
catalog, sessions, the workers: flight/fleet_view.py), grants (flight/access.py),
resource groups (flight/admission.py), the plan cache (flight/plan_cache.py),
running a plan (publish and wait, the fast path's offer, result locations and their
cap, adoption of a dead front door's query: flight/query_runs.py), the partition
relay (flight/relay.py) and writes (flight/writes.py). What is left here is the
order they are called in for a statement, EXPLAIN and PollFlightInfo.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa

from duckfleet import tracing
from duckfleet.auth import ADMIN, Identity
from duckfleet.catalog import Catalog
from duckfleet.config import FrontDoorConfig
from duckfleet.control import Store
from duckfleet.control.errors import (
    QueryNotFound,
)
from duckfleet.control.fingerprints import fingerprint
from duckfleet.control.queries import timeout_status as ran_too_long
from duckfleet.control.query_progress import ProgressReader
from duckfleet.control.records import QueryState, QueryStatus
from duckfleet.flight.access import AccessControl
from duckfleet.flight.admission import Admission
from duckfleet.flight.backend import Partition, Polled, QueryOutcome
from duckfleet.flight.describe import Describer, Prepared
from duckfleet.flight.explain import explain_table
from duckfleet.flight.fast_path import FastPath
from duckfleet.flight.fleet_view import FleetView
from duckfleet.flight.plan_cache import PlanCache
from duckfleet.flight.query_runs import QueryRuns
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
        self.progress = ProgressReader(store)  # PollFlightInfo
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
        # publish and wait, the fast path's offer, results and their cap, adoption
        self.runs = QueryRuns(
            cfg, store, member_id, location, self.fleet, self.admission, self.fast
        )
        self.queries, self.status_watch = self.runs.queries, self.runs.status_watch
        self.describer = Describer(self.settings)
        self.relay = PartitionRelay(  # the fallback location of every endpoint
            self.queries, self.status_watch, self.clients, self.runs.execute
        )
        self.writer = TableWriter(
            self.fleet.catalog_store, cfg.data_dir, self.run_plan, self.describer, self.settings
        )

    def close(self) -> None:
        self.fast.close()
        self.fleet.close()
        self.access.close()
        self.admission.close()
        self.runs.close()
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
            self.runs.execute(q, plan, priority=priority)
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
            self.runs.run_fast(plan, priority, cancelled, user=user) if path.fast else (None, ())
        )
        if fast is not None:
            q, index = fast
        else:
            asker = {"user": user, "role": role} if user else {}
            f = fingerprint(sql, priority=priority, **asker)  # a retry by someone else is not this
            adopted = self.runs.adopted(f, cancelled)
            if adopted is not None:
                return adopted
            q = new_query_id()
            index = self.runs.execute(
                q,
                plan,
                priority=priority,
                cancelled=cancelled,
                fingerprint=f,
                started=started_once,
                user=user,
            )
        outcome = self.runs.outcome(q, [t.id for t in plan.output_tasks], index)
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
                    self.runs.run_fast(plan, 0, None, q, who.user) if path.fast else (None, ())
                )
                if ran is None:
                    q = new_query_id()
                    self.runs.execute(q, plan, started=started, user=who.user)
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

    def cancel(self, q: QueryId) -> QueryStatus:
        return self.runs.cancel(q)

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
                    self.runs.publish_query(q, plan, priority, user=user)
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
            index = self.runs.results(q, record.outputs, status)
            order = first + [t for t in record.outputs if t not in first]
            elapsed = max(0.0, time.time() - record.created)
            return Polled(self.runs.outcome(q, order, index), 1.0, True, elapsed)
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
