"""Rule: correlated subqueries become joins (sqlglot's unnest_subqueries).

    SELECT ... FROM lineitem, part WHERE p_partkey = l_partkey
      AND l_quantity < (SELECT 0.2 * AVG(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)

becomes a LEFT JOIN to `(SELECT 0.2 * AVG(l_quantity) AS _col_0, l_partkey AS _u_1
FROM lineitem GROUP BY l_partkey) AS _u_0` on the correlation key: a block that
aggregates, so splits, and a join the query around it reads as an earlier result.
sqlglot leaves alone what it cannot rewrite exactly (NOT IN, LIMIT in the subquery,
...); those run as they are. It also turns `x IN (subquery)` into a join and a test
that is false where IN would be NULL: the same inside WHERE, HAVING and ON, under
AND and OR, but not elsewhere (SELECT x IN (...), NOT, CASE, IS NULL); a statement
with IN or ANY over a subquery anywhere else is left as it is.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.unnest_subqueries import unnest_subqueries

from duckfleet.planner.context import PlanContext

_FILTERS = (exp.Where, exp.Having, exp.Join)


def decorrelate(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    if tree.find(exp.Subquery, exp.Exists) is None or not _two_valued_enough(tree):
        return tree
    try:
        return unnest_subqueries(tree.copy())
    except Exception:  # a sqlglot limitation: the tree stays as it was
        return tree


def _two_valued_enough(tree: exp.Expression) -> bool:
    """Every IN / ANY / ALL over a subquery filters rows: only AND, OR and parentheses
    between it and its WHERE, HAVING or ON."""
    for node in tree.find_all(exp.In, exp.Any, exp.All):
        if isinstance(node, exp.In) and node.args.get("query") is None:
            continue
        parent = node.parent
        while isinstance(parent, exp.And | exp.Or | exp.Paren):
            parent = parent.parent
        if not isinstance(parent, _FILTERS):
            return False
    return True
