"""A front door frozen (SIGSTOP) while its client waits: its port still accepts
connections and its lease is far from expiring, but its health port does not
answer, so the client's retry on another front door adopts the query it accepted
instead of running it again (flight/orphans.py)."""

from __future__ import annotations

import os
import signal
import time

from fleet_fixture import reference, run_in_thread, start_fleet
from test_frontdoor_loss import SQL, WAITING
from test_query_lifecycle import records_since, wait_until

from duckfleet.control import QueryStore
from duckfleet.control.fingerprints import Fingerprints
from duckfleet.control.records import QueryState
from duckfleet.verify import assert_same_result


def door(fleet, i: int) -> str:
    return f"grpc://127.0.0.1:{fleet.frontdoor_ports[i]}"


def test_a_retry_adopts_the_query_of_a_frozen_front_door(etcd, tpch_dir, tmp_path):
    # leases far longer than the test: only the health probe can tell it is frozen
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), frontdoors=2, lease_ttl=20)
    store = fleet.store()
    qs, prints = QueryStore(store), Fingerprints(store)
    workers = [m.pid for m in fleet.members()]
    frozen = fleet.frontdoor_procs[0]
    since = time.time()
    t, _ = run_in_thread(door(fleet, 0), SQL)
    stopped: list[int] = []
    try:
        wait_until(lambda: records_since(qs, SQL, since), "the query is published")
        for pid in workers:  # hold the query mid-flight, deterministically
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        (record,) = records_since(qs, SQL, since)
        os.kill(frozen.pid, signal.SIGSTOP)  # its client waits on, in GetFlightInfo
        stopped.append(frozen.pid)
        assert record.frontdoor in {m.id for m in fleet.members("frontdoor")}  # still a member
        retry, answer = run_in_thread(door(fleet, 1), SQL)  # the client retries elsewhere
        wait_until(
            lambda: [w.location for _, w in prints.waiting(WAITING)] == [door(fleet, 1)],
            "the retry adopts the query",
        )
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
            stopped.remove(pid)
        retry.join(60)
        assert "error" not in answer, answer.get("error")
        assert_same_result(answer["table"], reference(tpch_dir, SQL), ordered=False)
        # one query ran: the one the frozen front door accepted
        assert [r.id for r in records_since(qs, SQL, since)] == [record.id]
        assert qs.status(record.id).state == QueryState.FINISHED
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        t.join(30)
        store.close()
        fleet.stop()
