"""The worker's state machine (worker/state.py), driven event by event, no network.

Each test feeds events and asserts the exact instructions that come out, the way
dask/distributed tests its worker state: every transition a worker makes is here.
"""

from __future__ import annotations

import pytest

from duckfleet.control.records import QueryState, QueryStatus, RunnableTask
from duckfleet.ids import QueryId, TaskId
from duckfleet.worker.state import (
    HANDLERS,
    LOST,
    TRANSITIONS,
    Answer,
    Claim,
    ClaimAdded,
    ClaimCopy,
    ClaimMissed,
    ClaimRemoved,
    ClaimRound,
    ClaimWon,
    Commit,
    CommitFailed,
    CommitRefused,
    Committed,
    Computed,
    ControlFailed,
    CopyRemoved,
    CopyWanted,
    DrainStarted,
    DropResult,
    DropResults,
    Execute,
    FailQuery,
    Fetch,
    InputsFetched,
    Interrupt,
    InvalidTransition,
    OfferArrived,
    OfferNotRecorded,
    OfferRecorded,
    Phase,
    QueryExpired,
    QueueKnown,
    QueueListed,
    Record,
    Refuse,
    Release,
    RoundDone,
    RunnableAdded,
    RunnableRemoved,
    Speculate,
    StatusChanged,
    TaskFailed,
    Wake,
    WatchesReset,
    WorkerState,
)

Q = QueryId("q1")
A, B, C = (Q, TaskId("t0")), (Q, TaskId("t1")), (Q, TaskId("t2"))
OUT = (TaskId("t2"),)
LIST = ClaimRound(listing=True)


def marker(key: tuple[QueryId, TaskId], created: float = 1.0, priority: int = 0) -> RunnableTask:
    return RunnableTask(key[0], key[1], created, priority, 0)


def listed(*keys: tuple[QueryId, TaskId], claimed: tuple = ()) -> QueueListed:
    return QueueListed(tuple(marker(k) for k in keys), claimed)


def claimed(ws: WorkerState, *keys: tuple[QueryId, TaskId]) -> None:
    """List `keys`, win each claim: each ends fetching."""
    assert ws.handle(listed(*keys)) == [Claim(k) for k in keys]
    for k in keys:
        assert ws.handle(ClaimWon(k, OUT)) == [Fetch(k)]


def test_every_event_has_a_handler_and_every_transition_a_method() -> None:
    assert len(HANDLERS) == 26
    assert set(TRANSITIONS) == {
        (Phase.FORGOTTEN, Phase.FETCHING),
        (Phase.FORGOTTEN, Phase.RECORDING),
        (Phase.RECORDING, Phase.RUNNING),
        (Phase.RECORDING, Phase.FORGOTTEN),
        (Phase.FETCHING, Phase.RUNNING),
        (Phase.FETCHING, Phase.FORGOTTEN),
        (Phase.RUNNING, Phase.COMMITTING),
        (Phase.RUNNING, Phase.FORGOTTEN),
        (Phase.COMMITTING, Phase.FORGOTTEN),
    }
    with pytest.raises(InvalidTransition, match="no handler"):
        WorkerState(1).handle(object())


def test_a_queued_task_from_claim_to_commit() -> None:
    ws = WorkerState(2)
    assert ws.handle(Wake()) == [LIST]  # nothing listed yet: the queue is read
    claimed(ws, A)
    assert ws.tasks[A].phase == Phase.FETCHING
    assert ws.handle(InputsFetched(A)) == [Execute(A)]
    assert ws.handle(Computed(A)) == [Commit(A)]
    assert ws.tasks[A].phase == Phase.COMMITTING
    assert ws.handle(Committed(A)) == []
    assert A not in ws.tasks and ws.free == 2
    assert ws.held == {Q: OUT}


def test_a_round_claims_no_more_than_free_slots_and_a_miss_tries_the_next() -> None:
    ws = WorkerState(2)
    assert ws.handle(listed(A, B, C)) == [Claim(A), Claim(B)]
    assert ws.available == 0
    assert ws.handle(ClaimMissed(A)) == [Claim(C)]
    assert ws.handle(ClaimWon(B, OUT)) == [Fetch(B)]
    assert ws.handle(ClaimMissed(C)) == []
    assert ws.handle(RoundDone()) == [Speculate(1)]
    assert ws.candidates == [] and ws.claiming == set()


def test_a_full_worker_starts_no_round_and_a_freed_slot_does_when_work_may_wait() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    assert ws.handle(Wake()) == []
    assert ws.handle(RunnableAdded(B, marker(B))) == []  # no slot: remembered, no round
    assert ws.handle(InputsFetched(A)) == [Execute(A)]
    assert ws.handle(Computed(A)) == [Commit(A)]  # its commit may make B's merge runnable
    assert ws.handle(Committed(A)) == [ClaimRound()]  # B may be waiting
    assert ws.handle(RoundDone()) == [Speculate(1)]


def test_a_freed_slot_with_nothing_known_queued_starts_no_round() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    ws.handle(InputsFetched(A))
    ws.handle(Computed(A))
    assert ws.handle(Committed(A)) == []


def test_claims_seen_by_watch_remove_the_task_from_what_may_be_runnable() -> None:
    ws = WorkerState(1)
    assert ws.handle(RunnableAdded(A, marker(A))) == [LIST]
    assert ws.handle(ClaimAdded(A, offered=False)) == []
    assert not ws.queue.waiting()
    ws.handle(RunnableAdded(B, marker(B)))
    assert ws.queue.waiting()
    assert ws.handle(RunnableRemoved(B)) == []
    assert not ws.queue.waiting()


def test_a_released_claim_elsewhere_starts_a_round_but_a_fast_path_claim_does_not() -> None:
    ws = WorkerState(1)
    ws.handle(ClaimAdded(A, offered=True))
    assert ws.handle(ClaimRemoved(A)) == []
    ws.handle(ClaimAdded(B, offered=False))
    assert ws.handle(ClaimRemoved(B)) == [LIST]  # B's marker was never seen here


def test_a_lost_claim_interrupts_the_task_once_and_its_stop_releases() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    ws.handle(InputsFetched(A))
    assert ws.handle(ClaimRemoved(A)) == [Interrupt(A, LOST)]
    assert ws.handle(ClaimRemoved(A)) == []  # already stopping: once
    # its claim gone, A is runnable again (for any worker, this one too)
    assert ws.handle(TaskFailed(A, stopped=True)) == [Release(A), ClaimRound()]
    assert A not in ws.tasks


def test_a_stop_while_fetching_ends_the_task_when_its_inputs_arrive() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    why = "query cancelled: by user"
    done = ws.handle(StatusChanged(Q, QueryStatus(QueryState.CANCELLED, error="by user")))
    assert done == [Interrupt(A, why), DropResults(Q, ())]
    assert ws.handle(InputsFetched(A)) == [Release(A)]
    assert ws.tasks == {}


def test_a_failure_fails_the_query_and_a_control_error_only_releases() -> None:
    ws = WorkerState(2)
    claimed(ws, A, B)
    ws.handle(InputsFetched(A))
    assert ws.handle(TaskFailed(A)) == [FailQuery(A)]
    assert ws.handle(ControlFailed(B)) == [Release(B)]
    assert ws.tasks == {}


def test_a_refused_or_failed_commit_drops_the_result_and_releases() -> None:
    ws = WorkerState(2)
    claimed(ws, A, B)
    for k in (A, B):
        ws.handle(InputsFetched(k))
        ws.handle(Computed(k))
    assert ws.handle(CommitRefused(A)) == [DropResult(A), Release(A)]
    assert ws.handle(CommitFailed(B)) == [DropResult(B), Release(B)]


def test_a_committing_task_is_not_interrupted_its_fence_decides() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    ws.handle(InputsFetched(A))
    ws.handle(Computed(A))
    assert ws.handle(ClaimRemoved(A)) == []  # no Interrupt: the fence decides
    # refused: A is runnable again, and the freed slot may take it
    assert ws.handle(CommitRefused(A)) == [DropResult(A), Release(A), ClaimRound()]


def test_a_query_that_finishes_keeps_its_outputs_and_one_that_expires_drops_all() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    ws.handle(InputsFetched(A))
    ws.handle(Computed(A))
    ws.handle(Committed(A))
    assert ws.handle(StatusChanged(Q, QueryStatus(QueryState.FINISHED))) == [DropResults(Q, OUT)]
    assert ws.held == {Q: OUT}  # until it expires or is cancelled once read
    assert ws.handle(QueryExpired(Q)) == [DropResults(Q, ())]
    assert ws.held == {}


def test_a_finished_query_cancelled_once_read_drops_its_outputs_too() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    ws.handle(InputsFetched(A))
    ws.handle(Computed(A))
    ws.handle(Committed(A))
    ws.handle(StatusChanged(Q, QueryStatus(QueryState.FINISHED)))
    assert ws.handle(StatusChanged(Q, QueryStatus(QueryState.CANCELLED))) == [DropResults(Q, ())]
    assert ws.held == {}
    assert ws.handle(StatusChanged(Q, QueryStatus(QueryState.CANCELLED))) == []


def test_a_running_status_drops_nothing() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    assert ws.handle(StatusChanged(Q, QueryStatus(QueryState.RUNNING))) == []


def test_an_offer_is_recorded_run_answered_then_committed() -> None:
    ws = WorkerState(1)
    assert ws.handle(OfferArrived(A, OUT)) == [Record(A)]
    assert ws.tasks[A].phase == Phase.RECORDING
    assert ws.handle(OfferRecorded(A)) == [Execute(A)]
    assert ws.handle(Computed(A)) == [Answer(A), Commit(A)]
    assert ws.handle(Committed(A)) == []


def test_an_offer_not_recorded_is_refused_and_frees_the_slot() -> None:
    ws = WorkerState(1)
    ws.handle(OfferArrived(A, OUT))
    assert ws.handle(OfferNotRecorded(A, "the query exists")) == [Refuse(A, "the query exists")]
    assert ws.free == 1


def test_offers_are_refused_when_full_draining_or_while_work_is_queued() -> None:
    ws = WorkerState(1)
    ws.handle(RunnableAdded(B, marker(B)))
    assert ws.handle(OfferArrived(A, OUT)) == [Refuse(A, "tasks are waiting in the queue")]
    ws.handle(RunnableRemoved(B))
    ws.handle(OfferArrived(A, OUT))
    assert ws.handle(OfferArrived(C, OUT)) == [Refuse(C, "no free slot")]
    ws.handle(DrainStarted())
    assert ws.handle(OfferArrived(B, OUT)) == [Refuse(B, "the worker is draining")]


def test_an_offer_to_a_full_worker_takes_the_headroom_kept_for_short_queries() -> None:
    D = (Q, TaskId("t3"))
    ws = WorkerState(1, short_slots=1)
    claimed(ws, A)  # the one slot: a long query's task
    assert ws.free == 0
    assert ws.handle(OfferArrived(B, OUT)) == [Record(B)]
    assert ws.tasks[B].short and ws.short_free == 0
    assert ws.free == 0  # the headroom is not a slot: claims do not see it
    assert ws.handle(OfferArrived(C, OUT)) == [Refuse(C, "no free slot")]
    ws.handle(OfferRecorded(B))
    assert ws.handle(Computed(B)) == [Answer(B), Commit(B)]
    assert ws.handle(Committed(B)) == []
    assert ws.short_free == 1 and ws.free == 0
    assert ws.handle(OfferArrived(D, OUT)) == [Record(D)]  # the headroom again


def test_an_offer_while_queued_work_waits_takes_the_headroom_not_the_slot() -> None:
    ws = WorkerState(1, short_slots=1)
    ws.handle(RunnableAdded(B, marker(B)))  # queued work waits for the free slot
    assert ws.handle(OfferArrived(A, OUT)) == [Record(A)]
    assert ws.tasks[A].short
    assert ws.handle(Wake()) == [ClaimRound(listing=True)]  # the slot is still free
    assert ws.handle(QueueKnown()) == [Claim(B, marker(B))]
    assert ws.handle(ClaimWon(B, OUT)) == [Fetch(B)]
    assert ws.handle(OfferArrived(C, OUT)) == [Refuse(C, "no free slot")]


def test_a_failed_offer_fails_its_query_and_answers() -> None:
    ws = WorkerState(1)
    ws.handle(OfferArrived(A, OUT))
    ws.handle(OfferRecorded(A))
    assert ws.handle(TaskFailed(A)) == [FailQuery(A), Answer(A)]


def test_a_recording_offer_is_not_interrupted_by_its_own_query_ending() -> None:
    ws = WorkerState(1)
    ws.handle(OfferArrived(A, OUT))
    done = ws.handle(StatusChanged(Q, QueryStatus(QueryState.CANCELLED)))
    assert done == [DropResults(Q, ())]


def test_a_copy_is_stopped_only_by_its_copy_claim_and_the_original_by_its_claim() -> None:
    ws = WorkerState(2)
    assert ws.handle(CopyWanted(A)) == [ClaimCopy(A)]
    assert ws.handle(ClaimWon(A, OUT, copy=True)) == [Fetch(A)]
    assert ws.handle(ClaimRemoved(A)) == [LIST]  # the original's claim: not ours
    assert ws.handle(CopyRemoved(A)) == [Interrupt(A, LOST)]
    assert ws.handle(CopyWanted(A)) == []  # held already


def test_draining_claims_nothing_and_lets_running_tasks_finish() -> None:
    ws = WorkerState(2)
    claimed(ws, A)
    ws.handle(DrainStarted())
    assert ws.handle(Wake()) == []
    assert ws.handle(listed(B)) == []
    assert ws.handle(InputsFetched(A)) == [Execute(A)]
    assert ws.handle(Computed(A)) == [Commit(A)]
    assert ws.handle(Committed(A)) == []


@pytest.mark.parametrize(
    "event",
    [InputsFetched(A), Computed(A), Committed(A), OfferRecorded(A), TaskFailed(A)],
)
def test_events_for_a_task_not_held_are_errors(event: object) -> None:
    with pytest.raises(InvalidTransition, match="not held"):
        WorkerState(1).handle(event)


def test_events_out_of_order_are_errors() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    with pytest.raises(InvalidTransition, match="fetching -> committing"):
        ws.handle(Computed(A))
    with pytest.raises(InvalidTransition, match="fetching -> forgotten"):
        ws.handle(Committed(A))
    with pytest.raises(InvalidTransition, match="while fetching, not recording"):
        ws.handle(OfferRecorded(A))  # a queued task was never an offer
    ws.handle(InputsFetched(A))
    with pytest.raises(InvalidTransition, match="while running, not fetching"):
        ws.handle(InputsFetched(A))


def test_a_claim_won_without_a_slot_is_an_error() -> None:
    ws = WorkerState(1)
    claimed(ws, A)
    with pytest.raises(InvalidTransition, match="without a free slot"):
        ws.handle(ClaimWon(B, OUT))


def test_once_listed_a_round_claims_from_what_the_watches_told() -> None:
    ws = WorkerState(2)
    assert ws.handle(listed()) == []
    assert ws.handle(RoundDone()) == [Speculate(2)]
    other = QueryId("q0")
    X, Y = (other, TaskId("t0")), (other, TaskId("t1"))
    assert ws.handle(RunnableAdded(X, marker(X, created=0.5))) == [ClaimRound()]  # no read
    ws.handle(RunnableAdded(Y, marker(Y, created=0.5)))
    ws.handle(RunnableAdded(A, marker(A, created=2.0)))
    ws.handle(ClaimAdded(X, offered=False))  # another worker took X
    # fair share: q1 has nothing running, q0 one task: q1's A first, then q0's Y
    assert ws.handle(QueueKnown(0)) == [Claim(A), Claim(Y)]


def test_priority_wins_over_fair_share_in_a_round_from_the_watches() -> None:
    ws = WorkerState(1)
    ws.handle(listed())
    ws.handle(RoundDone())
    urgent = (QueryId("q9"), TaskId("t0"))
    ws.handle(RunnableAdded(A, marker(A, created=0.1)))
    ws.handle(RunnableAdded(urgent, marker(urgent, created=9.0, priority=5)))
    (claim,) = ws.handle(QueueKnown(0))
    assert claim == Claim(urgent) and claim.marker.priority == 5


def test_a_released_claim_whose_marker_is_known_is_claimed_without_a_read() -> None:
    ws = WorkerState(1)
    ws.handle(listed(A))  # A runnable; the claim asked for is lost to another worker
    ws.handle(ClaimMissed(A))
    ws.handle(RoundDone())
    ws.handle(ClaimAdded(A, offered=False))
    assert not ws.queue.waiting()
    assert ws.handle(ClaimRemoved(A)) == [ClaimRound()]  # its worker was lost
    assert ws.handle(QueueKnown(0)) == [Claim(A)]


def test_a_broken_watch_makes_the_next_round_a_listing() -> None:
    ws = WorkerState(1)
    ws.handle(listed())
    ws.handle(RoundDone())
    assert ws.handle(Wake()) == [ClaimRound()]
    assert ws.handle(WatchesReset()) == [LIST]
    assert ws.handle(Wake()) == [LIST]
    ws.handle(listed())
    assert ws.handle(Wake()) == [ClaimRound()]
