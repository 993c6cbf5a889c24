"""The error a client gets for a query that ended without finishing, by how it
ended (its status): timeout, cancel, a resource limit, a failure."""

from __future__ import annotations

from duckfleet.control.errors import (
    ControlError,
    LimitExceeded,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
)
from duckfleet.control.records import EndReason, QueryState, QueryStatus
from duckfleet.ids import QueryId


def ended_error(q: QueryId, status: QueryStatus) -> ControlError:
    """The error a client gets for a query that ended without finishing."""
    if status.reason == EndReason.TIMEOUT:
        return QueryTimeout(f"query {q}: {status.error}")
    if status.state == QueryState.CANCELLED:
        return QueryCancelled(f"query {q} was cancelled: {status.error}")
    if status.reason == EndReason.LIMIT:
        return LimitExceeded(f"query {q}: {status.error}")
    if status.state == QueryState.RUNNING:
        return QueryFailed(f"query {q} is still running")
    return QueryFailed(f"query {q} {status.state}: {status.error}")
