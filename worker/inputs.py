"""A task's inputs: earlier tasks' results, from whichever worker holds them.

When a producer's result is gone — its worker died and the results index entry
vanished with its lease, or the worker no longer answers for it — the consumer
recomputes it here from its lineage: the producer's own task, read from etcd, run
on this worker with its inputs fetched (or recomputed) the same way. The answer is
the same; only this task takes longer.

Exchange: an input with a bucket reads that bucket of each producer (a ticket per
producer and bucket). A lost partitioned producer is recomputed whole, split into
its buckets and kept here, so this worker's other consumers of it reuse it.

Results held by other workers are fetched at the same time (one DoGet each, on a
small thread pool); what cannot be fetched is recomputed afterwards, on the task's
own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.control import QueryStore
from duckfleet.control.errors import QueryNotFound
from duckfleet.control.records import ResultInfo
from duckfleet.ids import QueryId, TaskId
from duckfleet.planner.plan import TaskPlan
from duckfleet.wire.clients import FlightClients
from duckfleet.wire.tickets import result_ticket
from duckfleet.worker.errors import InputUnavailable
from duckfleet.worker.results import ResultStore

log = logging.getLogger("duckfleet.worker")

FETCH_THREADS = 8  # inputs fetched at once, per worker

# runs a task: its result, or its buckets for a partitioned task
RunTask = Callable[[TaskPlan, Mapping[str, pa.Table]], pa.Table | list[pa.Table]]


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
        self._fetchers = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="fetch")

    def close(self) -> None:
        self._fetchers.shutdown(wait=False, cancel_futures=True)

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
        needed = list(dict.fromkeys((t, b.bucket) for b in task.inputs for t in b.tasks))
        remote = [
            (t, bucket, index[t])
            for t, bucket in needed
            if t in index and self.local.get(q, t, None if bucket < 0 else bucket) is None
        ]
        fetched = self._fetch_all(q, remote)
        parts: dict[tuple[TaskId, int], pa.Table] = {}
        for t, bucket in needed:
            got = fetched.get((t, bucket))
            if got is None:  # held here, or its fetch failed (then it is recomputed)
                info = None if (t, bucket) in fetched else index.get(t)
                got = self._result(q, t, bucket, info, recomputed)
            parts[(t, bucket)] = got
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
            got = self._fetch(q, t, bucket, info)
            if got is not None:
                return got
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

    def _fetch_all(
        self, q: QueryId, remote: list[tuple[TaskId, int, ResultInfo]]
    ) -> dict[tuple[TaskId, int], pa.Table | None]:
        """Each (producer, bucket) -> its result fetched from the worker holding it,
        all at once; None where that failed."""
        if len(remote) <= 1:
            return {(t, bucket): self._fetch(q, t, bucket, info) for t, bucket, info in remote}
        futures = {
            (t, bucket): self._fetchers.submit(self._fetch, q, t, bucket, info)
            for t, bucket, info in remote
        }
        return {key: f.result() for key, f in futures.items()}

    def _fetch(self, q: QueryId, t: TaskId, bucket: int, info: ResultInfo) -> pa.Table | None:
        wanted = None if bucket < 0 else bucket
        try:
            ticket = fl.Ticket(result_ticket(q, t, wanted))
            return self.clients.get(info.location).do_get(ticket).read_all()
        except (fl.FlightError, pa.ArrowException) as exc:
            what = t if wanted is None else f"{t} bucket {bucket}"
            log.warning("query=%s input %s at %s unreachable: %s", q, what, info.location, exc)
            return None
