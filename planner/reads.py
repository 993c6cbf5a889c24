"""Which catalog tables and views a query reads, views expanded: what a grant check
needs (flight/access.py).

``names_read(sql, catalog)`` maps every table and view the statement names, and
every table and view those views read (transitively), to the view through which it
is read (None: the statement names it itself). It errs on the side of reading: a
name is counted wherever it appears as a table, even where a CTE of that name hides
the catalog's table, so a user who may not read ``t`` cannot name a CTE ``t`` either.
A name the catalog lacks is not counted (the planner refuses it as unknown).

Parsed as the planner parses (planner/parse.py): text the planner would refuse
raises the planner's error here too, so nothing unparsed slips past the check.

Pure: sqlglot and the catalog only.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.planner.explain import explain_statement
from duckfleet.planner.parse import DIALECT, parse_statement

MAX_DEPTH = 32  # as planner/rules/expand_views.py: deeper only through a cycle


def names_read(sql: str, catalog: Catalog) -> dict[str, str | None]:
    """{catalog name (lower case): the view it is read through, or None}."""
    for _ in range(MAX_DEPTH):  # EXPLAIN [ANALYZE] reads what its query reads
        explain = explain_statement(sql)
        if explain is None:
            break
        sql = explain.sql
    tree = parse_statement(sql).tree
    found: dict[str, str | None] = {}
    _walk(tree, catalog, None, found, 0)
    return found


def _walk(
    tree: exp.Expression,
    catalog: Catalog,
    via: str | None,
    found: dict[str, str | None],
    depth: int,
) -> None:
    for node in tree.find_all(exp.Table):
        if not isinstance(node.this, exp.Identifier):
            continue  # a table function, a file path: the sandbox decides
        if node.db.lower() == "system":
            continue  # system.queries etc.: what they show depends on who asks, not grants
        name = node.name.lower()
        if name in found:
            continue
        if name in catalog.tables:
            found[name] = via
            continue
        view = catalog.view(name)
        if view is None:
            continue
        found[name] = via
        if depth < MAX_DEPTH:
            inner = exp.maybe_parse(view.sql, dialect=DIALECT)
            _walk(inner, catalog, via or view.name.lower(), found, depth + 1)
