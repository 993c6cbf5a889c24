"""Describe Parquet files as a catalog Table: columns, rows, sizes, row groups."""

from __future__ import annotations

import datetime
import glob
import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from duckfleet.catalog import Column, ColumnRange, DataFile, Table
from duckfleet.errors import DuckfleetError


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
    files = expand_paths(path_or_glob)
    con = duckdb.connect()
    try:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet([{listing}])").fetchall()
    except duckdb.Error as exc:
        raise TableFilesError(f"cannot read {path_or_glob!r} as Parquet: {exc}") from exc
    finally:
        con.close()
    columns = tuple(Column(r[0], r[1]) for r in rows)
    data = []
    for f in files:
        parquet = pq.ParquetFile(f)
        meta = parquet.metadata
        ranges = column_ranges(parquet)
        data.append(DataFile(f, meta.num_rows, os.path.getsize(f), meta.num_row_groups, ranges))
    return Table(name=name.lower(), columns=columns, files=tuple(data))


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
