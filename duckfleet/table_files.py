"""Describe Parquet files as a catalog Table: columns, rows, sizes, row groups."""

from __future__ import annotations

import glob
import os

import duckdb
import pyarrow.parquet as pq

from duckfleet.catalog import Column, DataFile, Table
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
    data = []
    for f in files:
        meta = pq.ParquetFile(f).metadata
        data.append(DataFile(f, meta.num_rows, os.path.getsize(f), meta.num_row_groups))
    return Table(name=name.lower(), columns=columns, files=tuple(data))
