"""Split-aligned joins, the pure parts: per-file key ranges from Parquet statistics
(duckfleet/table_files.py) and the ranges that line tables up (planner/joins/
join_aligned.py). Whole queries: tests/test_planner_joins.py."""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb
import pytest

from duckfleet.catalog import Catalog, Column, ColumnRange, DataFile, Table
from duckfleet.planner.joins.join_aligned import range_filter, range_split
from duckfleet.table_files import describe_table


def write(path: Path, sql: str, row_group_size: int = 2048) -> None:
    with duckdb.connect() as con:
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {row_group_size})")


def test_files_record_min_max_and_nulls_of_integer_and_date_columns(tmp_path: Path):
    write(
        tmp_path / "t.1.parquet",
        "SELECT CASE WHEN i % 10 = 0 THEN NULL ELSE i END AS k, "
        "DATE '2024-01-01' + i::INTEGER AS d, 's' || i AS s, NULL::INTEGER AS empty "
        "FROM range(1, 6001) t(i)",
    )
    table = describe_table("t", str(tmp_path))
    (f,) = table.files
    assert f.row_groups == 3  # the ranges span every row group
    last_day = (datetime.date(2024, 1, 1) + datetime.timedelta(days=6000)).isoformat()
    assert f.range_of("k") == ColumnRange("k", 1, 5999, 600)
    assert f.range_of("d") == ColumnRange("d", "2024-01-02", last_day, 0)
    assert f.range_of("empty") == ColumnRange("empty", None, None, 6000)
    assert f.range_of("s") is None  # strings carry no range
    assert Table.from_json(table.to_json()) == table
    older = '{"name": "t", "columns": [["k", "BIGINT"]], "files": [["/p", 1, 2, 1]]}'
    assert Table.from_json(older).files == (DataFile("/p", 1, 2, 1),)


def table(name: str, key: str, spans: list[tuple[int | None, int | None, int]]) -> Table:
    """A table whose file i holds keys spans[i] = (min, max, nulls), 1000 bytes each."""
    files = tuple(
        DataFile(f"/{name}.{i}", 10, 1000, 1, ranges=(ColumnRange(key, lo, hi, nulls),))
        for i, (lo, hi, nulls) in enumerate(spans)
    )
    return Table(name, (Column(key, "BIGINT"),), files)


def catalog(*tables: Table) -> Catalog:
    return Catalog(tables={t.name: t for t in tables})


def test_misaligned_sorted_files_are_cut_at_one_tables_boundaries():
    # orders' files end a little after lineitem's, as tpchgen-cli writes them
    orders = table("orders", "o", [(1, 100, 0), (101, 200, 0), (201, 300, 0)])
    lineitem = table("lineitem", "l", [(1, 97, 0), (98, 196, 0), (197, 300, 0)])
    split = range_split({"orders": "o", "lineitem": "l"}, catalog(orders, lineitem), 2.0)
    assert split is not None and split.buckets == 3
    # cutting at either table's ends reads the other's boundary files twice: a tie
    assert split.read_bytes == 3000 + 5000
    cut, other = ("orders", "lineitem") if split.cut_table == "orders" else ("lineitem", "orders")
    assert all(len(files) == 1 for files in split.files[cut])
    assert [len(files) for files in split.files[other]] in ([1, 2, 2], [2, 2, 1])


def test_unsorted_or_unknown_or_mixed_ranges_do_not_align():
    sorted_ = table("a", "k", [(1, 10, 0), (11, 20, 0)])
    overlapping = table("b", "k", [(1, 15, 0), (5, 20, 0)])
    assert range_split({"b": "k"}, catalog(overlapping), 2.0) is None
    spread = table("c", "k", [(1, 20, 0)])  # one file over every range: read twice
    assert range_split({"a": "k", "c": "k"}, catalog(sorted_, spread), 1.5) is None
    assert range_split({"a": "k", "c": "k"}, catalog(sorted_, spread), 2.0) is not None
    unknown = Table("d", (Column("k", "BIGINT"),), (DataFile("/d", 1, 1),))
    assert range_split({"a": "k", "d": "k"}, catalog(sorted_, unknown), 9.0) is None
    dates = Table(
        "e",
        (Column("k", "DATE"),),
        (DataFile("/e", 1, 1, 1, ranges=(ColumnRange("k", "2024-01-01", "2024-02-01", 0),)),),
    )
    assert range_split({"a": "k", "e": "k"}, catalog(sorted_, dates), 9.0) is None


def test_files_with_nulls_join_the_first_range():
    a = table("a", "k", [(1, 10, 0), (11, 20, 0), (21, 30, 0)])
    b = table("b", "k", [(1, 10, 0), (25, 30, 3), (None, None, 10)])
    split = range_split({"a": "k", "b": "k"}, catalog(a, b), 2.0)
    assert split is not None and split.cut_table == "a"
    assert split.files["b"] == (("/b.0", "/b.1", "/b.2"), ("/b.0",), ("/b.1",))


@pytest.mark.parametrize("column_type", ["BIGINT", "DATE"])
def test_every_key_lands_in_exactly_one_range(column_type: str):
    if column_type == "DATE":
        spans = [("2024-01-01", "2024-01-10"), ("2024-01-11", "2024-01-20")]
        values = (
            "SELECT DATE '2023-12-25' + i::INTEGER AS k FROM range(40) t(i) UNION ALL SELECT NULL"
        )
    else:
        spans = [(1, 10), (11, 20)]
        values = "SELECT i - 5 AS k FROM range(40) t(i) UNION ALL SELECT NULL"
    files = tuple(
        DataFile(f"/t.{i}", 1, 1, 1, ranges=(ColumnRange("k", lo, hi, 0),))
        for i, (lo, hi) in enumerate(spans)
    )
    t = Table("t", (Column("k", column_type),), files)
    split = range_split({"t": "k"}, catalog(t), 2.0)
    assert split is not None and split.buckets == 2
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE v AS {values}")
        total = con.sql("SELECT count(*) FROM v").fetchall()[0][0]
        counts = [
            con.sql(
                f"SELECT count(*) FROM v WHERE {range_filter('k', column_type, split, i)}"
            ).fetchall()[0][0]
            for i in range(split.buckets)
        ]
    assert sum(counts) == total and all(c > 0 for c in counts)
