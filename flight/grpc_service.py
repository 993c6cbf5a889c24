"""The front door's Flight service served by grpcio instead of pyarrow's C++ server
(``DUCKFLEET_FRONTDOOR_SERVER=grpc``), for what pyarrow's Python server cannot do:
PollFlightInfo (query progress, flight/poll.py).

Nothing of the protocol is answered here: every RPC is handed to the very
FrontDoorServer methods the pyarrow front door runs (get_flight_info, do_get,
do_put, do_action, ...), with a ``CallContext`` that gives them what pyarrow's
ServerCallContext does: the peer, ``is_cancelled``, and the middleware of the call,
made by the same factories (auth: wire/auth.py, sessions: flight/sessions.py,
tracing: wire/tracing.py) from the call's headers, whose ``sending_headers`` go back
as the response headers. This module only moves bytes: pyarrow's FlightDescriptor,
FlightInfo, Ticket, Action, Result and SchemaResult (de)serialize themselves,
record batches become FlightData messages in flight/flight_data.py, and the other
messages are declared in wire/flight_messages.py.

Errors leave as pyarrow's server sends them (wire/status.py has translated them
already): the same gRPC status code, the message ``<msg>. Detail: <detail>``, and
Arrow's ``x-arrow-status*`` trailers, so pyarrow and ADBC clients read the same
error from either front door. DoExchange answers UNIMPLEMENTED, as on the pyarrow
front door.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.config import FrontDoorConfig
from duckfleet.flight import flight_data, sessions
from duckfleet.flight.backend import QueryBackend
from duckfleet.flight.server import FrontDoorServer
from duckfleet.wire import flight_messages as msg
from duckfleet.wire import tracing
from duckfleet.wire.status import InvalidArgument, NotFound, StatusError, Unimplemented, flight_call

log = logging.getLogger("duckfleet.flight")

SERVICE = "arrow.flight.protocol.FlightService"
# concurrent calls: GetFlightInfo holds its thread while the query runs
MAX_WORKERS = 256
OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.so_reuseport", 0),
]

# (gRPC code, Arrow status code, detail) of each error a handler leaves with, as
# pyarrow's server sends it (Arrow's FlightStatusDetail names; StatusError's detail)
_FLIGHT_ERRORS: tuple[tuple[type[Exception], grpc.StatusCode, str], ...] = (
    (fl.FlightUnavailableError, grpc.StatusCode.UNAVAILABLE, "Unavailable"),
    (fl.FlightTimedOutError, grpc.StatusCode.DEADLINE_EXCEEDED, "TimedOut"),
    (fl.FlightCancelledError, grpc.StatusCode.CANCELLED, "Cancelled"),
    (fl.FlightInternalError, grpc.StatusCode.INTERNAL, "Internal"),
    (fl.FlightUnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated"),
    (fl.FlightUnauthorizedError, grpc.StatusCode.PERMISSION_DENIED, "Unauthorized"),
    (fl.FlightServerError, grpc.StatusCode.UNKNOWN, "Failed"),
)
_ARROW_IO_ERROR = 5  # Arrow's StatusCode::IOError: what a Flight status travels as
_STATUS_ERRORS: tuple[tuple[type[Exception], grpc.StatusCode, int], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND, 2),  # KeyError
    (Unimplemented, grpc.StatusCode.UNIMPLEMENTED, 10),  # NotImplemented
    (pa.ArrowInvalid, grpc.StatusCode.INVALID_ARGUMENT, 4),  # Invalid
)


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str, tuple[tuple[str, Any], ...]]:
    """``(code, message, trailers)`` for an error a handler raised."""
    if isinstance(exc, StatusError):
        for cls, code, arrow_code in _STATUS_ERRORS:
            if isinstance(exc, cls):
                return _status(code, str(exc), arrow_code, f"Python exception: {exc.detail}")
    for cls, code, detail in _FLIGHT_ERRORS:
        if isinstance(exc, cls):
            return _status(code, str(exc), _ARROW_IO_ERROR, detail)
    incident = uuid.uuid4().hex[:8]
    log.error("grpc front door: unexpected error (incident %s)", incident, exc_info=exc)
    message = f"internal error in duckfleet (incident {incident}): the server log has the details"
    return _status(grpc.StatusCode.INTERNAL, message, _ARROW_IO_ERROR, "Internal")


def _status(
    code: grpc.StatusCode, message: str, arrow_code: int, detail: str
) -> tuple[grpc.StatusCode, str, tuple[tuple[str, Any], ...]]:
    trailers = (
        ("x-arrow-status", str(arrow_code)),
        ("x-arrow-status-message-bin", message.encode()),
        ("x-arrow-status-detail-bin", detail.encode()),
    )
    return code, f"{message}. Detail: {detail}", trailers


class CallContext:
    """What a FrontDoorServer handler asks of pyarrow's ServerCallContext."""

    def __init__(self, grpc_context: grpc.ServicerContext, middleware: dict[str, Any]) -> None:
        self._grpc = grpc_context
        self._middleware = middleware

    def peer(self) -> str:
        return str(self._grpc.peer())

    def get_middleware(self, key: str) -> Any:
        return self._middleware.get(key)

    def is_cancelled(self) -> bool:
        return not self._grpc.is_active()


def _headers(grpc_context: grpc.ServicerContext) -> dict[str, list[Any]]:
    headers: dict[str, list[Any]] = {}
    for key, value in grpc_context.invocation_metadata() or ():
        headers.setdefault(key.lower(), []).append(value)
    return headers


class FlightService(grpc.GenericRpcHandler):
    """``arrow.flight.protocol.FlightService`` over a FrontDoorServer's handlers."""

    def __init__(self, server: FrontDoorServer, middleware: dict[str, Any]) -> None:
        self.server = server
        self.middleware = middleware  # key -> pyarrow ServerMiddlewareFactory
        unary, stream_out = (
            grpc.unary_unary_rpc_method_handler,
            grpc.unary_stream_rpc_method_handler,
        )
        both = grpc.stream_stream_rpc_method_handler
        self._methods: dict[str, grpc.RpcMethodHandler] = {
            f"/{SERVICE}/Handshake": both(self._handshake),
            f"/{SERVICE}/ListFlights": stream_out(self._list_flights),
            f"/{SERVICE}/GetFlightInfo": unary(self._get_flight_info),
            f"/{SERVICE}/PollFlightInfo": unary(self._poll_flight_info),
            f"/{SERVICE}/GetSchema": unary(self._get_schema),
            f"/{SERVICE}/DoGet": stream_out(self._do_get),
            f"/{SERVICE}/DoPut": both(self._do_put),
            f"/{SERVICE}/DoExchange": both(self._do_exchange),
            f"/{SERVICE}/DoAction": stream_out(self._do_action),
            f"/{SERVICE}/ListActions": stream_out(self._list_actions),
        }

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        return self._methods.get(handler_call_details.method)  # type: ignore[attr-defined]

    # --- per call ----------------------------------------------------------------------

    def _start(self, method: fl.FlightMethod, grpc_context: grpc.ServicerContext) -> CallContext:
        """The call's middleware, made from its headers, and their response headers
        sent; an auth failure aborts the call as pyarrow's server would."""
        headers = _headers(grpc_context)
        info = fl.CallInfo(method)
        made: dict[str, Any] = {}
        try:
            for key, factory in self.middleware.items():
                instance = factory.start_call(info, headers)
                if instance is not None:
                    made[key] = instance
        except Exception as exc:
            _abort(grpc_context, exc)
        sending: list[tuple[str, str]] = []
        for instance in made.values():
            for name, value in (instance.sending_headers() or {}).items():
                sending.append((name.lower(), value))
        if sending:
            grpc_context.send_initial_metadata(tuple(sending))
        return CallContext(grpc_context, made)

    def _unary(
        self,
        method: fl.FlightMethod,
        grpc_context: grpc.ServicerContext,
        body: Callable[[CallContext], bytes],
    ) -> bytes:
        context = self._start(method, grpc_context)
        try:
            return body(context)
        except Exception as exc:
            _abort(grpc_context, exc)

    def _streamed(
        self,
        method: fl.FlightMethod,
        grpc_context: grpc.ServicerContext,
        body: Callable[[CallContext], Iterator[bytes]],
    ) -> Iterator[bytes]:
        context = self._start(method, grpc_context)
        try:
            yield from body(context)
        except Exception as exc:
            _abort(grpc_context, exc)

    # --- the RPCs ----------------------------------------------------------------------

    def _handshake(
        self, requests: Iterator[bytes], grpc_context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        # The auth middleware checked the credentials; the answer is empty (an
        # AcceptAnyAuthHandler's), and the bearer token went back in the headers.
        def body(context: CallContext) -> Iterator[bytes]:
            with flight_call("Handshake", context):
                answer = msg.HandshakeResponse().SerializeToString()
            yield answer

        return self._streamed(fl.FlightMethod.HANDSHAKE, grpc_context, body)

    def _list_flights(self, request: bytes, grpc_context: grpc.ServicerContext) -> Iterator[bytes]:
        def body(context: CallContext) -> Iterator[bytes]:
            for info in self.server.list_flights(context, request):  # type: ignore[arg-type]
                yield info.serialize()

        return self._streamed(fl.FlightMethod.LIST_FLIGHTS, grpc_context, body)

    def _get_flight_info(self, request: bytes, grpc_context: grpc.ServicerContext) -> bytes:
        def body(context: CallContext) -> bytes:
            descriptor = _descriptor(request)
            return self.server.get_flight_info(context, descriptor).serialize()  # type: ignore[arg-type]

        return self._unary(fl.FlightMethod.GET_FLIGHT_INFO, grpc_context, body)

    def _poll_flight_info(self, request: bytes, grpc_context: grpc.ServicerContext) -> bytes:
        def body(context: CallContext) -> bytes:
            answer = self.server.poll_flight_info(context, _descriptor(request))  # type: ignore[arg-type]
            poll = msg.PollInfo(info=answer.info.serialize(), progress=answer.progress)
            if answer.descriptor is not None:
                poll.flight_descriptor = answer.descriptor.serialize()
            return poll.SerializeToString()

        # pyarrow has no FlightMethod for it: the middleware sees a GetFlightInfo
        return self._unary(fl.FlightMethod.GET_FLIGHT_INFO, grpc_context, body)

    def _get_schema(self, request: bytes, grpc_context: grpc.ServicerContext) -> bytes:
        def body(context: CallContext) -> bytes:
            return self.server.get_schema(context, _descriptor(request)).serialize()  # type: ignore[arg-type]

        return self._unary(fl.FlightMethod.GET_SCHEMA, grpc_context, body)

    def _do_get(self, request: bytes, grpc_context: grpc.ServicerContext) -> Iterator[bytes]:
        def body(context: CallContext) -> Iterator[bytes]:
            ticket = _parsed(fl.Ticket.deserialize, request, "Ticket")
            schema, batches = self.server.do_get_batches(context, ticket)  # type: ignore[arg-type]
            yield from flight_data.to_flight_data(schema, batches)

        return self._streamed(fl.FlightMethod.DO_GET, grpc_context, body)

    def _do_put(
        self, requests: Iterator[bytes], grpc_context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        def body(context: CallContext) -> Iterator[bytes]:
            descriptor: fl.FlightDescriptor | None = None
            messages: list[tuple[bytes, bytes]] = []
            for raw in requests:
                data = msg.FlightData()
                data.ParseFromString(raw)
                if descriptor is None and data.flight_descriptor:
                    descriptor = _descriptor(data.flight_descriptor)
                messages.append((data.data_header, data.data_body))
            if descriptor is None:
                raise _invalid("DoPut: the first message carries no FlightDescriptor")
            writer = flight_data.PutWriter()
            reader = flight_data.PutReader(messages)
            self.server.do_put(context, descriptor, reader, writer)  # type: ignore[arg-type]
            for written in writer.written:
                yield msg.PutResult(app_metadata=written).SerializeToString()

        return self._streamed(fl.FlightMethod.DO_PUT, grpc_context, body)

    def _do_exchange(
        self, requests: Iterator[bytes], grpc_context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        def body(context: CallContext) -> Iterator[bytes]:
            self.server.unimplemented("DoExchange", context)
            yield b""  # never reached

        return self._streamed(fl.FlightMethod.DO_EXCHANGE, grpc_context, body)

    def _do_action(self, request: bytes, grpc_context: grpc.ServicerContext) -> Iterator[bytes]:
        def body(context: CallContext) -> Iterator[bytes]:
            action = _parsed(fl.Action.deserialize, request, "Action")
            for result in self.server.do_action(context, action):  # type: ignore[arg-type]
                yield result.serialize()

        return self._streamed(fl.FlightMethod.DO_ACTION, grpc_context, body)

    def _list_actions(self, request: bytes, grpc_context: grpc.ServicerContext) -> Iterator[bytes]:
        def body(context: CallContext) -> Iterator[bytes]:
            for kind, description in self.server.list_actions(context):  # type: ignore[arg-type]
                yield msg.ActionType(type=kind, description=description).SerializeToString()

        return self._streamed(fl.FlightMethod.LIST_ACTIONS, grpc_context, body)


def _invalid(message: str) -> Exception:
    return InvalidArgument(message)


def _parsed(parse: Callable[[bytes], Any], data: bytes, what: str) -> Any:
    try:
        return parse(data)
    except (pa.ArrowException, TypeError, ValueError):
        raise _invalid(f"the request is not a serialized Flight {what}") from None


def _descriptor(data: bytes) -> fl.FlightDescriptor:
    return _parsed(fl.FlightDescriptor.deserialize, data, "FlightDescriptor")


def _abort(grpc_context: grpc.ServicerContext, exc: BaseException) -> Any:
    code, message, trailers = status_of(exc)
    grpc_context.set_trailing_metadata(trailers)
    grpc_context.abort(code, message)


class GrpcFrontDoor:
    """A grpcio server on ``host:port`` serving ``server``'s Flight SQL.

    ``middleware``: the pyarrow middleware factories the pyarrow front door would be
    given (auth's, at least); the session and tracing factories are added as
    FrontDoorServer and FlightEdge add them. ``tls``: (certificate chain, key) PEM.
    """

    def __init__(
        self,
        server: FrontDoorServer,
        host: str,
        port: int,
        middleware: dict[str, Any],
        tls: tuple[bytes, bytes] | None = None,
        scratch: str = "",  # a directory of ours, removed at stop
    ) -> None:
        self._scratch = scratch
        factories = dict(middleware)
        factories.setdefault(sessions.MIDDLEWARE_KEY, sessions.SessionMiddlewareFactory())
        factories.setdefault(tracing.MIDDLEWARE_KEY, tracing.TracingMiddlewareFactory())
        self.service = FlightService(server, factories)
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="flight-grpc"),
            options=OPTIONS,
        )
        self._grpc.add_generic_rpc_handlers((self.service,))
        address = f"{host}:{port}"
        if tls is not None:
            cert, key = tls
            self.port = self._grpc.add_secure_port(
                address, grpc.ssl_server_credentials([(key, cert)])
            )
        else:
            self.port = self._grpc.add_insecure_port(address)
        if not self.port:
            raise OSError(f"the front door cannot listen on {address}: is the port taken?")

    def start(self) -> GrpcFrontDoor:
        self._grpc.start()
        return self

    def stop(self, grace: float = 1.0) -> None:
        self._grpc.stop(grace).wait()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


def front_door_servers(
    cfg: FrontDoorConfig,
    port: int,
    backend: QueryBackend,
    advertise: str,
    served_bytes: Callable[[int], None],
    server_kwargs: dict[str, Any],
) -> tuple[FrontDoorServer, GrpcFrontDoor | None]:
    """A front door's Flight SQL server as ``cfg.frontdoor_server`` says: pyarrow's
    (listening on ``port``), or pyarrow's kept for its handlers, listening on a private
    Unix socket only, and a GrpcFrontDoor on ``port`` serving them."""
    if cfg.frontdoor_server not in ("arrow", "grpc"):
        raise ValueError(f"DUCKFLEET_FRONTDOOR_SERVER={cfg.frontdoor_server!r}: use arrow or grpc")
    if cfg.frontdoor_server == "arrow":
        location = f"{cfg.scheme}://{cfg.host}:{port}"
        server = FrontDoorServer(location, backend, advertise, served_bytes, **server_kwargs)
        return server, None
    middleware = server_kwargs["middleware"]
    pair = server_kwargs.get("tls_certificates")
    socket_dir = tempfile.mkdtemp(prefix="duckfleet-frontdoor-")  # mode 0700
    unused = f"grpc+unix://{socket_dir}/handlers.sock"
    server = FrontDoorServer(unused, backend, advertise, served_bytes, middleware=middleware)
    tls = pair[0] if pair else None
    return server, GrpcFrontDoor(server, cfg.host, port, middleware, tls, socket_dir)
