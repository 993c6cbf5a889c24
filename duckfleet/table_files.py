"""Describe Parquet files as a catalog Table: columns, rows, sizes, row groups.

Each row group keeps its rows, its bytes on storage and, for the columns where the
footers tell row groups apart, its min and max: a column is kept when some two row
groups of the table have disjoint ranges (a sorted or clustered column); where
every range overlaps every other, the statistics could prune nothing and stay out
of the catalog. Floating-point columns are left out (NaN is above every number in
DuckDB but absent from Parquet statistics), and so are strings longer than
MAX_STAT_CHARS.
"""

from __future__ import annotations

import datetime
import decimal
import glob
import os
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from duckfleet.catalog import Column, ColumnRange, DataFile, RowGroup, StatValue, Table
from duckfleet.errors import DuckfleetError

MAX_STAT_CHARS = 64


class TableFilesError(DuckfleetError):
    pass


def expand_paths(path_or_glob: str) -> list[str]:
    """A file, a directory (its *.parquet files, recursively) or a glob -> sorted paths."""
    if os.path.isdir(path_or_glob):
        pattern = os.path.join(path_or_glob, "**", "*.parquet")
        found = glob.glob(pattern, recursive=True)
    else:
        found = glob.glob(path_or_glob, recursive=True)
    files = sorted(os.path.abspath(p) for p in found if os.path.isfile(p))
    if not files:
        raise TableFilesError(f"no Parquet files at {path_or_glob!r}")
    return files


def describe_table(name: str, path_or_glob: str) -> Table:
    return describe_files(name, expand_paths(path_or_glob), path_or_glob)


def describe_files(name: str, files: list[str], where: str = "") -> Table:
    """The table made of exactly ``files`` (absolute paths), in that order."""
    where = where or (files[0] if len(files) == 1 else os.path.dirname(files[0]))
    con = duckdb.connect()
    try:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet([{listing}])").fetchall()
    except duckdb.Error as exc:
        raise TableFilesError(f"cannot read {where!r} as Parquet: {exc}") from exc
    finally:
        con.close()
    columns = tuple(Column(r[0], r[1]) for r in rows)
    parquets = [(f, pq.ParquetFile(f)) for f in files]
    groups = [_row_groups(p.metadata) for _, p in parquets]
    useful = _telling_columns([g for file_groups in groups for g in file_groups])
    data = [
        DataFile(
            f,
            p.metadata.num_rows,
            os.path.getsize(f),
            p.metadata.num_row_groups,
            tuple(_keep(g, useful) for g in file_groups),
            column_ranges(p),
        )
        for (f, p), file_groups in zip(parquets, groups, strict=True)
    ]
    return Table(name=name.lower(), columns=columns, files=tuple(data))


def _row_groups(meta: pq.FileMetaData) -> list[RowGroup]:
    out = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        stats: dict[str, tuple[StatValue, StatValue]] = {}
        size = 0
        for j in range(rg.num_columns):
            chunk = rg.column(j)
            size += chunk.total_compressed_size
            s = chunk.statistics
            if s is None or not s.has_min_max or "." in chunk.path_in_schema:
                continue
            low, high = _json_value(s.min), _json_value(s.max)
            if low is not None and high is not None:
                stats[chunk.path_in_schema] = (low, high)
        out.append(RowGroup(rg.num_rows, size, stats))
    return out


def _json_value(value: Any) -> StatValue | None:
    if isinstance(value, bool) or isinstance(value, float):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, datetime.datetime):
        return None if value.tzinfo is not None else value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= MAX_STAT_CHARS else None
    return None


def _telling_columns(groups: list[RowGroup]) -> set[str]:
    """Columns with min/max in every row group and two row groups whose ranges are
    disjoint: the highest min above the lowest max."""
    if len(groups) < 2:
        return set()
    names = set.intersection(*(set(g.stats) for g in groups))
    kept = set()
    for name in names:
        try:
            lows = [_comparable(g.stats[name][0]) for g in groups]
            highs = [_comparable(g.stats[name][1]) for g in groups]
            if max(lows) > min(highs):
                kept.add(name)
        except TypeError:  # mixed kinds across files: keep nothing for it
            continue
    return kept


def _comparable(value: StatValue) -> Any:
    if isinstance(value, str):
        try:
            return decimal.Decimal(value)
        except decimal.InvalidOperation:
            return value  # dates and timestamps in ISO form order as text
    return value


def _keep(group: RowGroup, columns: set[str]) -> RowGroup:
    return RowGroup(group.rows, group.bytes, {c: v for c, v in group.stats.items() if c in columns})


def column_ranges(parquet: pq.ParquetFile) -> tuple[ColumnRange, ...]:
    """Min/max/NULL count over the file of each top-level integer or date column
    whose every row group has statistics."""
    meta = parquet.metadata
    out = []
    for field in parquet.schema_arrow:
        is_int, is_date = pa.types.is_integer(field.type), pa.types.is_date(field.type)
        if not (is_int or is_date):
            continue
        leaf = _leaf_index(meta, field.name)
        if leaf is None:
            continue
        lows, highs, nulls = [], [], 0
        for g in range(meta.num_row_groups):
            chunk = meta.row_group(g).column(leaf)
            stats = chunk.statistics
            if stats is None or not stats.has_null_count:
                break
            nulls += stats.null_count
            if stats.has_min_max:
                lows.append(stats.min)
                highs.append(stats.max)
            elif stats.null_count != chunk.num_values:
                break  # values but no min/max: unknown
        else:
            low, high = (min(lows), max(highs)) if lows else (None, None)
            if is_date:
                low, high = _iso(low), _iso(high)
            out.append(ColumnRange(field.name, low, high, nulls))
    return tuple(out)


def _leaf_index(meta: pq.FileMetaData, name: str) -> int | None:
    for i in range(meta.num_columns):
        if meta.schema.column(i).path == name:
            return i
    return None


def _iso(value: object) -> str | None:
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, datetime.date) else None
