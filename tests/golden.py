"""Rendering a plan as the planner's golden files record it (tests/fixtures/planner)."""

from __future__ import annotations

from duckfleet.planner.plan import Plan, StageKind


def stages_line(plan: Plan) -> str:
    return ", ".join(f"{s.kind} x{len(s.tasks)}" for s in plan.stages)


def fragments(plan: Plan) -> list[str]:
    """Each stage's distinct fragments, in plan order."""
    out: list[str] = []
    for stage in plan.stages:
        seen: list[str] = []
        for task in stage.tasks:
            if task.sql not in seen:
                seen.append(task.sql)
        out += seen
    return out


def filters_line(plan: Plan) -> str:
    """The key-range filters of the first task of the first split stage, by table."""
    for stage in plan.stages:
        if stage.kind in (StageKind.SHUFFLE, StageKind.MERGE):
            continue
        first = stage.tasks[0]
        return " | ".join(f"{b.table}: {b.filter}" for b in first.tables if b.filter)
    return ""
