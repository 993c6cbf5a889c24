"""Rule: merge simple derived tables into the query around them (sqlglot's own rule).

    SELECT COUNT(*) FROM (SELECT l_orderkey FROM lineitem WHERE l_quantity > 45) AS big

becomes `SELECT COUNT(*) FROM lineitem WHERE l_quantity > 45`, one block that can
split. sqlglot's `merge_subqueries` merges only what keeps the meaning: no derived
table with aggregation, DISTINCT, LIMIT, window functions or a set operation, none
on the null-supplying side of an outer join, ...
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.merge_subqueries import merge_subqueries

from duckfleet.planner.context import PlanContext


def merge_derived_tables(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    derived = any(isinstance(s.parent, exp.From | exp.Join) for s in tree.find_all(exp.Subquery))
    if not derived:
        return tree
    try:
        return merge_subqueries(tree.copy())
    except Exception:  # a sqlglot limitation: the tree stays as it was
        return tree
