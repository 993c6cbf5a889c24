"""`duckfleet up --frontdoors N`: several front doors behind one address.

The balancer (duckfleet/balancer.py) relays each connection to the next healthy front
door; a front door killed with SIGKILL is invisible to new connections."""

from __future__ import annotations

import signal
import time

import pytest
from fleet_fixture import reference, run, start_fleet

from duckfleet.balancer import Backend, Balancer, BalancerError, parse_backend
from duckfleet.control import QueryStore
from duckfleet.verify import assert_same_result


def balancer_of(*healthy: bool) -> Balancer:
    backends = [Backend("127.0.0.1", 1000 + i, healthy=h) for i, h in enumerate(healthy)]
    return Balancer("127.0.0.1", 0, backends)


def ports(backends: list[Backend]) -> list[int]:
    return [b.port for b in backends]


def test_candidates_go_round_robin_over_healthy_backends_only():
    b = balancer_of(True, False, True)
    assert [ports(b.candidates()) for _ in range(3)] == [[1000, 1002], [1002, 1000], [1002, 1000]]
    assert ports(b.candidates()) == [1000, 1002]


def test_with_no_healthy_backend_every_one_is_tried_in_turn():
    b = balancer_of(False, False)
    assert ports(b.candidates()) == [1000, 1001]
    assert ports(b.candidates()) == [1001, 1000]


def test_backend_arguments_are_checked():
    assert parse_backend("127.0.0.1:5000", "127.0.0.1:5001").health == ("127.0.0.1", 5001)
    assert parse_backend("h:5000", None).health is None
    with pytest.raises(BalancerError, match="HOST:PORT"):
        parse_backend("h", None)
    with pytest.raises(BalancerError, match="at least one backend"):
        Balancer("127.0.0.1", 0, [])


def frontdoors_of(fleet, sql: str) -> list[str]:
    store = fleet.store()
    try:
        return [r.frontdoor for r in QueryStore(store).all_records() if r.sql.strip() == sql]
    finally:
        store.close()


def test_up_with_two_front_doors_answers_through_one_address_after_one_is_killed(
    etcd, tpch_dir, tmp_path
):
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), frontdoors=2, workers=2)
    try:
        assert fleet.balancer_port is not None and fleet.uri.endswith(f":{fleet.balancer_port}")
        before = "select n_regionkey, count(*) as n from nation group by 1"
        expected = reference(tpch_dir, before)
        deadline = time.monotonic() + 30
        # a new connection each time, round-robin over the front doors the balancer
        # has seen healthy (it polls each one's health service every second)
        while len(set(frontdoors_of(fleet, before))) < 2:
            assert time.monotonic() < deadline, "the second front door never took a query"
            assert_same_result(run(fleet.uri, before), expected, ordered=False)

        fleet.frontdoor_procs[0].send_signal(signal.SIGKILL)
        fleet.frontdoor_procs[0].wait()
        after = "select l_returnflag, sum(l_quantity) as q from lineitem group by 1"
        expected = reference(tpch_dir, after)
        for _ in range(6):  # at once, before any health poll: none may fail
            assert_same_result(run(fleet.uri, after), expected, ordered=False)
    finally:
        fleet.stop()
