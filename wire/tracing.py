"""The span of each Flight call (duckfleet/tracing.py says how traces travel).

``TracingMiddlewareFactory`` reads a call's ``traceparent`` header (W3C Trace
Context, e.g. ADBC's ``adbc.flight.sql.rpc.call_header.traceparent``); ``CallSpan``,
opened by ``flight_call`` (wire/status.py) around every handler, is the call's span:

* with a header: a child of the caller's span, current while the handler runs;
* without one, for a call that starts queries (GetFlightInfo, DoPut): the root of a
  new trace, current while the handler runs (the query's spans are its children);
* without one, for any other call (DoGet of a result, a fast-path offer): made when
  the call ends, as a child of the span of the query the handler named
  (``call.query_id``) if this process took part in it, so a client's DoGet at a
  worker joins its query's trace.

Registered on every duckfleet Flight server by ``FlightEdge`` (wire/edge.py); it
does nothing while tracing is off.
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow.flight as fl

from duckfleet import tracing

MIDDLEWARE_KEY = "duckfleet-tracing"
# calls whose handlers run queries: their span is made at once and is current
STARTS_QUERIES = ("GetFlightInfo", "PollFlightInfo", "DoPut")


class TracedCall(fl.ServerMiddleware):
    def __init__(self, traceparent: str) -> None:
        self.traceparent = traceparent


class TracingMiddlewareFactory(fl.ServerMiddlewareFactory):
    def start_call(self, info: fl.CallInfo, headers: dict[str, list[Any]]) -> TracedCall | None:
        if not tracing.enabled():
            return None
        values = headers.get("traceparent") or []
        value = values[0] if values else ""
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        return TracedCall(value)


def sent_traceparent(context: Any) -> str:
    """The ``traceparent`` header the caller sent with this call ("" if none)."""
    if context is None:
        return ""
    try:
        found = context.get_middleware(MIDDLEWARE_KEY)
    except Exception:  # a context of another kind (tests' fakes)
        return ""
    return found.traceparent if isinstance(found, TracedCall) else ""


class CallSpan:
    """The span of one call: ``open`` before the handler, ``close`` after it."""

    def __init__(self, rpc: str, context: Any) -> None:
        self.rpc = rpc
        self._parent = tracing.parse_traceparent(sent_traceparent(context))
        self._started = time.time_ns()
        self._span = None
        self._current = None
        if self._parent is not None or rpc in STARTS_QUERIES:
            self._span = tracing.start_span(
                rpc, parent=self._parent, attributes={"rpc.system": "apache_arrow_flight"}
            )
            self._current = tracing.current(self._span)
            self._current.__enter__()

    def close(self, query_id: str | None, what: str, error: BaseException | None) -> None:
        if self._current is not None:
            self._current.__exit__(None, None, None)
        span = self._span
        if span is None:  # made now, in its query's trace if this process knows it
            parent = tracing.QUERIES.get(query_id) if query_id else None
            span = tracing.start_span(
                self.rpc,
                parent=parent,
                start_time=self._started,
                attributes={"rpc.system": "apache_arrow_flight"},
            )
        tracing.end_span(span, error, **{"duckfleet.query_id": query_id, "duckfleet.what": what})


class _TraceHeader(fl.ClientMiddleware):
    def __init__(self, traceparent: str) -> None:
        self._traceparent = traceparent

    def sending_headers(self) -> dict[str, str]:
        return {"traceparent": self._traceparent}


class TraceHeaderFactory(fl.ClientMiddlewareFactory):
    """On calls to other fleet members (fast-path offers, input fetches, relayed
    partitions): the current span's ``traceparent`` header, so the callee's span is
    its child."""

    def start_call(self, info: fl.CallInfo) -> fl.ClientMiddleware | None:
        traceparent = tracing.current_traceparent()
        return _TraceHeader(traceparent) if traceparent else None
