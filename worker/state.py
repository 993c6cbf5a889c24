"""The worker's state machine: what a worker does next, decided without I/O.

Events come in (watch events, the queue as listed, claim results, offers, a task's
inputs fetched, its result computed, its completion committed or refused, its
failure); instructions go out (claim, run, fetch, commit, release, drop, interrupt,
answer an offer). `WorkerState.handle` is the only entry: it takes one event and
returns the instructions it leads to, in order. The worker's threads
(worker/worker.py) carry the instructions out and feed what happened back in as
events; none of them decides anything.

Each task this worker holds is in one phase::

    (claimed) --> fetching --> running --> committing --> forgotten
    (offered) --> recording --/    |             |
                     |             +-------------+--> forgotten (failed, stopped, lost)
                     +--> forgotten (not recorded: the offer is refused)

Task transitions are the methods named ``_transition_<from>_<to>`` listed in
`TRANSITIONS`, and events the handlers in `HANDLERS`; anything else raises
`InvalidTransition`. What the worker knows of the fleet besides its own tasks:

- the queue as the last listing and the watches since tell it
  (worker/queue_mirror.py), so that a claim round reads nothing a watch already
  told, a slot that frees up starts one only if there may be work, and an offer is
  refused while queued work waits (priorities and fair share decide then);
- which claims are fast-path claims (their deletion frees nothing for the queue);
- the outputs of each query it holds results of, so a query's end says which
  results to keep without a read.

Pure: no I/O, no threads, no clock. The worker serialises calls with a lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from duckfleet.control.records import QueryState, QueryStatus, RunnableTask
from duckfleet.ids import QueryId, TaskId
from duckfleet.worker.queue_mirror import QueueMirror

TaskKey = tuple[QueryId, TaskId]

MAX_OUTPUTS_KEPT = 10_000  # queries whose outputs are remembered (past it: read)


class InvalidTransition(Exception):
    """An event that makes no sense in the state it arrived in: a bug, never input."""


class Phase(StrEnum):
    FORGOTTEN = "forgotten"  # not (or no longer) held by this worker
    RECORDING = "recording"  # an accepted offer: its query is being recorded
    FETCHING = "fetching"  # claimed from the queue: its inputs are being fetched
    RUNNING = "running"  # its fragment runs in DuckDB
    COMMITTING = "committing"  # computed: only the fenced completion decides now


# events --------------------------------------------------------------------------


@dataclass(frozen=True)
class Wake:
    """A watch, a timer or a freed slot says there may be work: a claim round."""


@dataclass(frozen=True)
class DrainStarted:
    """Claim nothing more; refuse offers; let what runs finish."""


@dataclass(frozen=True)
class RunnableAdded:
    task: TaskKey
    marker: RunnableTask  # what its runnable/ key holds: what ordering needs


@dataclass(frozen=True)
class RunnableRemoved:
    task: TaskKey


@dataclass(frozen=True)
class ClaimAdded:
    task: TaskKey
    offered: bool  # a fast-path query's claim (control/offers.py)


@dataclass(frozen=True)
class ClaimRemoved:
    """A claim is gone: released, expired with its lease, or its task completed."""

    task: TaskKey


@dataclass(frozen=True)
class CopyRemoved:
    """A speculative copy's claim is gone: the other copy committed first."""

    task: TaskKey


@dataclass(frozen=True)
class StatusChanged:
    query: QueryId
    status: QueryStatus


@dataclass(frozen=True)
class QueryExpired:
    query: QueryId


@dataclass(frozen=True)
class QueueListed:
    """One read of the queue: its unclaimed runnable tasks, best first, and every
    task claimed now."""

    runnable: tuple[RunnableTask, ...]
    claimed: tuple[TaskKey, ...] = ()


@dataclass(frozen=True)
class QueueKnown:
    """A claim round from what the watches told (worker/queue_mirror.py), no read;
    `start`: where this worker starts among equally ranked tasks."""

    start: int = 0


@dataclass(frozen=True)
class WatchesReset:
    """A watch broke and was made again: events may have been missed."""


@dataclass(frozen=True)
class ClaimWon:
    task: TaskKey
    outputs: tuple[TaskId, ...]  # the query's output tasks (its record)
    copy: bool = False  # a speculative second copy of a straggler


@dataclass(frozen=True)
class ClaimMissed:
    """Another worker claimed it first, or it is gone."""

    task: TaskKey


@dataclass(frozen=True)
class CopyWanted:
    """A straggler running elsewhere is worth a copy here (control/speculation.py)."""

    task: TaskKey


@dataclass(frozen=True)
class RoundDone:
    """The claims a round asked for are all tried."""


@dataclass(frozen=True)
class OfferArrived:
    task: TaskKey
    outputs: tuple[TaskId, ...]


@dataclass(frozen=True)
class OfferRecorded:
    task: TaskKey


@dataclass(frozen=True)
class OfferNotRecorded:
    task: TaskKey
    why: str


@dataclass(frozen=True)
class InputsFetched:
    task: TaskKey


@dataclass(frozen=True)
class Computed:
    """The result is computed and kept; it is not yet committed."""

    task: TaskKey


@dataclass(frozen=True)
class TaskFailed:
    task: TaskKey
    stopped: bool = False  # it ended because it was interrupted


@dataclass(frozen=True)
class ControlFailed:
    """etcd could not be reached (or refused) while the task fetched or ran."""

    task: TaskKey


@dataclass(frozen=True)
class Committed:
    task: TaskKey


@dataclass(frozen=True)
class CommitRefused:
    """The fenced completion failed: the query ended or the claim was lost."""

    task: TaskKey


@dataclass(frozen=True)
class CommitFailed:
    """The completion could not be sent (etcd unreachable)."""

    task: TaskKey


Event = Any  # one of the dataclasses above


# instructions --------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimRound:
    """A claim round: with `listing`, list the queue (one read) and tell
    `QueueListed`; without, the worker may tell `QueueKnown` instead."""

    listing: bool = False


@dataclass(frozen=True)
class Claim:
    task: TaskKey
    marker: RunnableTask | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ClaimCopy:
    """Claim a second copy of a straggler (under copies/)."""

    task: TaskKey


@dataclass(frozen=True)
class Speculate:
    """Idle slots and nothing to claim: look for stragglers to copy."""

    free: int


@dataclass(frozen=True)
class Fetch:
    """Take a slot thread; fetch the task's inputs."""

    task: TaskKey


@dataclass(frozen=True)
class Record:
    """Record the offered query with its claim (one transaction)."""

    task: TaskKey


@dataclass(frozen=True)
class Execute:
    task: TaskKey


@dataclass(frozen=True)
class Commit:
    task: TaskKey


@dataclass(frozen=True)
class Answer:
    """Answer the offer with what its task came to (a result, a failure, a stop)."""

    task: TaskKey


@dataclass(frozen=True)
class Refuse:
    task: TaskKey
    why: str


@dataclass(frozen=True)
class Release:
    """Give the claim back (fenced), if it is still ours."""

    task: TaskKey


@dataclass(frozen=True)
class FailQuery:
    """Record the task's failure as its query's (fenced on the claim)."""

    task: TaskKey


@dataclass(frozen=True)
class DropResult:
    task: TaskKey


@dataclass(frozen=True)
class DropResults:
    """Drop a query's results but those of `keep` (None: its record's outputs)."""

    query: QueryId
    keep: tuple[TaskId, ...] | None


@dataclass(frozen=True)
class Interrupt:
    task: TaskKey
    why: str


Instruction = Any  # one of the dataclasses above


# state ---------------------------------------------------------------------------


@dataclass
class TaskState:
    phase: Phase
    offered: bool = False
    short: bool = False  # an offer in the headroom kept for short queries
    copy: bool = False
    stopping: str = ""  # why it was interrupted


@dataclass
class WorkerState:
    slots: int
    # headroom for short queries: fast-path offers taken past the slots when they are
    # full (or queued work waits for them), so a short query never waits behind long
    # tasks; never used by a claim
    short_slots: int = 0
    fifo: bool = False  # order the queue oldest first, not by fair share
    draining: bool = False
    tasks: dict[TaskKey, TaskState] = field(default_factory=dict)
    queue: QueueMirror = field(default_factory=QueueMirror)
    offered_claims: set[TaskKey] = field(default_factory=set)
    # the outputs of each query this worker holds results of (None: not remembered)
    held: dict[QueryId, tuple[TaskId, ...] | None] = field(default_factory=dict)
    # the rest of the current claim round's listing, best first
    candidates: list[RunnableTask] = field(default_factory=list)
    claiming: set[TaskKey] = field(default_factory=set)  # claims asked, not yet answered

    @property
    def free(self) -> int:
        """Slots no task holds. A committing task holds its slot until its
        completion is in: that completion may make a task of the same query
        runnable, which should be this slot's next claim, not a task of another."""
        return self.slots - sum(1 for ts in self.tasks.values() if not ts.short)

    @property
    def short_free(self) -> int:
        """Headroom for short queries no offer holds."""
        return self.short_slots - sum(1 for ts in self.tasks.values() if ts.short)

    @property
    def available(self) -> int:
        """Slots neither a task holds nor a claim in flight may take."""
        return self.free - len(self.claiming)

    def handle(self, event: Event) -> list[Instruction]:
        handler = HANDLERS.get(type(event))
        if handler is None:
            raise InvalidTransition(f"no handler for {event!r}")
        return handler(self, event)

    # worker-wide events
    def _handle_wake(self, _: Wake) -> list[Instruction]:
        return self._claim_round()

    def _handle_reset(self, _: WatchesReset) -> list[Instruction]:
        self.queue.synced = False
        return self._claim_round()

    def _handle_drain(self, _: DrainStarted) -> list[Instruction]:
        self.draining = True
        self.candidates.clear()
        return []

    def _handle_runnable_added(self, e: RunnableAdded) -> list[Instruction]:
        self.queue.add(e.marker)
        return self._claim_round()

    def _handle_runnable_removed(self, e: RunnableRemoved) -> list[Instruction]:
        self.queue.remove(e.task)
        return []

    def _handle_claim_added(self, e: ClaimAdded) -> list[Instruction]:
        self.queue.claim(e.task)
        if e.offered:
            self.offered_claims.add(e.task)
        return []

    def _handle_claim_removed(self, e: ClaimRemoved) -> list[Instruction]:
        out = self._interrupt(e.task, copy=False, why=LOST)
        known = self.queue.unclaim(e.task)
        if e.task in self.offered_claims:  # a fast-path claim frees nothing queued
            self.offered_claims.discard(e.task)
            return out
        # released or expired (its marker stays), or completed (its marker goes):
        # only a listing knows of a released task whose marker was never seen here
        return out + self._claim_round(listing=not known)

    def _handle_copy_removed(self, e: CopyRemoved) -> list[Instruction]:
        return self._interrupt(e.task, copy=True, why=LOST)

    def _handle_status(self, e: StatusChanged) -> list[Instruction]:
        out: list[Instruction] = []
        if e.status.terminal:
            why = f"query {e.status.state}" + (f": {e.status.error}" if e.status.error else "")
            for key in [k for k in self.tasks if k[0] == e.query]:
                out += self._interrupt(key, copy=None, why=why)
        if e.status.state != QueryState.RUNNING and e.query in self.held:
            if e.status.state == QueryState.FINISHED:  # its outputs wait for the client
                out.append(DropResults(e.query, self.held[e.query]))
            else:  # ended without an answer, or cancelled once it was read
                del self.held[e.query]
                out.append(DropResults(e.query, ()))
        return out

    def _handle_expired(self, e: QueryExpired) -> list[Instruction]:
        self.held.pop(e.query, None)
        return [DropResults(e.query, ())]

    def _handle_listed(self, e: QueueListed) -> list[Instruction]:
        self.queue.reset(e.runnable, e.claimed)
        return self._start_claims(list(e.runnable))

    def _handle_known(self, e: QueueKnown) -> list[Instruction]:
        return self._start_claims(self.queue.ordered(e.start, self.fifo))

    def _start_claims(self, ordered: list[RunnableTask]) -> list[Instruction]:
        self.candidates = [rt for rt in ordered if (rt.query, rt.task) not in self.tasks]
        return self._next_claims()

    def _handle_claim_missed(self, e: ClaimMissed) -> list[Instruction]:
        self.claiming.discard(e.task)
        return self._next_claims()

    def _handle_copy_wanted(self, e: CopyWanted) -> list[Instruction]:
        if not self._may_claim() or e.task in self.tasks:
            return []
        self.claiming.add(e.task)
        return [ClaimCopy(e.task)]

    def _handle_round_done(self, _: RoundDone) -> list[Instruction]:
        self.candidates.clear()
        self.claiming.clear()
        return [Speculate(self.free)] if self._may_claim() else []

    def _handle_claim_won(self, e: ClaimWon) -> list[Instruction]:
        self.claiming.discard(e.task)
        if e.task in self.tasks or self.free <= 0:
            raise InvalidTransition(f"claim won for {e.task} without a free slot for it")
        if not e.copy:
            self.queue.claim(e.task)  # before its watch event says so
        self._remember_outputs(e.task[0], e.outputs)
        self.tasks[e.task] = TaskState(Phase.FORGOTTEN, copy=e.copy)
        return self._transition(e.task, Phase.FETCHING)

    def _handle_offer(self, e: OfferArrived) -> list[Instruction]:
        if self.draining:
            return [Refuse(e.task, "the worker is draining")]
        # a free slot, unless queued work waits for it (priorities decide that); else
        # the headroom kept for short queries (an offer is one small task: short)
        short = self.available <= 0 or self.queue.waiting()
        if short and self.short_free <= 0:
            if self.available <= 0:
                return [Refuse(e.task, "no free slot")]
            return [Refuse(e.task, "tasks are waiting in the queue")]
        self._remember_outputs(e.task[0], e.outputs)
        self.tasks[e.task] = TaskState(Phase.FORGOTTEN, offered=True, short=short)
        return self._transition(e.task, Phase.RECORDING)

    # a task's own events
    def _handle_recorded(self, e: OfferRecorded) -> list[Instruction]:
        self._expect(e, Phase.RECORDING)
        return self._transition(e.task, Phase.RUNNING, e)

    def _handle_not_recorded(self, e: OfferNotRecorded) -> list[Instruction]:
        return self._transition(e.task, Phase.FORGOTTEN, e)

    def _handle_fetched(self, e: InputsFetched) -> list[Instruction]:
        if self._expect(e, Phase.FETCHING).stopping:
            return self._transition(e.task, Phase.FORGOTTEN, TaskFailed(e.task, stopped=True))
        return self._transition(e.task, Phase.RUNNING, e)

    def _handle_computed(self, e: Computed) -> list[Instruction]:
        return self._transition(e.task, Phase.COMMITTING, e)

    def _handle_ended(
        self, e: TaskFailed | ControlFailed | Committed | CommitRefused | CommitFailed
    ) -> list[Instruction]:
        return self._transition(e.task, Phase.FORGOTTEN, e)

    # transitions
    def _transition(self, key: TaskKey, to: Phase, cause: Event = None) -> list[Instruction]:
        ts = self._task(key)
        method = TRANSITIONS.get((ts.phase, to))
        if method is None:
            raise InvalidTransition(f"task {key}: {ts.phase} -> {to} on {cause!r}")
        out = method(self, key, ts, cause)
        if to == Phase.FORGOTTEN:
            del self.tasks[key]
            if self.queue.waiting():  # queued work may wait for the slot
                out += self._claim_round()
        else:
            ts.phase = to
        return out

    def _transition_forgotten_fetching(self, key: TaskKey, *_: Any) -> list[Instruction]:
        return [Fetch(key)]

    def _transition_forgotten_recording(self, key: TaskKey, *_: Any) -> list[Instruction]:
        return [Record(key)]

    def _transition_recording_running(self, key: TaskKey, *_: Any) -> list[Instruction]:
        return [Execute(key)]

    def _transition_recording_forgotten(
        self, key: TaskKey, _: TaskState, cause: OfferNotRecorded
    ) -> list[Instruction]:
        if not isinstance(cause, OfferNotRecorded):
            raise InvalidTransition(f"task {key}: recording -> forgotten on {cause!r}")
        return [Refuse(key, cause.why)]

    def _transition_fetching_running(self, key: TaskKey, *_: Any) -> list[Instruction]:
        return [Execute(key)]

    def _transition_fetching_forgotten(
        self, key: TaskKey, ts: TaskState, cause: Event
    ) -> list[Instruction]:
        return self._ended_early(key, ts, cause)

    def _transition_running_committing(
        self, key: TaskKey, ts: TaskState, _: Computed
    ) -> list[Instruction]:
        # an offer is answered first: the client's DoGet and the commit overlap
        return [Answer(key), Commit(key)] if ts.offered else [Commit(key)]

    def _transition_running_forgotten(
        self, key: TaskKey, ts: TaskState, cause: Event
    ) -> list[Instruction]:
        return self._ended_early(key, ts, cause)

    def _transition_committing_forgotten(
        self, key: TaskKey, _: TaskState, cause: Event
    ) -> list[Instruction]:
        if isinstance(cause, Committed):
            return []
        if isinstance(cause, CommitRefused | CommitFailed):
            return [DropResult(key), Release(key)]
        raise InvalidTransition(f"task {key}: committing -> forgotten on {cause!r}")

    def _ended_early(self, key: TaskKey, ts: TaskState, cause: Event) -> list[Instruction]:
        """A task that ends before its result is computed."""
        answer = [Answer(key)] if ts.offered else []
        if isinstance(cause, ControlFailed):
            return [Release(key), *answer]
        if not isinstance(cause, TaskFailed):
            raise InvalidTransition(f"task {key}: {ts.phase} -> forgotten on {cause!r}")
        if cause.stopped or ts.stopping:
            return [Release(key), *answer]
        return [FailQuery(key), *answer]

    # helpers
    def _task(self, key: TaskKey) -> TaskState:
        ts = self.tasks.get(key)
        if ts is None:
            raise InvalidTransition(f"task {key} is not held by this worker")
        return ts

    def _expect(self, e: Event, phase: Phase) -> TaskState:
        """The task `e` is about, which must be in `phase` for `e` to make sense."""
        ts = self._task(e.task)
        if ts.phase != phase:
            raise InvalidTransition(f"task {e.task}: {e!r} while {ts.phase}, not {phase}")
        return ts

    def _may_claim(self) -> bool:
        return self.available > 0 and not self.draining

    def _claim_round(self, listing: bool = False) -> list[Instruction]:
        if not self._may_claim():
            return []
        return [ClaimRound(listing=listing or not self.queue.synced)]

    def _next_claims(self) -> list[Instruction]:
        """Claims of the next listed candidates, as many as slots are unspoken for."""
        out: list[Instruction] = []
        while self.available > 0 and self.candidates and not self.draining:
            rt = self.candidates.pop(0)
            key = (rt.query, rt.task)
            self.claiming.add(key)
            out.append(Claim(key, rt))
        return out

    def _interrupt(self, key: TaskKey, copy: bool | None, why: str) -> list[Instruction]:
        """Stop a task of ours that is still computing (`copy`: only if it is, or is
        not, a speculative copy; None: either)."""
        ts = self.tasks.get(key)
        if ts is None or ts.stopping or ts.phase in (Phase.COMMITTING, Phase.RECORDING):
            return []
        if copy is not None and ts.copy != copy:
            return []
        ts.stopping = why
        return [Interrupt(key, why)]

    def _remember_outputs(self, q: QueryId, outputs: tuple[TaskId, ...]) -> None:
        if q not in self.held:
            self.held[q] = outputs if len(self.held) < MAX_OUTPUTS_KEPT else None


LOST = "its claim is gone: another copy finished first, or the lease expired"

_Handler = Callable[[WorkerState, Any], list[Instruction]]
_Transition = Callable[[WorkerState, TaskKey, TaskState, Any], list[Instruction]]

HANDLERS: dict[type, _Handler] = {
    Wake: WorkerState._handle_wake,
    DrainStarted: WorkerState._handle_drain,
    RunnableAdded: WorkerState._handle_runnable_added,
    RunnableRemoved: WorkerState._handle_runnable_removed,
    ClaimAdded: WorkerState._handle_claim_added,
    ClaimRemoved: WorkerState._handle_claim_removed,
    CopyRemoved: WorkerState._handle_copy_removed,
    StatusChanged: WorkerState._handle_status,
    QueryExpired: WorkerState._handle_expired,
    QueueListed: WorkerState._handle_listed,
    QueueKnown: WorkerState._handle_known,
    WatchesReset: WorkerState._handle_reset,
    ClaimMissed: WorkerState._handle_claim_missed,
    CopyWanted: WorkerState._handle_copy_wanted,
    RoundDone: WorkerState._handle_round_done,
    ClaimWon: WorkerState._handle_claim_won,
    OfferArrived: WorkerState._handle_offer,
    OfferRecorded: WorkerState._handle_recorded,
    OfferNotRecorded: WorkerState._handle_not_recorded,
    InputsFetched: WorkerState._handle_fetched,
    Computed: WorkerState._handle_computed,
    TaskFailed: WorkerState._handle_ended,
    ControlFailed: WorkerState._handle_ended,
    Committed: WorkerState._handle_ended,
    CommitRefused: WorkerState._handle_ended,
    CommitFailed: WorkerState._handle_ended,
}

TRANSITIONS: dict[tuple[Phase, Phase], _Transition] = {
    (Phase.FORGOTTEN, Phase.FETCHING): WorkerState._transition_forgotten_fetching,
    (Phase.FORGOTTEN, Phase.RECORDING): WorkerState._transition_forgotten_recording,
    (Phase.RECORDING, Phase.RUNNING): WorkerState._transition_recording_running,
    (Phase.RECORDING, Phase.FORGOTTEN): WorkerState._transition_recording_forgotten,
    (Phase.FETCHING, Phase.RUNNING): WorkerState._transition_fetching_running,
    (Phase.FETCHING, Phase.FORGOTTEN): WorkerState._transition_fetching_forgotten,
    (Phase.RUNNING, Phase.COMMITTING): WorkerState._transition_running_committing,
    (Phase.RUNNING, Phase.FORGOTTEN): WorkerState._transition_running_forgotten,
    (Phase.COMMITTING, Phase.FORGOTTEN): WorkerState._transition_committing_forgotten,
}
