"""Control-plane errors.

ControlError
├── StoreUnavailable   etcd cannot be reached (retry later: UNAVAILABLE)
├── LeaseLost          this process's lease expired; its claims are void
├── QueryFailed        a task of the query failed; the message is the task's error
│   └── LimitExceeded  a resource limit stopped it (fragment memory, result size)
├── QueryCancelled     the query was cancelled (by its client, or CancelFlightInfo)
├── QueryTimeout       the query did not finish in time (DEADLINE_EXCEEDED)
├── QueryNotFound      no such query or result, or its retention has passed
├── NoWorkers          no worker has joined the fleet
└── QueueFull          the query's resource group is full: running and queue limits
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


class LimitExceeded(QueryFailed):
    pass


class QueryCancelled(ControlError):
    pass


class QueryTimeout(ControlError):
    pass


class QueryNotFound(ControlError):
    pass


class NoWorkers(ControlError):
    pass


class ResultsLost(ControlError):
    """A finished query's output partitions vanished with their worker before the
    client was answered: running it again succeeds."""


class QueueFull(ControlError):
    """A resource group's queue is full (control/resource_groups.py): the message
    names the group and its limit. UNAVAILABLE: retry later."""
