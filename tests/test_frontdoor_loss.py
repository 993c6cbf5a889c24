"""A front door killed (SIGKILL) while its client waits: the query it accepted is
finished by the workers and answered by another front door when the client retries;
tickets it issued are served by the other front door too."""

from __future__ import annotations

import os
import signal
import time

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference, run, run_in_thread, start_fleet
from test_query_lifecycle import records_since, wait_until

from duckfleet.client import statement_descriptor
from duckfleet.control import QueryStore
from duckfleet.control.fingerprints import Fingerprints, Waiter, fingerprint
from duckfleet.control.records import QueryState
from duckfleet.verify import assert_same_result

SQL = """
select l_returnflag, l_linestatus, count(*) as n, sum(l_extendedprice) as s
from lineitem group by 1, 2
"""
WAITING = fingerprint(SQL, priority=0)  # how front doors recognise a retry of it


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, tmp_path_factory):
    """Three front doors (each test kills one), two workers; leases long enough that
    workers frozen for a while keep their claims."""
    logs = str(tmp_path_factory.mktemp("frontdoor-loss-logs"))
    f = start_fleet(etcd, str(tpch_dir), logs, frontdoors=3, lease_ttl=20)
    try:
        yield f
    finally:
        f.stop()


def door(fleet, i: int) -> str:
    return f"grpc://127.0.0.1:{fleet.frontdoor_ports[i]}"


def test_a_retry_on_another_front_door_is_answered_by_the_query_the_dead_one_accepted(
    fleet, tpch_dir
):
    store = fleet.store()
    qs, prints = QueryStore(store), Fingerprints(store)
    second = _member_of(fleet, 1)
    workers = [m.pid for m in fleet.members()]
    since = time.time()
    t, out = run_in_thread(door(fleet, 0), SQL)
    try:
        wait_until(lambda: records_since(qs, SQL, since), "the query is published")
        for pid in workers:  # hold the query mid-flight, deterministically
            os.kill(pid, signal.SIGSTOP)
        (record,) = records_since(qs, SQL, since)
        first_door = fleet.frontdoor_procs[0]
        first_door.kill()  # SIGKILL while its client waits in GetFlightInfo
        first_door.wait(10)
        t.join(30)
        assert isinstance(out.get("error"), adbc_driver_manager.Error), out
        retry, answer = run_in_thread(door(fleet, 1), SQL)  # the client retries elsewhere
        assert [w.frontdoor for _, w in prints.waiting(WAITING)] == [record.frontdoor]
        wait_until(
            lambda: prints.waiting(WAITING) == [(record.id, Waiter(second, door(fleet, 1)))],
            "the retry adopts the query",
        )
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        workers = []
        retry.join(60)
        assert "error" not in answer, answer.get("error")
        assert_same_result(answer["table"], reference(tpch_dir, SQL), ordered=False)
        # one query ran: the one the dead front door accepted, answered by the other
        assert [r.id for r in records_since(qs, SQL, since)] == [record.id]
        assert record.frontdoor != second
        assert qs.status(record.id).state == QueryState.FINISHED
        assert all(r.done_by for r in qs.task_records(record.id))
        assert prints.waiting(WAITING) == []  # answered: nobody may adopt it again
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        t.join(10)
        store.close()


def test_tickets_of_a_dead_front_door_are_served_by_another(fleet, tpch_dir):
    with fl.connect(door(fleet, 1)) as client:
        info = client.get_flight_info(statement_descriptor(SQL))
    fleet.frontdoor_procs[1].kill()
    fleet.frontdoor_procs[1].wait(10)
    for endpoint in info.endpoints:  # the worker first, then the front door that issued it
        assert [loc.uri.decode() for loc in endpoint.locations][1] == door(fleet, 1)
    with fl.connect(door(fleet, 1)) as dead:
        with pytest.raises(fl.FlightUnavailableError):
            dead.do_get(info.endpoints[0].ticket).read_all()
    with fl.connect(door(fleet, 2)) as other:
        parts = [other.do_get(e.ticket).read_all() for e in info.endpoints]
    assert_same_result(pa.concat_tables(parts), reference(tpch_dir, SQL), ordered=False)
    # and the surviving front door runs new queries
    assert_same_result(run(door(fleet, 2), SQL), reference(tpch_dir, SQL), ordered=False)


def _member_of(fleet, i: int) -> str:
    (member,) = [
        m.id
        for m in fleet.members("frontdoor")
        if m.location.endswith(f":{fleet.frontdoor_ports[i]}")
    ]
    return member
