"""The planner: SQL text + catalog -> distributed plan (see planner.py)."""

from duckfleet.planner.planner import plan_query
from duckfleet.planner.settings import PlannerSettings

__all__ = ["PlannerSettings", "plan_query"]
