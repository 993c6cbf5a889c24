"""Queries over the ``system`` schema: one task, over a snapshot shipped with it.

``system.queries``, ``system.tasks`` and ``system.workers`` (duckfleet/system_catalog.py)
are known from the catalog (``Catalog.system``) but hold no files: their rows are a
snapshot of etcd that the front door takes when it publishes the query
(flight/system_tables.py) and puts into the task as an inline input. So the
planner, pure as ever, only

* renames each ``system.<name>`` in the tree to the relation ``__system_<name>``
  (aliased ``<name>`` unless it had an alias, so ``queries.id`` still resolves), and
* plans the statement as one task whose ``inline`` inputs name those relations, and
  whose other tables (a join with catalog tables) are read whole.

Views over system tables work the same way: they are expanded first.

A snapshot is never split: it is one small table that exists only inside the task,
and EXPLAIN says so. The rest of the sandbox applies as to any query
(``catalog_tables``).
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.planner.context import PlanContext
from duckfleet.planner.errors import UnknownTableError
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.plan import InlineInput, Plan
from duckfleet.planner.rules.catalog_tables import catalog_tables
from duckfleet.planner.rules.expand_views import MAX_DEPTH, expand_views
from duckfleet.planner.rules.unqualify_tables import CATALOG, unqualify_tables
from duckfleet.planner.stages import single_plan

SCHEMA = "system"
PREFIX = "__system_"


def relation(name: str) -> str:
    """The relation a task binds system table `name`'s snapshot to."""
    return PREFIX + name.lower()


def reads_system(tree: exp.Expression, catalog: Catalog, depth: int = 0) -> bool:
    """Whether the statement reads a table of the ``system`` schema, itself or
    through the views it reads."""
    for table in tree.find_all(exp.Table):
        if _is_system(table):
            return True
        view = catalog.view(table.name) if isinstance(table.this, exp.Identifier) else None
        if view is not None and depth < MAX_DEPTH:
            inner = exp.maybe_parse(view.sql, dialect=DIALECT)
            if reads_system(inner, catalog, depth + 1):
                return True
    return False


def plan_system_query(ctx: PlanContext) -> Plan:
    """The statement in `ctx` (it reads system tables) as one task with an inline
    input per system table it reads."""
    tree = unqualify_tables(ctx.original, ctx)
    tree = expand_views(tree, ctx)
    tree, read = _renamed(tree, ctx.catalog)
    ctx.original = tree
    ctx.text = tree.sql(dialect=DIALECT)
    snapshots = {relation(n): replace(ctx.catalog.system[n], name=relation(n)) for n in read}
    ctx.catalog = replace(ctx.catalog, tables={**ctx.catalog.tables, **snapshots})
    catalog_tables(tree, ctx)  # the sandbox; ctx.tables
    ctx.tables = tuple(t for t in ctx.tables if t not in snapshots)
    inline = tuple(InlineInput(relation(n), f"{SCHEMA}.{n}") for n in read)
    names = " and ".join(f"{SCHEMA}.{n}" for n in read)
    what = "is a snapshot" if len(read) == 1 else "are snapshots"
    reason = (
        f"one task: {names} {what} of the fleet's state in etcd, taken by the front "
        "door when it publishes the query and carried in the task; a snapshot is never "
        "split"
    )
    return single_plan(ctx, reason, inline)


def _is_system(table: exp.Table) -> bool:
    return (
        isinstance(table.this, exp.Identifier)
        and table.db.lower() == SCHEMA
        and table.catalog.lower() in ("", CATALOG)
    )


def typed_snapshots(
    tree: exp.Expression, catalog: Catalog
) -> tuple[exp.Expression, dict[str, dict[str, str]]]:
    """`tree` with its system tables renamed as a task names them, and each such
    relation's columns and types (what typing a parameter against them needs)."""
    renamed, read = _renamed(tree, catalog)
    columns = {n: {c.name: c.type for c in catalog.system[n].columns} for n in read}
    return renamed, {relation(n): cs for n, cs in columns.items()}


def _renamed(tree: exp.Expression, catalog: Catalog) -> tuple[exp.Expression, tuple[str, ...]]:
    """`tree` with system tables renamed to their relations, and the system tables
    read, in order of first reference."""
    read: dict[str, None] = {}

    def rename(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.db.lower() == SCHEMA:
            out = node.copy()  # system.queries.id -> queries.id
            out.set("db", None)
            out.set("catalog", None)
            return out
        if not isinstance(node, exp.Table) or not _is_system(node):
            return node
        name = node.name.lower()
        if name not in catalog.system:
            known = ", ".join(f"{SCHEMA}.{n}" for n in sorted(catalog.system))
            raise UnknownTableError(f"unknown system table {SCHEMA}.{name}; there are {known}")
        read[name] = None
        out = node.copy()
        out.set("this", exp.to_identifier(relation(name)))
        out.set("db", None)
        out.set("catalog", None)
        if not node.alias:
            out.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        return out

    return tree.transform(rename), tuple(read)
