"""Query leases granted ahead of need, so publishing a query does not wait for etcd
to grant its lease (a write etcd syncs to disk) on the request's path.

Queries share leases: every query a front door starts within SPARE_SECONDS of a
lease's grant takes that lease, so concurrent queries cost one grant, not one each.
Once the current lease is half that old, the next is granted in the background.
Leases are granted for the query TTL plus SPARE_SECONDS, so a query's keys live at
least the TTL and at most SPARE_SECONDS longer. No query lease is ever revoked; a
lease nobody took expires by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from duckfleet.control.errors import ControlError
from duckfleet.control.store import Store, translated

log = logging.getLogger("duckfleet.control")

SPARE_SECONDS = 5


class LeasePool:
    def __init__(self, store: Store, ttl: int) -> None:
        self.store = store
        self.ttl = ttl + SPARE_SECONDS
        self._lock = threading.Lock()
        self._spare: Any = None
        self._granted = -1e9
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
        """A lease for a new query: the current one if it is fresh, else one granted
        now (which becomes the current one)."""
        now = time.monotonic()
        with self._lock:
            lease, granted = self._spare, self._granted
        age = now - granted
        if lease is not None and age < SPARE_SECONDS:
            if age >= SPARE_SECONDS / 2:
                self._refill.set()  # the next one, before this one is too old
            return lease
        lease = self._grant()
        with self._lock:
            if now >= self._granted:
                self._spare, self._granted = lease, now
        return lease

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
                fresh = time.monotonic() - self._granted < SPARE_SECONDS / 2
            if fresh and self._spare is not None:
                continue
            try:
                granted = time.monotonic()
                lease = self._grant()
            except ControlError as exc:  # etcd is away: queries grant their own
                log.info("no spare query lease: %s", exc)
                continue
            with self._lock:
                if granted >= self._granted:
                    self._spare, self._granted = lease, granted
