"""The one place where duckfleet errors become Flight statuses, and where calls are logged.

Every RPC handler of the front door runs inside ``with flight_call(rpc, context) as
call:``; whatever escapes the block leaves as a Flight error with the right gRPC code,
is logged on one line with the call, and the server keeps serving.

What pyarrow.flight sends for an exception raised in a server handler (measured with
pyarrow 26 and a raw gRPC client; the same in GetFlightInfo, DoAction, and mid-stream
in a DoGet GeneratorStream). "clean" means the message is exactly "<msg>. Detail:
<Code>"; "+traceback" means pyarrow appends "Detail: Python exception: <traceback>"::

    raised in the handler                       gRPC status          message
    FlightUnavailableError                      UNAVAILABLE          clean
    FlightTimedOutError                         DEADLINE_EXCEEDED    clean
    FlightCancelledError                        CANCELLED            clean
    FlightInternalError                         INTERNAL             clean
    FlightUnauthenticatedError                  UNAUTHENTICATED      clean
    FlightUnauthorizedError                     PERMISSION_DENIED    clean
    FlightServerError                           UNKNOWN              clean
    pa.ArrowInvalid, ValueError                 INVALID_ARGUMENT     +traceback
    pa.ArrowKeyError, KeyError                  NOT_FOUND            +traceback (KeyError
                                                                     quotes the message)
    pa.ArrowNotImplementedError,
      NotImplementedError                       UNIMPLEMENTED        +traceback
    FlightWriteSizeExceededError                INVALID_ARGUMENT     +traceback
    TypeError, IndexError, OSError, MemoryError,
      RuntimeError, other Arrow errors, ...     UNKNOWN              +traceback

INVALID_ARGUMENT, NOT_FOUND and UNIMPLEMENTED can only come from a plain Python
exception, so their messages carry that traceback detail (the ADBC Go driver shows it
after our message; it also returns the bare message in the x-arrow-status-message-bin
trailer). The translated exception is raised with no traceback of its own and no
chained cause, which keeps the detail to pyarrow's frame and the handler's.

duckfleet error -> Flight status::

    PlanError (syntax: line and column in the message)  INVALID_ARGUMENT   ArrowInvalid
    MalformedRequest, InvalidTicket                     INVALID_ARGUMENT   ArrowInvalid
    UnsupportedRequest                                  UNIMPLEMENTED      ArrowNotImplementedError
    QueryNotFound                                       NOT_FOUND          ArrowKeyError
    StoreUnavailable, LeaseLost, NoWorkers, ResultsLost UNAVAILABLE        FlightUnavailableError
    QueryTimeout                                        DEADLINE_EXCEEDED  FlightTimedOutError
    QueryCancelled                                      CANCELLED          FlightCancelledError
    LimitExceeded (a resource limit; see below)         INVALID_ARGUMENT   ArrowInvalid
    QueryFailed                                         INTERNAL           FlightInternalError
    Unauthenticated (duckfleet.auth)                    UNAUTHENTICATED    FlightUnauthenticated...
    PermissionDenied (duckfleet.auth)                   PERMISSION_DENIED  FlightUnauthorizedError
    pyarrow.flight.FlightError (already a status)       unchanged
    any other exception (logged with its traceback)     INTERNAL           FlightInternalError

RESOURCE_EXHAUSTED, the code gRPC has for a limit, cannot be sent by a pyarrow Flight
server: Arrow's transport maps no status to it (TransportStatusCode has no such
member). A query stopped by a resource limit therefore answers INVALID_ARGUMENT — do
not retry unchanged — with a message that names the limit and its setting.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

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
    ResultsLost,
    StoreUnavailable,
)
from duckfleet.flight.auth import identity_of
from duckfleet.flight.commands import MalformedRequest, UnsupportedRequest
from duckfleet.flight.tickets import InvalidTicket
from duckfleet.planner.errors import PlanError

logger = logging.getLogger("duckfleet.flight")

STORE_UNAVAILABLE_HINT = "the fleet's state store (etcd) is unreachable; retry shortly"

# (code name for the log, Python exception pyarrow turns into that code)
_CODES: dict[str, type[Exception]] = {
    "INVALID_ARGUMENT": pa.ArrowInvalid,
    "NOT_FOUND": pa.ArrowKeyError,
    "UNIMPLEMENTED": pa.ArrowNotImplementedError,
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
    if isinstance(exc, (NoWorkers, ResultsLost)):
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
    if isinstance(exc, flight.FlightError):
        return exc  # already carries its status
    code, message = classify(exc)
    if not code:
        incident = incident or uuid.uuid4().hex[:8]
        return flight.FlightInternalError(
            f"internal error in duckfleet (incident {incident}): {type(exc).__name__}: {exc}; "
            "the server log has the details"
        )
    return _CODES[code](message)


class Call:
    """One RPC: what it was about, for its log line. Handlers fill ``what``,
    ``query_id`` and ``detail`` as they learn them."""

    def __init__(self, rpc: str, peer: str, identity: Identity = ANONYMOUS) -> None:
        self.rpc = rpc
        self.peer = peer
        self.identity = identity  # who calls (flight/auth.py); require_admin(call, ...)
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
        """Log the failure and return the Flight error to raise instead."""
        code, message = classify(exc)
        if code:
            level = (
                logging.WARNING if code in ("UNAVAILABLE", "INTERNAL", "UNKNOWN") else logging.INFO
            )
            logger.log(level, "%s", self.describe(f"{code}: {message}"))
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

    def __enter__(self) -> Call:
        return self.call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
