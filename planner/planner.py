"""plan_query: SQL text + catalog -> distributed plan. Pure: no I/O of any kind.

    parse_statement   one query, or a PlanError
    RULES             rewrite rules over the tree, in order (planner/rules/__init__.py)
    build_plan        each Fragment in the final tree becomes a stage of tasks
    plan_joins        when no rule split the statement's own block (a join of large
                      tables, a window, a subquery over the split table): split it
                      by a key, as a broadcast, split-aligned or shuffle join
                      (planner/joins/)
    shuffle_aggregate else, a grouped block whose aggregates do not merge (MEDIAN,
                      ...): shuffled by its group keys (planner/shuffle_aggregate.py)
    plan_system_query a statement over system tables: one task, over snapshots the
                      front door ships with it (planner/system_tables.py)

Whatever cannot be split runs as one task over all the data: slower, never wrong.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.joins import plan_joins
from duckfleet.planner.parse import parse_statement
from duckfleet.planner.plan import Plan
from duckfleet.planner.rules import RULES
from duckfleet.planner.rules.qualify_columns import qualify_columns
from duckfleet.planner.settings import PlannerSettings
from duckfleet.planner.shape import Strategy, shape
from duckfleet.planner.shuffle_aggregate import shuffle_aggregate
from duckfleet.planner.stages import build_plan, single_plan
from duckfleet.planner.system_tables import plan_system_query, reads_system


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
    if reads_system(tree, catalog):  # system.queries etc.: one task over an inline snapshot
        return plan_system_query(ctx)
    try:
        for rule in RULES:
            tree = rule(tree, ctx)
    except NotDistributable as e:
        return _joined(ctx) or single_plan(ctx, e.reason)
    if not ctx.reasons:  # no rule split the statement's own block
        joined = _joined(ctx)
        if joined is not None:
            return joined
        tree = _shuffled(tree, ctx)
    return build_plan(tree, ctx)


def _shuffled(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    """A grouped block whose aggregates do not merge, shuffled by its group keys
    (planner/shuffle_aggregate.py); else `tree`, with why it runs as it does."""
    decision = shape(tree, ctx)
    if decision.strategy is Strategy.SHUFFLE and isinstance(tree, exp.Select):
        try:
            shuffled, reason = shuffle_aggregate(tree, decision, ctx)
        except NotDistributable as e:
            ctx.decide(e.reason)
            return tree
        ctx.decide(reason)
        return shuffled
    ctx.decide(decision.reason)  # say why
    return tree


def _joined(ctx: PlanContext) -> Plan | None:
    """The statement split by a join (or window, or subquery) key, or None. It plans
    from the statement as the client wrote it (views expanded, tables bare), since the
    rules' rewrites serve the fragment-per-block plans; hoisted subqueries are planned
    again by plan_query."""
    if not ctx.tables:
        return None
    try:
        qualified = qualify_columns(ctx.original, ctx)
    except NotDistributable:
        return None
    return plan_joins(ctx, qualified, lambda sub: plan_query(sub, ctx.catalog, ctx.settings))
