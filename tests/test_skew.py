"""Skew: one file eight times the size of the others still spreads over every worker.

A real fleet (etcd, a front door, two workers of one slot each) with the split size
set to about one small file (DUCKFLEET_SPLIT_BYTES): the big file's eight row groups
become several splits, and the task records show both workers running splits of
it. The answer is DuckDB's on the same files.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from fleet_fixture import records_for, run, start_fleet
from tpch_data import reference

from duckfleet.catalog import Catalog, Table
from duckfleet.control import CatalogStore, QueryStore
from duckfleet.local_fleet import LocalFleet
from duckfleet.table_files import describe_table
from duckfleet.verify import assert_same_result

ROWS_PER_GROUP = 100_000
COLUMNS = (
    "id::BIGINT AS id, (id % 13)::INTEGER AS k, 's' || (id % 1009)::VARCHAR AS s, "
    "(id * 0.25)::DECIMAL(12,2) AS amount"
)
SQL = "SELECT k, COUNT(*) AS n, SUM(amount) AS total, MIN(s) AS lo FROM skewed GROUP BY k"


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Table:
    out = tmp_path_factory.mktemp("skewed")
    with duckdb.connect() as con:
        big = con.sql(f"SELECT {COLUMNS} FROM range({8 * ROWS_PER_GROUP}) t(id)")
        pq.write_table(big.to_arrow_table(), out / "big.parquet", row_group_size=ROWS_PER_GROUP)
        for n in range(3):
            low = (8 + n) * ROWS_PER_GROUP
            small = con.sql(f"SELECT {COLUMNS} FROM range({low}, {low + ROWS_PER_GROUP}) t(id)")
            pq.write_table(small.to_arrow_table(), out / f"small_{n}.parquet")
    return describe_table("skewed", str(out))


@pytest.fixture(scope="module")
def skew_fleet(etcd, tpch_dir, skewed: Table, tmp_path_factory) -> Iterator[LocalFleet]:
    split = max(f.bytes for f in skewed.files[1:])
    fleet = start_fleet(
        etcd,
        str(tpch_dir),
        str(tmp_path_factory.mktemp("skew-logs")),
        extra_env={"DUCKFLEET_SPLIT_BYTES": str(split), "DUCKFLEET_BROADCAST_MAX_BYTES": "0"},
    )
    store = fleet.store()
    try:
        CatalogStore(store).put_table(skewed)
    finally:
        store.close()
    try:
        yield fleet
    finally:
        fleet.stop()


def test_the_big_file_is_eight_times_each_other_file(skewed: Table) -> None:
    big, *small = skewed.files
    assert Path(big.path).name == "big.parquet" and big.row_groups == 8
    assert big.bytes > 7 * max(f.bytes for f in small)


def test_one_big_file_spreads_over_both_workers(skew_fleet: LocalFleet, skewed: Table) -> None:
    got = run(skew_fleet.uri, SQL)
    assert_same_result(got, reference(Catalog({"skewed": skewed}), SQL), ordered=False)
    store = skew_fleet.store()
    try:
        qs = QueryStore(store)
        (record,) = records_for(skew_fleet, SQL)
        records = {r.id: r for r in qs.task_records(record.id)}
        big_path = skewed.files[0].path
        big_splits = []
        for r in records.values():
            plan = qs.stored_task(record.id, r.id).plan
            for binding in plan.tables:
                if binding.files == (big_path,):
                    big_splits.append((r.done_by, binding.ranges))
    finally:
        store.close()
    assert len(big_splits) >= 6, big_splits
    assert all(ranges and ranges[0] is not None for _, ranges in big_splits), big_splits
    covered = sorted(
        (rr.first_group, rr.end_group) for _, ranges in big_splits for rr in ranges if rr
    )
    assert covered[0][0] == 0 and covered[-1][1] == 8
    assert all(a[1] == b[0] for a, b in pairwise(covered)), covered
    workers = {m.id for m in skew_fleet.members("worker")}
    assert {done_by for done_by, _ in big_splits} == workers, big_splits
