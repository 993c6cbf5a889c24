"""End to end: real etcd, a real front door and two real workers, the ADBC Flight
SQL driver as the client; every answer checked against DuckDB in-process."""

from __future__ import annotations

import os
import signal
import time

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import SLOW, first_claim, records_for, reference, run, run_in_thread, start_fleet
from tpch_data import is_ordered, tpch_query

from duckfleet.client import statement_descriptor
from duckfleet.control import QueryStore
from duckfleet.verify import assert_same_result
from duckfleet.wire.tickets import result_ticket


def test_system_tables_with_auth_off_show_every_query(fleet, tpch_dir):
    """Auth off: everyone is admin and sees every query (tests/test_system_tables_fleet.py
    has the users)."""
    text = "SELECT count(*) AS n FROM region"
    assert run(fleet.uri, text).to_pylist() == reference(tpch_dir, text).to_pylist()
    store = fleet.store()
    try:
        records = QueryStore(store).all_records()
        workers = QueryStore(store).workers()
    finally:
        store.close()
    got = run(fleet.uri, 'SELECT id, "user" FROM system.queries ORDER BY id')
    assert got.column("id").to_pylist() == sorted(r.id for r in records)
    assert set(got.column("user").to_pylist()) == {""}
    listed = run(fleet.uri, "SELECT id FROM system.workers ORDER BY id").column("id")
    assert listed.to_pylist() == sorted(w.id for w in workers)


@pytest.mark.parametrize("n", range(1, 23))
def test_tpch_query_equals_duckdb(fleet, tpch_dir, n):
    sql = tpch_query(n)
    assert_same_result(run(fleet.uri, sql), reference(tpch_dir, sql), ordered=is_ordered(sql))


@pytest.mark.parametrize("n", [1, 6])
def test_q1_q6_run_as_partial_tasks_on_several_workers(fleet, tpch_dir, n):
    sql = tpch_query(n)
    workers_used: set[str] = set()
    for _ in range(5):  # tasks are tiny at this scale; a few runs show the spread
        run(fleet.uri, sql)
    store = fleet.store()
    try:
        qs = QueryStore(store)
        for record in records_for(fleet, sql):
            tasks = qs.task_records(record.id)
            partials = [t for t in tasks if t.stage == 0]
            merges = [t for t in tasks if t.stage == 1]
            assert len(partials) >= 2 * fleet.workers, tasks
            assert len(merges) == 1
            assert all(t.done_by for t in tasks)
            workers_used |= {t.done_by for t in partials}
    finally:
        store.close()
    assert len(workers_used) >= 2, workers_used


def test_worker_killed_mid_query_still_gives_the_right_answer(etcd, tpch_dir, tmp_path):

    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=2)
    try:
        store = fleet.store()
        qs = QueryStore(store)
        t, result = run_in_thread(fleet.uri, SLOW)
        # wait until some worker holds a claim, then kill that worker with SIGKILL
        victim = first_claim(qs)[2].worker
        victim_pid = fleet.pid_of(victim)
        assert victim_pid is not None
        os.kill(victim_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        t.join(120)
        assert not t.is_alive(), "the query hung after a worker was killed"
        assert "error" not in result, result.get("error")
        assert_same_result(result["table"], reference(tpch_dir, SLOW), ordered=False)
        (record,) = records_for(fleet, SLOW)
        done_by = {r.done_by for r in qs.task_records(record.id)}
        # the victim never completed its claimed task: the survivor ran it again
        assert victim not in done_by and None not in done_by, (victim, done_by)
        # ... once the victim's lease (2 s) had expired
        assert time.monotonic() - killed_at >= 1.0
        store.close()
    finally:
        fleet.stop()


def _status_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("SELEC 1", "line 1"),
        ("select * from no_such_table", "no_such_table"),
        ("select no_such_column from nation", "no_such_column"),
    ],
)
def test_bad_sql_is_invalid_argument_and_the_fleet_keeps_serving(fleet, sql, needle):
    with pytest.raises(adbc_driver_manager.ProgrammingError) as info:
        run(fleet.uri, sql)
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert needle in str(info.value), _status_of(info.value)
    assert run(fleet.uri, "select 1 as one").to_pylist() == [{"one": 1}]


def test_a_fleet_without_workers_answers_unavailable_at_once(etcd, tpch_dir, tmp_path):

    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=0)
    try:
        started = time.monotonic()
        with pytest.raises(adbc_driver_manager.Error) as info:
            run(fleet.uri, "select count(*) from nation")
        assert "no worker has joined the fleet" in str(info.value)
        assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.IO
        assert time.monotonic() - started < 10  # not the query timeout
    finally:
        fleet.stop()


def test_unknown_flight_sql_command_is_not_implemented_by_name(fleet):
    from duckfleet.wire import sql_messages as sql
    from duckfleet.wire.commands import pack

    with fl.connect(fleet.uri) as client:
        descriptor = fl.FlightDescriptor.for_command(pack(sql.CommandStatementSubstraitPlan()))
        with pytest.raises(pa.ArrowNotImplementedError, match="CommandStatementSubstraitPlan"):
            client.get_flight_info(descriptor)
        with pytest.raises(pa.ArrowInvalid, match="malformed"):
            client.get_flight_info(fl.FlightDescriptor.for_command(b"\xff\x00garbage"))
    assert run(fleet.uri, "select 42 as x").to_pylist() == [{"x": 42}]


def test_every_endpoint_lists_its_worker_then_the_front_door_which_also_serves_it(fleet, tpch_dir):
    sql = "select l_orderkey, l_linenumber from lineitem where l_quantity > 45"
    with fl.connect(fleet.uri) as client:
        info = client.get_flight_info(statement_descriptor(sql))
        assert len(info.endpoints) == 4  # a SCAN: one partition per split (a file here)
        parts = []
        for ep in info.endpoints:
            uris = [loc.uri.decode() for loc in ep.locations]
            assert len(uris) == 2 and uris[1] == fleet.uri and uris[0] != fleet.uri
            # the fallback path: the front door streams it from the worker
            parts.append(client.do_get(ep.ticket).read_all())
            with fl.connect(uris[0]) as worker:
                assert worker.do_get(ep.ticket).read_all().equals(parts[-1])
    assert_same_result(pa.concat_tables(parts), reference(tpch_dir, sql), ordered=False)


def test_a_task_that_keeps_killing_its_worker_fails_after_three_attempts(etcd, tpch_dir, tmp_path):

    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=1)
    # a window without PARTITION BY: one task
    sql = f"select count(*) over () as n from ({SLOW}) as s limit 1"
    store = fleet.store()
    qs = QueryStore(store)
    t, outcome = run_in_thread(fleet.uri, sql)
    try:
        killed: set[str] = set()
        deadline = time.monotonic() + 90
        while len(killed) < 3 and time.monotonic() < deadline:
            holders = {c.worker for c in qs.all_claims()} - killed
            if not holders:
                time.sleep(0.01)
                continue
            victim = holders.pop()
            pid = fleet.pid_of(victim)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # "the task killed its worker"
            killed.add(victim)
            fleet.start_worker()
        assert len(killed) == 3, killed
        t.join(60)
        assert not t.is_alive(), "the query kept retrying"
        error = outcome.get("error")
        assert error is not None and "started 3 times" in str(error), error
        # the fleet still answers, on the fresh worker
        assert run(fleet.uri, "select 7 as x").to_pylist() == [{"x": 7}]
    finally:
        t.join(5)
        store.close()
        fleet.stop()


def test_workers_drop_intermediate_results_once_the_query_ends(fleet):
    """Partials are read once by the merge; only output partitions stay held."""
    sql = "select l_shipmode, count(*) as n from lineitem group by l_shipmode"
    run(fleet.uri, sql)
    (record,) = records_for(fleet, sql)
    store = fleet.store()
    try:
        tasks = QueryStore(store).task_records(record.id)
    finally:
        store.close()
    assert len(tasks) == 5  # four partials and the merge
    tickets = [result_ticket(record.id, t.id) for t in tasks]

    def held() -> list[bytes]:
        found = []
        for worker in fleet.members("worker"):
            with fl.connect(worker.location) as client:
                for ticket in tickets:
                    try:
                        client.do_get(fl.Ticket(ticket)).read_all()
                        found.append(ticket)
                    except KeyError:  # NOT_FOUND
                        pass
        return found

    expected = [result_ticket(record.id, record.outputs[0])]
    deadline = time.monotonic() + 10
    while (now := held()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)  # the workers drop them on their status watch
    assert now == expected


def test_a_result_lost_with_its_worker_is_recomputed_from_lineage(etcd, tpch_dir, tmp_path):
    """Kill a worker just after it finished a partial the merge still needs."""

    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=2)
    store = fleet.store()
    qs = QueryStore(store)
    t, result = run_in_thread(fleet.uri, SLOW)
    try:
        victim = lost = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            for record in records_for(fleet, SLOW):
                done = [r for r in qs.task_records(record.id) if r.stage == 0 and r.done_by]
                if done:
                    victim, lost = done[0].done_by, done[0].id
            if victim is None:
                time.sleep(0.005)
        assert victim is not None, "no partial ever finished"
        pid = fleet.pid_of(victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        t.join(120)
        assert not t.is_alive(), "the query hung after losing a finished partial"
        assert "error" not in result, result.get("error")
        assert_same_result(result["table"], reference(tpch_dir, SLOW), ordered=False)
        (record,) = records_for(fleet, SLOW)
        (merge,) = [r for r in qs.task_records(record.id) if r.stage == 1]
        assert lost in merge.recomputed, (lost, merge)
        assert merge.done_by != victim
    finally:
        t.join(5)
        store.close()
        fleet.stop()


def test_a_partition_lost_with_its_worker_is_recomputed_by_the_front_door(etcd, tpch_dir, tmp_path):
    """The client got its endpoints, then the worker holding one of them died."""

    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=2)
    sql = "select o_orderkey, o_totalprice from orders where o_orderstatus = 'F'"
    try:
        with fl.connect(fleet.uri) as client:
            info = client.get_flight_info(statement_descriptor(sql))
            assert len(info.endpoints) == 4
            dead = info.endpoints[0].locations[0].uri.decode()
            (victim,) = [m for m in fleet.members("worker") if m.location == dead]
            os.kill(victim.pid, signal.SIGKILL)
            parts = []
            for ep in info.endpoints:
                uris = [loc.uri.decode() for loc in ep.locations]
                if uris[0] == dead:
                    with fl.connect(dead) as gone, pytest.raises(fl.FlightUnavailableError):
                        gone.do_get(ep.ticket).read_all()
                # the fallback location: the front door, recomputing what was lost
                parts.append(client.do_get(ep.ticket).read_all())
        assert_same_result(pa.concat_tables(parts), reference(tpch_dir, sql), ordered=False)
        # the recomputation ran as its own one-task query on the survivor
        store = fleet.store()
        try:
            recomputes = [
                r for r in QueryStore(store).all_records() if r.sql.startswith("-- recompute")
            ]
        finally:
            store.close()
        assert recomputes and all(r.ntasks == 1 for r in recomputes)
    finally:
        fleet.stop()
