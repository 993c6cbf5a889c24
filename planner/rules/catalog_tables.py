"""Rule: which catalog tables a statement reads, and a refusal for anything else: the
planner's half of the SQL sandbox (workers run DuckDB shut in as well:
worker/sandbox.py).

User SQL reaches catalog tables only: a name in FROM must be a catalog table (in no
schema, or in `main`) or a CTE. Table functions that read files or other catalogs
(read_parquet, read_csv, glob, ...), file paths used as tables and names in other
catalogs or schemas are refused. `range` and `generate_series` read nothing and stay
allowed. Anywhere in the statement, functions that read the process's environment,
settings, catalogs or files (getenv, current_setting, duckdb_*, read_*, glob, query,
...) are refused under any schema or quoting, and so are statements nested inside a
query (DESCRIBE, SUMMARIZE, PRAGMA, SET, COPY, ...). The list of cases is
tests/test_sandbox.py.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.planner.context import PlanContext
from duckfleet.planner.errors import UnknownTableError, UnsupportedStatementError

DEFAULT_SCHEMA = "main"
_HARMLESS_TABLE_FUNCTIONS = (exp.GenerateSeries,)
_REFUSAL = "user SQL reaches catalog tables only"

# DuckDB functions that read the environment, settings, catalogs, secrets or files
# of the process, or run SQL given as text: refused wherever they are called.
_SYSTEM_FUNCTIONS = frozenset(
    """getenv current_setting glob query query_table sniff_csv which_secret checkpoint
    force_checkpoint summary arrow_scan arrow_scan_dumb python_arrow_scan pandas_scan
    python_map_function seq_scan enable_logging disable_logging enable_profiling
    disable_profiling truncate_duckdb_logs add_grammar_extension remove_grammar_extension
    create_external_resource register_external_resource deregister_external_resource
    destroy_external_resource register_external_resource_type test_all_types
    test_vector_types json_execute_serialized_sql""".split()
)
_SYSTEM_PREFIXES = ("duckdb_", "pragma_", "read_", "parquet_", "sniff_", "icu_", "pg_timezone")
# Statements DuckDB accepts nested in a query, e.g. FROM (DESCRIBE ...), (SUMMARIZE ...)
_NESTED_STATEMENTS = (
    exp.Describe, exp.Summarize, exp.Pragma, exp.Set, exp.Command, exp.Copy, exp.Attach,
    exp.Detach, exp.Use, exp.Create, exp.Drop, exp.Insert, exp.Update, exp.Delete, exp.Merge,
    exp.Export, exp.Install, exp.Transaction, exp.Commit, exp.Rollback, exp.Alter, exp.Show,
)  # fmt: skip


def refuse_system_access(tree: exp.Expression) -> None:
    """Raise UnsupportedStatementError for a system function or a nested statement."""
    for node in tree.walk():
        if isinstance(node, _NESTED_STATEMENTS) and node is not tree:
            kind = node.key.upper()
            raise UnsupportedStatementError(f"{_REFUSAL}: {kind} is not allowed inside a query")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in _SYSTEM_FUNCTIONS or name.startswith(_SYSTEM_PREFIXES):
                raise UnsupportedStatementError(
                    f"{_REFUSAL}: {name}() reads the server's files, settings or environment "
                    "and is not allowed"
                )


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
    refuse_system_access(tree)
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
