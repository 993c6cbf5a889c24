"""Rule: drop the `duckfleet.main.` qualifiers BI tools put on table names.

The front door reports catalog `duckfleet` and schema `main` in its metadata, so
JDBC tools write `"duckfleet"."main"."lineitem"`. Workers bind each catalog table
by its bare name, so the tree loses those qualifiers before anything else looks at
it, and the text a single task runs is written again from the tree. Other catalogs
and schemas stay, to be refused by `catalog_tables`.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.parse import DIALECT

CATALOG = "duckfleet"
SCHEMA = "main"


def unqualify_tables(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    """The tree with `duckfleet.main.t`, `duckfleet..t`-style and `main.t` names made
    bare; if anything changed, the statement's text and original tree follow."""
    out, changed = _unqualified(tree)
    if changed:  # the fragment text must name tables as workers bind them
        ctx.original = out
        ctx.text = out.sql(dialect=DIALECT)
    return out


def bare_tables(tree: exp.Expression) -> exp.Expression:
    """`tree` with duckfleet's own qualifiers dropped (a view's stored query)."""
    return _unqualified(tree)[0]


def _unqualified(tree: exp.Expression) -> tuple[exp.Expression, bool]:
    changed = False

    def strip(node: exp.Expression) -> exp.Expression:
        nonlocal changed
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            return node
        catalog, db = node.catalog.lower(), node.db.lower()
        if catalog not in ("", CATALOG) or db not in ("", SCHEMA) or not (catalog or db):
            return node
        changed = True
        bare = node.copy()
        bare.set("catalog", None)
        bare.set("db", None)
        return bare

    out = tree.transform(strip)
    return out, changed
