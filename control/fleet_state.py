"""The fleet's state as etcd holds it now, read in one round trip at one revision:
what the ``system`` tables show (flight/system_tables.py makes rows of it) and the
query page's lists (control/fleet_snapshot.py).

``read_fleet_state(store, parts)`` reads only what the wanted parts need:

    "queries"   queries/, status/, done/, admission/ (the queries waiting in a
                resource group's queue: control/resource_groups.py)
    "progress"  the same, and claims/ (the query page's list: ui/, control/fleet_snapshot.py)
    "tasks"     the same, and tasks/, claims/, copies/, attempts/, runnable/
    "workers"   members/worker/, claims/, copies/
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control.queries import StoredTask
from duckfleet.control.records import Claim, MemberInfo, QueryRecord, QueryStatus
from duckfleet.control.resource_groups import Ticket, groups_of, queued_tickets, waiting
from duckfleet.control.store import Store, translated
from duckfleet.ids import QueryId, TaskId

TaskKey = tuple[QueryId, TaskId]


@dataclass(frozen=True)
class Done:
    """A finished task's completion record (done/<q>/<t>)."""

    worker: str
    rows: int | None = None
    bytes: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class FleetState:
    """One snapshot of the fleet; parts not read are empty."""

    now: float  # wall clock when it was read
    records: Mapping[QueryId, QueryRecord] = field(default_factory=dict)
    statuses: Mapping[QueryId, QueryStatus] = field(default_factory=dict)
    done: Mapping[TaskKey, Done] = field(default_factory=dict)
    stages: Mapping[TaskKey, int] = field(default_factory=dict)  # every task, its stage
    claims: Mapping[TaskKey, Claim] = field(default_factory=dict)
    copies: Mapping[TaskKey, Claim] = field(default_factory=dict)  # speculative copies
    attempts: Mapping[TaskKey, int] = field(default_factory=dict)  # claims so far
    runnable: frozenset[TaskKey] = frozenset()
    workers: tuple[MemberInfo, ...] = ()
    queued: tuple[Ticket, ...] = ()  # queries waiting in a resource group's queue


_NEEDS = {
    "queries": ("queries", "status", "done", "admission"),
    "progress": ("queries", "status", "done", "claims"),  # the query page's list
    "tasks": ("queries", "status", "done", "tasks", "claims", "copies", "attempts", "runnable"),
    "workers": ("workers", "claims", "copies"),
}


@translated("reading the fleet's state")
def read_fleet_state(store: Store, parts: Iterable[str]) -> FleetState:
    """The parts of the fleet's state the system tables ``parts`` need, as etcd holds
    them at one revision."""
    k = store.keys
    prefixes = {
        "queries": k.queries(),
        "status": k.all_statuses(),
        "done": k.all_done(),
        "tasks": k.all_tasks(),
        "claims": k.all_claims(),
        "copies": k.all_copies(),
        "attempts": k.all_attempts(),
        "runnable": k.all_runnable(),
        "workers": k.members("worker"),
        "admission": k.admission(),
    }
    wanted = sorted({p for part in parts for p in _NEEDS[part]})
    ops = [
        store.txn.get(prefixes[p], range_end=prefix_range_end(prefixes[p].encode())) for p in wanted
    ]
    _, responses = store.transaction(compare=[], success=ops, failure=[])
    got: dict[str, list[tuple[bytes, Any]]] = dict(zip(wanted, responses, strict=True))

    def by_task(p: str) -> list[tuple[TaskKey, bytes, Any]]:
        return [(k.split_task_key(m.key, prefixes[p]), v, m) for v, m in got.get(p, [])]

    records = {}
    for value, _ in got.get("queries", []):
        record = QueryRecord.from_json(value)
        records[record.id] = record
    statuses = {
        QueryId(k.tail(m.key, prefixes["status"])): QueryStatus.from_json(v)
        for v, m in got.get("status", [])
    }
    done = {}
    for key, value, _ in by_task("done"):
        d = json.loads(value)
        done[key] = Done(str(d.get("worker", "")), d.get("rows"), d.get("bytes"), d.get("seconds"))
    now = time.time()
    return FleetState(
        now=now,
        records=records,
        statuses=statuses,
        done=done,
        stages={key: StoredTask.from_json(v).plan.stage for key, v, _ in by_task("tasks")},
        claims={key: Claim.from_json(v) for key, v, _ in by_task("claims")},
        copies={key: Claim.from_json(v) for key, v, _ in by_task("copies")},
        attempts={key: int(m.version) for key, _, m in by_task("attempts")},
        runnable=frozenset(key for key, _, _ in by_task("runnable")),
        workers=tuple(MemberInfo.from_json(v) for v, _ in got.get("workers", [])),
        queued=_queued(store, got.get("admission", []), now),
    )


def _queued(store: Store, kvs: list[tuple[bytes, Any]], now: float) -> tuple[Ticket, ...]:
    """The queries waiting in a resource group's queue, from admission/'s keys."""
    config, queue = store.keys.resource_groups().encode(), store.keys.admission_queues().encode()
    value = next((v for v, m in kvs if m.key == config), None)
    tickets = queued_tickets((v, m) for v, m in kvs if m.key.startswith(queue))
    return tuple(waiting(groups_of(value), tickets, now))
