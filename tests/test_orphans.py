"""Which earlier query a retried request may adopt, against a real etcd: only one
whose front door is gone, that still runs or just finished."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from test_control_queue import partial_merge_plan

from duckfleet.control import Membership, QueryStore, Store
from duckfleet.control.fingerprints import Fingerprints, Waiter, fingerprint
from duckfleet.control.records import MemberInfo, QueryState, QueryStatus
from duckfleet.flight.orphans import ADOPT_FINISHED_WITHIN, adopt
from duckfleet.ids import MemberId, new_query_id

F = fingerprint("select 1", priority=0)
ME = Waiter(MemberId("frontdoor-me"), "grpc://127.0.0.1:1")


def test_fingerprints_tell_requests_apart():
    assert fingerprint("select 1", priority=0) == F
    assert fingerprint("select 1", priority=1) != F
    assert fingerprint("select 2", priority=0) != F
    assert fingerprint("select 1", priority=0, user="alice") != F


@pytest.fixture
def listening() -> Iterator[str]:
    """The location of a live front door: something accepts connections there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"grpc://127.0.0.1:{s.getsockname()[1]}"


def closed_location() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"grpc://127.0.0.1:{s.getsockname()[1]}"  # closed when we return


def publish(store: Store, waiter: Waiter) -> str:
    q = new_query_id()
    QueryStore(store).publish(
        q, partial_merge_plan(2), frontdoor=waiter.frontdoor, ttl=60, fingerprint=(F, waiter)
    )
    return q


def register(store: Store, waiter: Waiter) -> Membership:
    info = MemberInfo(waiter.frontdoor, "frontdoor", waiter.location)
    return Membership(store, info, ttl=10).start()


def test_a_query_whose_front_door_closed_its_port_is_adopted_once(store, listening):
    dead = Waiter(MemberId("frontdoor-dead"), closed_location())
    me = Waiter(MemberId("frontdoor-me"), listening)
    members = [register(store, dead), register(store, me)]  # dead's record is still there
    try:
        q = publish(store, dead)
        prints, queries = Fingerprints(store), QueryStore(store)
        assert adopt(prints, queries, F, me) == q
        assert prints.waiting(F) == [(q, me)]
        other = Waiter(MemberId("frontdoor-other"), "grpc://127.0.0.1:2")
        assert adopt(prints, queries, F, other) is None  # its waiter now is me, alive
    finally:
        for m in members:
            m.stop()


def test_a_live_front_doors_query_is_not_adopted(store, listening):
    alive = Waiter(MemberId("frontdoor-alive"), listening)
    member = register(store, alive)
    try:
        publish(store, alive)
        assert adopt(Fingerprints(store), QueryStore(store), F, ME) is None
        publish(store, ME)  # nor one of the asking front door itself
        assert adopt(Fingerprints(store), QueryStore(store), F, ME) is None
    finally:
        member.stop()


def test_only_running_or_just_finished_queries_are_adopted(store):
    gone = Waiter(MemberId("frontdoor-gone"), closed_location())  # no member record
    prints, queries = Fingerprints(store), QueryStore(store)
    q = publish(store, gone)
    queries.end(q, QueryStatus(QueryState.CANCELLED, error="by its client"))
    assert adopt(prints, queries, F, ME) is None
    stale = publish(store, gone)
    long_ago = QueryStatus(QueryState.FINISHED, at=time.time() - ADOPT_FINISHED_WITHIN - 1)
    store.client.put(store.keys.status(stale), long_ago.to_json())
    assert adopt(prints, queries, F, ME) is None
    fresh = publish(store, gone)
    just_now = QueryStatus(QueryState.FINISHED, at=time.time())
    store.client.put(store.keys.status(fresh), just_now.to_json())
    assert adopt(prints, queries, F, ME) == fresh
    assert json.loads(store.client.get(store.keys.fingerprint(F, fresh))[0]) == {
        "frontdoor": ME.frontdoor,
        "location": ME.location,
    }
