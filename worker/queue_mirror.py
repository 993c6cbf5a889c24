"""What a worker knows of the shared queue from its watches, so that a claim round
reads nothing a watch already told (worker/state.py keeps one).

The runnable markers (each carries what ordering needs: control/queries.py
`runnable_value`) and the claims of the whole fleet, as the watches on runnable/
and claims/ report them; a full listing of the queue (`reset`) replaces both. The
mirror may lag etcd by the watches' delay, never by more than the time to the next
listing: a claim made from it is still a fenced transaction, so a stale entry
costs a missed claim, never a wrong one. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

from duckfleet.control.records import RunnableTask
from duckfleet.control.scheduling import order_runnable, spread_ties
from duckfleet.ids import QueryId, TaskId

TaskKey = tuple[QueryId, TaskId]


class QueueMirror:
    def __init__(self) -> None:
        self.markers: dict[TaskKey, RunnableTask] = {}
        self.claimed: set[TaskKey] = set()
        self.synced = False  # listed once, and no watch broke since

    def reset(self, unclaimed: Iterable[RunnableTask], claimed: Iterable[TaskKey]) -> None:
        """A full listing: the runnable tasks no one holds, and every claim."""
        self.claimed = set(claimed)
        self.markers = {(rt.query, rt.task): rt for rt in unclaimed}
        self.synced = True

    def add(self, marker: RunnableTask) -> None:
        self.markers[(marker.query, marker.task)] = marker

    def remove(self, key: TaskKey) -> None:
        self.markers.pop(key, None)

    def claim(self, key: TaskKey) -> None:
        self.claimed.add(key)

    def unclaim(self, key: TaskKey) -> bool:
        """A claim is gone; whether its task's marker is known (if not, only a
        listing can say whether the task is free to claim)."""
        self.claimed.discard(key)
        return key in self.markers

    def waiting(self) -> bool:
        """May a runnable task wait unclaimed?"""
        return any(k not in self.claimed for k in self.markers)

    def depth(self) -> int:
        """Runnable tasks no one holds, as far as this mirror knows."""
        return sum(k not in self.claimed for k in self.markers)

    def ordered(self, start: int, fifo: bool = False) -> list[RunnableTask]:
        """The unclaimed runnable tasks, best first (control/scheduling.py), with
        each query's running count from the claims."""
        running = Counter(q for q, _ in self.claimed)
        free = [
            dataclasses.replace(rt, running=running[rt.query])
            for k, rt in self.markers.items()
            if k not in self.claimed
        ]
        return spread_ties(order_runnable(free, fifo), start, fifo)
