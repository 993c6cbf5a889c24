"""The shared task queue, as the workers use it: list, claim, complete, fail.

Claim: one transaction creates ``claims/<q>/<t>`` only if it is absent, the task is
runnable and the query still running; the claim is bound to the worker's lease, so
it vanishes if the worker dies or is cut off.

Complete: one transaction fenced on the claim's exact value records the result,
releases the claim and makes each consumer whose inputs are now all done runnable —
or, for the query's outputs, marks the query finished. A consumer of few inputs
(control/queries.py FEW_INPUTS) is checked inside the transaction, by a nested one
comparing the done keys of its other inputs: etcd applies transactions one at a
time, so exactly the last of its inputs to complete sees all the others done. A
consumer of many inputs has a pending counter, read first and decremented
(compare-and-swap on its revision). If the fence fails the worker has lost the
task and its result is discarded.

Copy (speculation): a second claim of a running task, under ``copies/<q>/<t>``, so
both copies run. Each completes fenced on its own key and on ``done/<q>/<t>`` being
absent: exactly one commits, and its transaction deletes both keys, which tells
the other copy's worker to stop.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from etcd3.client import KVMetadata  # type: ignore[import-untyped]
from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control.keys import QUERY_SINK
from duckfleet.control.queries import (
    StoredTask,
    delete_prefix_op,
    runnable_marker,
    runnable_value,
)
from duckfleet.control.records import (
    RUNNING_JSON,
    Claim,
    EndReason,
    QueryRecord,
    QueryState,
    QueryStatus,
    ResultInfo,
    RunnableTask,
)
from duckfleet.control.scheduling import order_runnable
from duckfleet.control.speculation import Attempt, StageProgress
from duckfleet.control.store import Store, translated
from duckfleet.ids import MemberId, QueryId, TaskId

log = logging.getLogger("duckfleet.control")

COMPLETE_RETRIES = 50


@dataclass(frozen=True)
class QueueView:
    runnable: list[RunnableTask]  # unclaimed, best first (control/scheduling.py)
    running: list[Attempt]  # every claim held now, marked if it has a copy


@dataclass(frozen=True)
class ClaimedTask:
    record: QueryRecord
    task: StoredTask
    claim: Claim
    copy: bool = False  # a speculative second copy (its claim is under copies/)
    # where its inputs' results were when it was claimed (None: not read)
    results: Mapping[TaskId, ResultInfo] | None = None

    @property
    def query_id(self) -> QueryId:
        return self.record.id

    @property
    def task_id(self) -> TaskId:
        return self.task.plan.id


class TaskQueue:
    def __init__(self, store: Store, fifo: bool = False) -> None:
        self.store = store
        self.keys = store.keys
        self.fifo = fifo

    @translated("listing the queue")
    def view(self) -> QueueView:
        """Runnable tasks and running attempts, from one read of etcd (a worker's
        every wake-up starts with it)."""
        k, txn = self.keys, self.store.txn
        prefixes = (k.all_runnable(), k.all_claims(), k.all_copies())
        _, (runnable_kvs, claim_kvs, copy_kvs) = self.store.transaction(
            compare=[],
            success=[txn.get(p, range_end=prefix_range_end(p.encode())) for p in prefixes],
            failure=[],
        )
        copied = {k.split_task_key(meta.key, k.all_copies()) for _, meta in copy_kvs}
        running: Counter[QueryId] = Counter()
        attempts = []
        for value, meta in claim_kvs:
            q, t = k.split_task_key(meta.key, k.all_claims())
            running[q] += 1
            claim = Claim.from_json(value)
            attempts.append(Attempt(q, t, claim.worker, claim.started, (q, t) in copied))
        claimed = {(a.query, a.task) for a in attempts}
        out = []
        for value, meta in runnable_kvs:
            q, t = k.split_task_key(meta.key, k.all_runnable())
            if (q, t) in claimed:
                continue
            out.append(runnable_marker(q, t, value, running[q]))
        return QueueView(order_runnable(out, self.fifo), attempts)

    def runnable(self) -> list[RunnableTask]:
        """Unclaimed runnable tasks, best first: higher priority, then the query with
        the fewest running tasks (fair share), then the oldest query."""
        return self.view().runnable

    def running_attempts(self) -> list[Attempt]:
        """Every task running now in the fleet, by its claim; marked if copied."""
        return self.view().running

    def claim(
        self, rt: RunnableTask, worker: MemberId, location: str, lease_id: int
    ) -> ClaimedTask | None:
        """Claim a runnable task, or None if another worker holds it or it is gone.

        Every claim bumps the version of ``attempts/<q>/<t>``; a task claimed
        ``max_attempts`` times whose workers were all lost fails its query instead
        of being claimed again, so a task that kills its worker cannot loop.
        """
        return self.claim_many([rt], worker, location, lease_id)[0]

    @translated("claiming tasks")
    def claim_many(
        self, rts: list[RunnableTask], worker: MemberId, location: str, lease_id: int
    ) -> list[ClaimedTask | None]:
        """Claim each of `rts` as `claim` does, all in one etcd transaction (one disk
        sync): each claim is a transaction of its own nested in it, so each succeeds
        or fails alone. The claimed task, or None, for each."""
        # the token is made once, so a call retried on another etcd endpoint after
        # its first try committed recognises the claim as its own
        now = time.time()
        claims = [Claim(worker, uuid.uuid4().hex, location, started=now) for _ in rts]
        parts = [self._claim_ops(rt, c, lease_id) for rt, c in zip(rts, claims, strict=True)]
        if len(parts) == 1:
            answers = [self.store.transaction(*parts[0])]
        else:
            txn = self.store.txn
            _, nested = self.store.transaction(
                compare=[], success=[txn.txn(*part) for part in parts], failure=[]
            )
            answers = [_nested_responses(r) for r in nested]
        out = []
        for rt, claim, part, (ok, responses) in zip(rts, claims, parts, answers, strict=True):
            responses = responses[len(responses) - len(part[2]) :]  # its reads
            ct = self._claimed(rt, claim, responses)
            if ct is None and not ok and not responses[0]:
                # free of claims but not claimed: maybe out of attempts, as its
                # marker read now says (a declared death raises its allowance)
                runnable_kvs, attempts_kvs = responses[-2:]
                claims = int(attempts_kvs[0][1].version) if attempts_kvs else 0
                if runnable_kvs:
                    marker = runnable_marker(rt.query, rt.task, runnable_kvs[0][0])
                    if claims >= marker.max_attempts:
                        self._fail_if_out_of_attempts(marker, runnable_kvs[0][0])
            out.append(ct)
        return out

    def _free(self, q: QueryId, t: TaskId) -> list[Any]:
        k, txn = self.keys, self.store.txn
        return [
            txn.version(k.claim(q, t)) == 0,
            txn.version(k.runnable(q, t)) > 0,
            txn.value(k.status(q)) == RUNNING_JSON,
        ]

    def _claim_ops(
        self, rt: RunnableTask, claim: Claim, lease_id: int
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """The transaction that claims `rt`: compare, success, failure. Either way it
        reads the claim, the task and the query (and its results when it has
        inputs) as its last responses."""
        k, txn = self.keys, self.store.txn
        q, t = rt.query, rt.task
        reads = self._claim_reads(rt)
        return (
            [*self._free(q, t), txn.version(k.attempts(q, t)) < rt.max_attempts],
            [
                txn.put(k.claim(q, t), claim.to_json(), lease=lease_id),
                txn.put(k.attempts(q, t), claim.worker, lease=rt.lease),
                *reads,
            ],
            reads,
        )

    def _claim_reads(self, rt: RunnableTask) -> list[Any]:
        k, txn = self.keys, self.store.txn
        q, t = rt.query, rt.task
        reads = [txn.get(k.claim(q, t)), txn.get(k.task(q, t)), txn.get(k.query(q))]
        if rt.inputs:  # where its inputs are, read in the same round trip
            results = k.results_of(q)
            reads.append(txn.get(results, range_end=prefix_range_end(results.encode())))
        # last: its marker and attempts, for a claim refused for want of attempts
        reads += [txn.get(k.runnable(q, t)), txn.get(k.attempts(q, t))]
        return reads

    def _claimed(self, rt: RunnableTask, claim: Claim, responses: list[Any]) -> ClaimedTask | None:
        """What a claim transaction's responses say: the task, if the claim is ours.
        `responses` is trimmed to its reads, the claim's first."""
        k = self.keys
        claim_kvs, task_kvs, query_kvs = responses[:3]
        mine = bool(claim_kvs) and claim_kvs[0][0] == claim.to_json().encode()
        if not (mine and task_kvs and query_kvs):
            return None
        task = StoredTask.from_json(task_kvs[0][0])
        index = None
        if rt.inputs:
            wanted = set(task.plan.input_tasks)
            index = {
                r: ResultInfo.from_json(value)
                for value, meta in responses[3]
                if (r := k.split_task_key(meta.key, k.all_results())[1]) in wanted
            }
        return ClaimedTask(
            record=QueryRecord.from_json(query_kvs[0][0]),
            task=task,
            claim=claim,
            results=index,
        )

    def _fail_if_out_of_attempts(self, rt: RunnableTask, marker: bytes) -> None:
        """A free task claimed max_attempts times fails its query (once, whoever
        gets here first), fenced on its runnable marker as read (`marker`: a
        declared death, control/declarations.py, raises its allowance there)."""
        k, txn = self.keys, self.store.txn
        q, t = rt.query, rt.task
        status = QueryStatus(
            QueryState.FAILED,
            error=(
                f"task {t} was started {rt.max_attempts} times and each time its worker was "
                "lost before finishing (killed, out of memory, or cut off from etcd); "
                "giving up on the query"
            ),
            task=t,
            at=time.time(),
        )
        failed, _ = self.store.transaction(
            compare=[
                *self._free(q, t),
                txn.value(k.runnable(q, t)) == marker,
                txn.version(k.attempts(q, t)) > rt.max_attempts - 1,
            ],
            success=[
                txn.put(k.status(q), status.to_json(), lease=rt.lease),
                delete_prefix_op(self.store, k.runnable_of(q)),
            ],
            failure=[],
        )
        if failed:
            log.warning("query %s failed: task %s out of attempts", q, t)

    def _read_counters(
        self, ct: ClaimedTask, counted: list[TaskId]
    ) -> dict[TaskId, tuple[int, int]]:
        """Each counted consumer's pending count and that key's mod revision, in one
        round trip."""
        if not counted:
            return {}
        k, txn = self.keys, self.store.txn
        _, responses = self.store.transaction(
            compare=[],
            success=[txn.get(k.pending(ct.query_id, c)) for c in counted],
            failure=[],
        )
        out = {}
        for c, kvs in zip(counted, responses, strict=True):
            if not kvs:
                continue  # the query's keys expired under us; the fence will fail too
            value, meta = kvs[0]
            out[c] = (int(value), int(meta.mod_revision))
        return out

    @translated("completing a task")
    def complete(
        self,
        ct: ClaimedTask,
        result: ResultInfo,
        lease_id: int,
        recomputed: tuple[TaskId, ...] = (),
        seconds: float = 0.0,
        made_runnable: list[TaskId] | None = None,
    ) -> bool:
        """Commit the task's completion; False if this worker no longer holds it, or
        the other copy of a speculated task committed first. `seconds`: how long
        it ran (speculation compares a stage's tasks by it). `made_runnable`, if
        given, is told the consumers this completion made runnable (the worker's
        queue mirror learns of them before any watch says so)."""
        k, txn = self.keys, self.store.txn
        q, t, lease = ct.query_id, ct.task_id, ct.record.lease
        fields: dict[str, Any] = {
            "worker": result.worker,
            "rows": result.rows,
            "bytes": result.bytes,
            "recomputed": list(recomputed),
            "seconds": round(seconds, 4),
            "copy": ct.copy,
            "ms": round(seconds * 1000, 3),
            "started": ct.claim.started,  # wall clock: the query page's timeline
        }
        if result.bucket_rows:  # exchange: the rows of each bucket, in the same commit
            fields["bucket_rows"] = list(result.bucket_rows)
        done = json.dumps(fields)
        counted = [c for c in ct.task.consumers if c not in ct.task.inputs_of]
        for _ in range(COMPLETE_RETRIES):
            counters = self._read_counters(ct, counted)
            compare = self._fence(ct)
            success: list[Any] = [
                txn.put(k.done(q, t), done, lease=lease),
                txn.put(k.result(q, t), result.to_json(), lease=lease_id),
                txn.delete(k.runnable(q, t)),
                txn.delete(k.claim(q, t)),
                txn.delete(k.copy(q, t)),  # the other copy, if any, sees it lost
            ]
            base = len(success)  # the nested transactions' answers follow these
            for c, inputs in ct.task.inputs_of.items():
                others = [txn.version(k.done(q, i)) > 0 for i in inputs if i != t]
                ready = self._ready(ct, c)
                success.append(txn.txn(compare=others, success=[ready], failure=[]))
            for c, (n, rev) in counters.items():
                compare.append(txn.mod(k.pending(q, c)) == rev)
                success.append(txn.put(k.pending(q, c), str(n - 1), lease=lease))
                if n - 1 <= 0:
                    success.append(self._ready(ct, c))
            ok, responses = self.store.transaction(compare=compare, success=success, failure=[])
            if ok:
                if made_runnable is not None:
                    nested = responses[base : base + len(ct.task.inputs_of)]
                    made_runnable += [
                        c
                        for c, r in zip(ct.task.inputs_of, nested, strict=True)
                        if c != QUERY_SINK and r.response_txn.succeeded
                    ]
                    made_runnable += [
                        c for c, (n, _) in counters.items() if n - 1 <= 0 and c != QUERY_SINK
                    ]
                return True
            if not counted or not self.holds(ct):
                log.warning("query %s task %s: completion refused, claim lost", q, t)
                return False
            time.sleep(0.001)  # another input of a shared consumer committed first
        raise RuntimeError(f"query {q} task {t}: completion kept conflicting")

    def _ready(self, ct: ClaimedTask, c: TaskId) -> Any:
        """The write that follows the last input of consumer `c`: it becomes runnable,
        or for QUERY_SINK the query is finished."""
        k, txn, q, lease = self.keys, self.store.txn, ct.query_id, ct.record.lease
        if c == QUERY_SINK:
            finished = QueryStatus(QueryState.FINISHED, at=time.time())
            return txn.put(k.status(q), finished.to_json(), lease=lease)
        return txn.put(k.runnable(q, c), runnable_value(ct.record, inputs=True), lease=lease)

    def _key(self, ct: ClaimedTask) -> str:
        q, t = ct.query_id, ct.task_id
        return self.keys.copy(q, t) if ct.copy else self.keys.claim(q, t)

    def _fence(self, ct: ClaimedTask) -> list[Any]:
        """True while this worker still holds its claim (or copy), the query still
        runs, and no copy of the task has completed."""
        k, txn = self.keys, self.store.txn
        return [
            txn.value(self._key(ct)) == ct.claim.to_json(),
            txn.value(k.status(ct.query_id)) == RUNNING_JSON,
            txn.version(k.done(ct.query_id, ct.task_id)) == 0,
        ]

    def holds(self, ct: ClaimedTask) -> bool:
        ok, _ = self.store.transaction(compare=self._fence(ct), success=[], failure=[])
        return bool(ok)

    @translated("failing a task")
    def fail(self, ct: ClaimedTask, error: str, reason: EndReason = EndReason.NONE) -> bool:
        """Fail the query with this task's error (fenced on the claim)."""
        k, txn = self.keys, self.store.txn
        q, t = ct.query_id, ct.task_id
        status = QueryStatus(QueryState.FAILED, error=error, task=t, reason=reason, at=time.time())
        ok, _ = self.store.transaction(
            compare=self._fence(ct),
            success=[
                txn.put(k.status(q), status.to_json(), lease=ct.record.lease),
                txn.delete(self._key(ct)),
                delete_prefix_op(self.store, k.runnable_of(q)),
            ],
            failure=[],
        )
        return bool(ok)

    @translated("releasing a task")
    def release(self, ct: ClaimedTask) -> None:
        """Give a claimed task back to the queue (shutdown, lost input)."""
        txn = self.store.txn
        key = self._key(ct)
        self.store.transaction(
            compare=[txn.value(key) == ct.claim.to_json()],
            success=[txn.delete(key)],
            failure=[],
        )

    # speculation (control/speculation.py decides; these read and claim)

    @translated("reading stage progress")
    def stage_progress(
        self, queries: Iterable[QueryId]
    ) -> tuple[dict[tuple[QueryId, TaskId], int], dict[tuple[QueryId, int], StageProgress]]:
        """For these queries: each task's stage, and each stage's size and the run
        times of its finished tasks."""
        k = self.keys
        stage_of: dict[tuple[QueryId, TaskId], int] = {}
        progress: dict[tuple[QueryId, int], StageProgress] = {}
        for q in set(queries):
            for value, _ in self.store.client.get_prefix(k.tasks(q)):
                plan = StoredTask.from_json(value).plan
                stage_of[(q, plan.id)] = plan.stage
            durations: dict[int, list[float]] = {}
            for value, meta in self.store.client.get_prefix(k.done_of(q)):
                t = TaskId(k.tail(meta.key, k.done_of(q)))
                if (q, t) in stage_of:
                    durations.setdefault(stage_of[(q, t)], []).append(
                        float(json.loads(value).get("seconds", 0.0))
                    )
            sizes = Counter(stage for (sq, _), stage in stage_of.items() if sq == q)
            for stage, n in sizes.items():
                progress[(q, stage)] = StageProgress(n, tuple(durations.get(stage, ())))
        return stage_of, progress

    @translated("claiming a copy of a task")
    def claim_copy(
        self, attempt: Attempt, worker: MemberId, location: str, lease_id: int
    ) -> ClaimedTask | None:
        """Claim a second copy of a running task, or None if it finished, was
        released, or has a copy already. Both copies then run; `complete` lets the
        first one commit and refuses the other."""
        k, txn = self.keys, self.store.txn
        q, t = attempt.query, attempt.task
        claim = Claim(worker, uuid.uuid4().hex, location, started=time.time())
        reads = [txn.get(k.task(q, t)), txn.get(k.query(q))]
        ok, responses = self.store.transaction(
            compare=[
                txn.version(k.copy(q, t)) == 0,
                txn.version(k.claim(q, t)) > 0,
                txn.version(k.done(q, t)) == 0,
                txn.value(k.status(q)) == RUNNING_JSON,
            ],
            success=[txn.put(k.copy(q, t), claim.to_json(), lease=lease_id), *reads],
            failure=[],
        )
        if not ok:
            return None
        task_kvs, query_kvs = responses[-2:]
        if not task_kvs or not query_kvs:
            return None
        log.info("query %s task %s: copy claimed by %s (%s is slow)", q, t, worker, attempt.worker)
        return ClaimedTask(
            record=QueryRecord.from_json(query_kvs[0][0]),
            task=StoredTask.from_json(task_kvs[0][0]),
            claim=claim,
            copy=True,
        )


def _nested_responses(op: Any) -> tuple[bool, list[Any]]:
    """A nested transaction's answer, read as the client reads a whole one: whether
    it succeeded, and each range read as (value, metadata) pairs."""
    txn = op.response_txn
    out: list[Any] = []
    for r in txn.responses:
        if r.WhichOneof("response") == "response_range":
            out.append(
                [(kv.value, KVMetadata(kv, r.response_range.header)) for kv in r.response_range.kvs]
            )
        else:
            out.append(r)
    return txn.succeeded, out
