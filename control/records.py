"""The values stored under the keyspace, as typed records with their JSON form."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from enum import StrEnum

import pyarrow as pa

from duckfleet.ids import MemberId, QueryId, TaskId


@dataclass(frozen=True)
class MemberInfo:
    id: MemberId
    kind: str  # "worker" | "frontdoor"
    location: str  # grpc://host:port clients reach it at
    slots: int = 0
    started: float = 0.0
    pid: int = 0
    health_port: int = 0  # grpc.health.v1 on the same host; 0: none

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str | bytes) -> MemberInfo:
        return MemberInfo(**json.loads(text))


@dataclass(frozen=True)
class QueryRecord:
    """What a query is. Written once by the front door that accepted it."""

    id: QueryId
    sql: str
    created: float
    lease: int  # the query lease every query-scoped key is bound to
    outputs: tuple[TaskId, ...]  # result partitions, in order
    ntasks: int
    frontdoor: MemberId
    priority: int = 0  # higher first (control/scheduling.py)
    max_attempts: int = 3  # claims of one task before the query fails
    timeout: float = 0.0  # seconds after `created` the query is cancelled; 0: never
    memory_limit: str = ""  # DuckDB memory limit of each of its tasks, e.g. "512MB"; "": none
    max_result_bytes: int = 0  # the most its result may hold; 0: no cap
    user: str = ""  # who ran it (the query page and system.queries show a user their own)
    # W3C trace context of the query's span at the front door (duckfleet/tracing.py):
    # workers start its tasks' spans as its children; "": not traced (left out of JSON)
    traceparent: str = ""
    path: str = "queue"  # how it runs: "queue", or "fast" (an accepted fast-path offer)
    resource_group: str = ""  # the group it was admitted in (flight/admission.py); "": none

    def to_json(self) -> str:
        d = asdict(self)
        d["outputs"] = list(self.outputs)
        if not self.user:  # absent when empty: what older readers know
            del d["user"]
        if not self.traceparent:
            del d["traceparent"]
        if not self.resource_group:
            del d["resource_group"]
        return json.dumps(d)

    @staticmethod
    def from_json(text: str | bytes) -> QueryRecord:
        d = json.loads(text)
        d["outputs"] = tuple(TaskId(t) for t in d["outputs"])
        known = QueryRecord.__dataclass_fields__  # a field a later version adds: ignored
        return QueryRecord(**{k: v for k, v in d.items() if k in known})


class QueryState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EndReason(StrEnum):
    """Why a query was cancelled or failed, when the front door must say more than
    "failed": the Flight status it answers depends on it."""

    NONE = ""
    CLIENT = "client"  # the client cancelled, disconnected, or its deadline passed
    TIMEOUT = "timeout"  # DUCKFLEET_QUERY_TIMEOUT
    LIMIT = "limit"  # a resource limit: fragment memory, result size


@dataclass(frozen=True)
class QueryStatus:
    state: QueryState
    error: str = ""
    task: str = ""  # the task whose failure failed the query
    reason: EndReason = EndReason.NONE
    at: float = 0.0  # wall clock when it finished, or was ended (cancelled, failed)

    @property
    def terminal(self) -> bool:
        return self.state != QueryState.RUNNING

    def to_json(self) -> str:
        d = {"state": str(self.state), "error": self.error, "task": self.task}
        if self.reason:  # absent when empty: RUNNING_JSON stays what it always was
            d["reason"] = str(self.reason)
        if self.at:
            d["at"] = self.at
        return json.dumps(d)

    @staticmethod
    def from_json(text: str | bytes) -> QueryStatus:
        d = json.loads(text)
        return QueryStatus(
            QueryState(d["state"]),
            d.get("error", ""),
            d.get("task", ""),
            EndReason(d.get("reason", "")),
            float(d.get("at", 0.0)),
        )


RUNNING = QueryStatus(QueryState.RUNNING)
RUNNING_JSON = RUNNING.to_json()  # claims compare on this exact value


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a task; its value is the fence for completion."""

    worker: MemberId
    token: str  # unique per claim: a later claim of the same task never matches
    location: str
    started: float = 0.0  # wall clock at the claim: how long the task has run
    # an accepted fast-path offer (control/offers.py): the task was never runnable,
    # so its claim going away frees nothing for other workers to claim
    offered: bool = False

    def to_json(self) -> str:
        d = asdict(self)
        if not self.offered:
            del d["offered"]
        return json.dumps(d)

    @staticmethod
    def from_json(text: str | bytes) -> Claim:
        return Claim(**json.loads(text))


@dataclass(frozen=True)
class ResultInfo:
    """Where a finished task's result lives and what it looks like.

    A partitioned task (exchange producer) lists the rows of each of its buckets,
    held under one result entry: `bucket_rows[b]` rows in bucket b.
    """

    worker: MemberId
    location: str
    rows: int
    bytes: int
    schema: pa.Schema
    bucket_rows: tuple[int, ...] = ()

    def to_json(self) -> str:
        raw = self.schema.serialize().to_pybytes()
        d: dict[str, object] = {
            "worker": self.worker,
            "location": self.location,
            "rows": self.rows,
            "bytes": self.bytes,
            "schema": base64.b64encode(raw).decode(),
        }
        if self.bucket_rows:
            d["bucket_rows"] = list(self.bucket_rows)
        return json.dumps(d)

    @staticmethod
    def from_json(text: str | bytes) -> ResultInfo:
        d = json.loads(text)
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(d["schema"])))
        return ResultInfo(
            MemberId(d["worker"]),
            d["location"],
            d["rows"],
            d["bytes"],
            schema,
            tuple(d.get("bucket_rows", ())),
        )


@dataclass(frozen=True)
class RunnableTask:
    """A task some worker may claim, with what fair-share ordering needs."""

    query: QueryId
    task: TaskId
    created: float
    priority: int
    running: int  # tasks of this query claimed right now
    lease: int = 0  # the query lease, for keys the claim writes
    max_attempts: int = 3
    inputs: bool = False  # it reads earlier results: its claim reads where they are
