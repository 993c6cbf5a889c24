"""plan_query: SQL text + catalog -> distributed plan. Pure: no I/O of any kind.

    parse_statement   one query, or a PlanError
    RULES             rewrite rules over the tree, in order (planner/rules/__init__.py)
    build_plan        each Fragment in the final tree becomes a stage of tasks

Whatever cannot be split runs as one task over all the data: slower, never wrong.
"""

from __future__ import annotations

from duckfleet.catalog import Catalog
from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.parse import parse_statement
from duckfleet.planner.plan import Plan
from duckfleet.planner.rules import RULES
from duckfleet.planner.settings import PlannerSettings
from duckfleet.planner.shape import shape
from duckfleet.planner.stages import build_plan, single_plan


def plan_query(sql: str, catalog: Catalog, settings: PlannerSettings | None = None) -> Plan:
    """Plan `sql` over `catalog`; raises a PlanError when the SQL must be fixed."""
    statement = parse_statement(sql)
    ctx = PlanContext(
        catalog=catalog,
        settings=settings or PlannerSettings(),
        sql=sql,
        text=statement.text,
        original=statement.tree,
    )
    tree = statement.tree
    try:
        for rule in RULES:
            tree = rule(tree, ctx)
    except NotDistributable as e:
        return single_plan(ctx, e.reason)
    if not ctx.reasons:  # no rule split the statement's own block: say why
        ctx.decide(shape(tree, ctx).reason)
    return build_plan(tree, ctx)
