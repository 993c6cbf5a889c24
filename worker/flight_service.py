"""The worker's Flight endpoint: serves the results it holds, by ticket (DoGet); every
other RPC answers UNIMPLEMENTED (flight/edge.py)."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow.flight as fl

from duckfleet.control.errors import QueryNotFound
from duckfleet.flight.edge import FlightEdge
from duckfleet.flight.status import flight_call
from duckfleet.flight.tickets import parse_result_ticket_bucket
from duckfleet.worker.results import ResultStore
from duckfleet.worker.wire import wire_sized

log = logging.getLogger("duckfleet.worker")


class WorkerFlightServer(FlightEdge):
    """``kwargs`` go to FlightServerBase: ``tls_certificates`` and the auth
    ``middleware`` (flight/auth.py ProcessSecurity.server_kwargs): with auth on,
    every call needs a bearer token from a front door."""

    serves = "a worker"
    instead = "a worker serves the results it holds (DoGet); send Flight SQL to a front door"

    def __init__(self, location: str, results: ResultStore, **kwargs: Any) -> None:
        super().__init__(location, **kwargs)
        self.results = results

    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.FlightDataStream:
        with flight_call("DoGet", context) as call:
            parsed = parse_result_ticket_bucket(ticket.ticket)
            q, t, bucket = parsed.query_id, parsed.task_id, parsed.bucket
            call.query_id = q
            table = self.results.get(q, t, bucket)
            what = t if bucket is None else f"{t} bucket {bucket}"
            if table is None:
                # the client moves on to the next location: a front door
                raise QueryNotFound(
                    f"this worker holds no result {what} of query {q}: fetch it from a front door"
                )
            log.info("query=%s task=%s serving %d rows", q, what, table.num_rows)
            return fl.RecordBatchStream(wire_sized(table))
