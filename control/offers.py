"""The fast path in etcd: an offer a worker accepted, recorded in one transaction.

A front door offers a one-task, read-only query straight to a worker with a free
slot (flight/fast_path.py); a worker that takes it (worker/offers.py) writes, in one
transaction, everything publishing would write (the record, the RUNNING status, the
task) and, instead of a runnable marker, its own claim bound to its lease. So the
query is in etcd like any other: every front door sees it and can cancel it (the
claim is fenced on the status like any claim), and its completion commits through
the same fenced transaction as a claimed task's (control/task_queue.py).

No runnable marker is ever written: if the worker is lost, nobody claims the task,
and the front door that offered it runs the query again through the queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from duckfleet.control.queries import query_ops
from duckfleet.control.records import Claim, QueryRecord, QueryStatus, ResultInfo
from duckfleet.control.store import Store, translated
from duckfleet.planner.plan import Plan, Stage, StageKind, TaskPlan

OFFER_ACTION = "duckfleet.offer"  # the DoAction type a worker takes offers on


class Offers:
    def __init__(self, store: Store) -> None:
        self.store = store

    @translated("recording an accepted offer")
    def record(self, record: QueryRecord, plan: Plan, claim: Claim, lease_id: int) -> bool:
        """Record query `record` (one task) as claimed by `claim` under the worker's
        lease `lease_id`, in one transaction; False if a query of that id exists
        already (an offer delivered twice)."""
        k, txn = self.store.keys, self.store.txn
        (task,) = plan.tasks
        q, t = record.id, task.id
        ok, _ = self.store.transaction(
            compare=[txn.version(k.query(q)) == 0],
            success=[
                *query_ops(self.store, record, plan),
                txn.put(k.claim(q, t), claim.to_json(), lease=lease_id),
                txn.put(k.attempts(q, t), claim.worker, lease=record.lease),
            ],
            failure=[],
        )
        return bool(ok)


@dataclass(frozen=True)
class Offer:
    """What a front door sends a worker: the query's record and its one task."""

    record: QueryRecord
    task: TaskPlan

    def plan(self) -> Plan:
        return Plan(self.record.sql, (Stage(0, StageKind.SINGLE, (self.task,)),), "fast path")

    def to_json(self) -> bytes:
        return json.dumps(
            {"record": json.loads(self.record.to_json()), "task": json.loads(self.task.to_json())}
        ).encode()

    @staticmethod
    def from_json(body: bytes) -> Offer:
        d = json.loads(body)
        record = QueryRecord.from_json(json.dumps(d["record"]))
        return Offer(record, TaskPlan.from_json(json.dumps(d["task"])))


@dataclass(frozen=True)
class OfferAnswer:
    """A worker's answer: refused (with why), or run, with where its result is, or
    ended otherwise (the query's terminal status: failed, cancelled)."""

    accepted: bool
    reason: str = ""  # why it was refused
    result: ResultInfo | None = None
    status: QueryStatus | None = None
    # refused after the query was recorded in etcd (its claim lost): the front door
    # ends that query before running it again through the queue
    recorded: bool = False

    def to_json(self) -> bytes:
        d: dict[str, object] = {"accepted": self.accepted}
        if self.reason:
            d["reason"] = self.reason
        if self.result is not None:
            d["result"] = self.result.to_json()
        if self.status is not None:
            d["status"] = self.status.to_json()
        if self.recorded:
            d["recorded"] = True
        return json.dumps(d).encode()

    @staticmethod
    def from_json(body: bytes) -> OfferAnswer:
        d = json.loads(body)
        result = ResultInfo.from_json(d["result"]) if "result" in d else None
        status = QueryStatus.from_json(d["status"]) if "status" in d else None
        recorded = bool(d.get("recorded", False))
        return OfferAnswer(bool(d["accepted"]), d.get("reason", ""), result, status, recorded)
