"""The claim/complete protocol against a real etcd server."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pyarrow as pa
import pytest

from duckfleet.control import Membership, QueryStore, Store, TaskQueue
from duckfleet.control.queries import FEW_INPUTS, StatusWatch
from duckfleet.control.records import MemberInfo, QueryState, ResultInfo, RunnableTask
from duckfleet.ids import MemberId, QueryId, TaskId, new_query_id, task_id
from duckfleet.planner.plan import InputBinding, Plan, Stage, StageKind, TaskPlan

SCHEMA = pa.schema([("x", pa.int64())])


def partial_merge_plan(n: int) -> Plan:
    partials = tuple(TaskPlan(task_id(i), 0, f"select {i} as x") for i in range(n))
    merge = TaskPlan(
        task_id(n),
        1,
        "select sum(x) from __stage0",
        inputs=(InputBinding("__stage0", tuple(t.id for t in partials)),),
    )
    return Plan(
        sql="test",
        stages=(Stage(0, StageKind.PARTIAL, partials), Stage(1, StageKind.MERGE, (merge,))),
        reason="test",
    )


def result(worker: str) -> ResultInfo:
    return ResultInfo(MemberId(worker), "grpc://127.0.0.1:1", 1, 8, SCHEMA)


def ref(store: Store, q: QueryId, t: str) -> RunnableTask:
    """The RunnableTask a worker would have listed for (q, t)."""
    record = QueryStore(store).record(q)
    return RunnableTask(q, TaskId(t), record.created, 0, 0, record.lease, record.max_attempts)


def join(store: Store, name: str, ttl: int = 5) -> Membership:
    info = MemberInfo(MemberId(name), "worker", "grpc://127.0.0.1:1", 1)
    return Membership(store, info, ttl=ttl).start()


@pytest.mark.parametrize("n", [40, FEW_INPUTS + 5], ids=["done-keys", "pending-counter"])
def test_racing_workers_run_every_task_exactly_once(etcd, store, n):
    """A merge of few inputs is made runnable by comparing their done keys; one of
    many inputs by counting down its pending counter: either way exactly once, after
    the last input."""
    plan = partial_merge_plan(n)
    q = new_query_id()
    QueryStore(store).publish(q, plan, frontdoor=MemberId("fd"), ttl=60)
    counter, _ = store.client.get(store.keys.pending(q, task_id(n)))
    assert (counter is not None) == (n > FEW_INPUTS)
    runs: Counter[TaskId] = Counter()
    merge_saw_done: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        s = Store(etcd.url, namespace=store.keys.namespace)
        member = join(s, name)
        queue = TaskQueue(s)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if QueryStore(s).status(q).state != QueryState.RUNNING:
                    return
                for rt in queue.runnable():
                    ct = queue.claim(rt, member.info.id, "loc", member.lease_id)
                    if ct is None:
                        continue
                    with lock:
                        runs[ct.task_id] += 1
                        if ct.task.plan.stage == 1:
                            merge_saw_done.append(sum(runs[t] for t in ct.task.plan.input_tasks))
                    assert queue.complete(ct, result(name), member.lease_id)
                    break
        finally:
            member.stop()
            s.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert QueryStore(store).status(q).state == QueryState.FINISHED
    assert runs == Counter({t.id: 1 for t in plan.tasks}), runs
    # the merge became runnable only after all n partials had completed
    assert merge_saw_done == [n]
    records = QueryStore(store).task_records(q)
    assert len({r.done_by for r in records}) > 1  # the work was spread
    assert all(r.done_by is not None for r in records)


@pytest.mark.parametrize("n", [3, FEW_INPUTS + 1], ids=["done-keys", "pending-counter"])
def test_a_merge_becomes_runnable_with_its_last_input_and_the_query_finishes_with_it(store, n):
    plan = partial_merge_plan(n)
    q = new_query_id()
    qs = QueryStore(store)
    qs.publish(q, plan, frontdoor=MemberId("fd"), ttl=60)
    queue = TaskQueue(store)
    w = join(store, "w")
    merge = task_id(n)
    try:
        claimed = [
            queue.claim(ref(store, q, t.id), w.info.id, "loc", w.lease_id) for t in plan.tasks[:n]
        ]
        for ct in claimed:
            assert ct is not None
            assert merge not in {rt.task for rt in queue.runnable()}
            assert queue.complete(ct, result("w"), w.lease_id)
        assert [rt.task for rt in queue.runnable()] == [merge]
        assert qs.status(q).state == QueryState.RUNNING
        (listed,) = queue.runnable()
        ct = queue.claim(listed, w.info.id, "loc", w.lease_id)
        # the claim read where the merge's inputs are, in the same round trip
        assert ct is not None and ct.results is not None
        assert set(ct.results) == {t.id for t in plan.tasks[:n]}
        assert queue.complete(ct, result("w"), w.lease_id)
        assert qs.status(q).state == QueryState.FINISHED
    finally:
        w.stop()


def test_completion_is_fenced_on_the_claim(store):
    plan = partial_merge_plan(2)
    q = new_query_id()
    qs = QueryStore(store)
    qs.publish(q, plan, frontdoor=MemberId("fd"), ttl=60)
    queue = TaskQueue(store)
    a = join(store, "a")
    b = join(store, "b")
    try:
        ct = queue.claim(ref(store, q, "t0"), MemberId("a"), "loc", a.lease_id)
        assert ct is not None
        # a second claim of a claimed task fails
        assert queue.claim(ref(store, q, "t0"), MemberId("b"), "loc", b.lease_id) is None
        # a's lease ends (as if it was cut off): its claim vanishes with it
        store.client.revoke_lease(a.lease_id)
        ct_b = queue.claim(ref(store, q, "t0"), MemberId("b"), "loc", b.lease_id)
        assert ct_b is not None
        # a's late completion is refused; b's is accepted
        assert queue.complete(ct, result("a"), b.lease_id) is False
        assert queue.complete(ct_b, result("b"), b.lease_id) is True
        assert qs.results(q, [TaskId("t0")])[TaskId("t0")].worker == "b"
    finally:
        a.stop(revoke=False)
        b.stop()


def test_failing_a_task_fails_the_query_and_withdraws_work(store):
    plan = partial_merge_plan(3)
    q = QueryId(new_query_id())
    qs = QueryStore(store)
    qs.publish(q, plan, frontdoor=MemberId("fd"), ttl=60)
    queue = TaskQueue(store)
    w = join(store, "w")
    try:
        ct = queue.claim(ref(store, q, "t1"), MemberId("w"), "loc", w.lease_id)
        assert ct is not None
        assert queue.fail(ct, "Conversion Error: boom")
        status = qs.status(q)
        assert status.state == QueryState.FAILED and "boom" in status.error and status.task == "t1"
        assert queue.runnable() == []
        assert queue.claim(ref(store, q, "t2"), MemberId("w"), "loc", w.lease_id) is None
    finally:
        w.stop()


def test_wait_returns_when_the_query_finishes(store):
    plan = partial_merge_plan(1)
    q = new_query_id()
    qs = QueryStore(store)
    qs.publish(q, plan, frontdoor=MemberId("fd"), ttl=60)
    queue = TaskQueue(store)
    w = join(store, "w")

    def finish() -> None:
        time.sleep(0.3)
        for tid in ("t0", "t1"):
            ct = queue.claim(ref(store, q, tid), MemberId("w"), "loc", w.lease_id)
            assert ct is not None
            queue.complete(ct, result("w"), w.lease_id)

    watch = StatusWatch(store).start()
    try:
        threading.Thread(target=finish).start()
        t0 = time.monotonic()
        with watch.waiting(q) as changed:
            status = qs.wait(q, timeout=10, changed=changed)
        assert status.state == QueryState.FINISHED
        assert time.monotonic() - t0 < 5
    finally:
        watch.stop()
        w.stop()


def test_a_task_whose_workers_keep_dying_fails_the_query_after_max_attempts(store):
    plan = partial_merge_plan(1)
    q = new_query_id()
    qs = QueryStore(store)
    qs.publish(q, plan, frontdoor=MemberId("fd"), ttl=60, max_attempts=3)
    queue = TaskQueue(store)
    for i in range(3):
        w = join(store, f"doomed{i}")
        assert queue.claim(ref(store, q, "t0"), MemberId(f"doomed{i}"), "loc", w.lease_id)
        w.stop(revoke=True)  # the worker is lost mid-task: its claim vanishes
    last = join(store, "last")
    try:
        assert queue.claim(ref(store, q, "t0"), MemberId("last"), "loc", last.lease_id) is None
        status = qs.status(q)
        assert status.state == QueryState.FAILED and status.task == "t0"
        assert "started 3 times" in status.error
        assert queue.runnable() == []
    finally:
        last.stop()


def test_several_claims_in_one_transaction_each_succeed_or_fail_alone(etcd, store):
    """A worker with free slots claims several tasks in one etcd transaction (one
    disk sync); a task claimed by another worker in the meantime is missed alone,
    and the claims it won carry what their tasks need, as single claims do."""
    plan = partial_merge_plan(4)
    q = new_query_id()
    qs = QueryStore(store)
    qs.publish(q, plan, frontdoor=MemberId("fd"), ttl=60)
    queue = TaskQueue(store)
    a, b = join(store, "a"), join(store, "b")
    try:
        rts = [ref(store, q, f"t{i}") for i in range(4)]
        assert queue.claim(rts[1], MemberId("b"), "loc", b.lease_id) is not None
        revision = store.client.status().raft_index
        won = queue.claim_many(rts, MemberId("a"), "loc-a", a.lease_id)
        assert store.client.status().raft_index == revision + 1  # one transaction
        assert [ct is not None for ct in won] == [True, False, True, True]
        for i, ct in enumerate(won):
            if ct is not None:
                assert ct.task_id == f"t{i}" and ct.record.id == q
                assert ct.claim.worker == "a" and ct.claim.location == "loc-a"
        tokens = {ct.claim.token for ct in won if ct is not None}
        assert len(tokens) == 3  # each claim its own fence
        # claimed again: all missed; completed under their own fences
        assert queue.claim_many(rts, MemberId("b"), "loc", b.lease_id) == [None] * 4
        for ct in won:
            if ct is not None:
                assert queue.complete(ct, result("a"), a.lease_id)
        assert queue.runnable() == []  # t1 is still b's; the merge waits for it
    finally:
        a.stop()
        b.stop()
