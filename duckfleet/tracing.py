"""OpenTelemetry traces: one trace per query, across front door and workers.

Off unless an OTLP endpoint is configured (``DUCKFLEET_OTLP_ENDPOINT``, or the
standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``):
then ``setup`` installs an SDK tracer provider exporting over OTLP/HTTP in batches.
While off, the API's no-op provider stays in place and every helper here returns at
once, so a span costs a function call.

How a trace crosses processes:

* a Flight call's ``traceparent`` header (W3C Trace Context) is read by the server
  middleware (wire/tracing.py); the call's span continues it, else starts a trace;
* the front door stores the trace context of the query's span in the query record
  (``QueryRecord.traceparent``, control/records.py), so every worker that runs one of
  its tasks starts the task's span as a child of it (``span(..., traceparent=...)``);
* a worker remembers the query's context while it holds its results, so the DoGet
  that fetches them joins the query's trace when the client sent no header.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("duckfleet.tracing")

TRACER_NAME = "duckfleet"
_propagator = TraceContextTextMapPropagator()
_enabled = False
_lock = threading.Lock()


def endpoint_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The OTLP/HTTP traces URL configured, or "" (tracing off).

    ``DUCKFLEET_OTLP_ENDPOINT`` and ``OTEL_EXPORTER_OTLP_ENDPOINT`` name the
    collector's base URL (``/v1/traces`` is appended); the standard
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is the full URL, used as it is."""
    env = os.environ if environ is None else environ
    base = env.get("DUCKFLEET_OTLP_ENDPOINT", "").strip()
    if base:
        return _traces_url(base)
    full = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if full:
        return full
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return _traces_url(base) if base else ""


def _traces_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def enabled() -> bool:
    return _enabled


def setup(service: str, endpoint: str | None = None, **attributes: Any) -> bool:
    """Export this process's spans to ``endpoint`` (default: from the environment)
    as ``service``; ``attributes`` go on its resource (e.g. the member id). Without an
    endpoint nothing changes and tracing stays off. True if tracing is on."""
    global _enabled
    url = endpoint_from_env() if endpoint is None else endpoint
    if not url:
        return False
    with _lock:
        if _enabled:
            return True
        # the SDK and exporter load only when tracing is on
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create(
            {"service.name": service, "process.pid": os.getpid(), **attributes}
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        trace.set_tracer_provider(provider)
        _enabled = True
    log.info("tracing: spans of %s exported over OTLP/HTTP to %s", service, url)
    return True


def shutdown() -> None:
    """Export what is left (a process that stops)."""
    provider = trace.get_tracer_provider()
    stop = getattr(provider, "shutdown", None)
    if _enabled and stop is not None:
        stop()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def parse_traceparent(traceparent: str) -> otel_context.Context | None:
    """The context a ``traceparent`` value names, or None if it names none."""
    if not traceparent:
        return None
    ctx = _propagator.extract({"traceparent": traceparent})
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


def current_traceparent() -> str:
    """The ``traceparent`` of the current span ("" when there is none: tracing off)."""
    if not _enabled:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def span(
    name: str,
    *,
    traceparent: str = "",
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A span around the block, current inside it. Its parent: ``parent``, else the
    current span if there is one, else the context ``traceparent`` names (a task's
    query), else none (a new trace). An exception marks it failed. While tracing is
    off: nothing, the block runs as it is and gets None."""
    if not _enabled:
        yield None
        return
    ctx = parent
    if ctx is None and not trace.get_current_span().get_span_context().is_valid:
        ctx = parse_traceparent(traceparent)
    with tracer().start_as_current_span(
        name, context=ctx, attributes=dict(attributes or {}), record_exception=True
    ) as s:
        yield s


def start_span(
    name: str,
    *,
    parent: otel_context.Context | None = None,
    start_time: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Span | None:
    """A span the caller ends (``end_span``), not made current; None while off."""
    if not _enabled:
        return None
    return tracer().start_span(
        name, context=parent, start_time=start_time, attributes=dict(attributes or {})
    )


def end_span(s: Span | None, error: BaseException | None = None, **attributes: Any) -> None:
    if s is None:
        return
    for key, value in attributes.items():
        if value not in (None, ""):
            s.set_attribute(key, value)
    if error is not None:
        s.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    s.end()


@contextlib.contextmanager
def current(s: Span | None) -> Iterator[None]:
    """Make ``s`` the current span inside the block (nothing if None)."""
    if s is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(s))
    try:
        yield
    finally:
        otel_context.detach(token)


class QueryContexts:
    """The trace context of the queries a process took part in, by query id, the
    most recent ``keep`` of them: a worker's DoGet of a result joins its query's
    trace though the call carries no header."""

    def __init__(self, keep: int = 1024) -> None:
        self._keep = keep
        self._by_query: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, query_id: str, traceparent: str) -> None:
        if not traceparent or not _enabled:
            return
        with self._lock:
            self._by_query[query_id] = traceparent
            self._by_query.move_to_end(query_id)
            while len(self._by_query) > self._keep:
                self._by_query.popitem(last=False)

    def get(self, query_id: str) -> otel_context.Context | None:
        with self._lock:
            tp = self._by_query.get(query_id, "")
        return parse_traceparent(tp)


# this process's queries (a worker: the tasks it ran; wire/tracing.py reads it)
QUERIES = QueryContexts()
