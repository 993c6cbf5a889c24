"""Tasks running on this worker, and how another thread stops one.

A task's fragments (its own, and any lost input it recomputes from lineage) run on
DuckDB connections opened through `RunningTask.connection`. When the task must stop
— its query was cancelled, timed out or failed, or another copy of it committed
first — the watch thread calls `stop`: every open connection is interrupted
(DuckDB's ``interrupt()``, which ends the statement running on that connection
only), and a fragment about to start refuses to.

DuckDB forgets an interrupt that arrives before a statement starts, so `stop`
repeats it every few milliseconds while a connection of the task is still open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from duckfleet.control import ClaimedTask
from duckfleet.control.records import QueryStatus, ResultInfo
from duckfleet.ids import TaskId
from duckfleet.planner.plan import Plan
from duckfleet.worker.errors import TaskStopped

log = logging.getLogger("duckfleet.worker")

REINTERRUPT_SECONDS = 0.02
REINTERRUPT_FOR = 10.0  # a statement that ignores interrupts this long is DuckDB's bug


class RunningTask:
    def __init__(self, ct: ClaimedTask) -> None:
        self.ct = ct
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._connections: set[duckdb.DuckDBPyConnection] = set()
        self._stopped = ""
        self._computed = False  # its fragments are done: nothing left to stop
        # what its steps hand to the next (worker/worker.py carries them out)
        self.inputs: Mapping[str, pa.Table] = {}
        self.recomputed: list[TaskId] = []  # lost inputs it recomputed from lineage
        self.fetched: float | None = None  # monotonic times its steps ended
        self.ran: float | None = None
        self.info: ResultInfo | None = None  # its kept result
        self.error: BaseException | None = None  # why it failed
        self.status: QueryStatus | None = None  # the status its failure gave the query
        self.offer_plan: Plan | None = None  # an offered query's plan (worker/offers.py)
        self.recorded = False  # an offered query recorded in etcd

    @property
    def stopped(self) -> str:
        """Why the task was stopped; empty while it may run."""
        return self._stopped

    @contextmanager
    def connection(
        self, open_connection: Callable[[], duckdb.DuckDBPyConnection]
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection for one fragment of this task, closed afterwards."""
        con = open_connection()
        try:
            with self._lock:
                self._connections.add(con)
            if self._stopped:
                raise TaskStopped(self._stopped)
            yield con
        finally:
            with self._lock:  # never closed while _interrupt is using it
                self._connections.discard(con)
                con.close()

    def computed(self) -> None:
        """The result is computed; from now on only its completion (fenced) decides."""
        with self._lock:
            self._computed = True

    def stop(self, why: str) -> None:
        """Interrupt the task's fragments; any later one refuses to start."""
        with self._lock:
            if self._stopped or self._computed:
                return
            self._stopped = why
        q, t = self.ct.query_id, self.ct.task_id
        log.info("query=%s task=%s stopping: %s", q, t, why)
        threading.Thread(target=self._interrupt, name=f"stop-{q}-{t}", daemon=True).start()

    def _interrupt(self) -> None:
        deadline = time.monotonic() + REINTERRUPT_FOR
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections:
                    return
                for con in self._connections:
                    con.interrupt()
            time.sleep(REINTERRUPT_SECONDS)
