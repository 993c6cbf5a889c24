"""The one place where duckfleet errors become Flight statuses, and where calls are logged.

Every RPC handler of the front door and the worker runs inside ``with
flight_call(rpc, context) as call:`` (wire/edge.py answers the RPCs they do not
serve the same way); whatever escapes the block leaves as a Flight error with the
right gRPC code, is logged on one line with the call, and the server keeps serving.

What a client receives is the message and the status code, nothing else: no
traceback, no server path, no class name of ours. Server logs keep the rest (see
``Call.fail``).

How pyarrow.flight (26) turns an exception raised in a handler into a gRPC status
(its _flight.pyx and arrow/python/common.cc; checked with raw gRPC, pyarrow and ADBC
clients in tests/test_error_edge.py):

* A ``FlightError`` subclass becomes a Flight status of its own: UNAVAILABLE,
  DEADLINE_EXCEEDED, CANCELLED, INTERNAL, UNAUTHENTICATED, PERMISSION_DENIED or
  UNKNOWN, with the message ``<msg>. Detail: <Code>`` (Arrow's FlightStatusDetail).
  Those are the only codes a FlightError can carry.
* Any other exception becomes an Arrow status by its Python type (ValueError:
  INVALID_ARGUMENT, KeyError: NOT_FOUND, NotImplementedError: UNIMPLEMENTED, others
  UNKNOWN) with a PythonErrorDetail, which Arrow renders into the gRPC message (and
  the x-arrow-status-detail-bin trailer) as ``Detail: Python exception: `` followed by
  ``traceback.format_exception`` of it: the traceback, with the server's file paths
  and source lines, and pyarrow's class names. INVALID_ARGUMENT, NOT_FOUND and
  UNIMPLEMENTED can only be sent this way.

So those three codes are raised as ``StatusError`` subclasses (``InvalidArgument``,
``NotFound``, ``Unimplemented``, plain Arrow exception types underneath), and this
module wraps ``traceback.format_exception`` so that for a StatusError — and nothing
else — it answers the status code's name. The message arrives as ``<msg>. Detail:
Python exception: INVALID_ARGUMENT`` (the "Python exception: " is pyarrow's, fixed);
every other exception formats as before, in the logs too.

duckfleet error -> Flight status::

    PlanError (syntax: line and column in the message)  INVALID_ARGUMENT   InvalidArgument
    MalformedRequest, InvalidTicket                     INVALID_ARGUMENT   InvalidArgument
    UnsupportedRequest                                  UNIMPLEMENTED      Unimplemented
    QueryNotFound                                       NOT_FOUND          NotFound
    StoreUnavailable, LeaseLost, NoWorkers, ResultsLost UNAVAILABLE        FlightUnavailableError
    QueueFull (a resource group's queue is full)        UNAVAILABLE        FlightUnavailableError
    QueryTimeout                                        DEADLINE_EXCEEDED  FlightTimedOutError
    QueryCancelled                                      CANCELLED          FlightCancelledError
    LimitExceeded (a resource limit; see below)         INVALID_ARGUMENT   InvalidArgument
    QueryFailed                                         INTERNAL           FlightInternalError
    Unauthenticated (duckfleet.auth)                    UNAUTHENTICATED    FlightUnauthenticated...
    PermissionDenied (duckfleet.auth)                   PERMISSION_DENIED  FlightUnauthorizedError
    pyarrow.flight.FlightError (already a status)       its own code       its type, no extra_info
    any other exception (logged with its traceback)     INTERNAL           FlightInternalError
                                                        "internal error in duckfleet (incident
                                                        <id>): the server log has the details"

RESOURCE_EXHAUSTED, the code gRPC has for a limit, cannot be sent by a pyarrow Flight
server: Arrow's transport maps no status to it (TransportStatusCode has no such
member). A query stopped by a resource limit therefore answers INVALID_ARGUMENT — do
not retry unchanged — with a message that names the limit and its setting. A query
refused because its resource group's queue is full answers UNAVAILABLE (retry later),
the message naming the group and the limit.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from duckfleet import tracing
from duckfleet.auth import ANONYMOUS, Identity
from duckfleet.auth.errors import PermissionDenied, Unauthenticated
from duckfleet.control.errors import (
    LeaseLost,
    LimitExceeded,
    NoWorkers,
    QueryCancelled,
    QueryFailed,
    QueryNotFound,
    QueryTimeout,
    QueueFull,
    ResultsLost,
    StoreUnavailable,
)
from duckfleet.planner.errors import PlanError
from duckfleet.wire.auth import identity_of
from duckfleet.wire.commands import MalformedRequest, UnsupportedRequest
from duckfleet.wire.tickets import InvalidTicket
from duckfleet.wire.tracing import CallSpan

logger = logging.getLogger("duckfleet.flight")

STORE_UNAVAILABLE_HINT = "the fleet's state store (etcd) is unreachable; retry shortly"


class StatusError(pa.ArrowException):
    """An error to send as a status that only a plain Python exception can carry; its
    PythonErrorDetail renders as ``detail`` instead of a traceback (see the top)."""

    detail = ""


class InvalidArgument(StatusError, pa.ArrowInvalid):  # a ValueError: INVALID_ARGUMENT
    detail = "INVALID_ARGUMENT"


class NotFound(StatusError, pa.ArrowKeyError):  # a KeyError: NOT_FOUND
    detail = "NOT_FOUND"


class Unimplemented(StatusError, pa.ArrowNotImplementedError):  # UNIMPLEMENTED
    detail = "UNIMPLEMENTED"


# the standard one (unwrapped, should this module ever be imported twice)
_format_exception = getattr(traceback.format_exception, "__wrapped__", traceback.format_exception)


@functools.wraps(_format_exception)
def _format_status_errors(exc: Any, /, *args: Any, **kwargs: Any) -> list[str]:
    """``traceback.format_exception``, but a StatusError formats as its ``detail``:
    what Arrow puts after "Detail: Python exception: " on the wire."""
    value = args[0] if args else kwargs.get("value", exc)
    if isinstance(value, StatusError):
        return [value.detail]
    return _format_exception(exc, *args, **kwargs)


def _install_status_formatting() -> None:
    # Arrow looks traceback.format_exception up on the module at every error.
    traceback.format_exception = _format_status_errors


_install_status_formatting()

# (code name for the log, the exception that leaves the handler with that code)
_CODES: dict[str, type[Exception]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": NotFound,
    "UNIMPLEMENTED": Unimplemented,
    "UNAVAILABLE": flight.FlightUnavailableError,
    "DEADLINE_EXCEEDED": flight.FlightTimedOutError,
    "CANCELLED": flight.FlightCancelledError,
    "INTERNAL": flight.FlightInternalError,
    "UNAUTHENTICATED": flight.FlightUnauthenticatedError,
    "PERMISSION_DENIED": flight.FlightUnauthorizedError,
}

_FLIGHT_ERROR_CODES: dict[type[Exception], str] = {
    flight.FlightUnavailableError: "UNAVAILABLE",
    flight.FlightTimedOutError: "DEADLINE_EXCEEDED",
    flight.FlightCancelledError: "CANCELLED",
    flight.FlightInternalError: "INTERNAL",
    flight.FlightUnauthenticatedError: "UNAUTHENTICATED",
    flight.FlightUnauthorizedError: "PERMISSION_DENIED",
    flight.FlightServerError: "UNKNOWN",
}


def classify(exc: BaseException) -> tuple[str, str]:
    """``(gRPC code name, client-facing message)`` for an exception, or ``("", "")``
    when it is not one duckfleet raises on purpose (an internal error)."""
    message = str(exc)
    if isinstance(exc, PlanError | MalformedRequest | InvalidTicket):
        return "INVALID_ARGUMENT", message
    if isinstance(exc, UnsupportedRequest):
        return "UNIMPLEMENTED", message
    if isinstance(exc, QueryNotFound):
        return "NOT_FOUND", message
    if isinstance(exc, StoreUnavailable):
        return (
            "UNAVAILABLE",
            f"{STORE_UNAVAILABLE_HINT} ({message})" if message else STORE_UNAVAILABLE_HINT,
        )
    if isinstance(exc, (NoWorkers, ResultsLost, QueueFull)):
        return "UNAVAILABLE", message
    if isinstance(exc, LeaseLost):
        return (
            "UNAVAILABLE",
            f"{message}; retry shortly" if message else "lease lost; retry shortly",
        )
    if isinstance(exc, QueryTimeout):
        return "DEADLINE_EXCEEDED", message or "the query did not finish in time"
    if isinstance(exc, QueryCancelled):
        return "CANCELLED", message or "the query was cancelled"
    if isinstance(exc, LimitExceeded):
        return "INVALID_ARGUMENT", f"resource limit exceeded: {message}"
    if isinstance(exc, QueryFailed):
        return "INTERNAL", f"query failed: {message}"
    if isinstance(exc, Unauthenticated):
        return "UNAUTHENTICATED", message
    if isinstance(exc, PermissionDenied):
        return "PERMISSION_DENIED", message
    if isinstance(exc, flight.FlightError):
        for cls, code in _FLIGHT_ERROR_CODES.items():
            if isinstance(exc, cls):
                return code, message
        return "UNKNOWN", message
    return "", ""


def to_flight_error(exc: BaseException, incident: str | None = None) -> Exception:
    """The exception to raise from a pyarrow.flight handler in place of ``exc``."""
    if isinstance(exc, StatusError):
        return exc
    code, message = classify(exc)
    if not code:
        incident = incident or uuid.uuid4().hex[:8]
        return flight.FlightInternalError(
            f"internal error in duckfleet (incident {incident}): the server log has the details"
        )
    if isinstance(exc, flight.FlightError):
        # A status already. Its extra_info (binary detail, sent in a trailer) stays here.
        return type(exc)(message) if exc.extra_info else exc
    return _CODES[code](message)


class Call:
    """One RPC: what it was about, for its log line. Handlers fill ``what``,
    ``query_id`` and ``detail`` as they learn them."""

    def __init__(self, rpc: str, peer: str, identity: Identity = ANONYMOUS) -> None:
        self.rpc = rpc
        self.peer = peer
        self.identity = identity  # who calls (wire/auth.py); require_admin(call, ...)
        self.what = ""
        self.query_id: str | None = None
        self.detail = ""
        self._started = time.monotonic()

    def describe(self, outcome: str) -> str:
        parts = [self.rpc]
        if self.what:
            parts.append(self.what)
        if self.query_id:
            parts.append(f"query={self.query_id}")
        parts.append(outcome)
        if self.detail:
            parts.append(self.detail)
        parts.append(f"{(time.monotonic() - self._started) * 1000:.1f}ms")
        parts.append(f"peer={self.peer}")
        if self.identity.user:
            parts.append(f"user={self.identity.user}")
        return " ".join(parts)

    def fail(self, exc: BaseException) -> Exception:
        """Log the failure and return the Flight error to raise instead.

        An error duckfleet raises on purpose is one line (its traceback too when the
        log level is DEBUG); anything else is logged at ERROR with its traceback and
        an incident id, the one the client's message names."""
        code, message = classify(exc)
        if code:
            level = (
                logging.WARNING if code in ("UNAVAILABLE", "INTERNAL", "UNKNOWN") else logging.INFO
            )
            trace = exc if logger.isEnabledFor(logging.DEBUG) else None
            logger.log(level, "%s", self.describe(f"{code}: {message}"), exc_info=trace)
            return to_flight_error(exc)
        incident = uuid.uuid4().hex[:8]
        logger.error("%s", self.describe(f"INTERNAL incident={incident}"), exc_info=exc)
        return to_flight_error(exc, incident)

    def succeed(self) -> None:
        logger.info("%s", self.describe("OK"))


def flight_call(rpc: str, context: Any = None, finish: bool = True) -> FlightCall:
    """``with flight_call("GetFlightInfo", context) as call:`` around a handler body."""
    return FlightCall(rpc, context, finish)


class FlightCall:
    """Context manager of one RPC handler body (see ``flight_call``).

    On success logs one line; on any exception logs one line (with the traceback if
    it was unexpected) and raises the translated Flight error instead. For a stream,
    whose errors surface after the handler returns, pass ``finish=False`` and wrap the
    iterator in ``translate_stream(call, batches)``, which logs when it ends.
    """

    def __init__(self, rpc: str, context: Any = None, finish: bool = True) -> None:
        self.call = Call(rpc, _peer(context), identity_of(context))
        self._finish = finish
        # the call's span (wire/tracing.py); None while tracing is off
        self._span = CallSpan(rpc, context) if tracing.enabled() else None

    def __enter__(self) -> Call:
        return self.call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._span is not None:
            self._span.close(self.call.query_id, self.call.what, exc)
        if exc is None:
            if self._finish:
                self.call.succeed()
            return
        if not isinstance(exc, Exception):
            return  # KeyboardInterrupt, SystemExit, GeneratorExit: let them go
        raise self.call.fail(exc).with_traceback(None) from None


def translate_stream(call: Call, items: Iterable[Any]) -> Iterator[Any]:
    """``items``, with any error raised while iterating translated; logs at the end."""
    try:
        yield from items
    except GeneratorExit:  # the client stopped reading or went away
        logger.info("%s", call.describe("CANCELLED by the client"))
        raise
    except Exception as exc:
        raise call.fail(exc).with_traceback(None) from None
    call.succeed()


def _peer(context: Any) -> str:
    try:
        return str(context.peer()) if context is not None else "-"
    except Exception:  # a context without a peer must not break the call
        return "-"
