"""Rule: replace each view a query reads by the view's own query, as a subquery.

``FROM v`` becomes ``FROM (<v's query>) AS v`` (its alias kept, ``CREATE VIEW v (a, b)``
names kept as column aliases), again for views inside views, up to a depth that
only a cycle reaches. A CTE named like a view hides the view, as in DuckDB. After
this the tree names catalog tables only, and plans like any query over them.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.planner.context import PlanContext
from duckfleet.planner.errors import UnsupportedStatementError
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.rules.unqualify_tables import bare_tables

MAX_DEPTH = 32


def expand_views(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    """The tree with every view replaced by its query; if anything changed, the
    statement's text and original tree follow (a single task runs them)."""
    if not ctx.catalog.views:
        return tree
    for _ in range(MAX_DEPTH):
        expanded, changed = _expand_once(tree, ctx.catalog)
        if not changed:
            return tree
        tree = expanded
        ctx.original = tree
        ctx.text = tree.sql(dialect=DIALECT)
    raise UnsupportedStatementError(
        f"views nest deeper than {MAX_DEPTH} levels: a view reads itself through other views"
    )


def _expand_once(tree: exp.Expression, catalog: Catalog) -> tuple[exp.Expression, bool]:
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    changed = False

    def swap(node: exp.Expression) -> exp.Expression:
        nonlocal changed
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            return node
        if node.catalog or node.db or node.name.lower() in ctes:
            return node
        view = catalog.view(node.name)
        if view is None:
            return node
        changed = True
        query = bare_tables(exp.maybe_parse(view.sql, dialect=DIALECT))
        alias = node.args.get("alias")
        if alias is None:
            alias = exp.TableAlias(this=exp.to_identifier(node.name))
        else:
            alias = alias.copy()
        if view.column_names and not alias.columns:
            alias.set("columns", [exp.to_identifier(c) for c in view.column_names])
        return exp.Subquery(this=query, alias=alias)

    out = tree.copy().transform(swap)
    return out, changed
