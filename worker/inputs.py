"""A task's inputs: earlier tasks' results, from whichever worker holds them.

When a producer's result is gone — its worker died and the results index entry
vanished with its lease, or the worker no longer answers for it — the consumer
recomputes it here from its lineage: the producer's own task, read from etcd, run
on this worker with its inputs fetched (or recomputed) the same way. The answer is
the same; only this task takes longer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.control import QueryStore
from duckfleet.control.errors import QueryNotFound
from duckfleet.control.records import ResultInfo
from duckfleet.flight.auth import ClientSecurity
from duckfleet.flight.tickets import result_ticket
from duckfleet.ids import QueryId, TaskId
from duckfleet.planner.plan import TaskPlan
from duckfleet.worker.errors import InputUnavailable
from duckfleet.worker.results import ResultStore

log = logging.getLogger("duckfleet.worker")

RunFragment = Callable[[TaskPlan, Mapping[str, pa.Table]], pa.Table]


class FlightClients:
    """One Flight client per location, shared by the worker's task threads.

    ``security``: TLS roots and this process's bearer token (flight/auth.py), so
    calls to other members pass their TLS and token checks."""

    def __init__(self, security: ClientSecurity | None = None) -> None:
        self._security = security or ClientSecurity()
        self._lock = threading.Lock()
        self._clients: dict[str, fl.FlightClient] = {}

    def get(self, location: str) -> fl.FlightClient:
        with self._lock:
            client = self._clients.get(location)
            if client is None:
                client = self._clients[location] = self._security.connect(location)
            return client

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()


class InputFetcher:
    def __init__(
        self,
        queries: QueryStore,
        local: ResultStore,
        clients: FlightClients,
        run: RunFragment,
    ) -> None:
        self.queries = queries
        self.local = local
        self.clients = clients
        self.run = run

    def inputs(self, q: QueryId, task: TaskPlan, recomputed: list[TaskId]) -> dict[str, pa.Table]:
        """Each input relation -> the concatenation of its producers' results.

        Producers recomputed from lineage are appended to `recomputed`.
        """
        wanted = task.input_tasks
        if not wanted:
            return {}
        index = self.queries.results(q, wanted)
        tables = {t: self._result(q, t, index.get(t), recomputed) for t in dict.fromkeys(wanted)}
        return {
            b.relation: pa.concat_tables([tables[t] for t in b.tasks], promote_options="permissive")
            for b in task.inputs
        }

    def _result(
        self, q: QueryId, t: TaskId, info: ResultInfo | None, recomputed: list[TaskId]
    ) -> pa.Table:
        held = self.local.get(q, t)
        if held is not None:
            return held
        if info is not None:
            try:
                ticket = fl.Ticket(result_ticket(q, t))
                return self.clients.get(info.location).do_get(ticket).read_all()
            except (fl.FlightError, pa.ArrowException) as exc:
                log.warning("query=%s input %s at %s unreachable: %s", q, t, info.location, exc)
        try:
            producer = self.queries.stored_task(q, t).plan
        except QueryNotFound as exc:
            raise InputUnavailable(f"query {q}: input {t} is lost and so is its lineage") from exc
        log.warning("query=%s input %s lost with its worker: recomputing it from lineage", q, t)
        recomputed.append(t)
        return self.run(producer, self.inputs(q, producer, recomputed))
