"""The rows of the ``system`` tables, from a snapshot of etcd, and the plan that
carries them.

One function per table makes a ``pyarrow.Table`` (schemas in
duckfleet/system_catalog.py) from a ``FleetState`` (control/fleet_state.py), as
``who`` may see it: an admin (and everyone, with auth off) sees every query and
task; a user only their own queries and their tasks; workers are visible to all.
They are pure, so anything that shows the fleet (a web page, a CLI) can reuse them:
``queries_table(read_fleet_state(store, ["queries"]), who)``.

``fill_snapshots(plan, store, who)`` is what a front door does before it publishes
a plan over system tables (planner/system_tables.py): it reads the state once and
puts each snapshot into the task (``filled``, given the state), as Arrow IPC
(wire/inline.py), capped at ``INLINE_MAX_BYTES``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import replace

import pyarrow as pa

from duckfleet.auth import Identity
from duckfleet.control import Store
from duckfleet.control.errors import LimitExceeded
from duckfleet.control.fleet_state import FleetState, TaskKey, read_fleet_state
from duckfleet.control.records import QueryRecord, QueryState
from duckfleet.planner.plan import Plan, TaskPlan
from duckfleet.system_catalog import QUERIES, SYSTEM_SCHEMA, TASKS, WORKERS
from duckfleet.wire.inline import INLINE_MAX_BYTES, encode_table

SQL_CHARS = 1000  # system.queries keeps the first this many characters of each query


def visible(record: QueryRecord, who: Identity) -> bool:
    """Whether ``who`` sees this query: admins see all, users their own."""
    return who.is_admin or record.user == who.user


def queries_table(state: FleetState, who: Identity) -> pa.Table:
    """``system.queries``: one row per query etcd still holds (until its results
    expire), oldest first."""
    done_of: dict[str, int] = {}
    for q, _ in state.done:
        done_of[q] = done_of.get(q, 0) + 1
    rows = []
    for record in sorted(state.records.values(), key=lambda r: (r.created, r.id)):
        if not visible(record, who):
            continue
        status = state.statuses.get(record.id)
        state_name = str(status.state) if status is not None else "unknown"
        ended = status.at if status is not None and status.terminal else 0.0
        if status is not None and not status.terminal:
            elapsed: float | None = max(0.0, state.now - record.created)
        else:
            elapsed = max(0.0, ended - record.created) if ended else None
        rows.append(
            {
                "id": record.id,
                "user": record.user,
                "state": state_name,
                "submitted": _utc(record.created),
                "elapsed": elapsed,
                "tasks_done": done_of.get(record.id, 0),
                "tasks_total": record.ntasks,
                "error": (status.error or None) if status is not None else None,
                "priority": record.priority,
                "frontdoor": record.frontdoor,
                "path": record.path,
                "resource_group": record.resource_group or None,
                "sql": record.sql[:SQL_CHARS],
            }
        )
    for ticket in state.queued:  # waiting in a resource group's queue: no record yet
        if who.is_admin or ticket.user == who.user:
            rows.append(
                {
                    "id": ticket.id,
                    "user": ticket.user,
                    "state": "queued",
                    "submitted": _utc(ticket.at),
                    "elapsed": max(0.0, state.now - ticket.at),
                    "tasks_done": 0,
                    "tasks_total": None,
                    "frontdoor": ticket.frontdoor,
                    "path": "queue",
                    "resource_group": ticket.group,
                    "sql": ticket.sql[:SQL_CHARS],
                }
            )
    rows.sort(key=lambda r: (r["submitted"], r["id"]))
    return pa.Table.from_pylist(rows, schema=QUERIES)


def tasks_table(state: FleetState, who: Identity) -> pa.Table:
    """``system.tasks``: one row per task of each query ``who`` sees."""
    rows = []
    for key in sorted(state.stages, key=_task_order):
        q, t = key
        record = state.records.get(q)
        if record is None or not visible(record, who):
            continue
        done = state.done.get(key)
        claim = state.claims.get(key) or state.copies.get(key)
        status = state.statuses.get(q)
        running = done is None and claim is not None and claim.started
        started = _utc(claim.started) if running and claim is not None else None
        if done is not None:
            task_state, worker, seconds = "finished", done.worker, done.seconds
        elif claim is not None:
            task_state, worker = "running", claim.worker
            seconds = max(0.0, state.now - claim.started) if claim.started else None
        else:
            worker, seconds = None, None
            if status is not None and status.terminal:
                failed = status.state == QueryState.FAILED and status.task == t
                task_state = "failed" if failed else "cancelled"
            else:
                task_state = "queued" if key in state.runnable else "waiting"
        rows.append(
            {
                "query_id": q,
                "task_id": t,
                "stage": state.stages[key],
                "state": task_state,
                "worker": worker,
                "attempts": state.attempts.get(key, 0),
                "started": started,
                "seconds": seconds,
                "rows": done.rows if done is not None else None,
                "bytes": done.bytes if done is not None else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=TASKS)


def workers_table(state: FleetState, who: Identity | None = None) -> pa.Table:
    """``system.workers``: one row per worker in the fleet now (every caller sees
    them all)."""
    running: dict[str, int] = {}
    for claim in (*state.claims.values(), *state.copies.values()):
        running[claim.worker] = running.get(claim.worker, 0) + 1
    rows = [
        {
            "id": w.id,
            "address": w.location,
            "slots": w.slots,
            "running": running.get(w.id, 0),
            "started": _utc(w.started) if w.started else None,
            "pid": w.pid or None,
        }
        for w in sorted(state.workers, key=lambda w: (w.started, w.id))
    ]
    return pa.Table.from_pylist(rows, schema=WORKERS)


BUILDERS: Mapping[str, Callable[[FleetState, Identity], pa.Table]] = {
    "queries": queries_table,
    "tasks": tasks_table,
    "workers": workers_table,
}


def fill_snapshots(
    plan: Plan, store: Store, who: Identity, max_bytes: int = INLINE_MAX_BYTES
) -> Plan:
    """``plan`` with every system table snapshot its tasks carry filled in from etcd
    now, as ``who`` may see it (the plan itself, if it reads no system table)."""
    wanted = _wanted(plan)
    if not wanted:
        return plan
    return filled(plan, read_fleet_state(store, wanted), who, max_bytes)


def filled(plan: Plan, state: FleetState, who: Identity, max_bytes: int = INLINE_MAX_BYTES) -> Plan:
    """``plan`` with its system table snapshots made from ``state``; LimitExceeded
    (INVALID_ARGUMENT) if a task's snapshots together take more than ``max_bytes``."""
    data: dict[str, bytes] = {}
    rows: dict[str, int] = {}
    for name in sorted(_wanted(plan)):
        table = BUILDERS[name](state, who)
        data[f"{SYSTEM_SCHEMA}.{name}"] = encode_table(table)
        rows[f"{SYSTEM_SCHEMA}.{name}"] = table.num_rows

    def fill(task: TaskPlan) -> TaskPlan:
        if not task.inline:
            return task
        names = [i.table for i in task.inline]
        total = sum(len(data[n]) for n in names)
        if total > max_bytes:
            sizes = ", ".join(f"{n} {rows[n]} rows in {len(data[n]):,} bytes" for n in names)
            raise LimitExceeded(
                f"the snapshot of the system tables ({sizes}) takes more than the "
                f"{max_bytes:,} bytes a task may carry; it shrinks as finished queries "
                "expire (DUCKFLEET_RESULT_TTL)"
            )
        return replace(task, inline=tuple(replace(i, data=data[i.table]) for i in task.inline))

    stages = tuple(replace(s, tasks=tuple(fill(t) for t in s.tasks)) for s in plan.stages)
    return replace(plan, stages=stages)


def _wanted(plan: Plan) -> set[str]:
    return {_bare(i.table) for t in plan.tasks for i in t.inline}


def _bare(table: str) -> str:
    return table.removeprefix(SYSTEM_SCHEMA + ".")


def _task_order(key: TaskKey) -> tuple[str, int, str]:
    q, t = key
    digits = t[1:]
    return (q, int(digits) if digits.isdigit() else -1, t)


def _utc(seconds: float) -> datetime.datetime:
    """Unix seconds as a naive UTC datetime (the tables' TIMESTAMP columns)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(tzinfo=None)
