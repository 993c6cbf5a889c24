"""Rule: the statement's output columns carry DuckDB's names, written in the tree.

sqlglot's qualify names unaliased outputs `_col_N`; DuckDB names them after the
expression (`count_star()`, `sum(l_quantity)`). The rules after this one keep each
block's output aliases, so the SQL written from the tree names the columns as
DuckDB would for the user's text (planner/output_names.py). For a set operation the
leftmost SELECT names the columns. Where the name cannot be written, the plan
stays correct only by running the user's own text: `ctx.unnamed` says why, and a
plan that would run SQL written from the tree runs as one task instead.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.output_names import name_outputs as named_like


def name_outputs(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    original, target = leftmost_select(ctx.original), leftmost_select(tree)
    if original is None or target is None:
        ctx.unnamed = f"one task: cannot name the outputs of {tree.key.upper()} as DuckDB does"
        return tree
    try:
        named = named_like(original, target, ctx.sql)
    except NotDistributable as e:
        ctx.unnamed = e.reason
        return tree
    if target is tree:
        return named
    target.replace(named)
    return tree


def leftmost_select(tree: exp.Expression) -> exp.Select | None:
    """The SELECT whose outputs name the statement's columns."""
    node = tree
    while isinstance(node, exp.SetOperation | exp.Subquery):
        node = node.this
    return node if isinstance(node, exp.Select) else None
