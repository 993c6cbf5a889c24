"""A result partition served by the front door: the fallback location of every
endpoint, for clients that cannot reach the worker holding it, or when that
worker is gone.

It streams the partition from its worker; if the worker is unreachable or lost,
it recomputes the partition from its lineage (the tasks it depends on, published
as a query of their own) and streams that. A query that was cancelled or failed
is never recomputed. A query answered before its completion is committed (the
fast path: the worker answers first) is waited for, briefly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.control import QueryStore
from duckfleet.control.queries import StatusWatch
from duckfleet.control.records import QueryState, ResultInfo
from duckfleet.flight.query_errors import ended_error
from duckfleet.ids import QueryId, TaskId, new_query_id
from duckfleet.planner.plan import Plan
from duckfleet.wire.clients import FlightClients
from duckfleet.wire.tickets import result_ticket

log = logging.getLogger("duckfleet.flight")

FAST_ANSWER_COMMIT_WAIT = 10.0  # seconds a DoGet waits for an answered query to finish

# publish a plan as a query and wait for it: its output tasks' results, located
Execute = Callable[[QueryId, Plan], dict[TaskId, ResultInfo]]


class PartitionRelay:
    def __init__(
        self,
        queries: QueryStore,
        status_watch: StatusWatch,
        clients: FlightClients,
        execute: Execute,
    ) -> None:
        self.queries = queries
        self.status_watch = status_watch
        self.clients = clients
        self.execute = execute

    def open(self, q: QueryId, t: TaskId, ticket: bytes) -> pa.RecordBatchReader:
        """Partition `t` of query `q` (its result ticket is `ticket`)."""
        status = self.queries.status(q)
        if status is not None and status.state == QueryState.RUNNING:
            with self.status_watch.waiting(q) as changed:
                status = self.queries.wait(q, FAST_ANSWER_COMMIT_WAIT, changed)
        if status is not None and status.state != QueryState.FINISHED:
            raise ended_error(q, status)  # never recompute what was cancelled or failed
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
        index = self.execute(again, lineage)
        ticket_again = fl.Ticket(result_ticket(again, t))
        return self.clients.get(index[t].location).do_get(ticket_again).to_reader()
