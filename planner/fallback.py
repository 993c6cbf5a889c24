"""Why a query runs as one task.

A rule that finds something it cannot split correctly raises `NotDistributable`;
the planner catches it and plans one task over all the data, with the reason.
"""

from __future__ import annotations


class NotDistributable(Exception):
    """Internal: the query runs as one task. Never leaves the planner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
