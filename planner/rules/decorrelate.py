"""Rule: correlated subqueries become joins (sqlglot's unnest_subqueries).

    SELECT ... FROM lineitem, part WHERE p_partkey = l_partkey
      AND l_quantity < (SELECT 0.2 * AVG(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)

becomes a LEFT JOIN to `(SELECT 0.2 * AVG(l_quantity) AS _col_0, l_partkey AS _u_1
FROM lineitem GROUP BY l_partkey) AS _u_0` on the correlation key: a block that
aggregates, so splits, and a join the query around it reads as an earlier result.
sqlglot leaves alone what it cannot rewrite exactly (NOT IN, LIMIT in the subquery,
...); those run as they are. Uncorrelated subqueries (holding no correlated ones) are
hidden from it: the planner computes each once, as a stage, and reads its result
where it stands. It also turns `x IN (subquery)` into a join and a test
that is false where IN would be NULL: the same inside WHERE, HAVING and ON, under
AND and OR, but not elsewhere (SELECT x IN (...), NOT, CASE, IS NULL); a statement
with IN or ANY over a subquery anywhere else is left as it is.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.unnest_subqueries import unnest_subqueries

from duckfleet.planner.context import PlanContext
from duckfleet.planner.scope import correlated

_FILTERS = (exp.Where, exp.Having, exp.Join)


def decorrelate(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    if tree.find(exp.Subquery, exp.Exists) is None:
        return tree
    work = tree.copy()
    hidden = _hide_uncorrelated(work)
    if not any(isinstance(n, exp.Query) for n in work.find_all(exp.Query) if n is not work):
        return tree
    if not _two_valued_enough(work):
        return tree
    try:
        out = unnest_subqueries(work)
    except Exception:  # a sqlglot limitation: the tree stays as it was
        return tree
    for placeholder in list(out.find_all(exp.Placeholder)):
        original = hidden.get(placeholder.name)
        if original is not None:
            placeholder.replace(original)
    return out


def _hide_uncorrelated(tree: exp.Expression) -> dict[str, exp.Expression]:
    """Put placeholders where uncorrelated subqueries are, so that sqlglot leaves them
    alone: they need no join (the planner computes them once, as stages) and some of
    its rewrites of them move them where they cost a stage more."""
    hidden: dict[str, exp.Expression] = {}
    for node in list(tree.find_all(exp.Select, exp.SetOperation)):
        if node is tree or not _attached(node, tree):
            continue
        target = node.parent if isinstance(node.parent, exp.Subquery) else node
        holder = target.parent
        if isinstance(holder, exp.From | exp.Join | exp.CTE | exp.SetOperation | exp.Subquery):
            continue  # a derived table, a CTE, a set operation's side: not a subquery
        if holder is None or correlated(target) or _holds_correlated(target):
            continue  # sqlglot may unnest it, or what it holds
        name = f"__uncorrelated{len(hidden)}"
        hidden[name] = target
        target.replace(exp.Placeholder(this=name))
    return hidden


def _holds_correlated(query: exp.Expression) -> bool:
    return any(
        inner is not query and correlated(inner)
        for inner in query.find_all(exp.Select, exp.SetOperation)
    )


def _attached(node: exp.Expression, root: exp.Expression) -> bool:
    while node.parent is not None:
        node = node.parent
    return node is root


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
