"""Fingerprints: how a front door finds the query a client already started through
another front door that has since died.

A front door publishing a query also writes ``fingerprints/<f>/<q>`` — ``f`` the
fingerprint of the request (its SQL and everything else that shapes the answer),
the value the front door waiting for it — and deletes it once it has answered its
client. A key still there names a query whose client may never have had its
answer. When a client retries the same request on another front door, that front
door finds the key; if the front door named there is gone (no member record, or
its health port does not answer: killed or frozen), it takes the key over and answers
with that query's result instead of running it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from duckfleet.control.records import MemberInfo
from duckfleet.control.store import Store, translated
from duckfleet.ids import MemberId, QueryId


def fingerprint(sql: str, **context: object) -> str:
    """The same for two requests that must get the same answer: the SQL text and
    every other input of the query (priority, and — as they are added — the user,
    role and session settings)."""
    text = json.dumps({"sql": sql, **context}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Waiter:
    """The front door that will answer a query's client."""

    frontdoor: MemberId
    location: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str | bytes) -> Waiter:
        d = json.loads(text)
        return Waiter(MemberId(d["frontdoor"]), d["location"])


class Fingerprints:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys

    def put_op(self, f: str, q: QueryId, waiter: Waiter, lease: Any) -> Any:
        """The write that publishing a query adds to its first transaction."""
        return self.store.txn.put(self.keys.fingerprint(f, q), waiter.to_json(), lease=lease)

    @translated("looking up a request's earlier queries")
    def waiting(self, f: str) -> list[tuple[QueryId, Waiter]]:
        prefix = self.keys.fingerprints(f)
        return [
            (QueryId(self.keys.tail(meta.key, prefix)), Waiter.from_json(value))
            for value, meta in self.store.client.get_prefix(prefix)
        ]

    @translated("checking a front door's membership")
    def registered(self, frontdoor: MemberId) -> bool:
        return self.member(frontdoor) is not None

    @translated("checking a front door's membership")
    def member(self, frontdoor: MemberId) -> MemberInfo | None:
        """The front door's member record (its health port), if it is a member."""
        value, _ = self.store.client.get(self.keys.member("frontdoor", frontdoor))
        return None if value is None else MemberInfo.from_json(value)

    @translated("adopting a query")
    def take_over(self, f: str, q: QueryId, old: Waiter, new: Waiter) -> bool:
        """Become the query's waiter, if `old` still is (one front door adopts it)."""
        key, txn = self.keys.fingerprint(f, q), self.store.txn
        _, meta = self.store.client.get(key)
        if meta is None:
            return False
        ok, _ = self.store.transaction(
            compare=[txn.value(key) == old.to_json()],
            success=[txn.put(key, new.to_json(), lease=meta.lease_id)],
            failure=[],
        )
        return bool(ok)

    @translated("forgetting an answered query")
    def forget(self, f: str, q: QueryId) -> None:
        self.store.client.delete(self.keys.fingerprint(f, q))
