"""The exchange on a real fleet: a hand-built shuffle join published to etcd, run by
two worker processes that fetch buckets from each other over Flight; then the same
with the worker holding a finished producer's buckets killed with SIGKILL.

The planner is not involved here (tests/test_joins_fleet.py runs planned joins
through ADBC): this is the machinery alone, every answer compared with DuckDB.
"""

from __future__ import annotations

import os
import signal
import time

import pyarrow as pa
import pyarrow.flight as fl
from fleet_fixture import start_fleet
from shuffle_plan import SHUFFLE_JOIN_SQL, shuffle_join_plan
from tpch_data import reference, tpch_catalog

from duckfleet.control import QueryStore
from duckfleet.control.records import QueryState
from duckfleet.flight.tickets import result_ticket
from duckfleet.ids import MemberId, new_query_id
from duckfleet.planner.plan import Plan, StageKind
from duckfleet.verify import assert_same_result


def publish(qs: QueryStore, plan: Plan):
    q = new_query_id()
    qs.publish(q, plan, frontdoor=MemberId("frontdoor-test"), ttl=120)
    return q


def fetch_outputs(qs: QueryStore, q, plan: Plan) -> pa.Table:
    status = qs.wait(q, 120)
    assert status.state == QueryState.FINISHED, status
    outputs = [t.id for t in plan.output_tasks]
    index = qs.results(q, outputs)
    parts = []
    for t in outputs:
        with fl.connect(index[t].location) as client:
            parts.append(client.do_get(fl.Ticket(result_ticket(q, t))).read_all())
    return pa.concat_tables(parts)


def test_a_shuffle_join_runs_on_two_workers_and_equals_duckdb(fleet, tpch_dir):
    catalog = tpch_catalog(tpch_dir)
    plan = shuffle_join_plan(catalog, buckets=3)
    store = fleet.store()
    try:
        qs = QueryStore(store)
        q = publish(qs, plan)
        got = fetch_outputs(qs, q, plan)
        assert_same_result(got, reference(catalog, SHUFFLE_JOIN_SQL), ordered=False)
        # each producer committed one results entry listing its three buckets
        producers = [t.id for t in plan.stages[0].tasks]
        assert plan.stages[0].kind is StageKind.SHUFFLE
        index = qs.results(q, producers)
        assert sorted(index) == sorted(producers)
        for info in index.values():
            assert len(info.bucket_rows) == 3 and sum(info.bucket_rows) == info.rows
        lineitem_rows = sum(f.rows for f in catalog.tables["lineitem"].files)
        assert sum(index[t].rows for t in producers[:4]) == lineitem_rows
        done_by = {r.done_by for r in qs.task_records(q)}
        assert None not in done_by
    finally:
        store.close()


def test_a_producer_lost_with_its_worker_is_recomputed_by_the_consumers(etcd, tpch_dir, tmp_path):
    """Kill -9 the worker that finished a lineitem producer while the (slow) orders
    producers still run: the consumers find its buckets gone and recompute them."""
    catalog = tpch_catalog(tpch_dir)
    plan = shuffle_join_plan(catalog, buckets=2, slow_orders=40_000_000)
    lineitem_producers = {t.id for t in plan.stages[0].tasks if "lineitem" in t.sql}
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=2)
    store = fleet.store()
    try:
        qs = QueryStore(store)
        q = publish(qs, plan)
        victim = lost = None
        deadline = time.monotonic() + 60
        while victim is None:
            assert time.monotonic() < deadline, "no lineitem producer ever finished"
            for r in qs.task_records(q):
                if r.id in lineitem_producers and r.done_by:
                    victim, lost = r.done_by, r.id
                    break
            else:
                time.sleep(0.005)
        consumers = [r for r in qs.task_records(q) if r.stage == 1]
        assert all(r.done_by is None for r in consumers), "a consumer ran before the kill"
        pid = fleet.pid_of(victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        got = fetch_outputs(qs, q, plan)
        assert_same_result(got, reference(catalog, SHUFFLE_JOIN_SQL), ordered=False)
        consumers = [r for r in qs.task_records(q) if r.stage == 1]
        assert all(r.done_by not in (None, victim) for r in consumers)
        assert any(lost in r.recomputed for r in consumers), (lost, consumers)
    finally:
        store.close()
        fleet.stop()
