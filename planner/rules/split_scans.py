"""Rule: a query that looks at each row of its large table alone runs once per split.

    SELECT l_orderkey, p_name FROM lineitem JOIN part ON l_partkey = p_partkey

becomes `Fragment(<the query>, split=lineitem)`: one task per split of lineitem,
each reading part whole, each task's result one partition of the answer. The tasks
run the statement's own text, so DuckDB names the outputs as it always does; the
qualified tree stays in the fragment for what reads it (row-group pruning).
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fragment import fragment
from duckfleet.planner.shape import Strategy, shape


def split_scans(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    if not isinstance(tree, exp.Select) or not isinstance(ctx.original, exp.Query):
        return tree
    decision = shape(tree, ctx.tables, ctx.catalog, ctx.settings)
    if decision.strategy is not Strategy.SCAN:
        return tree
    ctx.decide(decision.reason)
    return fragment(tree, split=decision.split_table, text=ctx.text)
