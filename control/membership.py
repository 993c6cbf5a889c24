"""Membership: a process announces itself under a lease and keeps it alive.

When the lease is lost (the process was cut off from etcd past its TTL), every key
bound to it — the member record, the worker's claims and results index — is gone.
`Membership` notices, calls `on_lost`, and joins again with a new lease. It looks
every TTL/3, or at once when told (`check_soon`: a worker whose claims vanished
under it may have been declared dead, control/declarations.py, which revokes its
lease).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from duckfleet.control.errors import LeaseLost, StoreUnavailable
from duckfleet.control.records import MemberInfo
from duckfleet.control.store import Store, translated

log = logging.getLogger("duckfleet.control")


class Membership:
    def __init__(
        self,
        store: Store,
        info: MemberInfo,
        ttl: int,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.info = info
        self.ttl = max(2, int(ttl))
        self.on_lost = on_lost
        self._lease: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poke = threading.Event()  # check the lease now
        self._thread = threading.Thread(target=self._keepalive, name="keepalive", daemon=True)

    @property
    def lease_id(self) -> int:
        lease = self._lease
        if lease is None:
            raise LeaseLost(f"{self.info.id} holds no lease right now")
        return int(lease.id)

    @translated("joining the fleet")
    def _join(self) -> None:
        lease = self.store.client.lease(self.ttl)
        self.store.client.put(
            self.store.keys.member(self.info.kind, self.info.id), self.info.to_json(), lease=lease
        )
        with self._lock:
            self._lease = lease
        log.info("member %s joined with lease %x ttl=%ss", self.info.id, lease.id, self.ttl)

    def start(self) -> Membership:
        self._join()
        self._thread.start()
        return self

    def start_when_reachable(self, stop: threading.Event) -> None:
        """start(), retried with backoff while etcd is unreachable, until `stop`."""
        delay = 0.2
        while not stop.is_set():
            try:
                self.start()
                return
            except StoreUnavailable as exc:
                log.warning("%s cannot reach etcd (%s); retrying", self.info.id, exc)
                stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _refresh(self) -> bool:
        """One keep-alive; False if the lease has expired."""
        lease = self._lease
        if lease is None:
            return False
        try:
            responses = lease.refresh()
        except Exception as exc:
            raise StoreUnavailable(str(exc)) from exc
        return bool(responses) and int(responses[0].TTL) > 0

    def check_soon(self) -> None:
        """Refresh the lease now rather than at the next interval (rejoin if lost)."""
        self._poke.set()

    def _keepalive(self) -> None:
        interval = self.ttl / 3
        while True:
            self._poke.wait(interval)
            self._poke.clear()
            if self._stop.is_set():
                return
            try:
                if self._refresh():
                    continue
                log.warning("member %s lost its lease; rejoining", self.info.id)
                with self._lock:
                    self._lease = None
                if self.on_lost is not None:
                    self.on_lost()
                self._join()
            except StoreUnavailable as exc:
                log.warning("member %s: etcd unreachable (%s); retrying", self.info.id, exc)

    def stop(self, revoke: bool = True) -> None:
        self._stop.set()
        self._poke.set()
        self._thread.join(timeout=2)
        lease = self._lease
        if revoke and lease is not None:
            try:
                lease.revoke()
            except Exception:
                pass
        self._lease = None
