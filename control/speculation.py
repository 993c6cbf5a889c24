"""Speculation: which running tasks deserve a second copy. Pure: no etcd here.

A worker with a free slot and nothing runnable to claim looks at the tasks running
elsewhere. One is a straggler when, compared with the finished tasks of its own
stage, it has run far longer than their median:

    elapsed > max(min_seconds, factor * median(finished durations))

and enough of its stage has finished for that median to mean something (at least
``quantile`` of the stage's tasks, and at least one). A task already copied, or
running on the asking worker itself, is never copied. The worker then claims a
copy (control/task_queue.py ``claim_copy``); both copies run, the first completion
commits, and the other is interrupted and discarded.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from duckfleet.ids import MemberId, QueryId, TaskId


@dataclass(frozen=True)
class SpeculationPolicy:
    enabled: bool = True
    factor: float = 3.0  # a straggler has run this many times its stage's median
    min_seconds: float = 2.0  # ... and at least this long
    quantile: float = 0.5  # ... once this fraction of its stage has finished


@dataclass(frozen=True)
class Attempt:
    """A task running now somewhere in the fleet."""

    query: QueryId
    task: TaskId
    worker: MemberId
    started: float  # wall clock
    copied: bool = False  # a second copy of it runs already


@dataclass(frozen=True)
class StageProgress:
    tasks: int  # in the stage
    durations: tuple[float, ...]  # seconds, of the stage's finished tasks


def old_enough(
    running: Iterable[Attempt], now: float, policy: SpeculationPolicy, me: MemberId
) -> list[Attempt]:
    """The attempts that could be stragglers, before reading their stages: those
    worth the etcd reads that `stragglers` needs."""
    if not policy.enabled:
        return []
    return [
        a
        for a in running
        if not a.copied and a.worker != me and now - a.started >= policy.min_seconds
    ]


@dataclass(frozen=True)
class Decision:
    copy: tuple[Attempt, ...]  # stragglers, the most overdue first
    recheck_in: float | None  # seconds until a candidate not yet overdue would be


def stragglers(
    candidates: Iterable[Attempt],
    stage_of: Mapping[tuple[QueryId, TaskId], int],
    progress: Mapping[tuple[QueryId, int], StageProgress],
    now: float,
    policy: SpeculationPolicy,
) -> Decision:
    """Which candidates (from `old_enough`) to copy now, and when to look again.

    A candidate whose stage has too few finished tasks gets no recheck time: the
    completion of another task is what can change its verdict (and it wakes the
    worker anyway)."""
    found: list[tuple[float, Attempt]] = []
    waits: list[float] = []
    for a in candidates:
        stage = stage_of.get((a.query, a.task))
        p = progress.get((a.query, stage)) if stage is not None else None
        if p is None or not p.durations:
            continue
        if len(p.durations) < max(1, math.ceil(policy.quantile * p.tasks)):
            continue
        limit = max(policy.min_seconds, policy.factor * statistics.median(p.durations))
        elapsed = now - a.started
        if elapsed > limit:
            found.append((elapsed / limit, a))
        else:
            waits.append(limit - elapsed)
    found.sort(key=lambda pair: (-pair[0], pair[1].query, pair[1].task))
    return Decision(tuple(a for _, a in found), min(waits) if waits else None)


def next_look(
    running: Iterable[Attempt], now: float, policy: SpeculationPolicy, me: MemberId
) -> float | None:
    """Seconds until the next running attempt becomes old enough to look at; None
    if none will (nothing younger runs elsewhere, or speculation is off)."""
    if not policy.enabled:
        return None
    waits = [
        w
        for a in running
        if not a.copied and a.worker != me and (w := a.started + policy.min_seconds - now) > 0
    ]
    return min(waits, default=None)
