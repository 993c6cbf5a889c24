"""Fetch a task's inputs: earlier tasks' results, from whichever worker holds them."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.control import QueryStore
from duckfleet.flight.tickets import result_ticket
from duckfleet.ids import QueryId, TaskId
from duckfleet.planner.plan import TaskPlan
from duckfleet.worker.errors import InputUnavailable
from duckfleet.worker.results import ResultStore


class FlightClients:
    """One Flight client per location, shared by the worker's task threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, fl.FlightClient] = {}

    def get(self, location: str) -> fl.FlightClient:
        with self._lock:
            client = self._clients.get(location)
            if client is None:
                client = self._clients[location] = fl.connect(location)
            return client

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()


def fetch_inputs(
    q: QueryId,
    task: TaskPlan,
    queries: QueryStore,
    local: ResultStore,
    clients: FlightClients,
) -> dict[str, pa.Table]:
    """Each input relation -> the concatenation of its producers' results."""
    wanted = task.input_tasks
    if not wanted:
        return {}
    index = queries.results(q, wanted)
    tables: dict[TaskId, pa.Table] = {}
    for t in wanted:
        held = local.get(q, t)
        if held is not None:
            tables[t] = held
            continue
        info = index.get(t)
        if info is None:
            raise InputUnavailable(f"query {q}: the result of {t} is not held by any worker")
        try:
            reader = clients.get(info.location).do_get(fl.Ticket(result_ticket(q, t)))
            tables[t] = reader.read_all()
        except fl.FlightError as exc:
            raise InputUnavailable(
                f"query {q}: fetching {t} from {info.location} failed: {exc}"
            ) from exc
    out = {}
    for binding in task.inputs:
        parts = [tables[t] for t in binding.tasks]
        out[binding.relation] = pa.concat_tables(parts, promote_options="permissive")
    return out
