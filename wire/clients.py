"""One Flight client per location, shared by a process's threads: workers fetching
inputs from each other, front doors offering work and relaying results."""

from __future__ import annotations

import threading

import pyarrow.flight as fl

from duckfleet.wire.auth import ClientSecurity


class FlightClients:
    """One Flight client per location, shared by the worker's task threads.

    ``security``: TLS roots and this process's bearer token (wire/auth.py), so
    calls to other members pass their TLS and token checks."""

    def __init__(self, security: ClientSecurity | None = None) -> None:
        self._security = security or ClientSecurity()
        self._lock = threading.Lock()
        self._clients: dict[str, fl.FlightClient] = {}

    def get(self, location: str) -> fl.FlightClient:
        with self._lock:
            client = self._clients.get(location)
            if client is None:
                client = self._clients[location] = self._security.connect(location)
            return client

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()
