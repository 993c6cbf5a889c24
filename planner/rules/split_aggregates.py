"""Rule: split an aggregate query into a partial step per split and one merge.

    SELECT g, SUM(x) AS s, AVG(y) AS a FROM t WHERE p GROUP BY g ORDER BY s

becomes a partial query, run once per split of `t`,

    SELECT g AS _g0, SUM(x) AS _a0, SUM(y) AS _a1, COUNT(y) AS _a2
    FROM t WHERE p GROUP BY g

and a merge over the partials' concatenated results (relation `__stage0`),

    SELECT _g0 AS g, SUM(_a0) AS s, CAST(SUM(_a1) AS DOUBLE) / NULLIF(SUM(_a2), 0) AS a
    FROM __stage0 GROUP BY _g0 ORDER BY s

Group expressions become `_g0.._gN`; aggregates become `_a0.._aM`, one per distinct
partial aggregate (identical aggregates share one). The merge of each aggregate
gives DuckDB's own result type: SUM -> SUM, COUNT -> CAST(SUM AS BIGINT) (and 0
over no rows at all), MIN/MAX -> MIN/MAX, AVG -> sum / count as DOUBLE.

In the tree the merge reads a Fragment: `FROM Fragment(<partial>, split=t)`, which
becomes `FROM __stage0` when the stages are built. The rule applies to a qualified
SELECT that `shape` finds to be an AGGREGATE; what cannot be split after all raises
NotDistributable.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.fragment import Fragment, fragment
from duckfleet.planner.output_names import name_outputs
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.shape import Strategy, shape

_DROPPED_FROM_PARTIAL = ("having", "order", "limit", "offset", "distinct")


def split_aggregates(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    """The merge over a fragment of partial aggregates, if `tree` is an aggregate
    query over splits; else `tree`."""
    if isinstance(tree, Fragment):
        return tree
    decision = shape(tree, ctx.tables, ctx.catalog, ctx.settings)
    if decision.strategy is not Strategy.AGGREGATE:
        if decision.strategy is Strategy.SINGLE:
            ctx.decide(decision.reason)
        return tree
    # shape splits a lone SELECT only
    assert isinstance(tree, exp.Select) and isinstance(ctx.original, exp.Select)
    named = name_outputs(ctx.original, tree, ctx.sql)
    partial, merge = partial_and_merge(named, ctx.schema)
    merge.set("from_", exp.From(this=fragment(partial, split=decision.split_table)))
    ctx.decide(decision.reason)
    return merge


def partial_and_merge(
    select: exp.Select, schema: dict[str, dict[str, str]]
) -> tuple[exp.Select, exp.Select]:
    """The partial and the merge query for `select`; the merge reads no table yet."""
    select = annotate_types(select.copy(), schema=schema, dialect=DIALECT)
    keys = _group_keys(select)
    grouped = bool(keys)
    key_columns = {key: exp.column(f"_g{i}") for i, key in enumerate(keys)}
    partials: dict[exp.Expression, exp.Column] = {}

    def partial(agg: exp.Expression) -> exp.Column:
        return partials.setdefault(agg, exp.column(f"_a{len(partials)}")).copy()

    def merged(node: exp.Expression) -> exp.Expression:
        if node in key_columns:
            return key_columns[node].copy()
        if isinstance(node, exp.AggFunc):
            merge = _merge_aggregate(node, partial, grouped)
            if isinstance(merge, exp.Binary) and not isinstance(node.parent, exp.Alias):
                merge = exp.Paren(this=merge)
            return merge
        return node

    merge = select.copy()
    merge.set("expressions", [e.transform(merged) for e in select.expressions])
    for clause in ("having", "order"):
        if select.args.get(clause) is not None:
            merge.set(clause, select.args[clause].transform(merged))
    merge.set("from_", None)
    merge.set("joins", None)
    merge.set("where", None)
    merge.set("group", exp.Group(expressions=list(key_columns.values())) if grouped else None)
    _check_merged(merge)

    partial_select = select.copy()
    for clause in _DROPPED_FROM_PARTIAL:
        partial_select.set(clause, None)
    partial_select.set(
        "expressions",
        [key.copy().as_(column.name) for key, column in key_columns.items()]
        + [agg.copy().as_(column.name) for agg, column in partials.items()],
    )
    partial_select.set(
        "group", exp.Group(expressions=[k.copy() for k in keys]) if grouped else None
    )
    return partial_select, merge


def _group_keys(select: exp.Select) -> list[exp.Expression]:
    """GROUP BY's expressions, without repeats; for GROUP BY ALL, the outputs that
    aggregate nothing, as DuckDB defines it."""
    group = select.args.get("group")
    if group is None:
        return []
    if group.args.get("all"):
        found = [e.unalias() for e in select.expressions if e.find(exp.AggFunc) is None]
    else:
        found = list(group.expressions)
    return list(dict.fromkeys(found))


def _merge_aggregate(
    agg: exp.AggFunc, partial: Callable[[exp.Expression], exp.Column], grouped: bool
) -> exp.Expression:
    if isinstance(agg, exp.Sum | exp.Min | exp.Max):
        return type(agg)(this=partial(agg))
    if isinstance(agg, exp.Count):
        count = exp.cast(exp.Sum(this=partial(agg)), exp.DataType.Type.BIGINT)
        # A merge of no partial rows at all sums to NULL where COUNT says 0.
        return count if grouped else exp.Coalesce(this=count, expressions=[exp.Literal.number(0)])
    if isinstance(agg, exp.Avg):
        _check_average(agg)
        total = exp.Sum(this=partial(exp.Sum(this=agg.this.copy())))
        count = exp.Sum(this=partial(exp.Count(this=agg.this.copy(), big_int=True)))
        return exp.Div(
            this=exp.cast(total, exp.DataType.Type.DOUBLE),
            expression=exp.Nullif(this=count, expression=exp.Literal.number(0)),
        )
    raise NotDistributable(f"one task: {agg.sql_name()} cannot be merged yet")


def _check_average(agg: exp.Avg) -> None:
    """AVG is DOUBLE only over numbers (over dates or intervals it is not)."""
    argument = agg.this.type
    if argument is None or not argument.is_type(*exp.DataType.NUMERIC_TYPES):
        what = argument.sql(dialect=DIALECT) if argument is not None else "unknown"
        raise NotDistributable(f"one task: AVG over {what} values cannot be merged yet")


def _check_merged(merge: exp.Select) -> None:
    """Only partial columns and output aliases may remain: a source column would be
    one that is neither grouped nor inside an aggregate."""
    for column in merge.find_all(exp.Column):
        if column.table:
            raise NotDistributable(
                f"one task: {column.sql(dialect=DIALECT)} is neither grouped nor aggregated"
            )
