"""The SQL each bucket task runs, and the merge after them, for what the root needs
(layout.Merge):

* NONE: the statement itself, per bucket; its results are the answer's partitions.
* CONCAT: the statement per bucket (an OFFSET folded into its LIMIT: top-N per
  bucket), then one merge over the concatenation `__stage0` that keeps DISTINCT,
  ORDER BY (by output column), LIMIT and OFFSET.
* AGGREGATE: split_aggregates' partial per bucket and its merge.

Fragments are the statement's own text unless something had to change (a hoisted
subquery, an OFFSET): then they are generated from the qualified tree with each
output named as DuckDB names it (output_names.py), or NotDistributable.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.joins.keys import output_names
from duckfleet.planner.joins.layout import Merge
from duckfleet.planner.output_names import name_outputs
from duckfleet.planner.parse import DIALECT, Statement
from duckfleet.planner.rules.split_aggregates import partial_aggregates

PARTIAL_RELATION = "__stage0"  # the bucket tasks' results, concatenated, in the merge


@dataclass(frozen=True)
class Fragments:
    bucket: str  # what each bucket task runs
    merge: str | None  # the one task after them, over PARTIAL_RELATION; None: no merge
    what: str  # for the plan's reason

    @property
    def relation(self) -> str:
        return PARTIAL_RELATION


def root_fragments(
    statement: Statement,
    tree: exp.Expression,
    merge: Merge,
    sql: str,
    ctx: PlanContext,
    rewritten: bool,
) -> Fragments:
    """Fragments for the qualified `tree` (`rewritten`: it differs from the text)."""
    if merge is Merge.AGGREGATE:
        return _aggregate(statement, tree, sql, ctx)
    offset = tree.args.get("offset")
    if merge is Merge.NONE:
        text = _named(statement, tree, sql) if rewritten else statement.text
        return Fragments(text, None, "")
    if rewritten or offset is not None:
        per_bucket = _without_offset(tree)
        bucket = _named(statement, per_bucket, sql)
    else:
        bucket = statement.text
    return Fragments(bucket, _concat_merge(statement, tree, sql), "; merged in one task")


def _named(statement: Statement, tree: exp.Expression, sql: str) -> str:
    if not isinstance(tree, exp.Select) or not isinstance(statement.tree, exp.Select):
        raise NotDistributable(f"one task: a rewritten {tree.key.upper()} cannot keep its names")
    return name_outputs(statement.tree, tree, sql).sql(dialect=DIALECT)


def _without_offset(tree: exp.Expression) -> exp.Expression:
    """Top-N per bucket: LIMIT n OFFSET m keeps its first n + m rows."""
    copy = tree.copy()
    offset = copy.args.get("offset")
    if offset is None:
        return copy
    limit = copy.args.get("limit")
    copy.set("offset", None)
    if limit is not None:
        total = exp.Add(this=limit.expression.copy(), expression=offset.expression.copy())
        copy.set("limit", exp.Limit(expression=total))
    return copy


def _concat_merge(statement: Statement, tree: exp.Expression, sql: str) -> str:
    names = _final_names(statement, tree, sql)
    if len(set(names)) != len(names):
        # a merge reads the buckets' results by name: DuckDB renames repeated ones
        raise NotDistributable("one task: output column names repeat, a merge cannot keep them")
    merge = exp.select("*").from_(exp.to_table(PARTIAL_RELATION))
    # a SELECT holds a Distinct node; a set operation a flag (False: UNION ALL)
    flag = tree.args.get("distinct")
    distinct = bool(flag) if isinstance(tree, exp.SetOperation) else flag is not None
    if distinct:
        merge.set("distinct", exp.Distinct())
    order = tree.args.get("order")
    if order is not None:
        merge.set(
            "order",
            exp.Order(expressions=[_by_output(o, tree, names) for o in order.expressions]),
        )
    for clause in ("limit", "offset"):
        if tree.args.get(clause) is not None:
            merge.set(clause, tree.args[clause].copy())
    return merge.sql(dialect=DIALECT)


def _final_names(statement: Statement, tree: exp.Expression, sql: str) -> list[str]:
    """The output names the merge sees, as DuckDB names them."""
    if isinstance(tree, exp.Select) and isinstance(statement.tree, exp.Select):
        if tree.args.get("order") is None:
            return list(tree.named_selects)
        return list(name_outputs(statement.tree, tree, sql).named_selects)
    return output_names(tree)


def _by_output(ordered: exp.Ordered, tree: exp.Expression, names: list[str]) -> exp.Ordered:
    """An ORDER BY term of the root, rewritten over the root's output columns."""
    key = ordered.this
    target: exp.Expression | None = None
    if isinstance(key, exp.Literal) and key.is_int:
        target = key.copy()
    elif isinstance(key, exp.Column) and not key.table and key.name in names:
        target = exp.column(key.name, quoted=True)
    elif isinstance(tree, exp.Select):
        for name, projection in zip(names, tree.expressions, strict=False):
            if projection.unalias() == key:
                target = exp.column(name, quoted=True)
                break
    if target is None:
        raise NotDistributable(
            f"one task: ORDER BY {key.sql(dialect=DIALECT)} is not an output column"
        )
    copy = ordered.copy()
    copy.set("this", target)
    return copy


def _aggregate(statement: Statement, tree: exp.Expression, sql: str, ctx: PlanContext) -> Fragments:
    if not isinstance(tree, exp.Select) or not isinstance(statement.tree, exp.Select):
        raise NotDistributable("one task: aggregate over a set operation")
    named = name_outputs(statement.tree, tree, sql)
    ctes = named.args.get("with_")
    named.set("with_", None)  # the CTEs feed the partials only
    partial, merge = partial_aggregates(named, PARTIAL_RELATION, ctx)
    partial.set("with_", ctes)
    return Fragments(
        partial.sql(dialect=DIALECT),
        merge.sql(dialect=DIALECT),
        "; partial aggregates merged in one task",
    )
