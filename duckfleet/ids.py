"""Typed identifiers, so that one kind of id cannot be passed where another is meant."""

from __future__ import annotations

import uuid
from typing import NewType

QueryId = NewType("QueryId", str)
"""A query, unique in the fleet: 16 hex characters."""

TaskId = NewType("TaskId", str)
"""A task, unique within its query: ``t0``, ``t1``, ..."""

MemberId = NewType("MemberId", str)
"""A worker or front-door process: ``<kind>-<8 hex>``."""


def new_query_id() -> QueryId:
    return QueryId(uuid.uuid4().hex[:16])


def new_member_id(kind: str) -> MemberId:
    return MemberId(f"{kind}-{uuid.uuid4().hex[:8]}")


def task_id(n: int) -> TaskId:
    return TaskId(f"t{n}")
