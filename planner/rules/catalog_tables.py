"""Rule: which catalog tables a statement reads, and a refusal for anything else in FROM.

User SQL reaches catalog tables only: a name in FROM must be a catalog table (in no
schema, or in `main`) or a CTE. Table functions that read files or other catalogs
(read_parquet, read_csv, glob, ...), file paths used as tables and names in other
catalogs or schemas are refused. `range` and `generate_series` read nothing and stay
allowed.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.planner.context import PlanContext
from duckfleet.planner.errors import UnknownTableError, UnsupportedStatementError

DEFAULT_SCHEMA = "main"
_HARMLESS_TABLE_FUNCTIONS = (exp.GenerateSeries,)
_REFUSAL = "user SQL reaches catalog tables only"


def catalog_tables(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    """`tree` unchanged, once every name in FROM is known to be allowed; the catalog
    tables it reads go in `ctx.tables`."""
    ctx.tables = tables_read(tree, ctx.catalog)
    return tree


def tables_read(tree: exp.Expression, catalog: Catalog) -> tuple[str, ...]:
    """The catalog tables `tree` reads, in order of first reference.

    A name that is both a CTE and a catalog table counts as the table: binding a
    table the query does not read is harmless, missing one is not.
    """
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    names: dict[str, None] = {}
    for table in tree.find_all(exp.Table):
        name = _table_name(table)
        if name is None:
            continue
        if catalog.get(name) is not None:
            names[name.lower()] = None
        elif name.lower() not in ctes:
            if "/" in name or "." in name or "*" in name:
                raise UnsupportedStatementError(f"{_REFUSAL}: {name!r} looks like a file path")
            known = ", ".join(sorted(catalog.tables)) or "none"
            raise UnknownTableError(f"unknown table {name!r}; known tables: {known}")
    return tuple(names)


def _table_name(table: exp.Table) -> str | None:
    """The catalog name `table` refers to, or None for a harmless table function."""
    if not isinstance(table.this, exp.Identifier):
        if isinstance(table.this, _HARMLESS_TABLE_FUNCTIONS):
            return None
        function = table.this.sql(dialect="duckdb").split("(")[0]
        raise UnsupportedStatementError(
            f"{_REFUSAL}: table function {function}() is not allowed; name a catalog table instead"
        )
    if table.catalog or (table.db and table.db.lower() != DEFAULT_SCHEMA):
        raise UnsupportedStatementError(
            f"{_REFUSAL}: {table.sql(dialect='duckdb')} names another catalog or schema; "
            f"use the table name alone"
        )
    return table.name
