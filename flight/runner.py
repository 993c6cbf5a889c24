"""The front door's QueryBackend: plan, publish to etcd, wait, describe the result.

The front door never executes a fragment. It plans with the catalog read from
etcd, publishes the query, waits on a watch of the status keys and answers with
one partition per output task, located at the worker holding it and then at this
front door as the fallback.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.catalog import Catalog
from duckfleet.config import FrontDoorConfig
from duckfleet.control import CatalogStore, QueryStore, Store
from duckfleet.control.errors import NoWorkers, QueryFailed, QueryTimeout
from duckfleet.control.queries import StatusWatch
from duckfleet.control.records import QueryState, QueryStatus, ResultInfo
from duckfleet.flight.backend import Partition, QueryOutcome
from duckfleet.flight.tickets import parse_result_ticket, result_ticket
from duckfleet.ids import MemberId, QueryId, TaskId, new_query_id
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.plan import Plan
from duckfleet.worker.inputs import FlightClients

log = logging.getLogger("duckfleet.flight")


class FleetBackend:
    def __init__(
        self, cfg: FrontDoorConfig, store: Store, member_id: MemberId, location: str
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.member_id = member_id
        self.location = location
        self.catalog_store = CatalogStore(store)
        self.queries = QueryStore(store)
        self.status_watch = StatusWatch(store).start()
        self.clients = FlightClients()
        self.settings = PlannerSettings(
            broadcast_max_bytes=cfg.broadcast_max_bytes, split_joins=cfg.split_joins != "never"
        )
        if cfg.split_joins == "always":  # every split that keeps the answer right
            self.settings = replace(self.settings, max_cost_share=math.inf)
        self._slots = 0
        self._slots_read_at = -1e9

    def close(self) -> None:
        self.status_watch.stop()
        self.clients.close()

    def catalog(self) -> Catalog:
        return self.catalog_store.read()

    def _planner_settings(self) -> PlannerSettings:
        """The planner's settings, with the fleet's parallelism as of now (re-read
        from the workers' records at most once a second)."""
        if self.cfg.parallelism > 0:
            return replace(self.settings, parallelism=self.cfg.parallelism)
        now = time.monotonic()
        if now - self._slots_read_at > 1.0:
            self._slots = self.queries.worker_slots()
            self._slots_read_at = now
        return replace(self.settings, parallelism=max(1, self._slots))

    def run(self, sql: str) -> QueryOutcome:
        started = time.perf_counter()
        catalog = self.catalog_store.read()
        plan = plan_query(sql, catalog, self._planner_settings())
        planned = time.perf_counter()
        q = new_query_id()
        index = self._execute(q, plan)
        outputs = [t.id for t in plan.output_tasks]
        partitions = tuple(
            Partition(
                ticket=result_ticket(q, t),
                locations=(index[t].location, self.location),
                rows=index[t].rows,
                bytes=index[t].bytes,
            )
            for t in outputs
        )
        log.info(
            "query=%s finished: %d task(s), %d partition(s), %d rows; plan %.1f ms, total %.1f ms",
            q,
            len(plan.tasks),
            len(partitions),
            sum(p.rows for p in partitions),
            (planned - started) * 1000,
            (time.perf_counter() - started) * 1000,
        )
        return QueryOutcome(q, index[outputs[0]].schema, partitions)

    def _execute(self, q: QueryId, plan: Plan) -> dict[TaskId, ResultInfo]:
        """Publish `plan` as query `q`, wait for it, and locate its output partitions."""
        if self.queries.worker_count() == 0:
            raise NoWorkers(
                "no worker has joined the fleet, so nothing can run the query; "
                "start one with `duckfleet worker --etcd URL` and retry"
            )
        ttl = int(self.cfg.query_timeout + self.cfg.result_ttl)
        with self.status_watch.waiting(q) as changed:
            self.queries.publish(
                q, plan, frontdoor=self.member_id, ttl=ttl, max_attempts=self.cfg.max_attempts
            )
            try:
                status = self.queries.wait(q, self.cfg.query_timeout, changed)
            except QueryTimeout:
                self.queries.end(q, QueryStatus(QueryState.CANCELLED, error="timed out"))
                raise
        if status.state != QueryState.FINISHED:
            raise QueryFailed(f"query {q} {status.state}: {status.error}")
        outputs = [t.id for t in plan.output_tasks]
        index = self.queries.results(q, outputs)
        missing = [t for t in outputs if t not in index]
        if missing:
            raise QueryFailed(
                f"query {q}: result partition(s) {missing} were lost with their worker; "
                "run the query again"
            )
        return index

    def open_partition(self, ticket: bytes) -> pa.RecordBatchReader:
        """Stream a partition from its worker, or recompute it if that worker is gone."""
        q, t = parse_result_ticket(ticket)
        info = self.queries.results(q, [t]).get(t)
        if info is not None:
            try:
                return self.clients.get(info.location).do_get(fl.Ticket(ticket)).to_reader()
            except (fl.FlightError, pa.ArrowException) as exc:
                log.warning("query=%s partition %s at %s unreachable: %s", q, t, info.location, exc)
        lineage = self.queries.lineage(q, t)
        again = new_query_id()
        log.warning(
            "query=%s partition %s lost with its worker: recomputing it as query %s (%d task(s))",
            q,
            t,
            again,
            len(lineage.tasks),
        )
        index = self._execute(again, lineage)
        ticket_again = fl.Ticket(result_ticket(again, t))
        return self.clients.get(index[t].location).do_get(ticket_again).to_reader()
