"""Splits: files and row-group ranges of about a target size, pruned with min/max.

The `skewed` table: one file of 8 row groups (ids 0..15999, sorted) eight times the
size of each of three one-row-group files (ids 16000..21999). Every plan below runs
through the worker's run_fragment and must give DuckDB's answer on the same files.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from tpch_data import execute_plan, reference

from duckfleet.catalog import Catalog, DataFile, RowGroup, Table
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.plan import RowRange, StageKind, TableBinding, TaskPlan
from duckfleet.planner.splits import splits_of
from duckfleet.table_files import describe_table
from duckfleet.verify import assert_same_result
from duckfleet.worker.fragment import run_fragment

COLUMNS = (
    "id::BIGINT AS id, (id % 7)::INTEGER AS k, DATE '2020-01-01' + (id // 100)::INTEGER AS d, "
    "'s' || lpad(id::VARCHAR, 6, '0') AS s, (id * 0.25)::DECIMAL(10,2) AS amount, "
    "CASE WHEN id % 3 = 0 THEN NULL ELSE id END AS n, (id / 3.0)::DOUBLE AS f"
)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Table:
    out = tmp_path_factory.mktemp("skewed")
    with duckdb.connect() as con:
        big = con.sql(f"SELECT {COLUMNS} FROM range(16000) t(id)").to_arrow_table()
        pq.write_table(big, out / "a_big.parquet", row_group_size=2000)
        for n in range(3):
            low = 16000 + 2000 * n
            con.execute(
                f"COPY (SELECT {COLUMNS} FROM range({low}, {low + 2000}) t(id)) "
                f"TO '{out}/small_{n}.parquet' (FORMAT parquet)"
            )
    return describe_table("skewed", str(out))


@pytest.fixture(scope="module")
def catalog(table: Table) -> Catalog:
    return Catalog(tables={"skewed": table})


def settings(table: Table) -> PlannerSettings:
    """Every table large; a split about the size of one small file."""
    small = max(f.bytes for f in table.files[1:])
    return PlannerSettings(broadcast_max_bytes=0, split_bytes=small)


def test_the_big_file_is_eight_row_groups_and_eight_times_the_others(table: Table) -> None:
    big, *small = table.files
    assert (big.row_groups, [f.row_groups for f in small]) == (8, [1, 1, 1])
    assert big.bytes > 6 * max(f.bytes for f in small)


def test_a_big_file_spreads_over_row_group_ranges_that_cover_it_once(table: Table) -> None:
    splits = splits_of(table, settings(table))
    big = [s for s in splits if s.files == (table.files[0].path,)]
    assert len(big) >= 6
    ranges = [s.ranges[0] for s in big]
    assert all(r is not None for r in ranges)
    assert [r.first_group for r in ranges] == [0] + [r.end_group for r in ranges[:-1]]
    assert ranges[-1].end_group == 8
    assert [r.first_row for r in ranges] == [0] + [r.end_row for r in ranges[:-1]]
    assert ranges[-1].end_row == 16000
    assert [(s.files, s.ranges) for s in splits[len(big) :]] == [
        ((f.path,), ()) for f in table.files[1:]
    ]


def test_default_split_size_spreads_an_sf1_lineitem_file() -> None:
    """TPC-H SF1 lineitem with --parts 4: files of 58 MB in 14 row groups of ~4 MB."""
    group = RowGroup(107_000, 4_150_000)
    files = tuple(
        DataFile(f"/x/lineitem.{n}.parquet", 1_500_000, 58_100_000, 14, (group,) * 14)
        for n in range(4)
    )
    splits = splits_of(Table("lineitem", (), files), PlannerSettings())
    assert len(splits) == 8
    assert {r.end_group - r.first_group for s in splits for r in s.ranges if r} == {7}


def test_without_row_groups_in_the_catalog_each_file_is_one_split() -> None:
    files = tuple(DataFile(f"/x/t.{n}.parquet", 10, 100_000_000, 3) for n in range(2))
    splits = splits_of(Table("t", (), files), PlannerSettings(split_bytes=1000))
    assert [(s.files, s.ranges) for s in splits] == [((f.path,), ()) for f in files]


def test_the_catalog_keeps_min_max_only_where_row_groups_differ(table: Table) -> None:
    big = table.files[0]
    stats = big.groups[0].stats
    assert set(stats) == {"id", "d", "s", "amount", "n"}  # k cycles 0..6: no use; f: float
    assert stats["id"] == (0, 1999)
    assert stats["d"] == ("2020-01-01", "2020-01-20")
    assert stats["amount"] == ("0.00", "499.75")
    assert sum(g.rows for g in big.groups) == big.rows
    assert sum(g.bytes for g in big.groups) <= big.bytes
    assert Table.from_json(table.to_json()) == table


def test_a_binding_reads_exactly_its_row_groups(table: Table) -> None:
    big = table.files[0].path
    with duckdb.connect() as con:
        for first, end in [(0, 1), (2, 5), (7, 8), (0, 0)]:
            starts = [2000 * g for g in range(9)]
            binding = TableBinding(
                "skewed", (big,), (RowRange(first, end, starts[first], starts[end]),)
            )
            task = TaskPlan("t0", 0, "SELECT * FROM skewed", (binding,))
            got = run_fragment(con.cursor(), task, {})
            expected = pq.ParquetFile(big).read_row_groups(list(range(first, end)))
            assert got.column("id").to_pylist() == expected.column("id").to_pylist()
            assert got.column_names == expected.column_names


PRUNING = [
    # (filter, row groups of the big file kept, small files kept)
    ("id < 2000", 1, 0),
    ("id = 17000", 0, 1),
    ("2000 <= id AND id < 6000", 2, 0),
    ("id BETWEEN 3000 AND 5000", 2, 0),
    ("id IN (1, 15999, 21999)", 2, 1),
    ("id < 100 OR id > 21900", 1, 1),
    ("id > 1000 AND k = 1", 8, 3),
    ("k = 1 OR id < 10", 8, 3),
    ("NOT (id < 2000)", 8, 3),
    ("id + 0 < 2000", 8, 3),
    ("d < DATE '2020-01-01' + INTERVAL 30 DAY", 2, 0),
    ("d >= CAST('2020-08-01' AS DATE) - INTERVAL '1' MONTH", 0, 2),
    ("s >= 's021000'", 0, 1),
    ("amount < 100.5", 1, 0),
    ("n < 2000", 1, 0),
    ("n IS NULL AND id < 4000", 2, 0),
    ("f < 10", 8, 3),
    ("id < 0", 0, 0),
]


@pytest.mark.parametrize(("where", "big", "small"), PRUNING, ids=[p[0] for p in PRUNING])
def test_filters_prune_row_groups_and_the_answer_stays(
    where: str, big: int, small: int, table: Table, catalog: Catalog
) -> None:
    one_group = PlannerSettings(broadcast_max_bytes=0, split_bytes=1)  # a split per row group
    for sql in (
        f"SELECT COUNT(*) AS c, SUM(amount) AS total, MIN(s) AS lo FROM skewed WHERE {where}",
        f"SELECT id, s, n FROM skewed WHERE {where}",
    ):
        plan = plan_query(sql, catalog, one_group)
        read = [b for t in plan.tasks for b in t.tables if b.table == "skewed"]
        kept_big = sum(
            r.end_group - r.first_group
            for b in read
            for r in b.ranges
            if r is not None and b.files == (table.files[0].path,)
        )
        kept_small = sum(1 for b in read if b.files != (table.files[0].path,))
        if (big, small) == (0, 0):
            assert plan.stages[0].kind is StageKind.SINGLE, plan.reason
            assert plan.reason == "one task: only one split of skewed to read"
        elif big + small == 1:
            assert plan.stages[0].kind is StageKind.SINGLE, plan.reason
        else:
            assert (kept_big, kept_small) == (big, small), plan.explain()
        assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=False)


def test_a_pruned_scan_of_nothing_still_has_a_schema(table: Table, catalog: Catalog) -> None:
    sql = "SELECT id, d FROM skewed WHERE id < 0 OR id = 17000"
    plan = plan_query(sql, catalog, PlannerSettings(broadcast_max_bytes=0, split_bytes=1))
    assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=False)


def test_tpch_files_keep_their_sorted_keys(tpch_dir: Path) -> None:
    lineitem = describe_table("lineitem", str(tpch_dir / "lineitem"))
    orders = describe_table("orders", str(tpch_dir / "orders"))
    assert {c for f in lineitem.files for g in f.groups for c in g.stats} == {"l_orderkey"}
    assert {c for f in orders.files for g in f.groups for c in g.stats} == {"o_orderkey"}
