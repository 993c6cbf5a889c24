"""Candidate splits of a query's tables, cheapest first.

A candidate says which catalog tables are split, by which key (or by files), and
how: `files` (one table split by its files, join_broadcast), `aligned` (by key
ranges that the files' statistics line up, join_aligned) or `shuffle` (by hash of
the key through an exchange stage, join_shuffle). Every other table is read whole
by each task.

Candidates come from the key classes of the query (keys.py): for each class, the
tables that have exactly one column in it may be split by that column; tables too
large to broadcast must be. The cost is what one task reads (the split tables'
share, times `shuffle_cost` through an exchange, plus every broadcast table);
whether a candidate gives the right answer is for layout.py to say, cheapest
candidate first.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from duckfleet.catalog import Catalog
from duckfleet.planner.joins.join_aligned import RangeSplit, range_split
from duckfleet.planner.joins.join_broadcast import broadcast_bytes, broadcast_ok
from duckfleet.planner.joins.join_shuffle import same_key_type
from duckfleet.planner.joins.keys import BaseColumn
from duckfleet.planner.joins.layout import FILES
from duckfleet.planner.settings import PlannerSettings

MAX_OPTIONAL = 6  # small tables of one class tried split or whole: 2**6 combinations
HOIST_COST = 1.5  # a hoisted subquery's share costs more: extra stages, its result broadcast
_RANK = {"aligned": 0, "files": 1, "shuffle": 2}


@dataclass(frozen=True)
class Candidate:
    strategy: str  # "files" | "aligned" | "shuffle"
    split: Mapping[str, str]  # table -> key column, or FILES
    whole: tuple[str, ...]  # tables read whole by every task
    buckets: int
    cost: float
    ranges: RangeSplit | None = None
    aside: Mapping[str, str] = field(default_factory=dict)  # split only inside subqueries

    @property
    def layout(self) -> dict[str, str]:
        """Every split table and its key, for layout.analyze."""
        return {**self.aside, **self.split}

    def describe(self) -> str:
        tables = ", ".join(self.split)
        if self.strategy == "files":
            text = f"split by files of {tables} ({self.buckets} tasks)"
        elif self.strategy == "aligned":
            keys = " = ".join(self.split.values())
            text = (
                f"split-aligned join on {keys}: key ranges of {tables} from Parquet statistics "
                f"({self.buckets} tasks)"
            )
        else:
            keys = " = ".join(self.split.values())
            text = (
                f"shuffle join on {keys}: {tables} hash-partitioned into {self.buckets} buckets, "
                "one task per bucket"
            )
        return text + (f"; broadcast: {', '.join(self.whole)}" if self.whole else "")


def candidates(
    read: tuple[str, ...],
    aside: tuple[str, ...],
    classes: list[frozenset[BaseColumn]],
    catalog: Catalog,
    settings: PlannerSettings,
) -> list[Candidate]:
    """Every candidate split, cheapest first.

    `read`: the tables the tasks read; `aside`: tables read only inside uncorrelated
    subqueries. An aside table may be split with the others (a co-partitioned IN);
    a large one that is not is split by files inside its subqueries, which are then
    hoisted and planned on their own (their cost: one task's share of it, times
    `HOIST_COST`); a small one is read whole by each task, like a broadcast table.
    """
    found: dict[tuple[str, tuple[tuple[str, str], ...]], Candidate] = {}
    large = {t for t in read if _bytes(t, catalog) > settings.broadcast_max_bytes}
    large_aside = {t for t in aside if _bytes(t, catalog) > settings.broadcast_max_bytes}
    # what each task reads unless split: the tables it reads, and the small tables of
    # subqueries that stay in the tasks (a whole table leaves the subquery whole)
    tasks_read = read + tuple(t for t in aside if t not in large_aside)

    def add(candidate: Candidate | None) -> None:
        if candidate is None:
            return
        hoisted = {t: FILES for t in large_aside if t not in candidate.split}
        cost = candidate.cost + sum(_share(t, catalog) * HOIST_COST for t in hoisted)
        key = (candidate.strategy, tuple(sorted(candidate.split.items())))
        found.setdefault(key, replace(candidate, aside=hoisted, cost=cost))

    for name in read:
        table = catalog.get(name)
        if table is not None and len(table.files) > 1 and large <= {name}:
            add(_files(name, tasks_read, catalog, settings))
    for cls in classes:
        columns: dict[str, list[str]] = {}
        for table, column in cls:
            if table in read or table in aside:
                columns.setdefault(table, []).append(column)
        eligible = {t: cs[0] for t, cs in columns.items() if len(cs) == 1}
        if not large <= set(eligible):
            continue  # a large table would have to be broadcast
        optional = sorted(set(eligible) - large)[:MAX_OPTIONAL]
        for n in range(len(optional) + 1):
            for extra in itertools.combinations(optional, n):
                chosen = sorted(large | set(extra))
                if chosen:
                    split = {t: eligible[t] for t in chosen}
                    add(_keyed(split, tasks_read, catalog, settings))
    return sorted(found.values(), key=lambda c: (c.cost, _RANK[c.strategy]))


def _files(
    name: str, tables: tuple[str, ...], catalog: Catalog, settings: PlannerSettings
) -> Candidate | None:
    table = catalog.get(name)
    assert table is not None
    whole = tuple(t for t in tables if t != name)
    n = len(table.files)
    if not broadcast_ok(table.bytes, n, whole, catalog, settings):
        return None
    cost = table.bytes / n + broadcast_bytes(whole, catalog)
    return Candidate("files", {name: FILES}, whole, n, cost)


def _keyed(
    split: dict[str, str], tables: tuple[str, ...], catalog: Catalog, settings: PlannerSettings
) -> Candidate | None:
    whole = tuple(t for t in tables if t not in split)
    split_bytes = sum(_bytes(t, catalog) for t in split)
    ranges = range_split(split, catalog, settings.aligned_max_overread)
    if ranges is not None:
        if not broadcast_ok(split_bytes, ranges.buckets, whole, catalog, settings):
            return None
        cost = ranges.read_bytes / ranges.buckets + broadcast_bytes(whole, catalog)
        return Candidate("aligned", split, whole, ranges.buckets, cost, ranges)
    if not same_key_type(split, catalog):
        return None
    files = max(len(t.files) for name in split if (t := catalog.get(name)) is not None)
    if files < 2:
        return None  # one file in all: the one producer task would read everything
    buckets = settings.shuffle_buckets or files
    if not broadcast_ok(split_bytes, buckets, whole, catalog, settings):
        return None
    cost = split_bytes * settings.shuffle_cost / buckets + broadcast_bytes(whole, catalog)
    return Candidate("shuffle", split, whole, buckets, cost)


def _share(name: str, catalog: Catalog) -> float:
    table = catalog.get(name)
    return table.bytes / max(len(table.files), 1) if table is not None else 0.0


def _bytes(name: str, catalog: Catalog) -> int:
    table = catalog.get(name)
    return table.bytes if table is not None else 0
