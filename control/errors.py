"""Control-plane errors.

ControlError
├── StoreUnavailable   etcd cannot be reached (retry later: UNAVAILABLE)
├── LeaseLost          this process's lease expired; its claims are void
├── QueryFailed        a task of the query failed; the message is the task's error
├── QueryTimeout       the query did not finish in time (DEADLINE_EXCEEDED)
└── QueryNotFound      no such query or result, or its retention has passed
"""

from __future__ import annotations

from duckfleet.errors import DuckfleetError


class ControlError(DuckfleetError):
    pass


class StoreUnavailable(ControlError):
    pass


class LeaseLost(ControlError):
    pass


class QueryFailed(ControlError):
    pass


class QueryTimeout(ControlError):
    pass


class QueryNotFound(ControlError):
    pass


class NoWorkers(ControlError):
    pass
