"""Who ran what, when: a watch on the fleet's claims in etcd.

A claim key appears when a worker claims a task and disappears when the worker
completes it, releases it, or loses it with its lease. Each pair is one `TaskRun`
on that worker; the times are when this process saw the events (a watch delivers
them within a millisecond or so on loopback).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from duckfleet.control import PrefixWatch
from duckfleet.control.records import Claim
from duckfleet.local_fleet import LocalFleet


@dataclass
class TaskRun:
    query: str
    task: str
    worker: str
    start: float  # time.monotonic()
    end: float | None = None

    @property
    def seconds(self) -> float:
        return (self.end if self.end is not None else time.monotonic()) - self.start


class Timeline:
    """`with Timeline(fleet) as tl: ...; tl.runs(query)`."""

    def __init__(self, fleet: LocalFleet) -> None:
        self.store = fleet.store()
        self.prefix = self.store.keys.all_claims()
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], TaskRun] = {}
        self._all: list[TaskRun] = []
        self.watch = PrefixWatch(self.store, self.prefix, self._on_event, name="bench-timeline")

    def __enter__(self) -> Timeline:
        self.watch.start()
        if not self.watch.connected.wait(10):
            raise RuntimeError("could not watch the fleet's claims in etcd")
        return self

    def __exit__(self, *exc: object) -> None:
        self.watch.stop()
        self.store.close()

    def _on_event(self, kind: str, key: bytes, value: bytes) -> None:
        now = time.monotonic()
        q, t = self.store.keys.split_task_key(key, self.prefix)
        with self._lock:
            if kind == "put":
                run = TaskRun(q, t, Claim.from_json(value).worker, now)
                self._open[(q, t)] = run
                self._all.append(run)
            elif (q, t) in self._open:
                self._open.pop((q, t)).end = now

    def runs(self, query: str | None = None, since: float = 0.0) -> list[TaskRun]:
        """Task runs (of `query`, if given) that started at or after `since`."""
        with self._lock:
            return [
                r for r in self._all if (query is None or r.query == query) and r.start >= since
            ]

    def running(self) -> list[TaskRun]:
        with self._lock:
            return list(self._open.values())

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until no claim is held (the previous query's stragglers are gone)."""
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.01)


def busy_seconds(runs: list[TaskRun]) -> dict[str, float]:
    """Seconds each worker held claims (its slots' busy time, summed)."""
    out: dict[str, float] = {}
    for r in runs:
        out[r.worker] = out.get(r.worker, 0.0) + r.seconds
    return out
