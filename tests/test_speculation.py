"""Speculation: the pure decision, the copy claim against a real etcd, and a fleet
whose worker is frozen mid-task (SIGSTOP, shorter than its lease) while the copy
on the other worker finishes the query."""

from __future__ import annotations

import os
import signal

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference, run_in_thread, start_fleet
from test_control_queue import join, partial_merge_plan, ref, result
from test_query_lifecycle import wait_until

from duckfleet.control import QueryStore, TaskQueue
from duckfleet.control.records import QueryState
from duckfleet.control.speculation import (
    Attempt,
    SpeculationPolicy,
    StageProgress,
    next_look,
    old_enough,
    stragglers,
)
from duckfleet.ids import MemberId, QueryId, TaskId, new_query_id
from duckfleet.verify import assert_same_result
from duckfleet.wire.tickets import result_ticket

POLICY = SpeculationPolicy(factor=2.0, min_seconds=1.0, quantile=0.5)
Q = QueryId("q")
ME = MemberId("me")


def attempt(t: int, started: float, worker: str = "slow", copied: bool = False) -> Attempt:
    return Attempt(Q, TaskId(f"t{t}"), MemberId(worker), started, copied)


def stage0(*durations: float, tasks: int = 4) -> dict[tuple[QueryId, int], StageProgress]:
    return {(Q, 0): StageProgress(tasks, durations)}


STAGES = {(Q, TaskId(f"t{i}")): 0 for i in range(4)}


# --- the decision, pure -----------------------------------------------------------------


def test_a_task_far_past_its_stage_median_is_a_straggler():
    now = 100.0
    running = [attempt(0, started=now - 5.0)]  # 5 s; the others took about 1 s
    decision = stragglers(running, STAGES, stage0(0.9, 1.0, 1.2), now, POLICY)
    assert decision.copy == (running[0],)


def test_a_task_within_factor_times_the_median_is_left_alone_until_it_is_not():
    now = 100.0
    running = [attempt(0, started=now - 1.5)]  # limit: 2 x median 1.0 = 2.0 s
    decision = stragglers(running, STAGES, stage0(0.9, 1.0, 1.2), now, POLICY)
    assert decision.copy == ()
    assert decision.recheck_in == pytest.approx(0.5)


def test_no_median_no_speculation():
    now = 100.0
    running = [attempt(0, started=now - 60.0)]
    # nothing of its stage has finished, or too little of it (1 of 4 < half)
    assert stragglers(running, STAGES, stage0(), now, POLICY).copy == ()
    assert stragglers(running, STAGES, stage0(0.1), now, POLICY).copy == ()
    assert stragglers(running, STAGES, stage0(0.1, 0.1), now, POLICY).copy == (running[0],)
    # a stage of one task has nothing to compare with
    alone = {(Q, 0): StageProgress(1, ())}
    assert stragglers(running, STAGES, alone, now, POLICY) == stragglers([], {}, {}, now, POLICY)


def test_min_seconds_bounds_a_tiny_median():
    now = 100.0
    running = [attempt(0, started=now - 0.5)]  # 50 x a 0.01 s median, but under 1 s
    assert old_enough(running, now, POLICY, ME) == []
    assert stragglers(running, STAGES, stage0(0.01, 0.01, 0.01), now, POLICY).copy == ()


def test_copied_own_and_disabled_are_never_candidates():
    now = 100.0
    running = [
        attempt(0, now - 9.0, copied=True),  # a copy already runs
        attempt(1, now - 9.0, worker="me"),  # never copy one's own task
        attempt(2, now - 9.0),
    ]
    assert old_enough(running, now, POLICY, ME) == running[2:]
    assert old_enough(running, now, SpeculationPolicy(enabled=False), ME) == []


def test_the_most_overdue_straggler_goes_first():
    now = 100.0
    running = [attempt(0, now - 3.0), attempt(1, now - 8.0), attempt(2, now - 5.0)]
    decision = stragglers(running, STAGES, stage0(1.0, 1.0), now, POLICY)
    assert [a.task for a in decision.copy] == ["t1", "t2", "t0"]


def test_next_look_is_when_the_youngest_becomes_old_enough():
    now = 100.0
    running = [attempt(0, now - 5.0), attempt(1, now - 0.25), attempt(2, now - 0.75, "me")]
    assert next_look(running, now, POLICY, ME) == pytest.approx(0.75)
    assert next_look([attempt(0, now - 5.0)], now, POLICY, ME) is None


# --- the copy claim, on a real etcd ------------------------------------------------------


def test_both_copies_run_and_exactly_the_first_completion_commits(store):
    qs, queue = QueryStore(store), TaskQueue(store)
    q = new_query_id()
    qs.publish(q, partial_merge_plan(2), frontdoor=MemberId("fd"), ttl=60)
    slow, fast = join(store, "slow"), join(store, "fast")
    try:
        first = queue.claim(ref(store, q, "t0"), MemberId("slow"), "loc", slow.lease_id)
        assert first is not None
        (running,) = [a for a in queue.running_attempts() if a.task == "t0"]
        assert running.worker == "slow" and not running.copied and running.started > 0
        copy = queue.claim_copy(running, MemberId("fast"), "loc", fast.lease_id)
        assert copy is not None and copy.copy
        # one copy at a time
        assert queue.claim_copy(running, MemberId("fast"), "loc", fast.lease_id) is None
        assert [a.copied for a in queue.running_attempts() if a.task == "t0"] == [True]
        assert queue.complete(copy, result("fast"), fast.lease_id, seconds=0.5) is True
        # the original's completion is refused, and both claims are gone
        assert queue.complete(first, result("slow"), slow.lease_id) is False
        assert not queue.holds(first) and not queue.holds(copy)
        assert [a for a in queue.running_attempts() if a.task == "t0"] == []
        assert qs.results(q, [TaskId("t0")])[TaskId("t0")].worker == "fast"
        (t0,) = [r for r in qs.task_records(q) if r.id == "t0"]
        assert t0.done_by == "fast" and t0.by_copy and t0.seconds == 0.5
        assert qs.first_claims(q) == {TaskId("t0"): qs.first_claims(q)[TaskId("t0")]}
        # a finished task gets no copy
        assert queue.claim_copy(running, MemberId("fast"), "loc", fast.lease_id) is None
    finally:
        slow.stop()
        fast.stop()


def test_when_the_original_wins_the_copy_is_refused(store):
    qs, queue = QueryStore(store), TaskQueue(store)
    q = new_query_id()
    qs.publish(q, partial_merge_plan(2), frontdoor=MemberId("fd"), ttl=60)
    a, b = join(store, "a"), join(store, "b")
    try:
        first = queue.claim(ref(store, q, "t1"), MemberId("a"), "loc", a.lease_id)
        assert first is not None
        (running,) = [x for x in queue.running_attempts() if x.task == "t1"]
        copy = queue.claim_copy(running, MemberId("b"), "loc", b.lease_id)
        assert copy is not None
        assert queue.complete(first, result("a"), a.lease_id) is True
        assert queue.complete(copy, result("b"), b.lease_id) is False
        assert queue.fail(copy, "too late") is False  # nor can the loser fail the query
        assert qs.status(q).state == QueryState.RUNNING
        (t1,) = [r for r in qs.task_records(q) if r.id == "t1"]
        assert t1.done_by == "a" and not t1.by_copy
    finally:
        a.stop()
        b.stop()


# --- a fleet with one worker frozen mid-task ---------------------------------------------

SPEC = """
select count(*) as n,
       sum((l_orderkey * 31 + n1.n_nationkey * n2.n_nationkey - n3.n_nationkey) % 7) as h
from lineitem, nation n1, nation n2, nation n3
where l_linenumber = 1
"""


def test_a_frozen_workers_task_is_finished_by_a_copy_and_its_own_result_discarded(
    etcd, tpch_dir, tmp_path
):
    fleet = start_fleet(
        etcd,
        str(tpch_dir),
        str(tmp_path),
        lease_ttl=20,  # the freeze stays well inside the lease: no claim expires
        extra_env={
            "DUCKFLEET_SPECULATION_FACTOR": "1.5",
            "DUCKFLEET_SPECULATION_MIN_SECONDS": "0.5",
            # no failure detection: the frozen worker stands for a straggler that
            # still answers its probes (detection has tests/test_detection_fleet.py)
            "DUCKFLEET_PROBE_INTERVAL": "0",
        },
    )
    store = fleet.store()
    qs = QueryStore(store)
    frozen_pid = None
    expected = reference(tpch_dir, SPEC)
    pids = {m.id: m.pid for m in fleet.members()}
    t, out = run_in_thread(fleet.uri, SPEC)
    try:
        wait_until(lambda: qs.claims(), "a task is claimed")
        q, task, claim = qs.claims()[0]
        frozen_pid = pids[claim.worker]
        os.kill(frozen_pid, signal.SIGSTOP)  # mid-task: alive, holding its claim
        held = [c for cq, ct, c in qs.claims() if (cq, ct) == (q, task)]
        assert held == [claim], "the worker finished its task before it was frozen"
        member_key = store.keys.member("worker", claim.worker)
        lease_before = store.client.get(member_key)[1].lease_id
        t.join(60)  # the query finishes while that worker is still frozen
        assert not t.is_alive() and "error" not in out, out.get("error")
        assert_same_result(out["table"], expected, ordered=False)
        assert qs.status(q).state == QueryState.FINISHED
        records = {r.id: r for r in qs.task_records(q)}
        assert records[task].by_copy and records[task].done_by not in (None, claim.worker)
        os.kill(frozen_pid, signal.SIGCONT)
        frozen_pid = None
        # the thawed worker notices its claim is gone and drops its work
        wait_until(lambda: _discarded(tmp_path, q, task), "the loser discards its task")
        with fl.connect(claim.location) as loser:
            with pytest.raises(pa.ArrowKeyError):
                loser.do_get(fl.Ticket(result_ticket(q, task))).read_all()
        # its lease never expired: the copy, not a lost claim, finished the task
        assert store.client.get(member_key)[1].lease_id == lease_before
    finally:
        if frozen_pid is not None:
            os.kill(frozen_pid, signal.SIGCONT)
        t.join(10)
        store.close()
        fleet.stop()


def _discarded(log_dir, q: QueryId, task: TaskId) -> bool:
    needles = (f"query={q} task={task} stopped", f"query={q} task={task}: completion refused")
    for path in log_dir.glob("worker-*.log"):
        text = path.read_text()
        if any(n in text for n in needles):
            return True
    return False
