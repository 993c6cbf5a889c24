"""Query leases granted ahead of need, so publishing a query does not wait for etcd
to grant its lease (a write etcd syncs to disk) on the request's path.

A front door keeps one spare lease, granted in the background right after the last
one was taken. A query takes the spare if it was granted less than SPARE_SECONDS
ago, and a fresh one otherwise (the stale spare is revoked in the background).
Leases are granted for the query TTL plus SPARE_SECONDS, so a query's keys live at
least the TTL and at most SPARE_SECONDS longer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from duckfleet.control.errors import ControlError
from duckfleet.control.store import Store, translated, unavailable_as_store_error

log = logging.getLogger("duckfleet.control")

SPARE_SECONDS = 5


class LeasePool:
    def __init__(self, store: Store, ttl: int) -> None:
        self.store = store
        self.ttl = ttl + SPARE_SECONDS
        self._lock = threading.Lock()
        self._spare: Any = None
        self._granted = 0.0
        self._stale: list[Any] = []
        self._refill = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-pool", daemon=True)

    def start(self) -> LeasePool:
        self._thread.start()
        self._refill.set()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._refill.set()
        self._thread.join(timeout=2)

    def take(self) -> Any:
        """A lease for a new query: the spare if it is fresh, else one granted now."""
        with self._lock:
            spare, granted = self._spare, self._granted
            self._spare = None
        self._refill.set()
        if spare is not None and time.monotonic() - granted < SPARE_SECONDS:
            return spare
        if spare is not None:
            with self._lock:
                self._stale.append(spare)
        return self._grant()

    @translated("granting a query lease")
    def _grant(self) -> Any:
        return self.store.client.lease(self.ttl)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._refill.wait()
            self._refill.clear()
            if self._stop.is_set():
                return
            with self._lock:
                stale, self._stale = self._stale, []
                have_spare = self._spare is not None
            try:
                with unavailable_as_store_error("revoking an unused query lease"):
                    for old in stale:  # never used: no key is bound to it
                        self.store.client.revoke_lease(old.id)
                if have_spare:
                    continue
                lease = self._grant()
            except ControlError as exc:  # etcd is away: queries grant their own
                log.info("no spare query lease: %s", exc)
                continue
            with self._lock:
                self._spare, self._granted = lease, time.monotonic()
