"""Decide how one query block splits: SCAN, AGGREGATE or not at all (SINGLE), and why.

A block (one SELECT) splits over the splits of its one split table when nothing in
it depends on seeing all of that table's rows at once:

* its clauses are those of a plain SELECT: no window, QUALIFY, sampling, PIVOT,
  UNNEST, LATERAL, DISTINCT ON or aggregate the planner cannot merge;
* it reads the split table once, in FROM or a join; everything else it reads is
  read whole by every task: small catalog tables, Fragments (earlier stages'
  results), and subqueries or derived tables that read only those; an
  uncorrelated subquery that reads more (a large table, the split table, an
  earlier stage) becomes a stage of its own, computed once (`needs_stage`);
* the split table is its one large table, or, with none, the largest of its
  tables with several splits (inside the statement: only one larger than a split);
  it has at least two splits left after pruning;
* every join keeps the split table on a side whose rows no other task needs:
  INNER, CROSS, comma, and LEFT (also SEMI, ANTI) joins to the other tables;
* what every task reads whole is no larger than one task's split (times
  `broadcast_max_share`).

Then a block without aggregates, GROUP BY or DISTINCT is a SCAN, or a SORT when
it has ORDER BY, LIMIT or OFFSET (numbers); one with them an AGGREGATE when every
aggregate merges (planner/aggregates.py), else a SHUFFLE when it is grouped by keys
every grouping set shares (planner/holistic.py). Anything else runs as one task, and
the shape says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlglot import exp

from duckfleet.catalog import Catalog, Table
from duckfleet.planner.aggregates import (
    DUCKDB_AGGREGATES,
    VARIANCES,
    aggregate_name,
    check_aggregate,
    distinct_argument,
    function_of,
)
from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.fragment import Fragment, has_fragments
from duckfleet.planner.holistic import GROUPING_SETS, common_keys, holistic_reason
from duckfleet.planner.prune import row_group_filter
from duckfleet.planner.scope import catalog_reads, correlated, nested_queries, walk_scope
from duckfleet.planner.settings import PlannerSettings
from duckfleet.planner.splits import split_count


class Strategy(StrEnum):
    SINGLE = "single"
    SCAN = "scan"
    AGGREGATE = "aggregate"
    SORT = "sort"  # ORDER BY and/or LIMIT over a scan: top-N per split, or a final sort
    # grouped, with aggregates that do not merge: shuffled by the group keys, the whole
    # aggregate per bucket (planner/holistic.py, planner/shuffle_aggregate.py)
    SHUFFLE = "shuffle"


@dataclass(frozen=True)
class Shape:
    strategy: Strategy
    reason: str
    split_table: str | None = None  # the split table (catalog key): one task per split
    broadcast: tuple[str, ...] = ()  # catalog tables every task reads whole


# Select clauses a split block may have; any other (WINDOW, QUALIFY, sample, ...) is
# refused, so a clause sqlglot learns later cannot slip through unnoticed.
_SPLITTABLE_CLAUSES = frozenset(
    {"expressions", "from_", "joins", "where", "group", "having", "order", "limit", "offset"}
    | {"distinct"}
)
_FORBIDDEN: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.Window, "window function"),
    (exp.TableSample, "sampling"),
    (exp.Pivot, "PIVOT"),
    (exp.Unnest, "UNNEST"),
    (exp.Lateral, "LATERAL"),
    (exp.Columns, "COLUMNS(...)"),
)


def shape(block: exp.Expression, ctx: PlanContext, root: bool = True) -> Shape:
    """How `block` (qualified, types annotated) splits. A block inside the statement
    (`root` false) splits over a large table only: splitting a small one saves less
    than the stage costs."""
    try:
        select = _one_select(block)
        if not root and correlated(select):
            raise NotDistributable("one task: a correlated subquery runs where it is used")
        scanned = _sources(select, ctx.catalog)
        split = _split_table(select, scanned, ctx.catalog, ctx.settings, root)
        inline = _inline_reads(select, split, ctx)
        small = sorted({t.name for t in scanned if t is not split} | set(inline))
        _check_broadcast_cost(select, split, small, ctx.catalog, ctx.settings)
        _check_joins(select, split)
        _check_expressions(select)
        strategy, refused = _strategy(select, ctx.sql)
    except NotDistributable as e:
        return Shape(Strategy.SINGLE, e.reason)
    count = split_count(split, ctx.settings, row_group_filter(select, split))
    inputs = sum(1 for s in _source_nodes(select) if isinstance(s, Fragment))
    told = [", ".join(small)] if small else []
    told += [f"{inputs} earlier result(s)"] if inputs else []
    broadcast = f"; broadcast: {', '.join(told)}" if told else ""
    if strategy is Strategy.SCAN:
        reason = f"scan: one task per split of {split.name} ({count} tasks){broadcast}"
    elif strategy is Strategy.SORT:
        limit = row_count(select, "limit")
        if limit is None:
            what = f"one task per split of {split.name} ({count} tasks), sorted in one task"
        else:
            first = limit + (row_count(select, "offset") or 0)
            rows = f"the first {first} row(s) in order" if select.args.get("order") else None
            what = (
                f"{rows or f'any {first} row(s)'} of each split of {split.name} "
                f"({count} tasks), merged in one task"
            )
        reason = f"sort: {what}{broadcast}"
    elif strategy is Strategy.SHUFFLE:  # the rewrite says how (planner/shuffle_aggregate.py)
        reason = f"aggregate: {refused.removeprefix('one task: ')}"
    else:
        reason = (
            f"aggregate: partial aggregates per split of {split.name} ({count} tasks), "
            f"merged in one task{broadcast}"
        )
    return Shape(strategy, reason, split.name.lower(), tuple(small))


def _strategy(select: exp.Select, sql: str) -> tuple[Strategy, str]:
    """The block's strategy and, for SHUFFLE, why its aggregates do not merge."""
    try:
        _check_aggregate_functions(select)
        return block_strategy(select, sql), ""
    except NotDistributable as e:
        if select.args.get("group") is None and not _has_aggregates(select):
            raise
        group = select.args.get("group")
        all_keys = group is not None and group.args.get("all")
        keys = group_keys(select) if all_keys else common_keys(select)
        holistic_reason(select, e.reason, keys)
        return Strategy.SHUFFLE, e.reason


def _has_aggregates(select: exp.Select) -> bool:
    if aggregates_of(select):
        return True
    try:
        _check_aggregate_functions(select)
    except NotDistributable:
        return True
    return False


def _one_select(block: exp.Expression) -> exp.Select:
    if isinstance(block, exp.SetOperation):
        raise NotDistributable(f"one task: {block.key.upper()}")
    if not isinstance(block, exp.Select):
        raise NotDistributable(f"one task: {block.key.upper()} is not split yet")
    if block.args.get("with_"):
        raise NotDistributable("one task: WITH (common table expressions)")
    for key, value in block.args.items():
        if value and key not in _SPLITTABLE_CLAUSES:
            what = "sampling" if key == "sample" else f"{key.rstrip('_').upper()} clause"
            raise NotDistributable(f"one task: {what}")
    return block


def _source_nodes(select: exp.Select) -> list[exp.Expression]:
    from_ = select.args.get("from_")
    if from_ is None:
        raise NotDistributable("one task: reads no table")
    return [from_.this, *(join.this for join in select.args.get("joins") or ())]


def _sources(select: exp.Select, catalog: Catalog) -> list[Table]:
    """The catalog tables in FROM and the joins; refuses what cannot be split around."""
    scanned: list[Table] = []
    for source in _source_nodes(select):
        if isinstance(source, Fragment | exp.Subquery):
            continue  # an earlier result, or a derived table checked with the subqueries
        if not isinstance(source, exp.Table):
            raise NotDistributable(f"one task: {source.key.upper()} in FROM")
        if isinstance(source.this, exp.Func):
            raise NotDistributable(f"one task: table function {source.this.sql_name()} in FROM")
        table = catalog.get(source.name)
        if table is None:
            raise NotDistributable(f"one task: reads {source.name}, not a catalog table")
        scanned.append(table)
    return scanned


def nested_sources(select: exp.Select) -> list[exp.Expression]:
    """The queries nested in the block's own scope that its split tasks run:
    subqueries, derived tables; not those in the HAVING or ORDER BY of an aggregate
    block, which only its merge evaluates (every table whole, every stage's result)."""
    merge_only: list[exp.Expression] = []
    if aggregates_of(select) or select.args.get("group") or select.args.get("distinct"):
        merge_only = [c for k in ("having", "order") if (c := select.args.get(k)) is not None]
    return [
        child
        for child in nested_queries(select)
        if isinstance(child, exp.Query) and not any(_inside(child, clause) for clause in merge_only)
    ]


def _inside(node: exp.Expression, ancestor: exp.Expression) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False


def needs_stage(nested: exp.Expression, split: str, ctx: PlanContext) -> bool:
    """Whether a query nested in a block that splits over `split` must become a stage
    of its own, computed once before the block's tasks and read by each: it reads an
    earlier stage, a large table or the split table itself (which inside a task is
    only that task's split). Only an uncorrelated query can (see `_inline_reads`)."""
    if has_fragments(nested):
        return True
    for name in catalog_reads(nested, set(ctx.catalog.tables)):
        table = ctx.catalog.get(name)
        if name == split or (table is not None and table.bytes > ctx.settings.broadcast_max_bytes):
            return True
    return False


def _inline_reads(select: exp.Select, split: Table, ctx: PlanContext) -> list[str]:
    """Catalog tables the block's nested queries read in every task (small ones); the
    others become stages of their own, except correlated ones, which cannot."""
    names = set(ctx.catalog.tables)
    found: list[str] = []
    staged = [s for s in _source_nodes(select) if isinstance(s, Fragment)]
    for nested in nested_sources(select):
        if not needs_stage(nested, split.name, ctx):
            found += catalog_reads(nested, names)
        elif correlated(nested):
            reads = set(catalog_reads(nested, names))
            what = split.name if split.name in reads else "an earlier result or a large table"
            raise NotDistributable(f"one task: a correlated subquery reads {what}")
        else:
            staged.append(nested)
    for source in staged:
        if not bounded_result(source, ctx):
            raise NotDistributable(
                "one task: every task would fetch the whole result of a subquery whose size "
                "grows with a large table (rows or groups of it)"
            )
    return list(dict.fromkeys(found))


BOUNDED = "duckfleet_bounded"  # meta key: whether a rewritten block's result is small


def bounded_result(node: exp.Expression, ctx: PlanContext) -> bool:
    """Whether a query's result stays small whatever the size of the large tables, so
    that every task of a split block may fetch it whole: a LIMIT, an aggregate without
    GROUP BY, a GROUP BY over small tables' columns only, or a query of small tables.
    Rewritten blocks carry the answer in their meta (BOUNDED)."""
    query = node.this if isinstance(node, Fragment | exp.Subquery) else node
    if isinstance(query, exp.SetOperation):
        return bounded_result(query.this, ctx) and bounded_result(query.expression, ctx)
    if not isinstance(query, exp.Select):
        return False
    if BOUNDED in query.meta:
        return bool(query.meta[BOUNDED])
    if row_count(query, "limit") is not None:
        return True
    grouped = query.args.get("group") is not None or bool(query.args.get("distinct"))
    if not grouped and aggregates_of(query):
        return True
    from_ = query.args.get("from_")
    if not grouped and not query.args.get("joins") and from_ is not None:
        if isinstance(from_.this, Fragment | exp.Subquery):  # rows of one earlier result
            return bounded_result(from_.this, ctx)
    small = {
        source.alias_or_name.lower()
        for source in query.find_all(exp.Table)
        if (t := ctx.catalog.get(source.name)) is not None
        and t.bytes <= ctx.settings.broadcast_max_bytes
    }
    if grouped:
        keys = group_keys(query)
        return all(
            c.table and c.table.lower() in small for k in keys for c in k.find_all(exp.Column)
        )
    tables = catalog_reads(query, set(ctx.catalog.tables))
    return not has_fragments(query) and all(
        (t := ctx.catalog.get(n)) is not None and t.bytes <= ctx.settings.broadcast_max_bytes
        for n in tables
    )


def group_keys(select: exp.Select) -> list[exp.Expression]:
    """The expressions the block groups by, without repeats: GROUP BY's (every key of
    its grouping sets, rollups and cubes); for GROUP BY ALL, the outputs that aggregate
    nothing, as DuckDB defines it; for SELECT DISTINCT without GROUP BY, the outputs."""
    group = select.args.get("group")
    if group is None:
        if select.args.get("distinct") and not aggregates_of(select):
            return list(dict.fromkeys(e.unalias() for e in select.expressions))
        return []
    if group.args.get("all"):
        found = [e.unalias() for e in select.expressions if not aggregates_of(e.unalias())]
        return list(dict.fromkeys(found))
    found = []
    for e in group.expressions:
        if isinstance(e, GROUPING_SETS):
            for item in e.expressions:
                found += _leaves(item)
        else:
            found += _leaves(e)
    return list(dict.fromkeys(found))


def _leaves(item: exp.Expression) -> list[exp.Expression]:
    if isinstance(item, exp.Tuple):
        return [leaf for e in item.expressions for leaf in _leaves(e)]
    if isinstance(item, exp.Paren):
        return _leaves(item.this)
    return [item]


def _split_table(
    select: exp.Select,
    scanned: list[Table],
    catalog: Catalog,
    settings: PlannerSettings,
    root: bool,
) -> Table:
    """The one large table, scanned once, whose splits become the tasks."""
    large = [t for t in scanned if t.bytes > settings.broadcast_max_bytes]
    names = list(dict.fromkeys(t.name for t in large))
    if len(names) > 1:
        raise NotDistributable(f"one task: joins two large tables ({', '.join(names)})")
    if len(large) > 1:
        raise NotDistributable(f"one task: reads large table {names[0]} twice")
    if not scanned:
        raise NotDistributable("one task: reads no catalog table but through subqueries")
    if not large:
        # inside the statement, a table of one split's worth or less is not worth a stage
        floor = 0 if root else settings.split_bytes
        splittable = [t for t in scanned if t.bytes > floor and split_count(t, settings) > 1]
        if not splittable:
            raise NotDistributable("one task: only one split")
        largest = max(splittable, key=lambda t: t.bytes)
        if sum(t is largest for t in scanned) > 1:
            raise NotDistributable(f"one task: reads largest table {largest.name} twice")
        large = [largest]
    if split_count(large[0], settings, row_group_filter(select, large[0])) < 2:
        raise NotDistributable(f"one task: only one split of {large[0].name} to read")
    return large[0]


def _check_broadcast_cost(
    select: exp.Select,
    split: Table,
    small: list[str],
    catalog: Catalog,
    settings: PlannerSettings,
) -> None:
    """Every task reads the broadcast tables whole: worth it only while they are no
    larger than the task's own split, or the fleet re-reads more than it divides."""
    broadcast = sum(t.bytes for name in small if (t := catalog.get(name)) is not None)
    share = split.bytes // split_count(split, settings)
    if broadcast > share * settings.broadcast_max_share:
        raise NotDistributable(
            f"one task: broadcasting {', '.join(small)} ({broadcast:,} bytes) to each "
            f"task would read more than the task's own split of {split.name} ({share:,} bytes)"
        )


def _check_joins(select: exp.Select, split: Table) -> None:
    """No join puts the split table on a side whose rows every task would see.

    INNER, CROSS and comma joins distribute over a union of splits; so do LEFT, SEMI
    and ANTI joins whose right side is not the split table.
    """
    for join in select.args.get("joins") or ():
        side, kind, method = join.side.upper(), join.kind.upper(), join.method.upper()
        if method not in ("", "NATURAL"):
            raise NotDistributable(f"one task: {method} JOIN")
        if not side and kind in ("", "INNER", "CROSS"):
            continue
        right_is_small = not _names(join.this, split)
        if right_is_small and side in ("", "LEFT") and kind in ("SEMI", "ANTI"):
            continue
        if right_is_small and side == "LEFT" and kind in ("", "OUTER"):
            continue
        words = " ".join(w for w in (side, kind) if w)
        target = "" if right_is_small else f" to large table {split.name}"
        raise NotDistributable(f"one task: {words} JOIN{target}")


def _names(source: exp.Expression, split: Table) -> bool:
    return isinstance(source, exp.Table) and source.name.lower() == split.name.lower()


def _check_expressions(select: exp.Select) -> None:
    for node in walk_scope(select):
        for kind, what in _FORBIDDEN:
            if isinstance(node, kind):
                raise NotDistributable(f"one task: {what}")
    distinct = select.args.get("distinct")
    if distinct is not None and distinct.args.get("on"):
        raise NotDistributable("one task: DISTINCT ON")


def _check_aggregate_functions(select: exp.Select) -> None:
    """Aggregates sqlglot does not know (MODE, ...) do not merge."""
    for node in walk_scope(select):
        if isinstance(node, exp.AnonymousAggFunc):
            raise NotDistributable(f"one task: {node.name}() cannot be merged exactly")
        if isinstance(node, exp.Anonymous) and node.name.lower() in DUCKDB_AGGREGATES:
            raise NotDistributable(f"one task: {node.name}() cannot be merged exactly")


def row_count(select: exp.Select, key: str) -> int | None:
    """The number in LIMIT or OFFSET, when it is one."""
    clause = select.args.get(key)
    value = clause.expression if isinstance(clause, exp.Limit | exp.Offset) else None
    if isinstance(value, exp.Literal) and not value.is_string and str(value.this).isdigit():
        return int(str(value.this))
    return None


def aggregates_of(select: exp.Select) -> list[exp.Expression]:
    """The block's own aggregates, each with its FILTER or IGNORE NULLS wrapper."""
    out = []
    for node in walk_scope(select):
        if isinstance(node, exp.AggFunc) and not isinstance(node, exp.Grouping):
            top: exp.Expression = node
            while isinstance(top.parent, exp.Filter | exp.IgnoreNulls):
                top = top.parent
            out.append(top)
    return list(dict.fromkeys(out))


def block_strategy(select: exp.Select, sql: str) -> Strategy:
    """SCAN, SORT or AGGREGATE for a block that splits; NotDistributable if its
    clauses or aggregates cannot."""
    aggregates = aggregates_of(select)
    group = select.args.get("group")
    if not aggregates and group is None and not select.args.get("distinct"):
        if select.args.get("having"):
            raise NotDistributable("one task: HAVING without aggregates is not split yet")
        if any(select.args.get(k) for k in ("order", "limit", "offset")):
            for key in ("limit", "offset"):
                if select.args.get(key) is not None and row_count(select, key) is None:
                    raise NotDistributable(f"one task: {key.upper()} that is not a number")
            return Strategy.SORT
        return Strategy.SCAN
    for agg in aggregates:
        check_aggregate(agg, sql)
    distinct = {d.sql() for a in aggregates if (d := distinct_argument(a)) is not None}
    if len(distinct) > 1:
        raise NotDistributable("one task: DISTINCT aggregates over different expressions")
    if group is not None and any(isinstance(e, GROUPING_SETS) for e in group.expressions):
        variances = [a for a in aggregates if isinstance(function_of(a), VARIANCES)]
        if variances:
            name = aggregate_name(variances[0])
            raise NotDistributable(f"one task: {name} with GROUPING SETS, CUBE or ROLLUP")
    return Strategy.AGGREGATE
