"""Shuffle joins: a stage that repartitions the split tables by hash of their key.

For each split table, one producer task per file reads the columns the query
needs, keeps the rows some reference of the table can use (the conjuncts that
filter that reference alone, ORed over its references), and splits them by
`hash(key) % buckets` (planner/plan.py, worker/buckets.py). Bucket task b then
reads, as the table, bucket b of every producer of it: rows with equal keys meet
in one task, whichever file they came from.

Keys of one class must share one DuckDB type: hash(1::INTEGER) is not
hash(1::BIGINT).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from duckfleet.catalog import Catalog
from duckfleet.ids import TaskId, task_id
from duckfleet.planner.joins.keys import source_of
from duckfleet.planner.joins.layout import TableRef
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.plan import Stage, StageKind, TableBinding, TaskPlan

_WIDTHS = {
    "BOOLEAN": 1,
    "TINYINT": 1,
    "UTINYINT": 1,
    "SMALLINT": 2,
    "USMALLINT": 2,
    "INTEGER": 4,
    "UINTEGER": 4,
    "DATE": 4,
    "FLOAT": 4,
    "BIGINT": 8,
    "UBIGINT": 8,
    "DOUBLE": 8,
    "TIMESTAMP": 8,
    "TIME": 8,
    "VARCHAR": 24,  # offsets and text: TPC-H's names and comments average about that
}


def arrow_width(column_type: str) -> int:
    """Bytes a value of a DuckDB type takes in Arrow, about."""
    base = column_type.upper().split("(")[0].strip()
    if base == "DECIMAL":
        precision = int(column_type.split("(")[1].split(",")[0]) if "(" in column_type else 18
        return 8 if precision <= 18 else 16
    return _WIDTHS.get(base, 16)


def same_key_type(split: Mapping[str, str], catalog: Catalog) -> bool:
    types = set()
    for name, column in split.items():
        table = catalog.get(name)
        found = next((c.type for c in table.columns if c.name == column), None) if table else None
        if found is None:
            return False
        types.add(found.upper())
    return len(types) == 1


def needed_columns(root: Scope, tables: Iterable[str], skip: list[Scope]) -> dict[str, set[str]]:
    """Per split table, the columns any scope of the query reads from it (all of
    them where a star is left), leaving out the `skip` scopes and their insides."""
    wanted = set(tables)
    out: dict[str, set[str]] = {t: set() for t in wanted}
    skipped = {id(s) for s in skip}
    for scope in root.traverse():
        if _inside(scope, skipped):
            continue
        ignored = _exists_projection(scope)
        for column in scope.columns:
            if id(column) in ignored:
                continue
            found = source_of(scope, column.table)
            if found is not None and isinstance(found[1], exp.Table):
                name = found[1].name.lower()
                if name in wanted:
                    out[name].add(column.name)
        for star in scope.stars if not _is_exists(scope) else ():
            for alias, source in scope.sources.items():
                if isinstance(source, exp.Table) and source.name.lower() in wanted:
                    if not isinstance(star, exp.Column) or star.table in ("", alias):
                        out[source.name.lower()].add("*")
    return out


def _is_exists(scope: Scope) -> bool:
    return isinstance(scope.expression.parent, exp.Exists)


def _exists_projection(scope: Scope) -> set[int]:
    """Columns an EXISTS subquery selects: it only asks whether a row exists, so they
    need not cross the exchange (rewritten fragments select 1 there instead)."""
    query = scope.expression
    if not _is_exists(scope) or not isinstance(query, exp.Select):
        return set()
    return {id(c) for e in query.expressions for c in e.find_all(exp.Column)}


def select_one_in_exists(tree: exp.Expression) -> None:
    """`EXISTS (SELECT a, b ... )` -> `EXISTS (SELECT 1 ...)`, in place."""
    for node in tree.find_all(exp.Exists):
        query = node.this
        if isinstance(query, exp.Select) and not query.args.get("distinct"):
            if not query.args.get("group") and not query.args.get("having"):
                query.set("expressions", [exp.Literal.number(1)])


def _inside(scope: Scope, skipped: set[int]) -> bool:
    current: Scope | None = scope
    while current is not None:
        if id(current) in skipped:
            return True
        current = current.parent
    return False


def pushdown(refs: list[TableRef]) -> exp.Expression | None:
    """What a producer may keep: rows that pass some reference's own conjuncts."""
    if not refs or any(not r.own_conditions for r in refs):
        return None
    terms: dict[str, exp.Expression] = {}
    for ref in refs:
        parts = [_unqualified(c) for c in ref.own_conditions]
        term = exp.and_(*parts) if len(parts) > 1 else parts[0]
        terms.setdefault(term.sql(dialect=DIALECT), term)
    found = list(terms.values())
    return exp.or_(*found) if len(found) > 1 else found[0]


def _unqualified(condition: exp.Expression) -> exp.Expression:
    copy = condition.copy()
    for column in copy.find_all(exp.Column):
        column.set("table", None)
    return copy


def producer_sql(
    table: str, columns: set[str], key: str, catalog: Catalog, where: exp.Expression | None
) -> str:
    entry = catalog.get(table)
    assert entry is not None
    names = [c.name for c in entry.columns if "*" in columns or c.name in columns or c.name == key]
    select = exp.select(*(exp.column(n, quoted=True) for n in names)).from_(
        exp.to_table(table, quoted=True)
    )
    if where is not None:
        select = select.where(where)
    return select.sql(dialect=DIALECT)


def shuffle_stage(
    index: int,
    first_task: int,
    split: Mapping[str, str],
    catalog: Catalog,
    columns: Mapping[str, set[str]],
    refs: list[TableRef],
    buckets: int,
) -> tuple[Stage, dict[str, tuple[TaskId, ...]]]:
    """The producers of every split table; and per table, its producer task ids."""
    tasks: list[TaskPlan] = []
    producers: dict[str, tuple[TaskId, ...]] = {}
    for name, key in split.items():
        table = catalog.get(name)
        assert table is not None
        where = pushdown([r for r in refs if r.table == name])
        sql = producer_sql(name, columns.get(name, set()), key, catalog, where)
        ids = []
        for f in table.files:
            t = task_id(first_task + len(tasks))
            tasks.append(
                TaskPlan(
                    t,
                    index,
                    sql,
                    tables=(TableBinding(table.name, (f.path,)),),
                    partition_by=(key,),
                    buckets=buckets,
                )
            )
            ids.append(t)
        producers[name] = tuple(ids)
    return Stage(index, StageKind.SHUFFLE, tuple(tasks)), producers
