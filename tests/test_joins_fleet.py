"""Joins through the real fleet: ADBC client, front door, two worker processes,
etcd; every answer compared with DuckDB in-process on the same files.

First the exchange alone: a shuffle join built by hand (tests/shuffle_plan.py),
published to etcd, run by the workers, which fetch buckets from each other over
Flight. Then planned joins through ADBC; the fleet runs with
DUCKFLEET_SPLIT_JOINS=always, as at scale 0.01 the planner's costs would keep
them in one task. The last test kills -9 the worker that finished a shuffle
producer while the other producers still run: the consumers find its buckets
gone and recompute them from lineage.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import records_for, reference, run, run_in_thread, start_fleet
from shuffle_plan import SHUFFLE_JOIN_SQL, shuffle_join_plan
from tpch_data import is_ordered, tpch_catalog, tpch_query

from duckfleet.control import QueryStore
from duckfleet.control.records import QueryState
from duckfleet.ids import MemberId, new_query_id
from duckfleet.local_fleet import LocalFleet
from duckfleet.planner.plan import StageKind, TaskPlan
from duckfleet.verify import assert_same_result
from duckfleet.wire.tickets import result_ticket

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


def test_a_hand_built_shuffle_join_runs_on_two_workers_and_equals_duckdb(joins_fleet, tpch_dir):
    catalog = tpch_catalog(tpch_dir)
    plan = shuffle_join_plan(catalog, buckets=3)
    store = joins_fleet.store()
    try:
        qs = QueryStore(store)
        q = new_query_id()
        qs.publish(q, plan, frontdoor=MemberId("frontdoor-test"), ttl=120)
        status = qs.wait(q, 120)
        assert status.state == QueryState.FINISHED, status
        outputs = [t.id for t in plan.output_tasks]
        index = qs.results(q, outputs)
        parts = []
        for t in outputs:
            with fl.connect(index[t].location) as client:
                parts.append(client.do_get(fl.Ticket(result_ticket(q, t))).read_all())
        expected = reference(tpch_dir, SHUFFLE_JOIN_SQL)
        assert_same_result(pa.concat_tables(parts), expected, ordered=False)
        # each producer committed one results entry listing its three buckets
        producers = [t.id for t in plan.stages[0].tasks]
        assert plan.stages[0].kind is StageKind.SHUFFLE
        index = qs.results(q, producers)
        assert sorted(index) == sorted(producers)
        for info in index.values():
            assert len(info.bucket_rows) == 3 and sum(info.bucket_rows) == info.rows
        lineitem_rows = sum(f.rows for f in catalog.tables["lineitem"].files)
        assert sum(index[t].rows for t in producers[:4]) == lineitem_rows
    finally:
        store.close()


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
