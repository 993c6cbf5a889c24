"""The base of every duckfleet Flight server (front door, worker): all of Flight's RPCs
answered, served or not.

pyarrow's FlightServerBase answers an RPC its subclass does not override by raising
NotImplementedError, which reaches the client with the server's traceback (see
wire/status.py). ``FlightEdge`` answers each of them UNIMPLEMENTED through
``flight_call`` instead, naming the RPC and where to send it; subclasses override
what they serve, each handler inside ``flight_call``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import pyarrow.flight as fl

from duckfleet.wire.auth import EmptyHandshake
from duckfleet.wire.commands import UnsupportedRequest
from duckfleet.wire.status import flight_call
from duckfleet.wire.tracing import MIDDLEWARE_KEY, TracingMiddlewareFactory


class FlightEdge(fl.FlightServerBase):
    """``kwargs`` go to FlightServerBase (``tls_certificates``, ``middleware``, ...)."""

    serves = "this server"  # for the UNIMPLEMENTED messages: "a front door", "a worker"
    instead = ""  # what to do instead, appended to them

    def __init__(self, location: str, **kwargs: Any) -> None:
        kwargs.setdefault("auth_handler", EmptyHandshake())
        middleware = dict(kwargs.pop("middleware", None) or {})
        middleware.setdefault(MIDDLEWARE_KEY, TracingMiddlewareFactory())  # wire/tracing.py
        super().__init__(location, middleware=middleware, **kwargs)

    def unimplemented(self, rpc: str, context: fl.ServerCallContext | None) -> NoReturn:
        with flight_call(rpc, context):
            instead = f": {self.instead}" if self.instead else ""
            raise UnsupportedRequest(f"{rpc} is not served by {self.serves}{instead}")

    def list_flights(self, context: fl.ServerCallContext, criteria: bytes) -> Iterator[Any]:
        self.unimplemented("ListFlights", context)

    def get_flight_info(
        self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor
    ) -> fl.FlightInfo:
        self.unimplemented("GetFlightInfo", context)

    def get_schema(
        self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor
    ) -> fl.SchemaResult:
        self.unimplemented("GetSchema", context)

    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.FlightDataStream:
        self.unimplemented("DoGet", context)

    def do_put(
        self,
        context: fl.ServerCallContext,
        descriptor: fl.FlightDescriptor,
        reader: fl.MetadataRecordBatchReader,
        writer: fl.FlightMetadataWriter,
    ) -> None:
        self.unimplemented("DoPut", context)

    def do_exchange(
        self,
        context: fl.ServerCallContext,
        descriptor: fl.FlightDescriptor,
        reader: fl.MetadataRecordBatchReader,
        writer: fl.MetadataRecordBatchWriter,
    ) -> None:
        self.unimplemented("DoExchange", context)

    def list_actions(self, context: fl.ServerCallContext) -> list[tuple[str, str]]:
        with flight_call("ListActions", context):
            return []

    def do_action(self, context: fl.ServerCallContext, action: fl.Action) -> list[fl.Result]:
        self.unimplemented(f"DoAction {action.type}", context)
