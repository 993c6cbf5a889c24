"""Queries in etcd: publish a plan, read its status, wait for it, fail it.

Publishing writes the immutable query record, the RUNNING status, every task with
its consumers, and the pending-input counters of consumers with many inputs, then —
last — the runnable markers of the tasks that need no input, so no worker can see a
half-written query.

A consumer of at most FEW_INPUTS inputs has no counter: each of its producers
carries the list of them, and its completion makes the consumer runnable if every
other one is done (control/task_queue.py), in the same transaction and without
reading anything first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control.errors import (
    QueryCancelled,
    QueryNotFound,
    QueryTimeout,
    StoreUnavailable,
)
from duckfleet.control.fingerprints import Fingerprints, Waiter
from duckfleet.control.keys import QUERY_SINK
from duckfleet.control.records import (
    RUNNING,
    RUNNING_JSON,
    Claim,
    EndReason,
    MemberInfo,
    QueryRecord,
    QueryState,
    QueryStatus,
    ResultInfo,
    RunnableTask,
)
from duckfleet.control.store import PrefixWatch, Store, translated
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.planner.plan import Plan, Stage, StageKind, TaskPlan

log = logging.getLogger("duckfleet.control")

MAX_TXN_OPS = 100  # etcd's default --max-txn-ops is 128
FEW_INPUTS = MAX_TXN_OPS  # a completion compares the done keys of the other inputs
COMPARE_RETRIES = 20


@dataclass(frozen=True)
class StoredTask:
    plan: TaskPlan
    consumers: tuple[TaskId, ...]  # QUERY_SINK for an output task
    # every input of each consumer with at most FEW_INPUTS of them (QUERY_SINK: the
    # output tasks); a consumer not listed counts down its pending counter instead
    inputs_of: Mapping[TaskId, tuple[TaskId, ...]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "plan": json.loads(self.plan.to_json()),
                "consumers": self.consumers,
                "inputs_of": {c: list(ts) for c, ts in self.inputs_of.items()},
            }
        )

    @staticmethod
    def from_json(text: str | bytes) -> StoredTask:
        d = json.loads(text)
        plan = TaskPlan.from_json(json.dumps(d["plan"]))
        inputs_of = {
            TaskId(c): tuple(TaskId(t) for t in ts) for c, ts in d.get("inputs_of", {}).items()
        }
        return StoredTask(plan, tuple(TaskId(c) for c in d["consumers"]), inputs_of)


def inputs_of_consumers(plan: Plan) -> dict[TaskId, tuple[TaskId, ...]]:
    """Each consumer with at most FEW_INPUTS inputs (QUERY_SINK: the output tasks)
    -> its distinct input tasks."""
    inputs = {t.id: tuple(dict.fromkeys(t.input_tasks)) for t in plan.tasks if t.input_tasks}
    inputs[QUERY_SINK] = tuple(t.id for t in plan.output_tasks)
    return {c: ts for c, ts in inputs.items() if len(ts) <= FEW_INPUTS}


def runnable_task(record: QueryRecord, t: TaskId, inputs: bool = False) -> RunnableTask:
    """Task `t` of `record` as its runnable/ key describes it (`runnable_value`),
    with nothing of its query claimed yet."""
    return runnable_marker(record.id, t, runnable_value(record, inputs))


def runnable_value(record: QueryRecord, inputs: bool = False) -> str:
    """What a worker needs to order and claim a task without reading the query;
    `inputs`: the task reads earlier results."""
    return json.dumps(
        {
            "created": record.created,
            "priority": record.priority,
            "lease": record.lease,
            "max_attempts": record.max_attempts,
            "inputs": inputs,
        }
    )


def runnable_marker(q: QueryId, t: TaskId, value: bytes | str, running: int = 0) -> RunnableTask:
    """A runnable/ key's value (`runnable_value`) read back, with `running` tasks
    of its query claimed now."""
    d = json.loads(value)
    return RunnableTask(
        q,
        t,
        d["created"],
        d["priority"],
        running,
        d["lease"],
        d["max_attempts"],
        bool(d.get("inputs", False)),
    )


@dataclass(frozen=True)
class TaskRecord:
    """A task as the tests and EXPLAIN ANALYZE see it: plan, and who ran it."""

    id: TaskId
    stage: int
    done_by: MemberId | None
    rows: int | None
    recomputed: tuple[TaskId, ...] = ()  # lost inputs this task recomputed from lineage
    by_copy: bool = False  # finished by a speculative second copy
    seconds: float = 0.0  # how long the finishing copy ran
    bytes: int | None = None  # of its result
    ms: float | None = None  # its worker's time: fetching inputs and running the fragment


def new_record(
    query_id: QueryId,
    plan: Plan,
    *,
    frontdoor: MemberId,
    lease: int,
    priority: int = 0,
    max_attempts: int = 3,
    timeout: float = 0.0,
    memory_limit: str = "",
    max_result_bytes: int = 0,
    user: str = "",
    traceparent: str = "",
    resource_group: str = "",
) -> QueryRecord:
    """The immutable record of query `query_id` running `plan` under `lease`."""
    return QueryRecord(
        id=query_id,
        sql=plan.sql,
        created=time.time(),
        lease=lease,
        outputs=tuple(t.id for t in plan.output_tasks),
        ntasks=len(plan.tasks),
        frontdoor=frontdoor,
        priority=priority,
        max_attempts=max_attempts,
        timeout=timeout,
        memory_limit=memory_limit,
        max_result_bytes=max_result_bytes,
        user=user,
        traceparent=traceparent,
        resource_group=resource_group,
    )


def stored_tasks(plan: Plan) -> dict[TaskId, StoredTask]:
    """Each task of `plan` as etcd holds it: with its consumers, and the inputs of
    those that have few."""
    consumers = plan.consumers()
    outputs = {t.id for t in plan.output_tasks}
    few = inputs_of_consumers(plan)
    out = {}
    for t in plan.tasks:
        cons = consumers[t.id] + ((QUERY_SINK,) if t.id in outputs else ())
        out[t.id] = StoredTask(t, cons, {c: few[c] for c in cons if c in few})
    return out


def query_ops(store: Store, record: QueryRecord, plan: Plan) -> list[Any]:
    """The writes that make a query: its record, RUNNING status, every task with its
    consumers, the pending counters; everything under the query's lease. No task is
    runnable yet (publishing adds the markers; an accepted offer, a claim)."""
    k, put, q, lease = store.keys, store.txn.put, record.id, record.lease
    few = inputs_of_consumers(plan)
    stored = stored_tasks(plan)
    ops = [
        put(k.query(q), record.to_json(), lease=lease),
        put(k.status(q), RUNNING_JSON, lease=lease),
    ]
    if QUERY_SINK not in few:
        ops.append(put(k.pending(q, QUERY_SINK), str(len(record.outputs)), lease=lease))
    for t in plan.tasks:
        ops.append(put(k.task(q, t.id), stored[t.id].to_json(), lease=lease))
        if t.input_tasks and t.id not in few:
            ops.append(put(k.pending(q, t.id), str(len(set(t.input_tasks))), lease=lease))
    return ops


class QueryStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys

    def _batched(self, ops: list[Any]) -> None:
        for i in range(0, len(ops), MAX_TXN_OPS):
            self.store.transaction(compare=[], success=ops[i : i + MAX_TXN_OPS], failure=[])

    @translated("publishing a query")
    def publish(
        self,
        query_id: QueryId,
        plan: Plan,
        *,
        frontdoor: MemberId,
        ttl: int,
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float = 0.0,
        memory_limit: str = "",
        max_result_bytes: int = 0,
        user: str = "",
        traceparent: str = "",
        resource_group: str = "",
        fingerprint: tuple[str, Waiter] | None = None,
        lease: Any = None,
        started: Iterable[TaskId] = (),
    ) -> QueryRecord:
        """Write the query and its tasks under a query lease: `lease` (from a
        LeasePool), or one of `ttl` seconds granted now. `started`: tasks already
        started once on a worker that was lost, each counted as one attempt."""
        if lease is None:
            lease = self.store.client.lease(ttl)
        record = new_record(
            query_id,
            plan,
            frontdoor=frontdoor,
            lease=int(lease.id),
            priority=priority,
            max_attempts=max_attempts,
            timeout=timeout,
            memory_limit=memory_limit,
            max_result_bytes=max_result_bytes,
            user=user,
            traceparent=traceparent,
            resource_group=resource_group,
        )
        ops = query_ops(self.store, record, plan)
        for t in started:  # started once already, by a worker that was lost: an attempt
            ops.append(self.store.txn.put(self.keys.attempts(query_id, t), "lost", lease=lease))
        if fingerprint is not None:
            f, waiter = fingerprint
            ops.append(Fingerprints(self.store).put_op(f, query_id, waiter, lease))
        put, k = self.store.txn.put, self.keys
        ready = [
            put(k.runnable(query_id, t.id), runnable_value(record), lease=lease)
            for t in plan.tasks
            if not t.input_tasks
        ]
        if len(ops) + len(ready) <= MAX_TXN_OPS:  # one round trip, all at once
            self._batched(ops + ready)
        else:  # the runnable markers last: no worker sees a half-written query
            self._batched(ops)
            self._batched(ready)
        log.info("query %s published: %d task(s), lease %x", query_id, len(plan.tasks), lease.id)
        return record

    @translated("reading a query")
    def record(self, query_id: QueryId) -> QueryRecord:
        value, _ = self.store.client.get(self.keys.query(query_id))
        if value is None:
            raise QueryNotFound(f"query {query_id} is unknown or its results have expired")
        return QueryRecord.from_json(value)

    @translated("reading a query's status")
    def status(self, query_id: QueryId) -> QueryStatus | None:
        value, _ = self.store.client.get(self.keys.status(query_id))
        return None if value is None else QueryStatus.from_json(value)

    def wait(
        self,
        query_id: QueryId,
        timeout: float,
        changed: threading.Event | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> QueryStatus:
        """Block until the query leaves RUNNING.

        ``changed`` is set by the caller's watch on the status keys (see StatusWatch);
        a terminal status the watch delivered is taken as it is, anything else is
        read again; without a watch, the status is re-read every 100 ms. ``cancelled`` (e.g. the
        Flight call context's ``is_cancelled``) is asked every 100 ms; when it says
        yes, QueryCancelled is raised and the caller ends the query.
        """
        reread = 1.0 if changed is not None else 0.1
        tick = 0.1 if cancelled is not None else reread
        changed = changed or threading.Event()
        deadline = time.monotonic() + timeout
        next_read = 0.0
        while True:
            now = time.monotonic()
            if changed.is_set() or now >= next_read:
                changed.clear()  # before reading: a change during the read is kept
                try:
                    status = watched_end(changed) or self.status(query_id)
                except StoreUnavailable:
                    status = RUNNING  # etcd blinked: keep waiting until the deadline
                if status is None:
                    raise QueryNotFound(f"query {query_id} vanished: its lease expired")
                if status.terminal:
                    return status
                next_read = now + reread
            if cancelled is not None and cancelled():
                raise QueryCancelled(f"query {query_id}: the client cancelled or went away")
            left = deadline - now
            if left <= 0:
                raise QueryTimeout(f"query {query_id} did not finish within {timeout:g}s")
            changed.wait(min(left, tick, max(0.0, next_read - now)))

    @translated("ending a query")
    def end(
        self, query_id: QueryId, status: QueryStatus, *, finished_too: bool = False
    ) -> QueryStatus:
        """End a RUNNING query (with ``finished_too``, a FINISHED one as well) with
        ``status``, in one transaction: the status, its runnable tasks withdrawn (no
        claim of it can succeed after this), its results index dropped. Workers see
        the status change, interrupt its fragments and free its results.

        Returns the query's status afterwards: ``status``, or the terminal status it
        already had.
        """
        k, txn = self.keys, self.store.txn
        status = replace(status, at=status.at or time.time())  # when it ended
        for _ in range(COMPARE_RETRIES):
            value, meta = self.store.client.get(k.status(query_id))
            if value is None:
                raise QueryNotFound(f"query {query_id} is unknown or its results have expired")
            current = QueryStatus.from_json(value)
            endable = current.state == QueryState.RUNNING or (
                finished_too and current.state == QueryState.FINISHED
            )
            if not endable:
                return current
            ok, _ = self.store.transaction(
                compare=[txn.mod(k.status(query_id)) == meta.mod_revision],
                success=[
                    txn.put(k.status(query_id), status.to_json(), lease=meta.lease_id),
                    delete_prefix_op(self.store, k.runnable_of(query_id)),
                    delete_prefix_op(self.store, k.results_of(query_id)),
                ],
                failure=[],
            )
            if ok:
                log.info("query=%s %s: %s", query_id, status.state, status.error)
                return status
        raise QueryNotFound(f"query {query_id}: its status kept changing while ending it")

    @translated("reading results")
    def results(
        self, query_id: QueryId, tasks: Iterable[TaskId], delete: str = ""
    ) -> dict[TaskId, ResultInfo]:
        """Where the results of `tasks` are; `delete`: a key deleted in the same round
        trip (the answered request's fingerprint)."""
        out: dict[TaskId, ResultInfo] = {}
        prefix = self.keys.results_of(query_id)
        wanted = set(tasks)
        txn = self.store.txn
        ops = [txn.get(prefix, range_end=prefix_range_end(prefix.encode()))]
        if delete:
            ops.append(txn.delete(delete))
        _, responses = self.store.transaction(compare=[], success=ops, failure=[])
        for value, meta in responses[0]:
            _, t = self.keys.split_task_key(meta.key, self.keys.all_results())
            if t in wanted:
                out[t] = ResultInfo.from_json(value)
        return out

    @translated("listing workers")
    def workers(self) -> list[MemberInfo]:
        """Every worker's member record."""
        prefix = self.keys.members("worker")
        return [MemberInfo.from_json(v) for v, _ in self.store.client.get_prefix(prefix)]

    @translated("counting workers")
    def worker_count(self) -> int:
        resp = self.store.client.get_prefix_response(self.keys.members("worker"), count_only=True)
        return int(resp.count)

    @translated("listing queries")
    def all_records(self) -> list[QueryRecord]:
        return [
            QueryRecord.from_json(v) for v, _ in self.store.client.get_prefix(self.keys.queries())
        ]

    @translated("listing claims")
    def all_claims(self) -> list[Claim]:
        return [c for _, _, c in self.claims()]

    @translated("listing claims")
    def claims(self) -> list[tuple[QueryId, TaskId, Claim]]:
        """Every claim held now, with the task it holds."""
        prefix = self.keys.all_claims()
        out = []
        for value, meta in self.store.client.get_prefix(prefix):
            q, t = self.keys.split_task_key(meta.key, prefix)
            out.append((q, t, Claim.from_json(value)))
        return out

    @translated("reading a task")
    def stored_task(self, query_id: QueryId, task_id: TaskId) -> StoredTask:
        value, _ = self.store.client.get(self.keys.task(query_id, task_id))
        if value is None:
            raise QueryNotFound(f"task {task_id} of query {query_id} is unknown or expired")
        return StoredTask.from_json(value)

    @translated("reading a query's lineage")
    def lineage(self, query_id: QueryId, task_id: TaskId) -> Plan:
        """The plan that recomputes one task: it and every task it depends on."""
        tasks = {
            st.plan.id: st.plan
            for st in (
                StoredTask.from_json(v)
                for v, _ in self.store.client.get_prefix(self.keys.tasks(query_id))
            )
        }
        if task_id not in tasks:
            raise QueryNotFound(f"task {task_id} of query {query_id} is unknown or expired")
        needed: dict[TaskId, TaskPlan] = {}
        todo = [task_id]
        while todo:
            t = todo.pop()
            if t not in needed:
                needed[t] = tasks[t]
                todo.extend(tasks[t].input_tasks)
        by_stage: dict[int, list[TaskPlan]] = {}
        for plan in sorted(needed.values(), key=lambda p: (p.stage, int(p.id[1:]))):
            by_stage.setdefault(plan.stage, []).append(plan)
        last = max(by_stage)
        stages = tuple(Stage(i, StageKind.SINGLE, tuple(ts)) for i, ts in sorted(by_stage.items()))
        # the last stage must hold exactly the task asked for: it is the only output
        assert [t.id for t in stages[-1].tasks] == [task_id], (last, task_id)
        sql = f"-- recompute {task_id} of query {query_id}"
        return Plan(sql=sql, stages=stages, reason=f"lineage of {query_id}/{task_id}")

    @translated("reading claim order")
    def first_claims(self, query_id: QueryId) -> dict[TaskId, int]:
        """Each claimed task of the query -> the etcd revision of its first claim: the
        order in which the fleet started its tasks, exactly."""
        prefix = self.keys.attempts_of(query_id)
        return {
            TaskId(self.keys.tail(meta.key, prefix)): int(meta.create_revision)
            for _, meta in self.store.client.get_prefix(prefix, keys_only=True)
        }

    @translated("reading task records")
    def task_records(self, query_id: QueryId) -> list[TaskRecord]:
        done: dict[str, dict[str, Any]] = {}
        for value, meta in self.store.client.get_prefix(self.keys.done_of(query_id)):
            done[meta.key.decode().rsplit("/", 1)[1]] = json.loads(value)
        out = []
        for value, _ in self.store.client.get_prefix(self.keys.tasks(query_id)):
            st = StoredTask.from_json(value)
            d = done.get(st.plan.id)
            out.append(
                TaskRecord(
                    st.plan.id,
                    st.plan.stage,
                    MemberId(d["worker"]) if d else None,
                    d["rows"] if d else None,
                    tuple(d.get("recomputed", ())) if d else (),
                    bool(d.get("copy", False)) if d else False,
                    float(d.get("seconds", 0.0)) if d else 0.0,
                    d.get("bytes") if d else None,
                    d.get("ms") if d else None,
                )
            )
        return sorted(out, key=lambda r: int(r.id[1:]))


class StatusChanged(threading.Event):
    """Set on each change of one query's status; `ended`: the terminal status the
    watch delivered, if it did."""

    ended: bytes | None = None


def watched_end(changed: threading.Event) -> QueryStatus | None:
    value = getattr(changed, "ended", None)
    return None if value is None else QueryStatus.from_json(value)


class StatusWatch:
    """One watch on every query's status key; wakes the waiters of that query."""

    def __init__(self, store: Store) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        prefix = store.keys.all_statuses()
        self._prefix = prefix.encode()
        self._watch = PrefixWatch(store, prefix, self._on_event, self._wake_all, "status-watch")

    def start(self) -> StatusWatch:
        self._watch.start()
        return self

    def stop(self) -> None:
        self._watch.stop()

    def _on_event(self, kind: str, key: bytes, value: bytes) -> None:
        q = key[len(self._prefix) :].decode()
        with self._lock:
            waiters = list(self._waiters.get(q, ()))
        if not waiters:
            return
        ended = value if kind == "put" and QueryStatus.from_json(value).terminal else None
        with self._lock:
            for ev in waiters:
                if ended is not None:
                    ev.ended = ended
                ev.set()

    def _wake_all(self) -> None:
        with self._lock:
            for evs in self._waiters.values():
                for ev in evs:
                    ev.set()

    @contextmanager
    def waiting(self, query_id: QueryId) -> Iterator[StatusChanged]:
        ev = StatusChanged()
        with self._lock:
            self._waiters.setdefault(query_id, set()).add(ev)
        try:
            yield ev
        finally:
            with self._lock:
                evs = self._waiters.get(query_id, set())
                evs.discard(ev)
                if not evs:
                    self._waiters.pop(query_id, None)


def timeout_status(timeout: float) -> QueryStatus:
    """The status of a query stopped by DUCKFLEET_QUERY_TIMEOUT (front door or worker)."""
    return QueryStatus(
        QueryState.CANCELLED,
        error=f"the query ran longer than DUCKFLEET_QUERY_TIMEOUT={timeout:g}s and was cancelled",
        reason=EndReason.TIMEOUT,
    )


def delete_prefix_op(store: Store, prefix: str) -> Any:
    return store.txn.delete(prefix, range_end=prefix_range_end(prefix.encode()))
