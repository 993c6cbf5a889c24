"""A task's inputs: earlier tasks' results, from whichever worker holds them.

When a producer's result is gone — its worker died and the results index entry
vanished with its lease, or the worker no longer answers for it — the consumer
recomputes it here from its lineage: the producer's own task, read from etcd, run
on this worker with its inputs fetched (or recomputed) the same way. The answer is
the same; only this task takes longer.

Exchange: an input with a bucket reads that bucket of each producer (a ticket per
producer and bucket). A lost partitioned producer is recomputed whole, split into
its buckets and kept here, so this worker's other consumers of it reuse it.
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

# runs a task: its result, or its buckets for a partitioned task
RunTask = Callable[[TaskPlan, Mapping[str, pa.Table]], pa.Table | list[pa.Table]]


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
        run: RunTask,
    ) -> None:
        self.queries = queries
        self.local = local
        self.clients = clients
        self.run = run

    def inputs(
        self,
        q: QueryId,
        task: TaskPlan,
        recomputed: list[TaskId],
        index: Mapping[TaskId, ResultInfo] | None = None,
    ) -> dict[str, pa.Table]:
        """Each input relation -> the concatenation of its producers' results.

        Producers recomputed from lineage are appended to `recomputed`. `index`:
        where the results are, if the claim read it already.
        """
        wanted = task.input_tasks
        if not wanted:
            return {}
        if index is None:
            index = self.queries.results(q, wanted)
        parts = {
            (t, b.bucket): self._result(q, t, b.bucket, index.get(t), recomputed)
            for b in task.inputs
            for t in b.tasks
        }
        return {
            b.relation: pa.concat_tables(
                [parts[(t, b.bucket)] for t in b.tasks], promote_options="permissive"
            )
            for b in task.inputs
        }

    def _result(
        self,
        q: QueryId,
        t: TaskId,
        bucket: int,
        info: ResultInfo | None,
        recomputed: list[TaskId],
    ) -> pa.Table:
        """Producer `t`'s result, or its bucket `bucket` (>= 0)."""
        wanted = None if bucket < 0 else bucket
        what = t if wanted is None else f"{t} bucket {bucket}"
        held = self.local.get(q, t, wanted)
        if held is not None:
            return held
        if info is not None:
            try:
                ticket = fl.Ticket(result_ticket(q, t, wanted))
                return self.clients.get(info.location).do_get(ticket).read_all()
            except (fl.FlightError, pa.ArrowException) as exc:
                log.warning("query=%s input %s at %s unreachable: %s", q, what, info.location, exc)
        try:
            producer = self.queries.stored_task(q, t).plan
        except QueryNotFound as exc:
            raise InputUnavailable(f"query {q}: input {t} is lost and so is its lineage") from exc
        log.warning("query=%s input %s lost with its worker: recomputing it from lineage", q, what)
        if t not in recomputed:
            recomputed.append(t)
        out = self.run(producer, self.inputs(q, producer, recomputed))
        if isinstance(out, list):
            self.local.put_buckets(q, t, out)  # this worker's other consumers reuse it
            if wanted is None or not 0 <= wanted < len(out):
                raise InputUnavailable(f"query {q}: input {what} does not exist in its producer")
            return out[wanted]
        if wanted is not None:
            raise InputUnavailable(f"query {q}: input {t} is not partitioned into buckets")
        return out
