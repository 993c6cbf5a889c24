"""Broadcast joins: one table split by its files, every other table read whole by
each task — and the check that says when reading them whole is worth it.

Each task re-reads the broadcast tables in full: that pays while all of them
together are no larger than `broadcast_max_share` times the task's own share of
the split tables (settings.py); past it the fleet re-reads more than it divides.
Tables larger than `broadcast_max_bytes` are never broadcast. Any join condition
works against a broadcast side, equi or not.
"""

from __future__ import annotations

from collections.abc import Iterable

from duckfleet.catalog import Catalog
from duckfleet.planner.plan import TableBinding
from duckfleet.planner.settings import PlannerSettings


def broadcast_ok(
    split_bytes: int,
    buckets: int,
    whole: Iterable[str],
    catalog: Catalog,
    settings: PlannerSettings,
) -> bool:
    """Whether the `whole` tables may be read whole by each of `buckets` tasks."""
    sizes = [_bytes(name, catalog) for name in whole]
    if any(size > settings.broadcast_max_bytes for size in sizes):
        return False
    share = split_bytes / max(buckets, 1)
    return sum(sizes) <= share * settings.broadcast_max_share


def broadcast_bytes(whole: Iterable[str], catalog: Catalog) -> int:
    return sum(_bytes(name, catalog) for name in whole)


def whole_binding(name: str, catalog: Catalog) -> TableBinding:
    table = catalog.get(name)
    assert table is not None
    return TableBinding(table.name, tuple(f.path for f in table.files))


def file_binding(name: str, catalog: Catalog, i: int) -> TableBinding:
    """File `i` of a table split by its files."""
    table = catalog.get(name)
    assert table is not None
    return TableBinding(table.name, (table.files[i].path,))


def _bytes(name: str, catalog: Catalog) -> int:
    table = catalog.get(name)
    return table.bytes if table is not None else 0
