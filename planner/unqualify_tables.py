"""Drop the `duckfleet.main.` qualifiers BI tools put on table names.

The front door reports catalog `duckfleet` and schema `main` in its metadata, so
JDBC tools write `"duckfleet"."main"."lineitem"`. Workers bind each catalog table
by its bare name, so the tree loses those qualifiers before anything else looks at
it. Other catalogs and schemas stay, to be refused by `catalog_tables`.
"""

from __future__ import annotations

from sqlglot import exp

CATALOG = "duckfleet"
SCHEMA = "main"


def unqualify_tables(tree: exp.Expression) -> tuple[exp.Expression, bool]:
    """The tree with `duckfleet.main.t`, `duckfleet..t`-style and `main.t` names made
    bare, and whether anything changed."""
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
