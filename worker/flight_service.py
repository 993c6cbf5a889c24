"""The worker's Flight endpoint: serves the results it holds, by ticket (DoGet), and
takes fast-path offers from front doors (DoAction duckfleet.offer, worker/offers.py);
every other RPC answers UNIMPLEMENTED (wire/edge.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow.flight as fl

from duckfleet.control.errors import QueryNotFound
from duckfleet.control.offers import OFFER_ACTION, Offer
from duckfleet.wire.auth import require_service
from duckfleet.wire.edge import FlightEdge
from duckfleet.wire.status import flight_call
from duckfleet.wire.tickets import InvalidTicket, parse_result_ticket_bucket
from duckfleet.worker.offers import Taken
from duckfleet.worker.results import ResultStore
from duckfleet.worker.wire import wire_sized

log = logging.getLogger("duckfleet.worker")


class WorkerFlightServer(FlightEdge):
    """``kwargs`` go to FlightServerBase: ``tls_certificates`` and the auth
    ``middleware`` (wire/auth.py ProcessSecurity.server_kwargs): with auth on,
    every call needs a bearer token from a front door."""

    serves = "a worker"
    instead = "a worker serves the results it holds (DoGet); send Flight SQL to a front door"

    def __init__(
        self,
        location: str,
        results: ResultStore,
        on_offer: Callable[[Offer], Taken] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(location, **kwargs)
        self.results = results
        self.on_offer = on_offer
        self._after = ThreadPoolExecutor(2, thread_name_prefix="after-offer")

    def shutdown(self) -> None:
        super().shutdown()
        self._after.shutdown(wait=True)

    def list_actions(self, context: fl.ServerCallContext) -> list[tuple[str, str]]:
        with flight_call("ListActions", context):
            return [(OFFER_ACTION, "run a one-task query now, or refuse (front doors only)")]

    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> Iterable[fl.Result]:
        if action.type != OFFER_ACTION or self.on_offer is None:
            return super().do_action(context, action)
        with flight_call("DoAction offer", context) as call:
            require_service(context, "DoAction duckfleet.offer")
            try:
                offer = Offer.from_json(action.body.to_pybytes())
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidTicket(f"malformed offer: {exc}") from None
            call.query_id = offer.record.id
            taken = self.on_offer(offer)
        return self._then(taken)

    def _then(self, taken: Taken) -> Iterator[fl.Result]:
        """The answer, and once it has been written, what follows it (the
        completion's commit) on another thread, so the call ends at once."""
        try:
            yield fl.Result(taken.answer.to_json())
        finally:
            self._after.submit(taken.then)

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
