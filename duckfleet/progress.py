"""Progress the CLI shows on stderr: a query's finished tasks, data generation's steps.

``duckfleet query`` speaks Flight SQL, whose GetFlightInfo answers only once the
query has finished, so the client itself learns nothing while it waits. What it can
read is etcd, where every query's record and its tasks' completions are
(control/keys.py): ``EtcdQueryProgress`` finds the query it sent (a running query's
record with the same SQL, created since the client sent it) and counts its
completed tasks against the record's task count. Without etcd (unreachable, or a
remote fleet's etcd the client cannot reach) the bar is an elapsed-time spinner, and
says why. Nothing is shown in the first second, nor when stderr is not a terminal.

``Steps`` reports the steps of a longer job (``duckfleet up --demo``, ``duckfleet
demo-data``): a rich bar on a terminal, one plain log line per step otherwise.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

SHOW_AFTER_SECONDS = 1.0  # a query that answers sooner shows nothing
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class TaskCount:
    """How far a query is: ``done`` of its ``total`` tasks completed."""

    done: int
    total: int

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 0.0
        return min(1.0, max(0, self.done) / self.total)


class ProgressSource(Protocol):
    def poll(self) -> TaskCount | None:
        """How far the query is now; None while unknown (not found yet)."""
        ...

    def close(self) -> None: ...


class EtcdQueryProgress:
    """The finished tasks of the query a client sent, read from etcd: the record of
    the running query with this SQL created at or after ``since`` (the client's
    clock, a second's slack for the front door's), then its ``done/`` keys counted
    (count-only ranges: no values move)."""

    def __init__(self, store: Any, sql: str, since: float) -> None:
        self.store = store
        self.sql = sql.strip()
        self.since = since - 1.0
        self.query_id: str | None = None
        self.total = 0

    def poll(self) -> TaskCount | None:
        from duckfleet.control import QueryStore

        keys, client = self.store.keys, self.store.client
        if self.query_id is None:
            found = [
                r
                for r in QueryStore(self.store).all_records()
                if r.sql.strip() == self.sql and r.created >= self.since
            ]
            if not found:
                return None
            record = min(found, key=lambda r: r.created)  # the first sent since then
            self.query_id, self.total = record.id, record.ntasks
        resp = client.get_prefix_response(keys.done_of(self.query_id), count_only=True)
        return TaskCount(int(resp.count), self.total)

    def close(self) -> None:
        self.store.close()


def etcd_progress(etcd: str, namespace: str, sql: str, since: float) -> EtcdQueryProgress | None:
    """A progress source over the fleet's etcd, or None if it does not answer at once."""
    from duckfleet.control import Store
    from duckfleet.control.errors import ControlError

    # the client's view of etcd is not the user's concern: no warnings about it
    logging.getLogger("duckfleet.control").setLevel(logging.ERROR)
    try:
        store = Store(etcd, namespace=namespace)
    except (ControlError, ValueError, OSError):
        return None
    try:
        store.wait_ready(1.0)
    except Exception:  # unreachable: an elapsed-time spinner instead
        store.close()
        return None
    return EtcdQueryProgress(store, sql, since)


def describe(count: TaskCount | None, elapsed: float, reachable: bool = True) -> str:
    """The text beside the bar: tasks done, seconds since the query was sent."""
    if not reachable:
        return f"running, {elapsed:.1f}s (no task counts: etcd is not reachable from here)"
    if count is None:
        return f"running, {elapsed:.1f}s"
    return f"{count.done}/{count.total} tasks, {elapsed:.1f}s"


class QueryProgress:
    """While the block runs: after ``delay`` seconds, a bar of the source's task
    counts on ``stream`` (stderr) if it is a terminal; else nothing at all.

        with QueryProgress(lambda: etcd_progress(...)):
            table = execute(...)
    """

    def __init__(
        self,
        open_source: Callable[[], ProgressSource | None],
        stream: IO[str] | None = None,
        delay: float = SHOW_AFTER_SECONDS,
        interval: float = POLL_SECONDS,
    ) -> None:
        self._open_source = open_source
        self._stream = stream if stream is not None else sys.stderr
        self._delay = delay
        self._interval = interval
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.shown = False  # a bar or spinner was drawn
        self._started = time.monotonic()

    @property
    def enabled(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        return bool(isatty and isatty())

    def __enter__(self) -> QueryProgress:
        self._started = time.monotonic()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        if self._done.wait(self._delay):
            return
        opened: list[ProgressSource | None] = []  # etcd may take a while to answer
        opener = threading.Thread(target=lambda: opened.append(self._open_source()), daemon=True)
        opener.start()
        try:
            self._show(opened)
        finally:
            opener.join(0.1)  # a source still being opened is left to the daemon thread
            if opened and opened[0] is not None:
                opened[0].close()

    def _show(self, opened: list[ProgressSource | None]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        console = Console(file=self._stream)
        columns = (SpinnerColumn(), BarColumn(bar_width=30), TextColumn("{task.description}"))
        with Progress(*columns, console=console, transient=True) as bar:
            self.shown = True
            task = bar.add_task(describe(None, self._delay), total=None)
            count = None
            while True:
                elapsed = time.monotonic() - self._started
                if not opened:  # etcd not asked yet
                    bar.update(task, description=describe(None, elapsed))
                elif opened[0] is None:
                    bar.update(task, description=describe(None, elapsed, reachable=False))
                else:
                    count = _poll(opened[0]) or count
                    text = describe(count, elapsed)
                    if count is None:
                        bar.update(task, description=text)
                    else:
                        bar.update(task, total=count.total, completed=count.done, description=text)
                if self._done.wait(self._interval):
                    return


def _poll(source: ProgressSource | None) -> TaskCount | None:
    if source is None:
        return None
    try:
        return source.poll()
    except Exception:  # etcd went away mid-query: the bar stays where it was
        return None


class Steps:
    """The steps of a job, ``total`` of them: on a terminal a rich bar on ``stream``,
    else one line per step (``generating TPC-H: step 3/16: lineitem``)."""

    def __init__(self, title: str, total: int, stream: IO[str] | None = None) -> None:
        self.title = title
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._bar: Any = None
        self._task: Any = None

    @property
    def tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def __enter__(self) -> Steps:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
            )
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=self.total)
        return self

    def step(self, what: str) -> None:
        """Step ``what`` starts."""
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.title}: {what}")
            self._bar.update(self._task, completed=self.done - 1)
        else:
            print(f"{self.title}: step {self.done}/{self.total}: {what}", file=self.stream)
            self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=self.title)
            self._bar.stop()
