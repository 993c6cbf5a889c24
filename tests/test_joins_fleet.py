"""Planned joins through the real fleet: ADBC client, front door, two worker
processes, etcd; every answer compared with DuckDB in-process on the same files.

The fleet runs with DUCKFLEET_SPLIT_JOINS=always: at scale 0.01 the planner's
costs would keep these joins in one task. The last test kills -9 the worker that
finished a shuffle producer while the other producers still run: the consumers
find its buckets gone and recompute them from lineage.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from fleet_fixture import records_for, reference, run, run_in_thread, start_fleet
from tpch_data import is_ordered, tpch_query

from duckfleet.control import QueryStore
from duckfleet.local_fleet import LocalFleet
from duckfleet.planner.plan import TaskPlan
from duckfleet.verify import assert_same_result

ALWAYS = {"DUCKFLEET_SPLIT_JOINS": "always"}
WINDOW = (
    "SELECT l_suppkey, l_orderkey, l_linenumber FROM lineitem QUALIFY row_number() "
    "OVER (PARTITION BY l_suppkey ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber) = 1"
)
# lineitem and orders shuffled by l_partkey = o_custkey; the filter on orders alone
# runs in its producers, and is slow on purpose
SLOW_SHUFFLE = (
    "SELECT o_orderpriority, count(*) AS n, sum(l_quantity) AS q FROM lineitem JOIN orders "
    "ON l_partkey = o_custkey WHERE length(repeat(o_comment, 3000)) > 10 "
    "GROUP BY o_orderpriority"
)


@pytest.fixture(scope="module")
def joins_fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    logs = str(tmp_path_factory.mktemp("joins-fleet-logs"))
    f = start_fleet(etcd, str(tpch_dir), logs, extra_env=ALWAYS)
    try:
        yield f
    finally:
        f.stop()


def plans_of(fleet: LocalFleet, sql: str) -> list[TaskPlan]:
    (record,) = records_for(fleet, sql)
    store = fleet.store()
    try:
        qs = QueryStore(store)
        return [qs.stored_task(record.id, r.id).plan for r in qs.task_records(record.id)]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("sql", "shuffled"),
    [
        pytest.param(tpch_query(3), False, id="q03-aligned"),
        pytest.param(tpch_query(13), True, id="q13-shuffle"),
        pytest.param(tpch_query(22), True, id="q22-shuffle-and-subquery-first"),
        pytest.param(WINDOW, True, id="window-by-hash-partition"),
    ],
)
def test_planned_joins_equal_duckdb_through_adbc(joins_fleet, tpch_dir, sql, shuffled):
    got = run(joins_fleet.uri, sql)
    assert_same_result(got, reference(tpch_dir, sql), ordered=is_ordered(sql))
    tasks = plans_of(joins_fleet, sql)
    assert len(tasks) > 4
    producers = [t for t in tasks if t.partitioned]
    assert bool(producers) == shuffled
    if shuffled:  # every consumer reads one bucket of each producer it names
        buckets = [{b.bucket for b in t.inputs if b.bucket >= 0} for t in tasks]
        assert sorted(b for bs in buckets if bs for b in bs) == list(range(producers[0].buckets))


def test_a_shuffle_producer_lost_after_finishing_is_recomputed(etcd, tpch_dir, tmp_path):
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=2, extra_env=ALWAYS)
    store = fleet.store()
    qs = QueryStore(store)
    thread, outcome = run_in_thread(fleet.uri, SLOW_SHUFFLE)
    try:
        victim = lost = None
        deadline = time.monotonic() + 60
        while victim is None:
            assert time.monotonic() < deadline, "no lineitem producer ever finished"
            for record in records_for(fleet, SLOW_SHUFFLE):
                for r in qs.task_records(record.id):
                    plan = qs.stored_task(record.id, r.id).plan
                    if r.done_by and plan.partitioned and "lineitem" in plan.sql:
                        victim, lost, query = r.done_by, r.id, record.id
                        break
            if victim is None:
                time.sleep(0.005)
        consumers = [r for r in qs.task_records(query) if r.stage == 1]
        assert consumers and all(r.done_by is None for r in consumers), "consumers already ran"
        pid = fleet.pid_of(victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive(), "the query hung after losing a producer"
        assert "error" not in outcome, outcome.get("error")
        assert_same_result(outcome["table"], reference(tpch_dir, SLOW_SHUFFLE), ordered=False)
        consumers = [r for r in qs.task_records(query) if r.stage == 1]
        assert all(r.done_by not in (None, victim) for r in consumers)
        assert any(lost in r.recomputed for r in consumers), (lost, consumers)
    finally:
        thread.join(5)
        store.close()
        fleet.stop()
