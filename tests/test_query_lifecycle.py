"""How a query ends, on real processes: cancelled by its client (ADBC cancel, a
client killed mid-call, a gRPC deadline, CancelFlightInfo from any front door).

Each test reads the fleet's records in etcd to show that the query's tasks stopped
— no claim of it held a second later — and that the fleet serves the next query.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference, run, run_in_thread, start_fleet
from tpch_data import tpch_query

from duckfleet.client import statement_descriptor
from duckfleet.control import QueryStore
from duckfleet.control.records import EndReason, QueryRecord, QueryState
from duckfleet.local_fleet import LocalFleet
from duckfleet.verify import assert_same_result
from duckfleet.wire import sql_messages as sql
from duckfleet.wire.commands import pack, unpack
from duckfleet.wire.tickets import result_ticket

# Four partial tasks of about 15 s each on one core: it never finishes in a test.
LONG = """
select count(*) as n,
       sum((l_orderkey * 31 + n1.n_nationkey * n2.n_nationkey - n3.n_nationkey
            + n4.n_nationkey) % 7) as h
from lineitem, nation n1, nation n2, nation n3, nation n4
"""
NEXT = "select l_returnflag, count(*) as n, sum(l_quantity) as q from lineitem group by 1"


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def running_record(qs: QueryStore, sql_text: str) -> QueryRecord:
    """The record of the running query with this SQL, once one of its tasks is claimed."""
    found: list[QueryRecord] = []

    def claimed() -> bool:
        claimed_queries = {q for q, _, _ in qs.claims()}
        found[:] = [r for r in records_since(qs, sql_text, 0) if r.id in claimed_queries]
        return bool(found)

    wait_until(claimed, "the query's first task is claimed")
    return found[0]


def assert_freed(qs: QueryStore, record: QueryRecord, reason: EndReason) -> None:
    """The query is CANCELLED in etcd and, a second later, nothing of it runs or waits."""
    wait_until(lambda: qs.status(record.id).terminal, "the query ends")
    status = qs.status(record.id)
    assert status.state == QueryState.CANCELLED and status.reason == reason, status
    time.sleep(1.0)  # the wording: no task of it still running a second later
    assert [t for q, t, _ in qs.claims() if q == record.id] == []
    copies = qs.store.client.get_prefix(qs.keys.all_copies(), keys_only=True)
    assert [m.key for _, m in copies if record.id in m.key.decode()] == []
    keys = qs.keys
    for prefix in (keys.runnable_of(record.id), keys.results_of(record.id)):
        assert list(qs.store.client.get_prefix(prefix, keys_only=True)) == [], prefix
    assert all(r.done_by is None for r in qs.task_records(record.id))


def records_since(qs: QueryStore, sql_text: str, since: float) -> list[QueryRecord]:
    return [r for r in qs.all_records() if r.sql.strip() == sql_text.strip() and r.created >= since]


def assert_serves_next(fleet: LocalFleet, qs: QueryStore, tpch_dir) -> None:
    """The next query runs on the freed workers: right answer, every task done."""
    since = time.time()
    assert_same_result(run(fleet.uri, NEXT), reference(tpch_dir, NEXT), ordered=False)
    (record,) = records_since(qs, NEXT, since)
    assert all(r.done_by for r in qs.task_records(record.id))


@pytest.fixture(scope="module")
def fleet2(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    """Two front doors, two workers of one core each."""
    f = start_fleet(
        etcd, str(tpch_dir), str(tmp_path_factory.mktemp("lifecycle-logs")), frontdoors=2
    )
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def qs(fleet2: LocalFleet) -> Iterator[QueryStore]:
    store = fleet2.store()
    try:
        yield QueryStore(store)
    finally:
        store.close()


def test_adbc_cancel_stops_every_task_and_the_next_query_runs(fleet2, qs, tpch_dir):
    errors: list[BaseException] = []
    with flightsql.connect(fleet2.uri) as conn, conn.cursor() as cur:

        def execute() -> None:
            try:
                cur.execute(LONG)
            except adbc_driver_manager.Error as exc:
                errors.append(exc)

        client = threading.Thread(target=execute)
        client.start()
        record = running_record(qs, LONG)
        cur.adbc_cancel()
        client.join(30)
        assert not client.is_alive()
    (error,) = errors
    assert error.status_code == adbc_driver_manager.AdbcStatusCode.CANCELLED, error
    assert_freed(qs, record, EndReason.CLIENT)
    assert_serves_next(fleet2, qs, tpch_dir)


def test_a_client_killed_while_it_waits_cancels_its_query(fleet2, qs, tpch_dir):
    script = (
        "import sys, adbc_driver_flightsql.dbapi as f\n"
        "with f.connect(sys.argv[1]) as c, c.cursor() as cur:\n"
        "    cur.execute(sys.argv[2])\n"
    )
    client = subprocess.Popen([sys.executable, "-c", script, fleet2.uri, LONG])
    try:
        record = running_record(qs, LONG)
        client.kill()  # SIGKILL: the connection just drops
        client.wait(10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert_freed(qs, record, EndReason.CLIENT)
    assert_serves_next(fleet2, qs, tpch_dir)


def test_a_grpc_deadline_shorter_than_the_query_cancels_it(fleet2, qs, tpch_dir):
    since = time.time()
    with fl.connect(fleet2.uri) as client:
        options = fl.FlightCallOptions(timeout=1.0)
        with pytest.raises(fl.FlightTimedOutError):
            client.get_flight_info(statement_descriptor(LONG), options)
    (record,) = records_since(qs, LONG, since)
    assert_freed(qs, record, EndReason.CLIENT)
    assert_serves_next(fleet2, qs, tpch_dir)


def cancel_flight_info(client: fl.FlightClient, info: fl.FlightInfo) -> int:
    body = sql.CancelFlightInfoRequest(info=info.serialize()).SerializeToString()
    (result,) = client.do_action(fl.Action("CancelFlightInfo", body))
    return sql.CancelFlightInfoResult.FromString(result.body.to_pybytes()).status


def test_cancel_flight_info_on_another_front_door_stops_a_running_query(fleet2, qs, tpch_dir):
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            with fl.connect(fleet2.uri) as c:
                c.get_flight_info(statement_descriptor(LONG))
        except fl.FlightError as exc:
            errors.append(exc)

    waiting = threading.Thread(target=execute)
    waiting.start()
    try:
        record = running_record(qs, LONG)
        # the FlightInfo a client holds names the query in its endpoints' tickets
        endpoint = fl.FlightEndpoint(result_ticket(record.id, record.outputs[0]), [])
        info = fl.FlightInfo(pa.schema([]), statement_descriptor(LONG), [endpoint], -1, -1)
        other_door = f"grpc://127.0.0.1:{fleet2.frontdoor_ports[1]}"
        with fl.connect(other_door) as client:
            status = cancel_flight_info(client, info)
        assert status == sql.CancelFlightInfoResult.CANCEL_STATUS_CANCELLED
        waiting.join(30)
        assert not waiting.is_alive()
    finally:
        waiting.join(30)
    (error,) = errors
    assert isinstance(error, fl.FlightCancelledError) and "cancelled" in str(error), error
    assert_freed(qs, record, EndReason.CLIENT)
    assert_serves_next(fleet2, qs, tpch_dir)


def test_cancel_flight_info_on_a_finished_query_frees_its_results(fleet2, qs, tpch_dir):
    query = "select l_orderkey, l_quantity from lineitem where l_quantity > 45"
    with fl.connect(fleet2.uri) as client:
        info = client.get_flight_info(statement_descriptor(query))
        ticket = info.endpoints[0].ticket
        worker = info.endpoints[0].locations[0]
        with fl.connect(worker) as w:
            assert w.do_get(ticket).read_all().num_rows > 0  # held by its worker
        assert (
            cancel_flight_info(client, info) == sql.CancelFlightInfoResult.CANCEL_STATUS_CANCELLED
        )
        # the old form of the action, on a query already cancelled: still CANCELLED
        request = sql.ActionCancelQueryRequest(info=info.serialize())
        (result,) = client.do_action(fl.Action("CancelQuery", pack(request)))
        answer = unpack(result.body.to_pybytes(), sql.ActionCancelQueryResult, "result")
        assert answer.result == sql.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED
        # the worker dropped it; the front door refuses it rather than recomputing it
        with fl.connect(worker) as w:
            wait_until(lambda: _not_found(w, ticket), "the worker drops the result")
        with pytest.raises(fl.FlightCancelledError, match="cancelled"):
            client.do_get(ticket).read_all()
    assert_same_result(run(fleet2.uri, query), reference(tpch_dir, query), ordered=False)


def _not_found(client: fl.FlightClient, ticket: fl.Ticket) -> bool:
    try:
        client.do_get(ticket).read_all()
    except pa.ArrowKeyError:
        return True
    return False


TIMEOUT = 3


@pytest.fixture(scope="module")
def limited(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    """Two front doors and two workers, with every limit set low."""
    f = start_fleet(
        etcd,
        str(tpch_dir),
        str(tmp_path_factory.mktemp("limited-logs")),
        frontdoors=2,
        extra_env={
            "DUCKFLEET_QUERY_TIMEOUT": str(TIMEOUT),
            "DUCKFLEET_QUERY_MEMORY_LIMIT": "20MB",
            "DUCKFLEET_MAX_RESULT_BYTES": "200000",
        },
    )
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def limited_qs(limited: LocalFleet) -> Iterator[QueryStore]:
    store = limited.store()
    try:
        yield QueryStore(store)
    finally:
        store.close()


def test_query_timeout_answers_deadline_exceeded_and_frees_the_fleet(limited, limited_qs, tpch_dir):
    since = time.time()
    with pytest.raises(adbc_driver_manager.Error) as info:
        run(limited.uri, LONG)
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.TIMEOUT
    assert f"DUCKFLEET_QUERY_TIMEOUT={TIMEOUT}s" in str(info.value)
    (record,) = records_since(limited_qs, LONG, since)
    assert_freed(limited_qs, record, EndReason.TIMEOUT)
    assert_serves_next(limited, limited_qs, tpch_dir)


def test_workers_enforce_the_timeout_of_a_query_whose_front_door_died(
    limited, limited_qs, tpch_dir
):
    since = time.time()
    door = limited.frontdoor_procs[1]
    t, out = run_in_thread(f"grpc://127.0.0.1:{limited.frontdoor_ports[1]}", LONG)
    try:
        record = running_record(limited_qs, LONG)
        assert record.created >= since
        door.kill()  # nobody is left to wait for the query, or to time it out
        door.wait(10)
        t.join(30)
        assert isinstance(out.get("error"), adbc_driver_manager.Error), out
    finally:
        t.join(30)
    assert_freed(limited_qs, record, EndReason.TIMEOUT)  # the workers cancelled it
    assert f"DUCKFLEET_QUERY_TIMEOUT={TIMEOUT}s" in limited_qs.status(record.id).error
    assert_serves_next(limited, limited_qs, tpch_dir)


def assert_limit_error(uri: str, sql_text: str, *needles: str) -> None:
    with pytest.raises(adbc_driver_manager.Error) as info:
        run(uri, sql_text)
    # RESOURCE_EXHAUSTED cannot leave a pyarrow Flight server (see wire/status.py)
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "resource limit exceeded" in str(info.value)
    for needle in needles:
        assert needle in str(info.value)


def test_a_task_past_the_query_memory_limit_fails_the_query_saying_so(limited, tpch_dir):
    greedy = "select l_returnflag, list(l_comment || n_name) as c from lineitem, nation group by 1"
    assert_limit_error(limited.uri, greedy, "DUCKFLEET_QUERY_MEMORY_LIMIT=20MB", "out of memory")
    q1 = tpch_query(1)  # an ordinary query fits, and runs right, under the same limit
    assert_same_result(run(limited.uri, q1), reference(tpch_dir, q1), ordered=True)


def test_a_result_larger_than_the_cap_fails_the_query_naming_the_cap(limited, limited_qs, tpch_dir):
    # one partition alone is over the cap: the worker that computed it stops the query
    assert_limit_error(limited.uri, "select * from lineitem", "DUCKFLEET_MAX_RESULT_BYTES=200000")
    # each partition fits, the four together do not: the front door stops it
    since = time.time()
    spread = "select l_orderkey, l_quantity from lineitem where l_quantity > 40"
    assert_limit_error(limited.uri, spread, "DUCKFLEET_MAX_RESULT_BYTES=200000", "its result is")
    (record,) = records_since(limited_qs, spread, since)
    assert all(r.done_by for r in limited_qs.task_records(record.id))  # it had finished
    status = limited_qs.status(record.id)
    assert status.state == QueryState.FAILED and status.reason == EndReason.LIMIT
    assert_serves_next(limited, limited_qs, tpch_dir)
