"""Keep a local fleet's child processes running: `duckfleet up` heals itself.

A child that exits while the fleet runs (etcd, a front door, a worker, the
balancer) is started again after a backoff that doubles with each exit in a row
(0.5 s, 1 s, 2 s, ... at most 30 s) and resets once the child has stayed up for a
minute, so a crash costs seconds and a child that cannot start does not spin.

`Backoff` is the pure policy; `Supervisor` applies it to children given as
callables, from a thread of its own or tick by tick in a test.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("duckfleet.up")


@dataclass
class Backoff:
    first: float = 0.5
    cap: float = 30.0
    healthy_after: float = 60.0  # up this long: the next exit counts as the first
    exits_in_a_row: int = 0
    started_at: float = 0.0

    def started(self, now: float) -> None:
        self.started_at = now

    def delay_after_exit(self, now: float) -> float:
        """Seconds to wait before starting again, given an exit at `now`."""
        if now - self.started_at >= self.healthy_after:
            self.exits_in_a_row = 0
        delay = min(self.cap, self.first * 2**self.exits_in_a_row)
        self.exits_in_a_row += 1
        return delay


@dataclass
class Child:
    name: str  # as the log says it: "worker 1", "etcd"
    exit_code: Callable[[], int | None]  # None while it runs
    restart: Callable[[], object]
    backoff: Backoff = field(default_factory=Backoff)
    due: float | None = None  # when a restart is scheduled
    restarts: int = 0


class Supervisor:
    def __init__(self, children: list[Child], interval: float = 0.2) -> None:
        self.children = children
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = time.monotonic()
        for c in children:
            c.backoff.started(now)

    def tick(self, now: float | None = None) -> list[str]:
        """Schedule restarts of children that exited, start those that are due; the
        names of the children started again."""
        now = time.monotonic() if now is None else now
        restarted = []
        for c in self.children:
            if c.due is None:
                code = c.exit_code()
                if code is None:
                    continue
                delay = c.backoff.delay_after_exit(now)
                c.due = now + delay
                log.warning(
                    "%s exited with status %s; starting it again in %.1f s", c.name, code, delay
                )
            if now >= c.due:
                c.due = None
                try:
                    c.restart()
                except Exception as exc:  # it exits again or never started: try later
                    log.warning("%s did not start again: %s", c.name, exc)
                    delay = c.backoff.delay_after_exit(now)
                    c.due = now + delay
                    continue
                c.restarts += 1
                c.backoff.started(now)
                restarted.append(c.name)
                log.info("%s started again (restart %d)", c.name, c.restarts)
        return restarted

    def start(self) -> Supervisor:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
