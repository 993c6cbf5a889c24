"""An idle worker's look for stragglers: read the running tasks, decide with
control/speculation.py, and say when to look again."""

from __future__ import annotations

import time

from duckfleet.control import TaskQueue
from duckfleet.control.speculation import (
    Attempt,
    SpeculationPolicy,
    next_look,
    old_enough,
    stragglers,
)
from duckfleet.ids import MemberId


def look_for_stragglers(
    queue: TaskQueue, policy: SpeculationPolicy, me: MemberId, running: list[Attempt]
) -> tuple[tuple[Attempt, ...], float | None]:
    """Tasks worth a copy on this worker now, and seconds until the next look (None:
    only an event can change the answer). `running`: the attempts the claim round
    just listed."""
    if not policy.enabled:
        return (), None
    now = time.time()
    look = next_look(running, now, policy, me)
    waits = [] if look is None else [look]
    candidates = old_enough(running, now, policy, me)
    if not candidates:
        return (), min(waits, default=None)
    stage_of, progress = queue.stage_progress(a.query for a in candidates)
    decision = stragglers(candidates, stage_of, progress, now, policy)
    if decision.recheck_in is not None:
        waits.append(decision.recheck_in)
    return decision.copy, min(waits, default=None)
