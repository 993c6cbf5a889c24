"""Rule: ORDER BY and LIMIT over a scan: the first rows per split, then one merge.

    SELECT l_orderkey, l_extendedprice FROM lineitem ORDER BY l_extendedprice DESC
    LIMIT 10 OFFSET 5

becomes a fragment, once per split, keeping its own first 15 rows in that order,

    SELECT lineitem.l_orderkey AS l_orderkey, lineitem.l_extendedprice AS l_extendedprice,
      lineitem.l_extendedprice AS _s0 FROM lineitem AS lineitem ORDER BY ... LIMIT 15

and a final task over all of them,

    SELECT l_orderkey, l_extendedprice FROM Fragment(...) ORDER BY _s0 DESC LIMIT 10 OFFSET 5

Each ORDER BY expression travels as a column `_sN`, so the final task can order by
what the outputs do not show. ORDER BY without LIMIT is the same without the limits:
the splits are read and filtered in parallel and one final task sorts everything (it
is the one ordered endpoint). LIMIT without ORDER BY keeps any rows, as DuckDB does.
A block inside the statement is rewritten only when it has a LIMIT (an order alone
means nothing there).
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fragment import fragment
from duckfleet.planner.rules.split_aggregates import materialize_inputs
from duckfleet.planner.scope import blocks_bottom_up
from duckfleet.planner.shape import BOUNDED, Shape, Strategy, row_count, shape


def top_n(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    for block in blocks_bottom_up(tree):
        if block is not tree and block.parent is None:
            continue
        root = block is tree
        if not root and block.args.get("limit") is None:
            continue
        decision = shape(block, ctx, root=root)
        if decision.strategy is not Strategy.SORT:
            continue
        final = split_sort(block, decision, ctx)
        if root:
            ctx.decide(decision.reason)
            tree = final
        else:
            ctx.note(f"subquery: {decision.reason}")
            block.replace(final)
    return tree


def split_sort(select: exp.Select, decision: Shape, ctx: PlanContext) -> exp.Select:
    assert decision.split_table is not None
    select = materialize_inputs(select.copy(), decision.split_table, ctx)
    limit, offset = row_count(select, "limit"), row_count(select, "offset") or 0
    outputs = list(select.expressions)
    order = select.args.get("order")
    keys: list[exp.Ordered] = []
    partial = select.copy()
    partial.set("offset", None)
    partial.set(
        "limit", exp.Limit(expression=exp.Literal.number(limit + offset)) if limit else None
    )
    if limit is None:
        partial.set("order", None)  # the final task sorts everything anyway
    extra: list[exp.Expression] = []
    if order is not None:
        for n, item in enumerate(order.expressions):
            name = f"_s{n}"
            extra.append(_sort_value(item.this, outputs).as_(name))
            key = item.copy()
            key.set("this", exp.column(name))
            keys.append(key)
    partial.set("expressions", [e.copy() for e in outputs] + extra)
    final = exp.Select(expressions=[exp.column(_name(e.alias_or_name)) for e in outputs]).from_(
        fragment(partial, split=decision.split_table)
    )
    if keys:
        final.set("order", exp.Order(expressions=keys))
    if limit is not None:
        final.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    if offset:
        final.set("offset", exp.Offset(expression=exp.Literal.number(offset)))
    final.meta[BOUNDED] = limit is not None
    return final


def _sort_value(value: exp.Expression, outputs: list[exp.Expression]) -> exp.Expression:
    """What an ORDER BY item sorts by, as an expression over the block's sources: an
    output's name or position means that output's expression."""
    if isinstance(value, exp.Literal) and not value.is_string and str(value.this).isdigit():
        return outputs[int(str(value.this)) - 1].unalias().copy()
    if isinstance(value, exp.Column) and not value.table:
        for output in outputs:
            if output.alias_or_name == value.name and isinstance(output, exp.Alias):
                return output.this.copy()
    return value.copy()


def _name(name: str) -> exp.Identifier:
    """An output's name as a column reference, quoted where DuckDB would change it."""
    identifier = exp.to_identifier(name)
    if name != name.lower():
        identifier.set("quoted", True)
    return identifier
