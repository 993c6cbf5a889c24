"""The fast path on real processes (DESIGN.md "The fast path"; flight/fast_path.py,
worker/offers.py): a small one-task query offered straight to a worker, recorded in
etcd like any other, and the faults it must survive: its worker SIGKILLed, its
front door SIGKILLed, a cancel from another front door, etcd stopped. Every answer
is checked against DuckDB in-process.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference, run, start_fleet

from duckfleet.client import statement_descriptor
from duckfleet.control import QueryStore
from duckfleet.control.records import EndReason, QueryRecord, QueryState
from duckfleet.etcd_server import EtcdServer
from duckfleet.local_fleet import LocalFleet
from duckfleet.verify import assert_same_result
from duckfleet.wire import sql_messages as sql
from duckfleet.wire.tickets import result_ticket

SMALL = "select n_regionkey, count(*) as n, min(n_name) as first from nation group by 1"
# small inputs (nation and region), seconds of work: a fast-path query that is still
# running when the test does something to it
MID = (
    "select count(*) as n, sum(length(md5(n1.n_name || n2.n_name || n3.n_name))) as h "
    "from nation n1, nation n2, nation n3, region r0, region r1, region r2, region r3"
)
# the same, minutes of work: it never finishes in a test
LONG = MID + ", region r4, region r5"


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def records_of(qs: QueryStore, sql_text: str, since: float = 0.0) -> list[QueryRecord]:
    found = [r for r in qs.all_records() if r.sql.strip() == sql_text.strip()]
    return sorted((r for r in found if r.created >= since), key=lambda r: r.created)


def claimed(qs: QueryStore, sql_text: str, since: float) -> tuple[QueryRecord, str]:
    """The running query with this SQL once a worker holds its task, and that worker."""
    found: list[tuple[QueryRecord, str]] = []

    def held() -> bool:
        claims = {q: c.worker for q, _, c in qs.claims()}
        found[:] = [(r, claims[r.id]) for r in records_of(qs, sql_text, since) if r.id in claims]
        return bool(found)

    wait_until(held, "a worker holds the query's task")
    return found[0]


def explain_path(uri: str, sql_text: str) -> str:
    rows = run(uri, f"EXPLAIN {sql_text}").to_pylist()
    return next(r["detail"] for r in rows if r["kind"] == "path")


def in_thread(fn: Callable[[], pa.Table]) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def body() -> None:
        try:
            out["table"] = fn()
        except Exception as exc:  # reported by the test
            out["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    return t, out


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    """Two front doors (behind the balancer), two workers of one slot each."""
    f = start_fleet(etcd, str(tpch_dir), str(tmp_path_factory.mktemp("fast-logs")), frontdoors=2)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def qs(fleet: LocalFleet) -> Iterator[QueryStore]:
    store = fleet.store()
    try:
        yield QueryStore(store)
    finally:
        store.close()


def test_a_small_query_takes_the_fast_path_is_recorded_and_runs_every_time(fleet, qs, tpch_dir):
    assert explain_path(fleet.uri, SMALL).startswith("fast path: one task over ")
    since = time.time()
    expected = reference(tpch_dir, SMALL)
    for _ in range(2):  # no result cache: each execution runs
        assert_same_result(run(fleet.uri, SMALL), expected, ordered=False)
    records = records_of(qs, SMALL, since)
    assert len(records) == 2 and records[0].id != records[1].id
    for record in records:
        assert record.ntasks == 1
        wait_until(lambda r=record: qs.status(r.id).terminal, "the completion is committed")
        assert qs.status(record.id).state == QueryState.FINISHED
        (task,) = qs.task_records(record.id)
        assert task.done_by is not None and task.done_by.startswith("worker-")
        assert task.rows == expected.num_rows


def test_a_fast_path_answer_fetched_through_the_front_door_at_once_is_served(fleet, tpch_dir):
    """The worker answers an offer before it commits the completion, so a client
    that fetches through the front door (its endpoint's second location) may ask
    while the query is still RUNNING: the front door waits for the commit."""
    expected = reference(tpch_dir, SMALL)
    with fl.connect(fleet.frontdoor_uri(0)) as client:
        for _ in range(5):
            info = client.get_flight_info(statement_descriptor(SMALL))
            (endpoint,) = info.endpoints
            table = client.do_get(endpoint.ticket).read_all()  # at once, via the front door
            assert_same_result(table, expected, ordered=False)


def test_what_does_not_qualify_goes_through_the_queue(fleet, qs, tpch_dir):
    many = "select l_returnflag, count(*) as n from lineitem group by 1"
    path = explain_path(fleet.uri, many)
    assert path.startswith("queue: ") and "tasks" in path, path
    since = time.time()
    assert_same_result(run(fleet.uri, many), reference(tpch_dir, many), ordered=False)
    (record,) = records_of(qs, many, since)
    assert record.ntasks > 1
    # a write is never offered: it runs through the queue, and its answer is right
    with flightsql.connect(fleet.uri) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE fast_copy AS SELECT * FROM nation")
    copied = "select * from fast_copy"
    assert_same_result(
        run(fleet.uri, copied), reference(tpch_dir, "select * from nation"), ordered=False
    )


def test_a_fast_path_failure_is_the_query_failure(fleet, qs):
    since = time.time()
    bad = "select cast(n_name as integer) as x from nation"
    with pytest.raises(adbc_driver_manager.Error, match=r"(?i)convert"):
        run(fleet.uri, bad)
    (record,) = records_of(qs, bad, since)
    assert qs.status(record.id).state == QueryState.FAILED


def test_a_worker_killed_while_it_runs_a_fast_path_query_costs_a_retry(fleet, qs, tpch_dir):
    since = time.time()
    t, out = in_thread(lambda: run(fleet.uri, MID))
    record, worker = claimed(qs, MID, since)
    pid = fleet.pid_of(worker)
    assert pid is not None
    index = next(i for i, p in enumerate(fleet.worker_procs) if p.pid == pid)
    os.kill(pid, signal.SIGKILL)
    try:
        t.join(120)
        assert not t.is_alive() and "error" not in out, out.get("error")
        assert_same_result(out["table"], reference(tpch_dir, MID), ordered=False)
        first, *again = records_of(qs, MID, since)
        assert first.id == record.id
        assert qs.status(first.id).state == QueryState.CANCELLED  # ended, not left waiting
        assert len(again) == 1 and qs.status(again[0].id).state == QueryState.FINISHED
        (task,) = qs.task_records(again[0].id)
        assert task.done_by not in (None, worker)
    finally:
        fleet.worker_procs[index].wait(10)
        fleet.restart_worker(index)
        wait_until(lambda: len(fleet.members("worker")) == 2, "the worker rejoins")


def test_a_front_door_killed_while_it_waits_costs_a_retry_on_another(fleet, qs, tpch_dir):
    since = time.time()
    t, out = in_thread(lambda: run(fleet.frontdoor_uri(0), MID))
    record, _ = claimed(qs, MID, since)
    fleet.frontdoor_procs[0].send_signal(signal.SIGKILL)
    try:
        t.join(60)
        assert not t.is_alive()
        error = out.get("error")
        assert isinstance(error, adbc_driver_manager.Error), out
        # the client's retry, on the front door that is left
        assert_same_result(
            run(fleet.frontdoor_uri(1), MID), reference(tpch_dir, MID), ordered=False
        )
        # the query the dead front door offered still ended: its worker finished it
        wait_until(lambda: qs.status(record.id).terminal, "the orphaned query ends")
        assert qs.status(record.id).state == QueryState.FINISHED
    finally:
        fleet.frontdoor_procs[0].wait(10)
        fleet.restart_frontdoor(0)
    wait_until(lambda: _answers(fleet.frontdoor_uri(0)), "the front door is back")


def _answers(uri: str) -> bool:
    try:
        return run(uri, "select 1 as x").to_pylist() == [{"x": 1}]
    except adbc_driver_manager.Error:
        return False


def cancel_flight_info(client: fl.FlightClient, info: fl.FlightInfo) -> int:
    body = sql.CancelFlightInfoRequest(info=info.serialize()).SerializeToString()
    (result,) = client.do_action(fl.Action("CancelFlightInfo", body))
    return sql.CancelFlightInfoResult.FromString(result.body.to_pybytes()).status


def test_a_fast_path_query_cancelled_from_another_front_door_stops(fleet, qs, tpch_dir):
    since = time.time()

    def waits() -> pa.Table:
        with fl.connect(fleet.frontdoor_uri(0)) as c:
            c.get_flight_info(statement_descriptor(LONG))
        return pa.table({})

    t, out = in_thread(waits)
    record, _ = claimed(qs, LONG, since)
    assert record.ntasks == 1
    endpoint = fl.FlightEndpoint(result_ticket(record.id, record.outputs[0]), [])
    info = fl.FlightInfo(pa.schema([]), statement_descriptor(LONG), [endpoint], -1, -1)
    with fl.connect(fleet.frontdoor_uri(1)) as other:
        assert cancel_flight_info(other, info) == sql.CancelFlightInfoResult.CANCEL_STATUS_CANCELLED
    t.join(30)
    assert not t.is_alive()
    error = out.get("error")
    assert isinstance(error, fl.FlightCancelledError) and "cancelled" in str(error), out
    status = qs.status(record.id)
    assert status.state == QueryState.CANCELLED and status.reason == EndReason.CLIENT
    wait_until(lambda: not [q for q, _, _ in qs.claims() if q == record.id], "its claim is freed")
    assert_same_result(run(fleet.uri, SMALL), reference(tpch_dir, SMALL), ordered=False)


def test_etcd_stopped_mid_fast_path_query_never_gives_a_wrong_answer(tpch_dir, tmp_path):
    server = EtcdServer(data_dir=str(tmp_path / "etcd"), log_path=str(tmp_path / "etcd.log"))
    server.start()
    fleet = start_fleet(server, str(tpch_dir), str(tmp_path), workers=1)
    store = fleet.store()
    try:
        qs = QueryStore(store)
        since = time.time()
        t, out = in_thread(lambda: run(fleet.uri, MID))
        claimed(qs, MID, since)
        server.stop()
        t.join(60)
        assert not t.is_alive()
        if "error" in out:  # unavailable, saying so; else the answer it had
            error = out["error"]
            assert isinstance(error, adbc_driver_manager.Error), error
            assert "etcd" in str(error), error
        else:
            assert_same_result(out["table"], reference(tpch_dir, MID), ordered=False)
        assert all(p.poll() is None for p in fleet.frontdoor_procs + fleet.worker_procs)
        server.start()
        wait_until(lambda: _answers(fleet.uri), "the fleet answers again", timeout=60)
        assert_same_result(run(fleet.uri, SMALL), reference(tpch_dir, SMALL), ordered=False)
    finally:
        store.close()
        fleet.stop()
        server.stop()


def test_small_files_packed_into_one_split_make_a_fast_path_query(etcd, tpch_dir, tmp_path):
    """With packing on (the default outside the tests), lineitem's 4 small files are
    one split, and a grouped aggregate over it one fast-path task."""
    pack = {"DUCKFLEET_PACK_BYTES": str(32 * 1024 * 1024)}
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), extra_env=pack)
    store = fleet.store()
    try:
        grouped = (
            "select l_returnflag, count(*) as n, sum(l_quantity) as q from lineitem group by 1"
        )
        assert explain_path(fleet.uri, grouped).startswith("fast path: one task over ")
        since = time.time()
        assert_same_result(run(fleet.uri, grouped), reference(tpch_dir, grouped), ordered=False)
        (record,) = records_of(QueryStore(store), grouped, since)
        assert record.ntasks == 1
    finally:
        store.close()
        fleet.stop()


def test_a_short_query_takes_the_headroom_of_a_worker_whose_slots_are_full(
    etcd, tpch_dir, tmp_path
):
    """One worker of one slot running a long fast-path query: a short one is offered
    the headroom the worker keeps for short queries (DUCKFLEET_SHORT_SLOTS=1) and
    answers at once on the fast path, not behind the long one."""
    f = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=1)
    store = f.store()
    try:
        qs = QueryStore(store)
        since = time.time()

        def waits() -> pa.Table:
            with fl.connect(f.uri) as c:
                c.get_flight_info(statement_descriptor(LONG))
            return pa.table({})

        t, out = in_thread(waits)
        long_record, worker = claimed(qs, LONG, since)
        assert_same_result(run(f.uri, SMALL), reference(tpch_dir, SMALL), ordered=False)
        (short,) = records_of(qs, SMALL, since)
        assert short.path == "fast" and short.ntasks == 1
        # by the only worker, its one slot held by the long query: in the headroom
        wait_until(
            lambda: [r.done_by for r in qs.task_records(short.id)] == [worker],
            "the short query's completion is committed",
        )
        assert qs.status(long_record.id).state == QueryState.RUNNING
        endpoint = fl.FlightEndpoint(result_ticket(long_record.id, long_record.outputs[0]), [])
        info = fl.FlightInfo(pa.schema([]), statement_descriptor(LONG), [endpoint], -1, -1)
        with fl.connect(f.uri) as c:
            assert cancel_flight_info(c, info) == sql.CancelFlightInfoResult.CANCEL_STATUS_CANCELLED
        t.join(30)
        assert not t.is_alive() and isinstance(out.get("error"), fl.FlightCancelledError), out
    finally:
        store.close()
        f.stop()
