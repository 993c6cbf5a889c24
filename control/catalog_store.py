"""The catalog in etcd: one key per table holding its Table JSON, one per view.

Writes that depend on what was read (create, append, replace, drop) are one
transaction each, compared on the mod revision of the name's table key and view key
as read: a concurrent writer makes the transaction fail, and the caller reads again
and retries or reports the conflict. No file list is ever lost to a race.
"""

from __future__ import annotations

from dataclasses import dataclass

from duckfleet.catalog import Catalog, Table, View
from duckfleet.control.store import Store, translated


@dataclass(frozen=True)
class Entry:
    """What a name holds, and the revisions a conditional write compares on."""

    table: Table | None
    view: View | None
    table_revision: int  # 0: no such key
    view_revision: int


class CatalogStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    @translated("writing the catalog")
    def put_table(self, table: Table) -> None:
        self.store.client.put(self.store.keys.table(table.name), table.to_json())

    @translated("writing the catalog")
    def drop_table(self, name: str) -> bool:
        return bool(self.store.client.delete(self.store.keys.table(name)))

    @translated("reading the catalog")
    def version(self) -> tuple[int, int]:
        """(highest mod revision, number of tables and views), read without their
        values: any put raises the first, any delete lowers the second, so it changes
        with any change."""
        keys = self.store.keys
        prefixes = (keys.tables().encode(), keys.views().encode())
        revisions = [
            int(meta.mod_revision)
            for _, meta in self.store.client.get_prefix(keys.catalog(), keys_only=True)
            if meta.key.startswith(prefixes)
        ]
        return max(revisions, default=0), len(revisions)

    @translated("reading the catalog")
    def read(self) -> Catalog:
        """Every table and view, and the highest mod revision among them as the version."""
        tables: dict[str, Table] = {}
        views: dict[str, View] = {}
        version = 0
        keys = self.store.keys
        tables_prefix, views_prefix = keys.tables().encode(), keys.views().encode()
        for value, meta in self.store.client.get_prefix(keys.catalog()):
            if meta.key.startswith(tables_prefix):
                t = Table.from_json(value)
                tables[t.name.lower()] = t
            elif meta.key.startswith(views_prefix):
                v = View.from_json(value)
                views[v.name.lower()] = v
            else:
                continue
            version = max(version, int(meta.mod_revision))
        return Catalog(tables=tables, version=version, views=views)

    @translated("reading the catalog")
    def entry(self, name: str) -> Entry:
        keys, txn = self.store.keys, self.store.txn
        _, (table_kvs, view_kvs) = self.store.transaction(
            compare=[], success=[txn.get(keys.table(name)), txn.get(keys.view(name))], failure=[]
        )
        table = Table.from_json(table_kvs[0][0]) if table_kvs else None
        view = View.from_json(view_kvs[0][0]) if view_kvs else None
        return Entry(
            table,
            view,
            int(table_kvs[0][1].mod_revision) if table_kvs else 0,
            int(view_kvs[0][1].mod_revision) if view_kvs else 0,
        )

    def _unchanged(self, name: str, entry: Entry) -> list[object]:
        keys, txn = self.store.keys, self.store.txn
        return [
            txn.mod(keys.table(name)) == entry.table_revision,
            txn.mod(keys.view(name)) == entry.view_revision,
        ]

    @translated("writing the catalog")
    def put_table_if(self, table: Table, entry: Entry) -> bool:
        """Write ``table`` (replacing a view of that name) if its name still holds
        what ``entry`` read; False if someone changed it meanwhile."""
        keys, txn = self.store.keys, self.store.txn
        ok, _ = self.store.transaction(
            compare=self._unchanged(table.name, entry),
            success=[
                txn.put(keys.table(table.name), table.to_json()),
                txn.delete(keys.view(table.name)),
            ],
            failure=[],
        )
        return bool(ok)

    @translated("writing the catalog")
    def put_view_if(self, view: View, entry: Entry) -> bool:
        keys, txn = self.store.keys, self.store.txn
        ok, _ = self.store.transaction(
            compare=self._unchanged(view.name, entry),
            success=[
                txn.put(keys.view(view.name), view.to_json()),
                txn.delete(keys.table(view.name)),
            ],
            failure=[],
        )
        return bool(ok)

    @translated("writing the catalog")
    def drop_if(self, name: str, entry: Entry) -> bool:
        """Remove the table or view ``name`` if it is still what ``entry`` read."""
        keys, txn = self.store.keys, self.store.txn
        ok, _ = self.store.transaction(
            compare=self._unchanged(name, entry),
            success=[txn.delete(keys.table(name)), txn.delete(keys.view(name))],
            failure=[],
        )
        return bool(ok)
