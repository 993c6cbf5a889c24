"""Rule: a query that looks at each row of its large table alone runs once per split.

    SELECT l_orderkey, p_name FROM lineitem JOIN part ON l_partkey = p_partkey

becomes `Fragment(<the query>, split=lineitem)`: one task per split of lineitem,
each reading part whole, each task's result one partition of the answer. When the
tree still is the statement as written (no part of it became a stage), the tasks
run the statement's own text, so DuckDB names the outputs as it always does; the
qualified tree stays in the fragment for what reads it (row-group pruning).

A set operation (UNION [ALL], INTERSECT, EXCEPT) at the top keeps its operator in
one final task; each of its SELECTs that scans a large table row by row becomes
`SELECT * FROM Fragment(<the SELECT>, split=...)`, so the reading and filtering is
spread, and the final task combines the results exactly as DuckDB would.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fragment import Fragment, fragment, has_fragments
from duckfleet.planner.rules.split_aggregates import materialize_inputs
from duckfleet.planner.shape import Strategy, shape


def split_scans(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    if isinstance(tree, exp.SetOperation):
        return _split_branches(tree, ctx)
    if isinstance(tree, Fragment) or not isinstance(tree, exp.Select):
        return tree
    decision = shape(tree, ctx)
    if decision.strategy is not Strategy.SCAN:
        return tree
    assert decision.split_table is not None
    ctx.decide(decision.reason)
    tree = materialize_inputs(tree, decision.split_table, ctx)
    text = ctx.text if _as_written(tree, ctx, decision.split_table) else None
    return fragment(tree, split=decision.split_table, text=text)


def _split_branches(tree: exp.SetOperation, ctx: PlanContext) -> exp.Expression:
    for side in ("this", "expression"):
        branch = tree.args.get(side)
        if isinstance(branch, exp.SetOperation):
            _split_branches(branch, ctx)
            continue
        if not isinstance(branch, exp.Select):
            continue
        decision = shape(branch, ctx, root=False)
        if decision.strategy is Strategy.SCAN:
            assert decision.split_table is not None
            ctx.note(f"set operation branch: {decision.reason}")
            body = materialize_inputs(branch.copy(), decision.split_table, ctx)
            branch.replace(exp.select("*").from_(fragment(body, decision.split_table)))
    return tree


def _as_written(tree: exp.Expression, ctx: PlanContext, split: str) -> bool:
    """Whether the statement's own text, run per split, means the same as `tree`:
    nothing in the tree became a stage, and the text reads the split table once."""
    if has_fragments(tree):
        return False
    reads = [
        t
        for t in ctx.original.find_all(exp.Table)
        if isinstance(t.this, exp.Identifier) and t.name.lower() == split
    ]
    return len(reads) == 1
