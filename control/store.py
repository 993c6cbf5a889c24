"""The connection to etcd, with every failure translated to StoreUnavailable.

`Store` is the one handle the rest of the control plane works through: it owns the
etcd client, the Keyspace, and the translation of grpc/etcd3 errors.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import etcd3  # type: ignore[import-untyped]
import etcd3.exceptions  # type: ignore[import-untyped]
import grpc
from etcd3 import etcdrpc  # type: ignore[import-untyped]
from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control import readonly
from duckfleet.control.errors import StoreUnavailable
from duckfleet.control.keys import Keyspace
from duckfleet.metrics import EtcdMetrics
from duckfleet.netutil import host_port

log = logging.getLogger("duckfleet.control")

P = ParamSpec("P")
R = TypeVar("R")

_UNAVAILABLE = (
    etcd3.exceptions.ConnectionFailedError,
    etcd3.exceptions.ConnectionTimeoutError,
    etcd3.exceptions.NoServerAvailableError,
    etcd3.exceptions.InternalServerError,
    grpc.RpcError,
    ValueError,  # etcd3 raises it when every endpoint is marked failed
)


def _unavailable(what: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        f"the fleet's state store (etcd) is unreachable while {what}: {exc!s:.200}; retry shortly"
    )


@contextmanager
def unavailable_as_store_error(what: str) -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise _unavailable(what, exc) from exc


RETRY_SECONDS = 3.0  # spans a leader election (about a second with etcd's defaults)


def translated(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a Store method; on a connection failure, try again with backoff for up
    to RETRY_SECONDS — on another endpoint if there are several (the client marks
    the failed one), and through a cluster's leader election — then raise
    StoreUnavailable. Methods so wrapped must be safe to run again: reads, writes
    of the same values, or compare-and-swap transactions that check their effect."""

    def deco(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline = time.monotonic() + RETRY_SECONDS
            delay = 0.05
            while True:
                try:
                    return fn(*args, **kwargs)
                except _UNAVAILABLE as exc:
                    if time.monotonic() + delay > deadline:
                        raise _unavailable(what, exc) from exc
                    log.info("etcd unavailable while %s (%s); retrying", what, exc)
                time.sleep(delay)
                delay = min(delay * 2, 0.8)

        return wrapper

    return deco


def parse_endpoints(urls: str) -> list[tuple[str, int]]:
    """'http://a:2379,http://b:2379' -> [(a, 2379), (b, 2379)]."""
    out = [host_port(u.strip(), 2379) for u in urls.split(",") if u.strip()]
    if not out:
        raise ValueError(f"no etcd endpoint in {urls!r}")
    return out


VERSION_RECHECK_SECONDS = 60.0

# the etcd client's request methods the control plane calls, and the `op` label each
# is timed under (duckfleet_etcd_request_duration_seconds); transactions are timed
# in Store.transaction, whichever way they are sent
TIMED_CALLS = {
    "get": "get",
    "get_response": "get",
    "get_prefix": "range",
    "get_prefix_response": "range",
    "get_range": "range",
    "get_range_response": "range",
    "put": "put",
    "delete": "delete",
    "delete_prefix": "delete",
    "lease": "lease",
    "revoke_lease": "lease",
    "status": "status",
}


class _TimedClient:
    """The etcd client with each request method of TIMED_CALLS timed (bound once,
    so a call costs two clock reads and an observe); everything else is the client's.
    The client's own calls between its methods are not timed twice."""

    def __init__(self, client: Any, metrics: EtcdMetrics) -> None:
        self._client = client
        for name, op in TIMED_CALLS.items():
            setattr(self, name, metrics.timed(op, getattr(client, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Store:
    """`read_mode`: how read-only transactions are sent. "auto" (the default): as one
    transaction when every etcd endpoint runs a version without etcd issue 14110,
    else as Range calls (control/readonly.py); "txn" or "ranges" force one way (the
    tests and benchmarks compare them)."""

    def __init__(
        self,
        endpoints: str,
        namespace: str = "/duckfleet",
        timeout: float = 5.0,
        read_mode: str = "auto",
        metrics: EtcdMetrics | None = None,  # time every request (duckfleet/metrics.py)
    ) -> None:
        if read_mode not in ("auto", "txn", "ranges"):
            raise ValueError(f"read_mode must be auto, txn or ranges, not {read_mode!r}")
        self.read_mode = read_mode
        self.versions: dict[str, str] = {}  # endpoint -> etcd version, once read
        self._txn_reads = read_mode == "txn"
        self._recheck_at = 0.0
        self._version_lock = threading.Lock()
        self.endpoints = endpoints
        self.keys = Keyspace(namespace)
        self.timeout = timeout
        eps = [
            etcd3.Endpoint(h, p, secure=False, time_retry=1.0)
            for h, p in parse_endpoints(endpoints)
        ]
        self.client: Any = etcd3.MultiEndpointEtcd3Client(
            endpoints=eps, timeout=timeout, failover=True
        )
        self._transaction = self._send_transaction
        if metrics is not None:
            self.client = _TimedClient(self.client, metrics)
            self._transaction = metrics.timed("txn", self._send_transaction)
        self.txn = self.client.transactions
        self.endpoint_count = len(eps)

    def mark_endpoint_failed(self) -> None:
        """Steer the next call to another endpoint (a watch broke on this one)."""
        if self.endpoint_count > 1:
            endpoint = self.client.endpoint_in_use
            if endpoint is not None:
                endpoint.fail()

    def close(self) -> None:
        self.client.close()

    def transaction(
        self, compare: list[Any], success: list[Any], failure: list[Any]
    ) -> tuple[bool, list[Any]]:
        """Every transaction of the control plane goes through here. One that writes
        is sent as it is; a read-only one is sent as one transaction only to an etcd
        without issue 14110, else read with Range calls at one revision."""
        return self._transaction(compare, success, failure)

    def _send_transaction(
        self, compare: list[Any], success: list[Any], failure: list[Any]
    ) -> tuple[bool, list[Any]]:
        if not readonly.is_readonly(success, failure) or self.readonly_txns_safe():
            return self.client.transaction(compare=compare, success=success, failure=failure)
        return readonly.run_as_ranges(self.client, compare, success, failure)

    def readonly_txns_safe(self) -> bool:
        """May read-only transactions be sent? In "auto" mode: once every endpoint has
        answered with an unaffected version (checked again now and then until then,
        so a fleet started before etcd is up, or during an upgrade, catches up)."""
        if self.read_mode != "auto" or self._txn_reads:
            return self._txn_reads
        if time.monotonic() >= self._recheck_at:
            self.check_versions()
        return self._txn_reads

    def check_versions(self) -> dict[str, str]:
        """Ask each endpoint for its etcd version; log what that means for reads (once
        per endpoint and version). Endpoints that do not answer stay unknown."""
        with self._version_lock:
            self._recheck_at = time.monotonic() + VERSION_RECHECK_SECONDS
            for netloc, endpoint in self.client.endpoints.items():
                if netloc in self.versions:
                    continue
                try:
                    status = etcdrpc.MaintenanceStub(endpoint.channel).Status(
                        etcdrpc.StatusRequest(), min(self.timeout, 2.0)
                    )
                except grpc.RpcError:
                    continue
                self.versions[netloc] = status.version
                if readonly.has_readonly_txn_bug(status.version):
                    log.warning(
                        "etcd %s at %s panics on a cancelled read-only transaction (etcd "
                        "issue 14110, fixed in %s): duckfleet sends it reads as Range calls "
                        "instead; upgrade etcd to the latest 3.5 release",
                        status.version,
                        netloc,
                        readonly.FIXED_IN,
                    )
                else:
                    log.info("etcd %s at %s", status.version, netloc)
            known = [self.versions.get(n) for n in self.client.endpoints]
            if self.read_mode == "auto":
                self._txn_reads = all(
                    v is not None and not readonly.has_readonly_txn_bug(v) for v in known
                )
            return dict(self.versions)

    @translated("checking etcd health")
    def ping(self) -> None:
        self.client.status()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ping()
                self.check_versions()
                return
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


NOPUT = etcdrpc.WatchCreateRequest.FilterType.Value("NOPUT")
NODELETE = etcdrpc.WatchCreateRequest.FilterType.Value("NODELETE")


class PrefixWatch:
    """Call ``on_event(kind, key, value)`` for every change under a prefix, surviving
    etcd outages. ``kind`` is "put" or "delete".

    A daemon thread holds one Watch stream (driven directly through etcd's gRPC stub:
    python3-etcd3's own watcher thread dies on a broken stream). When the stream
    breaks, the thread waits with backoff and watches again, then calls
    ``on_reconnect()`` so the owner can rescan whatever it may have missed.
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        on_event: Callable[[str, bytes, bytes], None],
        on_reconnect: Callable[[], None] | None = None,
        name: str = "watch",
        kinds: tuple[str, ...] = ("put", "delete"),
    ) -> None:
        self.store = store
        self.prefix = prefix.encode()
        # etcd leaves out the events of the other kinds (watch filters): a watcher
        # that acts on deletes alone is not woken by every put
        self.filters = [
            f for kind, f in (("put", NOPUT), ("delete", NODELETE)) if kind not in kinds
        ]
        self.on_event = on_event
        self.on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._call: Any = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.connected = threading.Event()

    def start(self) -> PrefixWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=2)

    def _requests(self) -> Iterator[Any]:
        create = etcdrpc.WatchCreateRequest(
            key=self.prefix, range_end=prefix_range_end(self.prefix), filters=self.filters
        )
        yield etcdrpc.WatchRequest(create_request=create)
        self._stop.wait()  # keep the request side open until we stop

    def _run(self) -> None:
        delay = 0.1
        reconnect = False
        while not self._stop.is_set():
            try:
                stub = etcdrpc.WatchStub(self.store.client.channel)
                self._call = stub.Watch(self._requests())
                for response in self._call:
                    if response.created:
                        self.connected.set()
                        delay = 0.1
                        if reconnect and self.on_reconnect is not None:
                            self.on_reconnect()
                    for ev in response.events:
                        kind = "delete" if ev.type == ev.DELETE else "put"
                        self.on_event(kind, ev.kv.key, ev.kv.value)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("watch on %s broke (%s); rewatching", self.prefix.decode(), exc)
            self.connected.clear()
            reconnect = True
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, 2.0)
