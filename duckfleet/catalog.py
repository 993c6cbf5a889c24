"""The catalog's data model: tables, their columns and files.

Pure values. The control plane stores them in etcd as JSON; the planner reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field


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


def _file_json(f: DataFile) -> list[object]:
    out: list[object] = [f.path, f.rows, f.bytes, f.row_groups]
    if f.ranges:  # a fifth element only when there are statistics
        out.append([[r.column, r.min, r.max, r.nulls] for r in f.ranges])
    return out


def _file_from_json(d: list[object]) -> DataFile:
    path, rows, nbytes, groups = d[:4]
    ranges = tuple(ColumnRange(*r) for r in d[4]) if len(d) > 4 else ()  # type: ignore[misc, union-attr]
    return DataFile(path, rows, nbytes, groups, ranges)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Catalog:
    """All tables, keyed by lower-case name, and the version they were read at."""

    tables: Mapping[str, Table] = field(default_factory=dict)
    version: int = 0

    def get(self, name: str) -> Table | None:
        return self.tables.get(name.lower())

    def schema_mapping(self) -> dict[str, dict[str, str]]:
        """The shape sqlglot's MappingSchema takes: {table: {column: type}}."""
        return {n: {c.name: c.type for c in t.columns} for n, t in self.tables.items()}
