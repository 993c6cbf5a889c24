"""What a front door knows of the fleet between queries, kept fresh by watches:
the catalog, client sessions' options, the workers and their slots.

Every query needs the catalog and, from a client with a session cookie, its session's
options; reading them from etcd each time cost two reads a query. They are read once
and kept until a watch on their prefix reports a change (control/freshness.py); this
front door's own writes count at once. The workers are re-read at most once every
SLOTS_MAX_AGE seconds: the planner's parallelism and the fast path's candidates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from duckfleet.catalog import Catalog
from duckfleet.control import CatalogStore, QueryStore, Store
from duckfleet.control.freshness import Freshness
from duckfleet.control.records import MemberInfo
from duckfleet.control.session_store import SessionStore
from duckfleet.planner.errors import UnknownColumnError, UnknownTableError

T = TypeVar("T")

# seconds the workers' records, read for planning and offers, are used before a re-read
SLOTS_MAX_AGE = 1.0

# sessions whose options a front door keeps in memory (all dropped past it)
MAX_SESSIONS_KEPT = 10_000


class FleetView:
    def __init__(self, store: Store, session_ttl: int) -> None:
        self.catalog_store = CatalogStore(store)
        self.queries = QueryStore(store)
        self.sessions = SessionStore(store, session_ttl)
        self.catalog_freshness = Freshness(store, store.keys.catalog(), "catalog").start()
        self.session_freshness = Freshness(store, store.keys.sessions(), "sessions").start()
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._catalog_token: int | None = None
        self._sessions: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._workers: list[MemberInfo] = []
        self._slots = 0
        self._workers_read_at = -1e9

    def close(self) -> None:
        self.catalog_freshness.stop()
        self.session_freshness.stop()

    # the catalog

    def catalog(self, fresh: bool = False) -> Catalog:
        """The catalog, read again only when a watch says it changed (or, while the
        watch is down, when its version moved); `fresh`: read it now."""
        token = self.catalog_freshness.token()
        with self._lock:
            cached, cached_token = self._catalog, self._catalog_token
        if cached is not None and not fresh:
            if token is not None and token == cached_token:
                return cached
            entries = len(cached.tables) + len(cached.views)
            if token is None and self.catalog_store.version() == (cached.version, entries):
                return cached
        catalog = self.catalog_store.read()
        with self._lock:
            self._catalog, self._catalog_token = catalog, token
        return catalog

    def with_catalog(self, use: Callable[[Catalog], T]) -> T:
        """`use(catalog)`; once more on a catalog read now if it named a table or
        column the cached catalog lacks (added a moment ago, its event in flight)."""
        try:
            return use(self.catalog())
        except (UnknownTableError, UnknownColumnError):
            return use(self.catalog(fresh=True))

    def catalog_changed(self) -> None:
        """This front door changed the catalog: read it again next time."""
        self.catalog_freshness.changed()

    # sessions

    def session(self, session_id: str) -> dict[str, Any] | None:
        """A session's options; from memory while no session changed since they were
        read (every query of a client with a session cookie asks)."""
        token = self.session_freshness.token()
        with self._lock:
            kept = self._sessions.get(session_id)
        if token is not None and kept is not None and kept[0] == token:
            return kept[1]
        options = self.sessions.get(session_id)
        if token is not None:
            with self._lock:
                if len(self._sessions) >= MAX_SESSIONS_KEPT:
                    self._sessions.clear()
                self._sessions[session_id] = (token, options)
        return options

    def save_session(self, session_id: str, options: dict[str, Any]) -> None:
        try:
            self.sessions.put(session_id, options)
        finally:
            self.session_freshness.changed()

    def close_session(self, session_id: str) -> bool:
        try:
            return self.sessions.delete(session_id)
        finally:
            self.session_freshness.changed()

    # workers

    def workers(self) -> list[MemberInfo]:
        """The workers, re-read from etcd at most once every SLOTS_MAX_AGE seconds."""
        if not self._workers_fresh():
            workers = self.queries.workers()
            with self._lock:
                self._workers, self._slots = workers, sum(w.slots for w in workers)
                self._workers_read_at = time.monotonic()
        return self._workers

    def slots(self) -> int:
        """Tasks the fleet's workers run at once, as of at most SLOTS_MAX_AGE ago."""
        self.workers()
        return self._slots

    def has_workers(self) -> bool:
        """Whether any worker has joined: the records read for planning say so while
        fresh, or else etcd is asked."""
        return (self._workers_fresh() and self._slots > 0) or self.queries.worker_count() > 0

    def _workers_fresh(self) -> bool:
        return time.monotonic() - self._workers_read_at <= SLOTS_MAX_AGE
