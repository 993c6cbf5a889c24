"""Grouped aggregates that do not merge, exactly: shuffled by the group keys.

    SELECT year(l_shipdate) AS y, MEDIAN(l_quantity) AS m FROM lineitem
    WHERE l_discount > 0.05 GROUP BY y ORDER BY m DESC LIMIT 3

becomes producers, one task per split of `lineitem` (filters pushed down, only the
columns used), each splitting its rows by hash(_g0) into N buckets (plan.py's
exchange, worker/buckets.py: NULL keys hash to one bucket like any value),

    SELECT YEAR(lineitem.l_shipdate) AS _g0, lineitem.l_quantity AS _c0
    FROM lineitem AS lineitem WHERE lineitem.l_discount > 0.05

one task per bucket b, reading bucket b of every producer: every row of a group is
there, so the block's whole aggregate (HAVING included) is exact,

    SELECT _g0 AS y, MEDIAN(_c0) AS m, MEDIAN(_c0) AS _s0 FROM __stage0 GROUP BY _g0
    ORDER BY _s0 DESC LIMIT 3

and, for ORDER BY, LIMIT, OFFSET or DISTINCT, a final task over the buckets' results
(`SELECT y, m FROM __stage1 ORDER BY _s0 DESC LIMIT 3`); without them the bucket
tasks are the result partitions. Group keys become `_g0..`; the other columns the
block reads `_c0..`. Grouping sets shuffle by the keys all sets share
(planner/holistic.py). Every producer runs the same key expressions over the same
table, so equal keys have one DuckDB type and hash alike.

`plan_query` runs this for the statement's own block when no rule and no join
strategy split it (a join strategy that shuffles the block by a key of its own is
taken first: planner/joins); the rule split_aggregates runs it for a block inside
the statement (a derived table, a CTE, a set operation branch, an uncorrelated
subquery), which then becomes a stage the block around it reads.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.fragment import fragment
from duckfleet.planner.holistic import common_keys
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.prune import row_group_filter
from duckfleet.planner.rules.split_aggregates import materialize_inputs
from duckfleet.planner.rules.top_n import _name, _sort_value
from duckfleet.planner.scope import transform_scope
from duckfleet.planner.shape import BOUNDED, Shape, group_keys, row_count
from duckfleet.planner.splits import split_count

# a producer completion decrements every bucket task's counter in one etcd
# transaction: as planner/joins/choose.py's MAX_BUCKETS
MAX_BUCKETS = 32


def shuffle_aggregate(
    select: exp.Select, decision: Shape, ctx: PlanContext
) -> tuple[exp.Expression, str]:
    """The block as producers, bucket tasks and (maybe) a final task, and the reason
    for EXPLAIN. NotDistributable when it cannot be written that way."""
    split = decision.split_table
    assert split is not None
    table = ctx.catalog.get(split)
    assert table is not None
    select = materialize_inputs(select.copy(), split, ctx)
    group = select.args["group"]
    keys = group_keys(select)
    shared = keys if group.args.get("all") else common_keys(select)
    key_columns = {key: exp.column(f"_g{i}") for i, key in enumerate(keys)}
    columns: dict[str, tuple[exp.Expression, exp.Column]] = {}

    def to_bucket(node: exp.Expression) -> exp.Expression:
        if node in key_columns:
            return key_columns[node].copy()
        if isinstance(node, exp.Column) and node.table:
            found = columns.setdefault(
                node.sql(dialect=DIALECT), (node.copy(), exp.column(f"_c{len(columns)}"))
            )
            return found[1].copy()
        return node

    outputs = list(select.expressions)
    names = [e.alias_or_name for e in outputs]
    if len(set(names)) < len(names) or any(not n for n in names):
        raise NotDistributable("one task: two outputs share a name")
    order = select.args.get("order")
    distinct = bool(select.args.get("distinct"))
    if distinct and order is not None:
        raise NotDistributable("one task: SELECT DISTINCT with ORDER BY is not shuffled yet")
    limit, offset = row_count(select, "limit"), row_count(select, "offset")
    for clause in ("limit", "offset"):
        if select.args.get(clause) is not None and row_count(select, clause) is None:
            raise NotDistributable(f"one task: {clause.upper()} that is not a number")

    bucket = select.copy()
    for clause in ("order", "limit", "offset", "distinct", "joins", "where"):
        bucket.set(clause, None)
    sort: list[exp.Ordered] = []
    extra: list[exp.Expression] = []
    for n, item in enumerate(order.expressions if order is not None else ()):
        name = f"_s{n}"
        extra.append(transform_scope(_sort_value(item.this, outputs), to_bucket).as_(name))
        key = item.copy()
        key.set("this", exp.column(name))
        sort.append(key)
    bucket.set("expressions", [transform_scope(e, to_bucket) for e in outputs] + extra)
    bucket.set("group", transform_scope(group, to_bucket))
    if select.args.get("having") is not None:
        bucket.set("having", transform_scope(select.args["having"], to_bucket))
    if limit is not None and not distinct:  # top-N per bucket, then the final task's
        if sort:
            bucket.set("order", exp.Order(expressions=[s.copy() for s in sort]))
        bucket.set("limit", exp.Limit(expression=exp.Literal.number(limit + (offset or 0))))

    producer = select.copy()
    for clause in ("having", "order", "limit", "offset", "distinct", "group"):
        producer.set(clause, None)
    producer.set(
        "expressions",
        [key.copy().as_(column.name) for key, column in key_columns.items()]
        + [source.copy().as_(column.name) for source, column in columns.values()],
    )
    count = split_count(table, ctx.settings, row_group_filter(producer, table))
    buckets = min(ctx.settings.shuffle_buckets or max(count, ctx.settings.parallelism), MAX_BUCKETS)
    partition = tuple(key_columns[k].name for k in shared)
    produced = fragment(producer, split=split, partition_by=partition, buckets=buckets)
    bucket.set("from_", exp.From(this=produced))

    by = ", ".join(k.sql(dialect=DIALECT) for k in shared)
    broadcast = f"; broadcast: {', '.join(decision.broadcast)}" if decision.broadcast else ""
    reason = (
        f"{decision.reason}, so the rows of {table.name} ({count} producer tasks) are "
        f"shuffled by hash({by}) into {buckets} buckets, each group complete in one "
        f"task{broadcast}"
    )
    final_needed = order is not None or limit is not None or offset is not None or distinct
    if not final_needed:
        return fragment(bucket, buckets=buckets), reason
    final = exp.Select(expressions=[exp.column(_name(n)) for n in names]).from_(
        fragment(bucket, buckets=buckets)
    )
    if sort:
        final.set("order", exp.Order(expressions=sort))
    if limit is not None:
        final.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
    if offset:
        final.set("offset", exp.Offset(expression=exp.Literal.number(offset)))
    if distinct:
        final.set("distinct", exp.Distinct())
    final.meta[BOUNDED] = limit is not None
    what = "top rows per bucket, " if limit is not None and not distinct else ""
    return final, f"{reason}; {what}ORDER BY / LIMIT / DISTINCT in one final task"
