"""Worker errors.

WorkerError
├── InputUnavailable   an input result could not be fetched from its worker
├── TaskStopped        the task was stopped: its query ended, or another copy won
└── ResourceLimitExceeded  a task went past a limit of its query (result size)
"""

from __future__ import annotations

from duckfleet.errors import DuckfleetError


class WorkerError(DuckfleetError):
    pass


class InputUnavailable(WorkerError):
    pass


class TaskStopped(WorkerError):
    pass


class ResourceLimitExceeded(WorkerError):
    pass
