"""Per-table SELECT grants on a front door: checked before every query is planned,
applied to the metadata a caller sees, changed by GRANT and REVOKE.

Grants live in etcd (control/grants.py) and are kept in memory until a watch on
``access/`` reports a change (control/freshness.py), so a grant or revoke made on
any front door, or by the CLI, holds here at the next query, with no restart.

What is checked (duckfleet/grants.py has the rules): every table and view a query
names, and every table and view those views read (planner/reads.py). Reading a view
needs a grant on the view *and* on what it reads: a view never lends its reader
rights the reader lacks (no definer rights). A refusal is PERMISSION_DENIED naming
the first name refused, and the view it was read through.

The check runs before the plan cache is asked, on every query, with the grants as
they are now: a plan cached for one user is served to another only after the other
passed the check. Cost: nothing for admins or while no grant exists and ungranted
names are public; else a lookup of the names a statement reads (kept per statement
and catalog version) and a set test per name.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from duckfleet.auth.errors import PermissionDenied
from duckfleet.auth.tokens import Identity
from duckfleet.catalog import Catalog
from duckfleet.control.freshness import Freshness
from duckfleet.control.grants import GrantStore
from duckfleet.control.store import Store
from duckfleet.grants import ADMINS, Grants
from duckfleet.planner.errors import PlanError, UnknownTableError
from duckfleet.planner.grant_statements import GrantChange
from duckfleet.planner.reads import names_read

READS_KEPT = 1024  # statements whose names read are kept


class TableAccessDenied(PermissionDenied):
    """A user without a grant on a table or view (PERMISSION_DENIED)."""


class AccessControl:
    def __init__(self, store: Store) -> None:
        self.store = GrantStore(store)
        self.freshness = Freshness(store, store.keys.access(), "access").start()
        self._lock = threading.Lock()
        self._grants: Grants | None = None
        self._token: int | None = None
        self._reads: OrderedDict[tuple[str, int, int, int], dict[str, str | None]] = OrderedDict()

    def close(self) -> None:
        self.freshness.stop()

    def grants(self) -> Grants:
        """The grants, read again only when the watch says they changed (every time
        while the watch is not connected)."""
        token = self.freshness.token()
        with self._lock:
            if self._grants is not None and token is not None and token == self._token:
                return self._grants
        grants = self.store.read()
        with self._lock:
            self._grants, self._token = grants, token
        return grants

    # --- reading ---------------------------------------------------------------------

    def check(self, sql: str, catalog: Catalog, who: Identity) -> None:
        """Raise TableAccessDenied unless ``who`` may read every table and view
        ``sql`` reads (views expanded)."""
        if who.is_admin:
            return
        grants = self.grants()
        if grants.open:
            return
        reads = self._names_read(sql, catalog)
        denied = grants.denied(who, reads)
        if denied:  # name one: what the statement names itself first, then what views read
            first = min(denied, key=lambda n: (reads[n] is not None, n))
            raise TableAccessDenied(_refusal(who, first, reads[first], catalog, grants))

    def readable(self, catalog: Catalog, who: Identity) -> Catalog:
        """The catalog as ``who`` may see it: the tables it may read, and the views it
        may read together with everything they read (metadata commands)."""
        if who.is_admin:
            return catalog
        grants = self.grants()
        if grants.open:
            return catalog
        tables = {k: t for k, t in catalog.tables.items() if grants.may_read(who, k)}
        views = {}
        for key, view in catalog.views.items():
            if not grants.may_read(who, key):
                continue
            try:
                inner = self._names_read(view.sql, catalog)
            except PlanError:  # a view that no longer plans: not listed
                continue
            if not grants.denied(who, inner):
                views[key] = view
        return replace(catalog, tables=tables, views=views)

    def _names_read(self, sql: str, catalog: Catalog) -> dict[str, str | None]:
        key = (sql, catalog.version, len(catalog.tables), len(catalog.views))
        with self._lock:
            kept = self._reads.get(key)
            if kept is not None:
                self._reads.move_to_end(key)
                return kept
        reads = names_read(sql, catalog)
        with self._lock:
            self._reads[key] = reads
            while len(self._reads) > READS_KEPT:
                self._reads.popitem(last=False)
        return reads

    # --- GRANT and REVOKE ------------------------------------------------------------

    def apply(self, change: GrantChange, catalog: Catalog, who: Identity) -> None:
        """Carry out a GRANT or REVOKE (the caller checked that ``who`` is an admin).
        A GRANT names tables and views of the catalog; a REVOKE may name any (the
        grants of a dropped table can be revoked)."""
        if not change.revoke:
            missing = [n for n in change.names if n not in catalog.tables and not catalog.view(n)]
            if missing:
                raise UnknownTableError(
                    f"GRANT: no table or view {missing[0]!r} in the catalog "
                    f"(tables: {', '.join(sorted(catalog.tables)) or 'none'})"
                )
        try:
            if change.revoke:
                self.store.revoke(change.names, change.principals)
            else:
                self.store.grant(change.names, change.principals, by=who.user)
        finally:  # read our own write: the watch tells a moment later
            self.freshness.changed()


def _refusal(who: Identity, name: str, via: str | None, catalog: Catalog, grants: Grants) -> str:
    kind = "view" if catalog.view(name) is not None and name not in catalog.tables else "table"
    through = f", which view {via} reads" if via else ""
    if not grants.grantees(name) and grants.ungranted == ADMINS:
        why = (
            "nobody was granted SELECT on it and this fleet lets admins alone read such "
            "tables (ungranted: admins)"
        )
    else:
        why = f"no SELECT grant to USER {who.user} or ROLE {who.role}"
    return (
        f"permission denied: user {who.user!r} may not read {kind} {name}{through}: {why}; "
        f"an admin can run GRANT SELECT ON {name} TO USER {who.user}"
    )
