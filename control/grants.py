"""SELECT grants in etcd: one key per grant, and the fleet-wide ``ungranted`` setting.

    access/grants/<name>/<kind>/<principal>   {"by": who granted it, "at": Unix seconds}
    access/ungranted                          "public" | "admins" (absent: public)

Every front door watches ``access/`` (flight/access.py), so a grant or revoke made
anywhere (SQL on any front door, the CLI) takes effect everywhere within a watch
notification, with no restart. A GRANT or REVOKE of several names and principals is
one transaction: all of it or nothing. Grants outlive a DROP of their table: a table
created again under the name is readable by the same grantees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from duckfleet.control.store import Store, translated
from duckfleet.grants import (
    ADMINS,
    PUBLIC,
    UNGRANTED_MODES,
    Grant,
    GrantError,
    Grants,
    Principal,
    check_mode,
    principal,
)


class GrantStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    @translated("reading the grants")
    def read(self) -> Grants:
        keys = self.store.keys
        grants_prefix, ungranted_key = keys.grants(), keys.ungranted().encode()
        grants: set[Grant] = set()
        ungranted = PUBLIC
        version = 0
        for value, meta in self.store.client.get_prefix(keys.access()):
            version = max(version, int(meta.mod_revision))
            if meta.key == ungranted_key:
                mode = value.decode()
                ungranted = mode if mode in UNGRANTED_MODES else ADMINS  # garbage: closed
                continue
            parts = keys.tail(meta.key, grants_prefix).split("/")
            if len(parts) == 3:
                name, kind, who = parts
                try:
                    grants.add(Grant(name, principal(kind, who)))
                except GrantError:  # a key no duckfleet wrote: it grants nothing
                    continue
        return Grants(frozenset(grants), ungranted, version)

    @translated("writing the grants")
    def grant(self, names: Iterable[str], principals: Iterable[Principal], by: str = "") -> None:
        """Grant SELECT on every name to every principal, in one transaction."""
        value = json.dumps({"by": by, "at": int(time.time())})
        txn, keys = self.store.txn, self.store.keys
        puts = [txn.put(keys.grant(n, p.kind, p.name), value) for n in names for p in principals]
        self.store.transaction(compare=[], success=puts, failure=[])

    @translated("writing the grants")
    def revoke(self, names: Iterable[str], principals: Iterable[Principal]) -> None:
        """Revoke SELECT on every name from every principal, in one transaction (a
        grant that was not there is no error)."""
        txn, keys = self.store.txn, self.store.keys
        deletes = [txn.delete(keys.grant(n, p.kind, p.name)) for n in names for p in principals]
        self.store.transaction(compare=[], success=deletes, failure=[])

    def set_ungranted(self, mode: str) -> None:
        """Who reads a table or view nobody was granted: every user, or admins only."""
        self._put_ungranted(check_mode(mode))  # GrantError before etcd is asked

    @translated("writing the grants")
    def _put_ungranted(self, mode: str) -> None:
        self.store.client.put(self.store.keys.ungranted(), mode)
