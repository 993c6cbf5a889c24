"""The planner: SQL text + catalog -> distributed plan (see planner.py).

`plan_query` and `PlannerSettings` are imported on first use, so a process that
only reads plans (a worker: duckfleet.planner.plan) never imports sqlglot and the
planner: a worker's start-up is that much shorter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from duckfleet.planner.planner import plan_query
    from duckfleet.planner.settings import PlannerSettings

__all__ = ["PlannerSettings", "plan_query"]


def __getattr__(name: str) -> Any:
    if name == "plan_query":
        from duckfleet.planner.planner import plan_query

        return plan_query
    if name == "PlannerSettings":
        from duckfleet.planner.settings import PlannerSettings

        return PlannerSettings
    raise AttributeError(f"module 'duckfleet.planner' has no attribute {name!r}")
