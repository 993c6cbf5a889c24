"""Candidate splits of a query's tables, cheapest first, and only those that beat
running the query as one task.

A candidate says which catalog tables are split, by which key (or by files), and
how: `files` (one table split by its files, join_broadcast), `aligned` (by key
ranges that the files' statistics line up, join_aligned) or `shuffle` (by hash of
the key through an exchange stage, join_shuffle). Every other table is read whole
by each task.

Candidates come from the key classes of the query (keys.py): for each class, the
tables that have exactly one column in it may be split by that column; tables too
large to broadcast must be. Whether a candidate gives the right answer is for
layout.py to say, cheapest first.

Cost: the work of reading each table, in its bytes times the share of its columns
the query uses (`Workload`); one task does all of it. A split plan does, over all
its tasks: its split tables once (`aligned`: as often as the ranges overlap their
files; `shuffle`: plus `shuffle_cost` per byte of Arrow it moves through the
exchange), and every broadcast table once per task, `broadcast_cost` times over
(each task builds its join on it again), plus `task_cost` per task; that spread
over the tasks that run at once (`parallelism`, at most one per split). A
candidate is kept only if that is at most `max_cost_share` of the one task's work.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from duckfleet.catalog import Catalog
from duckfleet.planner.joins.join_aligned import RangeSplit, range_split
from duckfleet.planner.joins.join_broadcast import broadcast_ok
from duckfleet.planner.joins.join_shuffle import same_key_type
from duckfleet.planner.joins.keys import BaseColumn
from duckfleet.planner.joins.layout import FILES
from duckfleet.planner.settings import PlannerSettings

MAX_OPTIONAL = 6  # small tables of one class tried split or whole: 2**6 combinations
# buckets of a shuffle: as many as files, or tasks at once, up to this; a producer
# completion decrements every bucket task's counter in one etcd transaction (etcd allows
# 128 operations in one)
MAX_BUCKETS = 32
HOIST_COST = 1.5  # a hoisted subquery's work costs more: its stages, its result broadcast
_RANK = {"aligned": 0, "files": 1, "shuffle": 2}


@dataclass(frozen=True)
class Workload:
    """What a query reads: per catalog table, bytes times the share of its columns
    used (`size`); `read` by the tasks, `aside` only inside uncorrelated subqueries."""

    read: tuple[str, ...]
    aside: tuple[str, ...]
    size: Mapping[str, float]
    # per table, the bytes its used columns take as Arrow: what a shuffle moves
    moved: Mapping[str, float] = field(default_factory=dict)

    @property
    def single(self) -> float:
        """The work of the one task that reads everything."""
        return sum(self.size[t] for t in (*self.read, *self.aside))


@dataclass(frozen=True)
class Candidate:
    strategy: str  # "files" | "aligned" | "shuffle"
    split: Mapping[str, str]  # table -> key column, or FILES
    whole: tuple[str, ...]  # tables read whole by every task
    buckets: int
    cost: float  # estimated time, as work one task would do in it
    ranges: RangeSplit | None = None
    aside: Mapping[str, str] = field(default_factory=dict)  # split only inside subqueries

    @property
    def layout(self) -> dict[str, str]:
        """Every split table and its key, for layout.analyze."""
        return {**self.aside, **self.split}

    def describe(self) -> str:
        tables = ", ".join(self.split)
        keys = " = ".join(self.split.values())
        if self.strategy == "files":
            text = f"split by files of {tables} ({self.buckets} tasks)"
        elif self.strategy == "aligned":
            text = (
                f"split-aligned join on {keys}: key ranges of {tables} from Parquet statistics "
                f"({self.buckets} tasks)"
            )
        else:
            text = (
                f"shuffle join on {keys}: {tables} hash-partitioned into {self.buckets} buckets, "
                "one task per bucket"
            )
        return text + (f"; broadcast: {', '.join(self.whole)}" if self.whole else "")


def candidates(
    work: Workload,
    classes: list[frozenset[BaseColumn]],
    catalog: Catalog,
    settings: PlannerSettings,
) -> list[Candidate]:
    """Every candidate split that beats one task, cheapest first.

    An aside table may be split with the others (a co-partitioned IN); a large one
    that is not is split by files inside its subqueries, which are then hoisted and
    planned on their own; a small one is read whole by each task, like a broadcast
    table.
    """
    found: dict[tuple[str, tuple[tuple[str, str], ...]], Candidate] = {}
    large = {t for t in work.read if _bytes(t, catalog) > settings.broadcast_max_bytes}
    large_aside = {t for t in work.aside if _bytes(t, catalog) > settings.broadcast_max_bytes}
    # read by each task unless split: the tasks' tables, and the small tables of
    # subqueries that stay in the tasks
    tasks_read = work.read + tuple(t for t in work.aside if t not in large_aside)
    # one task, or the split plan with (about) one more task: its merge
    limit = (
        math.inf
        if math.isinf(settings.max_cost_share)
        else (work.single - settings.task_cost) * settings.max_cost_share
    )

    def add(candidate: Candidate | None) -> None:
        if candidate is None:
            return
        hoisted = {t: FILES for t in large_aside if t not in candidate.split}
        cost = candidate.cost + sum(
            work.size[t] * HOIST_COST / settings.parallelism for t in hoisted
        )
        if cost > limit:
            return
        key = (candidate.strategy, tuple(sorted(candidate.split.items())))
        found.setdefault(key, replace(candidate, aside=hoisted, cost=cost))

    for name in work.read:
        table = catalog.get(name)
        if table is not None and len(table.files) > 1 and large <= {name}:
            add(_files(name, tasks_read, work, catalog, settings))
    for cls in classes:
        columns: dict[str, list[str]] = {}
        for table, column in cls:
            if table in work.read or table in work.aside:
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
                    add(_keyed(split, tasks_read, work, catalog, settings))
    return sorted(found.values(), key=lambda c: (c.cost, _RANK[c.strategy]))


def _spread(work: float, buckets: int, settings: PlannerSettings) -> float:
    """Time for `work` over `buckets` tasks, `parallelism` of them at once."""
    work += buckets * settings.task_cost
    return work / max(1, min(buckets, settings.parallelism))


def _broadcast_work(
    whole: tuple[str, ...], buckets: int, work: Workload, s: PlannerSettings
) -> float:
    return sum(work.size.get(t, 0.0) for t in whole) * buckets * s.broadcast_cost


def _files(
    name: str,
    tables: tuple[str, ...],
    work: Workload,
    catalog: Catalog,
    settings: PlannerSettings,
) -> Candidate | None:
    table = catalog.get(name)
    assert table is not None
    whole = tuple(t for t in tables if t != name)
    n = len(table.files)
    if not broadcast_ok(table.bytes, n, whole, catalog, settings):
        return None
    total = work.size[name] + _broadcast_work(whole, n, work, settings)
    return Candidate("files", {name: FILES}, whole, n, _spread(total, n, settings))


def _keyed(
    split: dict[str, str],
    tables: tuple[str, ...],
    work: Workload,
    catalog: Catalog,
    settings: PlannerSettings,
) -> Candidate | None:
    whole = tuple(t for t in tables if t not in split)
    split_bytes = sum(_bytes(t, catalog) for t in split)
    ranges = range_split(split, catalog, settings.aligned_max_overread)
    if ranges is not None:
        buckets = ranges.buckets
        if not broadcast_ok(split_bytes, buckets, whole, catalog, settings):
            return None
        total = sum(work.size[t] * ranges.overread[t] for t in split)
        total += _broadcast_work(whole, buckets, work, settings)
        return Candidate(
            "aligned", split, whole, buckets, _spread(total, buckets, settings), ranges
        )
    if not same_key_type(split, catalog):
        return None
    files = max(len(t.files) for name in split if (t := catalog.get(name)) is not None)
    if files < 2:
        return None  # one file in all: the one producer task would read everything
    buckets = min(settings.shuffle_buckets or max(files, settings.parallelism), MAX_BUCKETS)
    if not broadcast_ok(split_bytes, buckets, whole, catalog, settings):
        return None
    # producers, one per file, read and hash; buckets fetch, join and broadcast
    moved = sum(work.moved.get(t, work.size[t]) for t in split) * settings.shuffle_cost
    produce = _spread(sum(work.size[t] for t in split) + moved / 2, files, settings)
    consume = moved / 2 + _broadcast_work(whole, buckets, work, settings)
    cost = produce + _spread(consume, buckets, settings)
    return Candidate("shuffle", split, whole, buckets, cost)


def _bytes(name: str, catalog: Catalog) -> int:
    table = catalog.get(name)
    return table.bytes if table is not None else 0
