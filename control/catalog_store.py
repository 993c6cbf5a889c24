"""The catalog in etcd: one key per table holding its Table JSON."""

from __future__ import annotations

from duckfleet.catalog import Catalog, Table
from duckfleet.control.store import Store, translated


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
        """(highest mod revision, number of tables), read without the tables: any put
        raises the first, any delete lowers the second, so it changes with any change."""
        revisions = [
            int(meta.mod_revision)
            for _, meta in self.store.client.get_prefix(self.store.keys.tables(), keys_only=True)
        ]
        return max(revisions, default=0), len(revisions)

    @translated("reading the catalog")
    def read(self) -> Catalog:
        """Every table, and the highest mod revision among them as the version."""
        tables: dict[str, Table] = {}
        version = 0
        for value, meta in self.store.client.get_prefix(self.store.keys.tables()):
            t = Table.from_json(value)
            tables[t.name.lower()] = t
            version = max(version, int(meta.mod_revision))
        return Catalog(tables=tables, version=version)
