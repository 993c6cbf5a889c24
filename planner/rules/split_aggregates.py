"""Rule: split each aggregate block into a partial step per split and one merge.

    SELECT g, SUM(x) AS s, AVG(y) AS a FROM t WHERE p GROUP BY g ORDER BY s

becomes a partial query, run once per split of `t`,

    SELECT g AS _g0, SUM(x) AS _a0, SUM(y) AS _a1, COUNT(y) AS _a2
    FROM t WHERE p GROUP BY g

and a merge over the partials' concatenated results,

    SELECT _g0 AS g, SUM(_a0) AS s, CAST(SUM(_a1) AS DOUBLE) / NULLIF(SUM(_a2), 0) AS a
    FROM Fragment(<partial>, split=t) GROUP BY _g0 ORDER BY s

(`FROM __stage0` once the stages are built). Group expressions become `_g0.._gN`;
aggregates become `_a0.._aM`, one per distinct partial aggregate; how each merges is
in planner/aggregates.py. GROUPING SETS, ROLLUP and CUBE group the partial by every
key (the finest grouping) and re-aggregate per set in the merge; DISTINCT
aggregates add their argument `_d0` to the partial's keys; SELECT DISTINCT without
aggregates groups by its outputs. Variances add the window columns `_m0..` over the
partial rows of each group before the merge aggregates them.

Blocks are visited inner first, so a subquery or derived table splits before the
query around it; the merge stays where the block was. A block that itself splits
first gets its nested results that read earlier stages computed once, as stages of
their own (Fragments without a split), so its tasks fetch them rather than redo them.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.aggregates import Merger, distinct_argument
from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.fragment import Fragment, fragment
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.scope import blocks_bottom_up, correlated, transform_scope, walk_scope
from duckfleet.planner.shape import (
    BOUNDED,
    GROUPING_SETS,
    Shape,
    Strategy,
    aggregates_of,
    block_strategy,
    bounded_result,
    group_keys,
    needs_stage,
    nested_sources,
    shape,
)

_DROPPED_FROM_PARTIAL = ("having", "order", "limit", "offset", "distinct")
_BY_KEY = "__by_key"  # the split "table" of a block that splits by a join key


def split_aggregates(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    for block in blocks_bottom_up(tree):
        if block is not tree and block.parent is None:
            continue  # no longer in the tree
        decision = shape(block, ctx, root=block is tree)
        if decision.strategy is Strategy.SHUFFLE and block is not tree:
            _shuffle_nested(block, decision, ctx)
            continue
        if decision.strategy is not Strategy.AGGREGATE:
            continue
        try:
            merge = split_block(block, decision, ctx)
        except NotDistributable as e:
            if block is tree:
                ctx.decide(e.reason)  # what the shape could not see: say it
            continue
        if block is tree:
            ctx.decide(decision.reason)
            tree = merge
        else:
            ctx.note(f"subquery: {decision.reason}")
            block.replace(merge)
    return tree


def _shuffle_nested(block: exp.Select, decision: Shape, ctx: PlanContext) -> None:
    """A block inside the statement whose aggregates do not merge, shuffled by its
    group keys (planner/shuffle_aggregate.py) in place: a stage the block around it
    reads. (The statement's own block is shuffled by plan_query, after the join
    strategies had their chance.)"""
    # imported here: shuffle_aggregate builds on this module's materialize_inputs
    from duckfleet.planner.shuffle_aggregate import shuffle_aggregate

    try:
        shuffled, reason = shuffle_aggregate(block, decision, ctx)
    except NotDistributable:
        return
    if isinstance(shuffled, Fragment):  # the bucket tasks are its rows
        shuffled = exp.select("*").from_(shuffled)
    block.replace(shuffled)
    ctx.note(f"subquery: {reason}")


def partial_aggregates(
    select: exp.Select, relation: str, ctx: PlanContext
) -> tuple[exp.Select, exp.Select]:
    """For a block split another way (by a join key, planner/joins): the partial
    aggregate each task runs, and the merge over `relation`, their concatenation.
    NotDistributable when an aggregate does not merge."""
    if block_strategy(select, ctx.sql) is not Strategy.AGGREGATE:
        raise NotDistributable("one task: not an aggregate block")
    # what the block reads was laid out by the join planner: nothing becomes a stage
    decision = Shape(Strategy.AGGREGATE, "", split_table=_BY_KEY)
    merge = split_block(select, decision, ctx, stage_inputs=False)
    (partial_fragment,) = merge.find_all(Fragment)
    partial = partial_fragment.query
    partial_fragment.replace(exp.to_table(relation))
    return partial, merge


def split_block(
    select: exp.Select, decision: Shape, ctx: PlanContext, stage_inputs: bool = True
) -> exp.Select:
    """The merge over a Fragment of partial aggregates, for an AGGREGATE block;
    `stage_inputs`: nested queries that need it become stages of their own."""
    assert decision.split_table is not None
    bounded = bounded_result(select, ctx)
    select = select.copy()
    if stage_inputs:
        select = materialize_inputs(select, decision.split_table, ctx)
    keys = group_keys(select)
    aggregates = aggregates_of(select)
    grouping = select.args.get("group")
    sets = grouping is not None and any(isinstance(e, GROUPING_SETS) for e in grouping.expressions)
    key_columns = {key: exp.column(f"_g{i}") for i, key in enumerate(keys)}
    distinct = next((d for a in aggregates if (d := distinct_argument(a)) is not None), None)
    merger = Merger(
        grouped=bool(keys) and not sets, distinct=exp.column("_d0") if distinct else None
    )
    wrappers = set(aggregates)

    def merged(node: exp.Expression) -> exp.Expression:
        if node in key_columns:
            return key_columns[node].copy()
        if node in wrappers:
            merge = merger.merge(node)
            if isinstance(merge, exp.Binary) and not isinstance(node.parent, exp.Alias):
                merge = exp.Paren(this=merge)
            return merge
        return node

    merge = select.copy()
    merge.set("expressions", [transform_scope(e, merged) for e in select.expressions])
    for clause in ("having", "order"):
        if select.args.get(clause) is not None:
            merge.set(clause, transform_scope(select.args[clause], merged))
    if sets:
        assert grouping is not None
        merge.set("group", _renamed_group(grouping, key_columns))
    elif keys:
        merge.set("group", exp.Group(expressions=list(key_columns.values())))
    else:
        merge.set("group", None)
    if not aggregates and select.args.get("distinct") and not grouping:
        merge.set("distinct", None)  # grouping by every output is DISTINCT already
    merge.set("joins", None)
    merge.set("where", None)
    _check_merged(merge)

    partial = select.copy()
    for clause in _DROPPED_FROM_PARTIAL:
        partial.set(clause, None)
    outputs = [key.copy().as_(column.name) for key, column in key_columns.items()]
    group = [k.copy() for k in keys]
    if distinct is not None:
        outputs.append(distinct.copy().as_("_d0"))
        group.append(distinct.copy())
    outputs += [agg.copy().as_(column.name) for agg, column in merger.partials.items()]
    partial.set("expressions", outputs)
    partial.set("group", exp.Group(expressions=group) if group else None)
    source: exp.Expression = fragment(partial, split=decision.split_table)
    if merger.means:
        source = _with_means(source, merger, list(key_columns.values()))
    merge.set("from_", exp.From(this=source))
    merge.meta[BOUNDED] = bounded
    return merge


def materialize_inputs(select: exp.Select, split: str, ctx: PlanContext) -> exp.Select:
    """`select` with each nested query that `needs_stage` made a stage of its own:
    computed once, before the block's tasks, each of which reads its result."""
    for nested in nested_sources(select):
        if not needs_stage(nested, split, ctx) or correlated(nested):
            continue
        if isinstance(nested, exp.Subquery) and isinstance(nested.parent, exp.From | exp.Join):
            alias = nested.args.get("alias")
            nested.replace(fragment(nested.this.copy(), alias=alias.copy() if alias else None))
        elif isinstance(nested, exp.Subquery):
            nested.set("this", _read_all(nested.this.copy()))
        else:  # EXISTS (SELECT ...), x IN (SELECT ...)
            nested.replace(_read_all(nested.copy()))
    return select


def _read_all(query: exp.Expression) -> exp.Select:
    assert isinstance(query, exp.Query)
    return exp.select("*").from_(fragment(query))


def _renamed_group(group: exp.Group, key_columns: dict[exp.Expression, exp.Column]) -> exp.Group:
    def rename(node: exp.Expression) -> exp.Expression:
        return key_columns[node].copy() if node in key_columns else node

    renamed = group.transform(rename)
    assert isinstance(renamed, exp.Group)
    return renamed


def _with_means(source: exp.Expression, merger: Merger, keys: list[exp.Column]) -> exp.Subquery:
    """The partial rows, each with its group's overall mean for each variance."""
    window = exp.Window(partition_by=[k.copy() for k in keys]) if keys else exp.Window()
    columns: list[exp.Expression] = [exp.Star()]
    for (n, m), column in merger.means.items():
        weighted = exp.Sum(this=exp.Mul(this=exp.column(n), expression=exp.column(m)))
        count = exp.Sum(this=exp.column(n))
        mean = exp.Div(this=_over(weighted, window), expression=_over(count, window))
        columns.append(mean.as_(column.name))
    inner = exp.Select(expressions=columns).from_(source)
    return inner.subquery("_partials")


def _over(agg: exp.Expression, window: exp.Window) -> exp.Window:
    over = window.copy()
    over.set("this", agg)
    return over


def _check_merged(merge: exp.Select) -> None:
    """Only partial columns and output aliases may remain: a source column would be
    one that is neither grouped nor inside an aggregate."""
    for node in walk_scope(merge):
        if isinstance(node, exp.Column) and node.table:
            raise NotDistributable(
                f"one task: {node.sql(dialect=DIALECT)} is neither grouped nor aggregated"
            )
