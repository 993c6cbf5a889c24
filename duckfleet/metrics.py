"""Prometheus metrics of a front door or worker, served over HTTP at ``/metrics``.

Every metric the fleet exports is defined here, and nowhere else, so the names, the
README's list and the Grafana dashboard (compose/grafana/duckfleet.json) agree;
tests/test_metrics.py checks that the dashboard asks for no other name. This module
imports nothing of duckfleet's but the root of its errors, so flight/, worker/ and
control/ all may use it.

Each process has a registry of its own (not prometheus_client's global default), so
several front doors or workers in one test process do not collide. Labels take a few
fixed values only (an outcome, an etcd operation): never SQL, user names or ids.
Labelled children are bound once, here, so a hot path costs one ``inc`` or
``observe``; gauges are read from callables when scraped, so they cost nothing
between scrapes.

Port: DUCKFLEET_METRICS_PORT (0: any free port, -1: none), on the process's
DUCKFLEET_HOST.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from duckfleet.errors import DuckfleetError

log = logging.getLogger("duckfleet.metrics")

DISABLED = -1

# seconds: a fast-path query is milliseconds, a large one minutes (query timeout 600)
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
)  # fmt: skip
# an etcd round trip on loopback is about a millisecond
ETCD_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
)  # fmt: skip

QUERY_OUTCOMES = ("finished", "failed", "cancelled")
OFFER_OUTCOMES = ("taken", "refused")
# what the control plane asks etcd (control/store.py); the client's method names
# map to these few values
ETCD_OPS = ("txn", "get", "range", "put", "delete", "lease", "status")


class MetricsError(DuckfleetError):
    """The metrics port cannot be bound."""


class EtcdMetrics:
    """``duckfleet_etcd_request_duration_seconds{op=...}``: one child per operation."""

    def __init__(self, registry: CollectorRegistry) -> None:
        family = Histogram(
            "duckfleet_etcd_request_duration_seconds",
            "Round trip of one etcd request made by this process, by operation",
            ["op"],
            buckets=ETCD_BUCKETS,
            registry=registry,
        )
        self.ops = {op: family.labels(op) for op in ETCD_OPS}

    def timed(self, op: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, its every call observed as `op`."""
        observe = self.ops[op].observe

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                observe(time.perf_counter() - started)

        return call


class _ProcessMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.etcd = EtcdMetrics(self.registry)
        self.served_bytes = Counter(
            "duckfleet_served_bytes",
            "Arrow bytes of result partitions this process served by DoGet",
            registry=self.registry,
        )
        self.port = 0
        self._server: Any = None

    def serve(self, host: str, port: int) -> str:
        """Serve /metrics on host:port (0: a free port; -1: none): its URL, or ""."""
        if port == DISABLED:
            return ""
        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; set "
                "DUCKFLEET_METRICS_PORT to a free port, 0 for any, or -1 for none"
            ) from None
        self.port = int(self._server.server_port)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/metrics"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class FrontDoorMetrics(_ProcessMetrics):
    def __init__(self) -> None:
        super().__init__()
        queries = Counter(
            "duckfleet_queries",
            "Queries this front door ran (GetFlightInfo), by how they ended",
            ["outcome"],
            registry=self.registry,
        )
        self.finished, self.failed, self.cancelled = (queries.labels(o) for o in QUERY_OUTCOMES)
        self.query_seconds = Histogram(
            "duckfleet_query_duration_seconds",
            "Time from a query's arrival at this front door to its answer or error",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        # admission control (flight/admission.py): no group label, as group names are
        # the operator's to choose
        self.admission_queued = Counter(
            "duckfleet_admission_queued",
            "Queries that waited in their resource group's queue on this front door",
            registry=self.registry,
        )
        self.admission_refused = Counter(
            "duckfleet_admission_refused",
            "Queries refused on this front door because their resource group was full",
            registry=self.registry,
        )
        self.admission_wait_seconds = Histogram(
            "duckfleet_admission_wait_seconds",
            "Time a query waited in its resource group's queue before it ran",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def counted(self, run: Callable[..., Any], cancelled: tuple[type, ...]) -> Callable[..., Any]:
        """`run` (FleetBackend.run), each call counted by outcome and timed: an
        exception of a type in `cancelled` counts as cancelled, any other as failed."""
        finished, failed, was_cancelled = self.finished, self.failed, self.cancelled
        observe = self.query_seconds.observe

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                out = run(*args, **kwargs)
            except cancelled:
                was_cancelled.inc()
                raise
            except BaseException:
                failed.inc()
                raise
            finally:
                observe(time.perf_counter() - started)
            finished.inc()
            return out

        return call

    def counted_polls(
        self, poll: Callable[..., Any], cancelled: tuple[type, ...], failed: tuple[type, ...]
    ) -> Callable[..., Any]:
        """`poll` (FleetBackend.poll, PollFlightInfo): the poll that answers a query's
        end counts it by outcome (an exception of a type in `cancelled` or `failed`,
        or an answer whose ``finished`` is true, timed by its ``elapsed`` seconds);
        a poll of a running query, or one that fails otherwise, counts nothing."""
        finished, was_failed, was_cancelled = self.finished, self.failed, self.cancelled
        observe = self.query_seconds.observe

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                out = poll(*args, **kwargs)
            except cancelled:
                was_cancelled.inc()
                raise
            except failed:
                was_failed.inc()
                raise
            if out.finished:
                finished.inc()
                observe(out.elapsed)
            return out

        return call


class WorkerMetrics(_ProcessMetrics):
    """The gauges read `queue_depth`, `running` and `result_bytes` when scraped."""

    def __init__(
        self,
        queue_depth: Callable[[], float],
        running: Callable[[], float],
        result_bytes: Callable[[], float],
    ) -> None:
        super().__init__()
        r = self.registry
        self.task_seconds = Histogram(
            "duckfleet_task_duration_seconds",
            "Time from a task's claim to its committed completion on this worker",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.claimed = Counter(
            "duckfleet_tasks_claimed", "Tasks this worker claimed from the queue", registry=r
        )
        self.completed = Counter(
            "duckfleet_tasks_completed",
            "Tasks whose completion this worker committed (fast path included)",
            registry=r,
        )
        self.retried = Counter(
            "duckfleet_tasks_retried",
            "Claims this worker released so the task runs again: a control-plane error, "
            "a refused or failed completion, a stop past the drain timeout (not the "
            "interrupted tasks of a cancelled query or a lost copy)",
            registry=r,
        )
        self.declared_dead = Counter(
            "duckfleet_workers_declared_dead",
            "Other workers this worker declared dead after failed probes, its declaration "
            "applied (control/detection.py)",
            registry=r,
        )
        self.speculated = Counter(
            "duckfleet_tasks_speculated",
            "Second copies of stragglers running elsewhere that this worker claimed",
            registry=r,
        )
        offers = Counter(
            "duckfleet_offers",
            "Fast-path offers from front doors, by whether this worker took them",
            ["outcome"],
            registry=r,
        )
        self.offer_taken, self.offer_refused = (offers.labels(o) for o in OFFER_OUTCOMES)
        Gauge(
            "duckfleet_queue_depth",
            "Runnable, unclaimed tasks this worker knows of (its last queue listing and "
            "the watches since)",
            registry=r,
        ).set_function(queue_depth)
        Gauge("duckfleet_running_tasks", "Tasks this worker holds now", registry=r).set_function(
            running
        )
        Gauge(
            "duckfleet_result_store_bytes",
            "Arrow bytes of the results this worker holds",
            registry=r,
        ).set_function(result_bytes)


class ServedResults:
    """A worker's results as its DoGet reads them: each table handed out is counted
    in `served` (its Arrow bytes) on the way."""

    def __init__(self, results: Any, served: Counter) -> None:
        self._results = results
        self._inc = served.inc

    def get(self, *args: Any) -> Any:
        table = self._results.get(*args)
        if table is not None:
            self._inc(table.nbytes)
        return table


def serve_logged(metrics: _ProcessMetrics, what: str, host: str, port: int) -> None:
    """Start serving `metrics`, with one log line naming the URL."""
    url = metrics.serve(host, port)
    if url:
        log.info("%s serving Prometheus metrics at %s", what, url)


# every metric name a scrape of a front door or worker may show (the dashboard's
# and the README's list), the _total of counters included
METRIC_NAMES = frozenset(
    {
        "duckfleet_queries_total",
        "duckfleet_query_duration_seconds",
        "duckfleet_admission_queued_total",
        "duckfleet_admission_refused_total",
        "duckfleet_admission_wait_seconds",
        "duckfleet_task_duration_seconds",
        "duckfleet_tasks_claimed_total",
        "duckfleet_tasks_completed_total",
        "duckfleet_tasks_retried_total",
        "duckfleet_tasks_speculated_total",
        "duckfleet_workers_declared_dead_total",
        "duckfleet_offers_total",
        "duckfleet_queue_depth",
        "duckfleet_running_tasks",
        "duckfleet_served_bytes_total",
        "duckfleet_result_store_bytes",
        "duckfleet_etcd_request_duration_seconds",
    }
)
