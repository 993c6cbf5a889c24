"""The catalog's data model: tables, their columns, files and row groups.

Pure values. The control plane stores them in etcd as JSON; the planner reads them.

Row groups carry what splits and pruning need: rows, bytes on storage, and for the
columns where it tells row groups apart (a sorted key, a clustered date) the min
and max from the Parquet footer, as JSON values: numbers as such, decimals, dates
and timestamps as strings (`stat_value` reads them back with the column's type).
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

StatValue = int | str  # as stored in JSON


@dataclass(frozen=True)
class RowGroup:
    rows: int
    bytes: int  # compressed bytes on storage
    # column -> (min, max), only where the footer has them and they tell row groups
    # apart; a column missing here may hold anything.
    stats: Mapping[str, tuple[StatValue, StatValue]] = field(default_factory=dict)

    def to_list(self) -> list[Any]:
        return [self.rows, self.bytes, {c: list(v) for c, v in self.stats.items()}]

    @staticmethod
    def from_list(item: list[Any]) -> RowGroup:
        rows, size, stats = item
        return RowGroup(rows, size, {c: (lo, hi) for c, (lo, hi) in stats.items()})


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type name, e.g. "DECIMAL(15,2)", "VARCHAR", "DATE"


@dataclass(frozen=True)
class ColumnRange:
    """Min and max of one column over a file, from its Parquet statistics.

    Kept for integer columns (Python ints) and dates (ISO text): the planner lines
    up the splits of tables joined on such a key. min/max are None when every
    value is NULL.
    """

    column: str
    min: int | str | None
    max: int | str | None
    nulls: int


@dataclass(frozen=True)
class DataFile:
    path: str  # absolute path on storage every worker reaches
    rows: int
    bytes: int
    row_groups: int = 1
    groups: tuple[RowGroup, ...] = ()  # per row group, when the catalog has them
    ranges: tuple[ColumnRange, ...] = ()  # per column, where the statistics allow

    def range_of(self, column: str) -> ColumnRange | None:
        return next((r for r in self.ranges if r.column == column), None)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    files: tuple[DataFile, ...]
    format: str = "parquet"

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "format": self.format,
                "columns": [[c.name, c.type] for c in self.columns],
                "files": [_file_json(f) for f in self.files],
            }
        )

    @staticmethod
    def from_json(text: str | bytes) -> Table:
        d = json.loads(text)
        return Table(
            name=d["name"],
            format=d.get("format", "parquet"),
            columns=tuple(Column(n, t) for n, t in d["columns"]),
            files=tuple(_file_from_json(f) for f in d["files"]),
        )


@dataclass(frozen=True)
class View:
    """A stored query, expanded by the planner wherever its name is read."""

    name: str
    sql: str  # the view's query, DuckDB dialect
    columns: tuple[Column, ...]  # as DuckDB describes the query's result
    column_names: tuple[str, ...] = ()  # CREATE VIEW v (a, b): names given to its columns

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "sql": self.sql,
                "columns": [[c.name, c.type] for c in self.columns],
                "column_names": list(self.column_names),
            }
        )

    @staticmethod
    def from_json(text: str | bytes) -> View:
        d = json.loads(text)
        return View(
            name=d["name"],
            sql=d["sql"],
            columns=tuple(Column(n, t) for n, t in d["columns"]),
            column_names=tuple(d.get("column_names", ())),
        )


def _file_json(f: DataFile) -> list[object]:
    """[path, rows, bytes, row groups, per-group statistics, per-column ranges]; the
    last two only when there are any."""
    out: list[object] = [f.path, f.rows, f.bytes, f.row_groups]
    if f.groups or f.ranges:
        out.append([g.to_list() for g in f.groups])
    if f.ranges:
        out.append([[r.column, r.min, r.max, r.nulls] for r in f.ranges])
    return out


def _file_from_json(d: list[Any]) -> DataFile:
    path, rows, nbytes, count = d[:4]
    groups = tuple(RowGroup.from_list(x) for x in d[4]) if len(d) > 4 else ()
    ranges = tuple(ColumnRange(*r) for r in d[5]) if len(d) > 5 else ()
    return DataFile(path, rows, nbytes, count, groups, ranges)


@dataclass(frozen=True)
class Catalog:
    """All tables and views, keyed by lower-case name, and the version they were
    read at. A name is a table or a view, never both."""

    tables: Mapping[str, Table] = field(default_factory=dict)
    version: int = 0
    views: Mapping[str, View] = field(default_factory=dict)
    # the `system` schema's tables, by bare name, without files: their rows are a
    # snapshot of etcd the front door ships with the task (duckfleet/system_catalog.py)
    system: Mapping[str, Table] = field(default_factory=lambda: _system_tables())

    def get(self, name: str) -> Table | None:
        return self.tables.get(name.lower())

    def view(self, name: str) -> View | None:
        return self.views.get(name.lower())

    def schema_mapping(self) -> dict[str, dict[str, str]]:
        """The shape sqlglot's MappingSchema takes: {table: {column: type}}."""
        return {n: {c.name: c.type for c in t.columns} for n, t in self.tables.items()}


def stat_value(column_type: str, raw: StatValue) -> Any:
    """A stored min or max as a value that compares with others of the column's type:
    int, Decimal, date, datetime or str."""
    kind = column_type.upper()
    if not isinstance(raw, str):
        return raw
    if kind.startswith("DECIMAL") or kind.startswith("NUMERIC"):
        return decimal.Decimal(raw)
    if kind == "DATE":
        return datetime.date.fromisoformat(raw)
    if kind.startswith("TIMESTAMP"):
        return datetime.datetime.fromisoformat(raw)
    return raw


def _system_tables() -> dict[str, Table]:
    from duckfleet.system_catalog import system_tables  # it builds on this module

    return system_tables()
