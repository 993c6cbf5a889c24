"""Decide from the tree how a query splits: SCAN, AGGREGATE or one task (SINGLE).

A query splits over the files of its one large table when nothing in it depends on
seeing all of that table's rows at once:

* it is one SELECT: no set operation, CTE, subquery, window, QUALIFY, sampling,
  PIVOT, DISTINCT ON, or function the planner does not know (it might aggregate);
* it scans the large table once; every other table is small (read whole by every
  task) and joined with INNER, CROSS, comma or SEMI/ANTI joins, or with LEFT joins
  that keep the large table on the preserved side;
* the large table has at least two files (splits are files for now).

Then a query without aggregates or GROUP BY is a SCAN when it has no DISTINCT,
ORDER BY, LIMIT or OFFSET; a query with them is an AGGREGATE when every aggregate
is SUM, COUNT, MIN, MAX or AVG without DISTINCT, FILTER or ORDER BY. Anything
else runs as one task, and the shape says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlglot import exp

from duckfleet.catalog import Catalog, Table
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.prune import row_group_filter
from duckfleet.planner.settings import PlannerSettings
from duckfleet.planner.splits import split_count


class Strategy(StrEnum):
    SINGLE = "single"
    SCAN = "scan"
    AGGREGATE = "aggregate"


@dataclass(frozen=True)
class Shape:
    strategy: Strategy
    reason: str
    split_table: str | None = None  # the large table (catalog key): one task per split of it


MERGEABLE_AGGREGATES = (exp.Sum, exp.Count, exp.Min, exp.Max, exp.Avg)

# Select clauses a split query may have; any other (WINDOW, QUALIFY, sample, ...) is
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
_UNKNOWN_FUNCTIONS = (exp.Anonymous, exp.AnonymousAggFunc)


def shape(
    tree: exp.Expression,
    tables: tuple[str, ...],
    catalog: Catalog,
    settings: PlannerSettings,
) -> Shape:
    """How `tree` (qualified) splits, reading catalog `tables`."""
    try:
        select = _one_select(tree)
        split = _split_table(select, catalog, settings)
        _check_broadcast_cost(select, split, catalog, settings)
        _check_joins(select, split)
        _check_expressions(select)
        strategy = _strategy(select)
    except NotDistributable as e:
        return Shape(Strategy.SINGLE, e.reason)
    count = split_count(split, settings, row_group_filter(select, split))
    small = [t for t in tables if t != split.name.lower()]
    broadcast = f"; broadcast: {', '.join(small)}" if small else ""
    if strategy is Strategy.SCAN:
        reason = f"scan: one task per split of {split.name} ({count} tasks){broadcast}"
    else:
        reason = (
            f"aggregate: partial aggregates per split of {split.name} ({count} tasks), "
            f"merged in one task{broadcast}"
        )
    return Shape(strategy, reason, split.name.lower())


def _one_select(tree: exp.Expression) -> exp.Select:
    if isinstance(tree, exp.SetOperation):
        raise NotDistributable(f"one task: {tree.key.upper()}")
    if not isinstance(tree, exp.Select):
        raise NotDistributable(f"one task: {tree.key.upper()} is not split yet")
    if tree.args.get("with_"):
        raise NotDistributable("one task: WITH (common table expressions)")
    if any(node is not tree for node in tree.find_all(exp.Query)):
        raise NotDistributable("one task: subquery")
    for key, value in tree.args.items():
        if value and key not in _SPLITTABLE_CLAUSES:
            what = "sampling" if key == "sample" else f"{key.rstrip('_').upper()} clause"
            raise NotDistributable(f"one task: {what}")
    return tree


def _scans(select: exp.Select) -> list[exp.Expression]:
    from_ = select.args.get("from_")
    if from_ is None:
        raise NotDistributable("one task: reads no table")
    return [from_.this, *(join.this for join in select.args.get("joins") or ())]


def _split_table(select: exp.Select, catalog: Catalog, settings: PlannerSettings) -> Table:
    """The one large table, scanned once, whose files become the tasks."""
    scanned: list[Table] = []
    for source in _scans(select):
        if not isinstance(source, exp.Table):
            raise NotDistributable(f"one task: {source.key.upper()} in FROM")
        if isinstance(source.this, exp.Func):
            raise NotDistributable(f"one task: table function {source.this.sql_name()} in FROM")
        table = catalog.get(source.name)
        if table is None:  # not reached: a CTE was refused, an unknown name raised
            raise NotDistributable(f"one task: reads {source.name}, not a catalog table")
        scanned.append(table)
    large = [t for t in scanned if t.bytes > settings.broadcast_max_bytes]
    names = list(dict.fromkeys(t.name for t in large))
    if len(names) > 1:
        raise NotDistributable(f"one task: joins two large tables ({', '.join(names)})")
    if len(large) > 1:
        raise NotDistributable(f"one task: reads large table {names[0]} twice")
    if not large:
        splittable = [t for t in scanned if split_count(t, settings) > 1]
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
    select: exp.Select, split: Table, catalog: Catalog, settings: PlannerSettings
) -> None:
    """Every task reads the broadcast tables whole: worth it only while they are no
    larger than the task's own split, or the fleet re-reads more than it divides."""
    small = {
        t.name: t
        for source in _scans(select)
        if (t := catalog.get(source.name)) is not None and t.name != split.name
    }
    broadcast = sum(t.bytes for t in small.values())
    share = split.bytes // split_count(split, settings)
    if broadcast > share * settings.broadcast_max_share:
        raise NotDistributable(
            f"one task: broadcasting {', '.join(sorted(small))} ({broadcast:,} bytes) to each "
            f"task would read more than the task's own split of {split.name} ({share:,} bytes)"
        )


def _check_joins(select: exp.Select, split: Table) -> None:
    """No join puts the split table on a side whose rows every task would see.

    INNER, CROSS and comma joins distribute over a union of splits; so do LEFT, SEMI
    and ANTI joins whose right side is a small table.
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
    for kind, what in _FORBIDDEN:
        if select.find(kind) is not None:
            raise NotDistributable(f"one task: {what}")
    unknown = select.find(*_UNKNOWN_FUNCTIONS)
    if unknown is not None:
        # It may be an aggregate (DuckDB has many sqlglot does not know): never split.
        raise NotDistributable(f"one task: function {unknown.name}() is unknown to the planner")
    distinct = select.args.get("distinct")
    if distinct is not None and distinct.args.get("on"):
        raise NotDistributable("one task: DISTINCT ON")


def _strategy(select: exp.Select) -> Strategy:
    aggregates = list(select.find_all(exp.AggFunc))
    group = select.args.get("group")
    if not aggregates and group is None:
        for key in ("distinct", "order", "limit", "offset", "having"):
            if select.args.get(key):
                what = "ORDER BY" if key == "order" else key.upper()
                raise NotDistributable(f"one task: {what} without aggregates is not split yet")
        return Strategy.SCAN
    if group is not None and any(group.args.get(k) for k in ("grouping_sets", "cube", "rollup")):
        raise NotDistributable("one task: GROUPING SETS, CUBE or ROLLUP")
    for agg in aggregates:
        _check_aggregate(agg)
    return Strategy.AGGREGATE


def _check_aggregate(agg: exp.AggFunc) -> None:
    name = agg.sql_name()
    if not isinstance(agg, MERGEABLE_AGGREGATES):
        raise NotDistributable(f"one task: {name} cannot be merged yet")
    if isinstance(agg.this, exp.Distinct):
        raise NotDistributable(f"one task: {name}(DISTINCT) cannot be merged yet")
    if isinstance(agg.parent, exp.Filter):
        raise NotDistributable(f"one task: {name}(...) FILTER cannot be merged yet")
    extra = {k for k, v in agg.args.items() if v and k not in ("this", "big_int")}
    if extra or isinstance(agg.this, exp.Order):
        raise NotDistributable(f"one task: {agg.sql(dialect='duckdb')} cannot be merged yet")
