"""Client sessions in etcd: ``sessions/<id>`` holds a session's options as JSON,
bound to a lease of its own, so an abandoned session vanishes by itself and every
front door sees the same session."""

from __future__ import annotations

import json
from typing import Any

from duckfleet.control.store import Store, translated


class SessionStore:
    def __init__(self, store: Store, ttl: int) -> None:
        self.store = store
        self.ttl = ttl

    @translated("reading a session")
    def get(self, session_id: str) -> dict[str, Any] | None:
        value, _ = self.store.client.get(self.store.keys.session(session_id))
        return None if value is None else dict(json.loads(value))

    @translated("writing a session")
    def put(self, session_id: str, options: dict[str, Any]) -> None:
        """Store ``options``; the session lives ``ttl`` seconds from now."""
        lease = self.store.client.lease(self.ttl)
        self.store.client.put(self.store.keys.session(session_id), json.dumps(options), lease=lease)

    @translated("closing a session")
    def delete(self, session_id: str) -> bool:
        return bool(self.store.client.delete(self.store.keys.session(session_id)))
