"""Split-aligned joins: tables split by ranges of their join key, from Parquet
statistics, so that rows that join are read by the same task.

TPC-H written with `tpchgen-cli --parts` keeps each table's files in key order
(orders and lineitem by order key, part and partsupp by part key), but the files
of two tables do not end on the same keys: orders.1 may end at 1,500,000 while
lineitem.1 ends at 1,499,942. So a task is not "file i of each": the key domain is
cut at the file boundaries of one table (the one that reads the most), and task i
reads, of every split table, the files whose [min, max] overlaps range i, keeping
only the rows in range i (a filter DuckDB also uses to skip row groups):

    range 0:   key <= b0 OR key IS NULL
    range i:   b(i-1) < key AND key <= b(i)
    last:      key > b(n-2)

Exact whatever the overlap; worth it while each table is read at most
`aligned_max_overread` times over: a file a range overlaps in part costs the row
groups that part takes, its keys assumed spread evenly between its min and max —
when the table's files hold disjoint ranges; files that overlap each other are
taken to be unsorted inside too, and read whole by every range they overlap.
"""

from __future__ import annotations

import datetime
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from duckfleet.catalog import Catalog, ColumnRange, Table
from duckfleet.planner.parse import DIALECT

Value = int | str  # integer keys, or dates as ISO text


@dataclass(frozen=True)
class RangeSplit:
    cut_table: str  # whose file boundaries cut the key domain
    bounds: tuple[Value, ...]  # upper bounds of all ranges but the last
    files: Mapping[str, tuple[tuple[str, ...], ...]]  # table -> per range, its files
    read_bytes: int  # what all the tasks read together (file granularity)
    overread: Mapping[str, float]  # table -> bytes the tasks read / its bytes

    @property
    def buckets(self) -> int:
        return len(self.bounds) + 1


def range_split(
    split: Mapping[str, str], catalog: Catalog, max_overread: float
) -> RangeSplit | None:
    """The cheapest aligned split of `split` (table -> key column), or None when the
    statistics do not line the tables up."""
    tables: dict[str, Table] = {}
    ranges: dict[str, list[ColumnRange]] = {}
    for name, column in split.items():
        table = catalog.get(name)
        if table is None or not table.files:
            return None
        found = [f.range_of(column) for f in table.files]
        if any(r is None for r in found):
            return None
        tables[name], ranges[name] = table, found  # type: ignore[assignment]
    kinds = {type(v) for rs in ranges.values() for r in rs for v in (r.min, r.max) if v is not None}
    if len(kinds) != 1 or bool in kinds:
        return None  # no values at all, or integers and dates mixed
    best: RangeSplit | None = None
    for cut in tables:
        bounds = _bounds(ranges[cut])
        if bounds is None:
            continue
        candidate = _assign(tables, ranges, cut, bounds, max_overread)
        if candidate is not None and (best is None or candidate.read_bytes < best.read_bytes):
            best = candidate
    return best


def _bounds(ranges: list[ColumnRange]) -> tuple[Value, ...] | None:
    """Cut points at the ends of a table's files, if its files hold disjoint ranges."""
    spans = sorted((r.min, r.max) for r in ranges if r.min is not None and r.max is not None)
    if len(spans) < 2:
        return None
    for (_, high), (low, _) in itertools.pairwise(spans):
        if not high < low:  # type: ignore[operator]
            return None
    return tuple(high for _, high in spans[:-1])  # type: ignore[misc]


def _overlaps(r: ColumnRange, i: int, bounds: tuple[Value, ...]) -> bool:
    if i == 0 and r.nulls > 0:
        return True
    if r.min is None or r.max is None:
        return False  # all NULL: range 0 only
    above_previous = i == 0 or r.max > bounds[i - 1]  # type: ignore[operator]
    below_next = i == len(bounds) or r.min <= bounds[i]  # type: ignore[operator]
    return above_previous and below_next


def _share_read(r: ColumnRange, i: int, bounds: tuple[Value, ...], row_groups: int) -> float:
    """The share of a file range `i` reads: its keys assumed spread evenly over the
    file's [min, max], whole row groups (DuckDB skips the others by their statistics)."""
    if r.min is None or r.max is None:
        return 1.0
    low, high = _number(r.min), _number(r.max)
    start = low if i == 0 else max(low, _number(bounds[i - 1]))
    end = high if i == len(bounds) else min(high, _number(bounds[i]))
    if high <= low or row_groups <= 1:
        return 1.0
    fraction = max(0.0, end - start) / (high - low)
    groups = max(1, math.ceil(fraction * row_groups - 1e-9))
    return min(1.0, groups / row_groups)


def _number(v: Value) -> float:
    """Keys as numbers: integers as they are, ISO dates as day ordinals."""
    if isinstance(v, str):
        return float(datetime.date.fromisoformat(v).toordinal())
    return float(v)


def _assign(
    tables: Mapping[str, Table],
    ranges: Mapping[str, list[ColumnRange]],
    cut: str,
    bounds: tuple[Value, ...],
    max_overread: float,
) -> RangeSplit | None:
    files: dict[str, tuple[tuple[str, ...], ...]] = {}
    overread: dict[str, float] = {}
    total = 0
    for name, table in tables.items():
        per_range: list[tuple[str, ...]] = []
        read = 0
        # files in key order (disjoint ranges) are taken to be sorted inside too, as
        # tpchgen-cli writes them; files that overlap each other are read whole
        in_order = _bounds(ranges[name]) is not None
        for i in range(len(bounds) + 1):
            hit = [
                (f.path, f.bytes * (_share_read(r, i, bounds, f.row_groups) if in_order else 1.0))
                for f, r in zip(table.files, ranges[name], strict=True)
                if _overlaps(r, i, bounds)
            ]
            read += int(sum(b for _, b in hit))
            # a range no file reaches still needs the table's columns: any file,
            # filtered to the (empty) range
            per_range.append(tuple(p for p, _ in hit) or (table.files[0].path,))
        if read > max_overread * max(table.bytes, 1):
            return None
        files[name] = tuple(per_range)
        overread[name] = read / max(table.bytes, 1)
        total += read
    return RangeSplit(cut, bounds, files, total, overread)


def range_filter(column: str, column_type: str, split: RangeSplit, i: int) -> str:
    """SQL predicate over `column` (of DuckDB type `column_type`) for range `i`."""
    col = exp.column(column, quoted=True)

    def value(v: Value) -> exp.Expression:
        if isinstance(v, str):
            return exp.cast(exp.Literal.string(v), exp.DataType.build(column_type))
        return exp.Literal.number(v)

    bounds = split.bounds
    if i == 0:
        condition: exp.Expression = exp.or_(
            col.copy() <= value(bounds[0]), col.copy().is_(exp.null())
        )
    elif i == len(bounds):
        condition = col.copy() > value(bounds[-1])
    else:
        condition = exp.and_(col.copy() > value(bounds[i - 1]), col.copy() <= value(bounds[i]))
    return condition.sql(dialect=DIALECT)
