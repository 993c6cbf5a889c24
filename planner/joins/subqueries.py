"""Uncorrelated subqueries over split tables: computed first, read whole.

    SELECT ... FROM supplier, revenue0
    WHERE s_suppkey = supplier_no AND total_revenue = (SELECT max(total_revenue) FROM revenue0)

The subquery needs every row of revenue0, which the tasks split. layout.py marks
it *hoisted*: it is planned as a query of its own (by the whole planner: it may
split too), with the statement's CTEs, and in the fragments it becomes

    (SELECT * FROM __subquery0)

a relation every task that reads it gets whole, from the subquery's output tasks.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType

from duckfleet.catalog import Catalog
from duckfleet.planner.parse import DIALECT

RELATION = "__subquery{}"


def relation(n: int) -> str:
    return RELATION.format(n)


def hoisted_sql(child: Scope, tree: exp.Expression) -> str:
    """The subquery as a statement: its text with the statement's CTEs in front (and,
    under EXISTS, its first row only)."""
    query = child.expression.copy()
    if isinstance(child.expression.parent, exp.Exists) and isinstance(query, exp.Select):
        if query.args.get("limit") is None and query.args.get("offset") is None:
            query.set("limit", exp.Limit(expression=exp.Literal.number(1)))
    ctes = tree.args.get("with_")
    if ctes is not None and isinstance(query, exp.Query):
        mine = query.args.get("with_")
        merged = ctes.copy()
        if mine is not None:
            merged.set("expressions", [*merged.expressions, *mine.copy().expressions])
        query.set("with_", merged)
    return query.sql(dialect=DIALECT)


def replace_hoisted(hoisted: list[Scope]) -> list[str]:
    """Put `SELECT * FROM __subqueryN` where each hoisted subquery was; the names."""
    names = []
    for n, child in enumerate(hoisted):
        name = relation(n)
        child.expression.replace(exp.select("*").from_(exp.to_table(name)))
        names.append(name)
    return names


def read_outside_subqueries(root: Scope, catalog: Catalog) -> set[str]:
    """Catalog tables the query reads outside its uncorrelated subqueries: those the
    tasks read, whatever gets hoisted. (A table read only inside them is read by
    the hoisted plans, if it must be split, or whole by every task otherwise.)"""
    out: set[str] = set()
    for scope in root.traverse():
        if _in_uncorrelated_subquery(scope):
            continue
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and (table := catalog.get(source.name)) is not None:
                out.add(table.name)
    return out


def _in_uncorrelated_subquery(scope: Scope) -> bool:
    current: Scope | None = scope
    while current is not None:
        if current.scope_type == ScopeType.SUBQUERY and not current.external_columns:
            return True
        current = current.parent
    return False
