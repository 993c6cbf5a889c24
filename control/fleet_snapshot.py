"""What the fleet is doing, read from etcd in one transaction: for the query page.

`FleetReader.queries()` and `.workers()` are views of `control/fleet_state.py`'s
one-revision read (what the system tables read too): every query record, its
status, its finished tasks and the claims held now, so a query's progress never
counts a task twice or a status older than its tasks. `FleetReader.query(q)` adds its
tasks, each with where and how long it ran. Read-only: nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control.errors import QueryNotFound
from duckfleet.control.fleet_state import read_fleet_state
from duckfleet.control.queries import StoredTask
from duckfleet.control.records import (
    RUNNING,
    Claim,
    MemberInfo,
    QueryRecord,
    QueryStatus,
)
from duckfleet.control.store import Store, translated
from duckfleet.ids import MemberId, QueryId, TaskId

WAITING = "waiting"  # an input is unfinished
RUNNING_TASK = "running"  # a worker holds its claim
DONE = "done"


@dataclass(frozen=True)
class TaskView:
    """One task of a query: its fragment, and who ran it, when, with what result."""

    id: TaskId
    stage: int
    state: str  # WAITING | RUNNING_TASK | DONE
    sql: str = ""
    inputs: tuple[TaskId, ...] = ()
    worker: str = ""
    rows: int | None = None
    bytes: int | None = None
    seconds: float | None = None  # how long the finishing copy ran (done)
    started: float | None = None  # wall clock when its (finishing) claim was taken


@dataclass(frozen=True)
class QueryView:
    record: QueryRecord
    status: QueryStatus
    done: int  # tasks finished
    running: int  # tasks claimed now

    @property
    def total(self) -> int:
        return self.record.ntasks


@dataclass(frozen=True)
class QueryDetail:
    query: QueryView
    tasks: tuple[TaskView, ...]  # in stage, then task order


@dataclass(frozen=True)
class WorkerView:
    info: MemberInfo
    running: tuple[tuple[QueryId, TaskId], ...]  # the tasks it holds claims on now


def _done_fields(value: bytes) -> dict[str, Any]:
    try:
        d = json.loads(value)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


class FleetReader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys

    def _read(self, prefixes: Iterable[str], keys: Iterable[str] = ()) -> list[list[Any]]:
        """Every (value, meta) under each prefix, then of each key, at one revision."""
        txn = self.store.txn
        ops = [txn.get(p, range_end=prefix_range_end(p.encode())) for p in prefixes]
        ops += [txn.get(k) for k in keys]
        _, responses = self.store.transaction(compare=[], success=ops, failure=[])
        return [list(r) for r in responses]

    def _split(self, key: bytes, prefix: str) -> tuple[QueryId, TaskId]:
        return self.keys.split_task_key(key, prefix)

    def queries(self) -> list[QueryView]:
        """Every query etcd still holds, newest first."""
        state = read_fleet_state(self.store, ["progress"])
        done_count: dict[QueryId, int] = {}
        for q, _ in state.done:
            done_count[q] = done_count.get(q, 0) + 1
        running: dict[QueryId, int] = {}
        for q, _ in state.claims:
            running[q] = running.get(q, 0) + 1
        out = [
            QueryView(r, state.statuses.get(q, RUNNING), done_count.get(q, 0), running.get(q, 0))
            for q, r in state.records.items()
        ]
        return sorted(out, key=lambda qv: qv.record.created, reverse=True)

    @translated("reading a query")
    def query(self, q: QueryId) -> QueryDetail:
        k = self.keys
        tasks, done, claims, record, status = self._read(
            [k.tasks(q), k.done_of(q), k.claims_of(q)], [k.query(q), k.status(q)]
        )
        if not record:
            raise QueryNotFound(f"query {q} is unknown or its records have expired")
        done_of = {TaskId(k.tail(m.key, k.done_of(q))): _done_fields(v) for v, m in done}
        claim_of = {TaskId(k.tail(m.key, k.claims_of(q))): Claim.from_json(v) for v, m in claims}
        views = []
        for v, _ in tasks:
            st = StoredTask.from_json(v)
            t = st.plan.id
            d = done_of.get(t)
            c = claim_of.get(t)
            base = {"sql": st.plan.sql, "inputs": tuple(dict.fromkeys(st.plan.input_tasks))}
            if d is not None:
                views.append(
                    TaskView(
                        t,
                        st.plan.stage,
                        DONE,
                        worker=str(d.get("worker", "")),
                        rows=d.get("rows"),
                        bytes=d.get("bytes"),
                        seconds=float(d.get("seconds", 0.0)),
                        started=d.get("started"),
                        **base,
                    )
                )
            elif c is not None:
                views.append(
                    TaskView(
                        t, st.plan.stage, RUNNING_TASK, worker=c.worker, started=c.started, **base
                    )
                )
            else:
                views.append(TaskView(t, st.plan.stage, WAITING, **base))
        views.sort(key=lambda tv: (tv.stage, _task_number(tv.id)))
        view = QueryView(
            QueryRecord.from_json(record[0][0]),
            QueryStatus.from_json(status[0][0]) if status else RUNNING,
            len(done_of),
            len(claim_of),
        )
        return QueryDetail(view, tuple(views))

    def workers(self) -> list[WorkerView]:
        state = read_fleet_state(self.store, ["workers"])
        held: dict[MemberId, list[tuple[QueryId, TaskId]]] = {}
        for key, claim in state.claims.items():
            held.setdefault(claim.worker, []).append(key)
        out = [WorkerView(info, tuple(sorted(held.get(info.id, ())))) for info in state.workers]
        return sorted(out, key=lambda w: w.info.id)


def _task_number(t: TaskId) -> int:
    digits = "".join(ch for ch in t if ch.isdigit())
    return int(digits) if digits else 0
