"""control/declarations.py against a real etcd: a declared death is fenced on the
member's incarnation, frees its claims at once without counting them as attempts,
revokes its lease, and a declared worker's late completion is refused."""

from __future__ import annotations

from test_control_queue import join, partial_merge_plan, result

from duckfleet.control import QueryStore, Store, TaskQueue
from duckfleet.control.declarations import HeldClaim, declare_dead
from duckfleet.control.detection import Target
from duckfleet.control.queries import runnable_marker
from duckfleet.control.records import Claim, QueryState
from duckfleet.ids import MemberId, QueryId, TaskId, new_query_id

T0 = TaskId("t0")


def incarnation(store: Store, member: str) -> Target:
    _, meta = store.client.get(store.keys.member("worker", member))
    assert meta is not None
    return Target(MemberId(member), int(meta.create_revision), int(meta.lease_id), "h", 0, 1)


def held(store: Store, member: str) -> list[HeldClaim]:
    out = []
    prefix = store.keys.all_claims()
    for value, meta in store.client.get_prefix(prefix):
        q, t = store.keys.split_task_key(meta.key, prefix)
        if Claim.from_json(value).worker == member:
            out.append(HeldClaim(q, t, bytes(value)))
    return out


def marker(store: Store, q: QueryId, t: TaskId):
    value, _ = store.client.get(store.keys.runnable(q, t))
    assert value is not None
    return runnable_marker(q, t, value)


def test_a_declared_death_frees_its_claim_without_counting_an_attempt(store):
    q = new_query_id()
    qs = QueryStore(store)
    qs.publish(q, partial_merge_plan(1), frontdoor=MemberId("fd"), ttl=60, max_attempts=1)
    queue = TaskQueue(store)
    a, b = join(store, "a"), join(store, "b")
    try:
        ct_a = queue.claim(marker(store, q, T0), MemberId("a"), "loc", a.lease_id)
        assert ct_a is not None
        target = incarnation(store, "a")
        assert declare_dead(store, target, held(store, "a")) is True
        # claim, member record and lease gone; the allowance is one higher
        assert queue.holds(ct_a) is False
        assert store.client.get(store.keys.member("worker", "a"))[0] is None
        assert int(store.client.get_lease_info(target.lease).TTL) <= 0
        raised = marker(store, q, T0)
        assert raised.max_attempts == 2
        # so the one attempt max_attempts=1 allows is not used up: b claims it
        ct_b = queue.claim(raised, MemberId("b"), "loc", b.lease_id)
        assert ct_b is not None
        assert queue.complete(ct_a, result("a"), b.lease_id) is False  # a, too late
        assert queue.complete(ct_b, result("b"), b.lease_id) is True
        assert qs.status(q).state == QueryState.RUNNING  # the merge is next
        assert qs.results(q, [T0])[T0].worker == "b"
        # declaring the same incarnation again changes nothing
        assert declare_dead(store, target, []) is False
    finally:
        a.stop(revoke=False)
        b.stop()


def test_a_declaration_of_an_incarnation_that_rejoined_does_not_apply(store):
    q = new_query_id()
    QueryStore(store).publish(q, partial_merge_plan(1), frontdoor=MemberId("fd"), ttl=60)
    queue = TaskQueue(store)
    a = join(store, "a")
    try:
        old = incarnation(store, "a")
        store.client.revoke_lease(a.lease_id)  # lost; it rejoins with a new record
        a2 = join(store, "a")
        ct = queue.claim(marker(store, q, T0), MemberId("a"), "loc", a2.lease_id)
        assert ct is not None
        assert declare_dead(store, old, held(store, "a")) is False
        assert queue.holds(ct)  # the new incarnation keeps its claim and lease
        assert int(store.client.get_lease_info(a2.lease_id).TTL) > 0
        assert marker(store, q, T0).max_attempts == 3
        a2.stop()
    finally:
        a.stop(revoke=False)


def test_a_stale_marker_does_not_fail_a_query_whose_allowance_was_raised(store):
    """A worker whose mirror still holds the marker from before a declaration sees
    its claim refused (out of attempts by that marker), but the query is not failed:
    the marker read in the claim's own transaction allows one more."""
    q = new_query_id()
    qs = QueryStore(store)
    qs.publish(q, partial_merge_plan(1), frontdoor=MemberId("fd"), ttl=60, max_attempts=1)
    queue = TaskQueue(store)
    a, b = join(store, "a"), join(store, "b")
    try:
        stale = marker(store, q, T0)
        assert queue.claim(stale, MemberId("a"), "loc", a.lease_id) is not None
        assert declare_dead(store, incarnation(store, "a"), held(store, "a"))
        assert queue.claim(stale, MemberId("b"), "loc", b.lease_id) is None  # stale: refused
        assert qs.status(q).state == QueryState.RUNNING  # and not failed
        assert queue.claim(marker(store, q, T0), MemberId("b"), "loc", b.lease_id) is not None
    finally:
        a.stop(revoke=False)
        b.stop()
