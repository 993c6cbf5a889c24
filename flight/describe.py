"""The schemas of a statement, without running it: what CreatePreparedStatement and
GetSchema answer.

A query's result schema comes from DuckDB binding the query (never executing it)
over empty tables and views shaped like the catalog's, in an in-memory database with
external access disabled; the query has already passed the planner, so it names
catalog tables and views only. Parameters are bound as typed NULLs for this. A write
statement (CREATE TABLE AS, INSERT, CREATE VIEW, DROP) returns no rows: its dataset
schema is empty, which is how JDBC recognises an update.

The parameter schema has one field per parameter, of the type the planner reads
from where it stands (planner/parameter_inference.py), else a string (never Arrow
null): flight/parameter_values.py makes bound values those types. Should DuckDB not
bind the statement with NULLs of those types, it is bound with untyped NULLs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from duckfleet.catalog import Catalog, Column
from duckfleet.flight.binding import parameter_schema
from duckfleet.flight.explain import ANALYZE_SCHEMA
from duckfleet.flight.explain import SCHEMA as EXPLAIN_SCHEMA
from duckfleet.flight.parameter_values import declared_types
from duckfleet.flight.statements import ClientStatement, parse_statement_text
from duckfleet.flight.types import arrow_type
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.errors import PlanError
from duckfleet.planner.explain import explain_statement
from duckfleet.planner.parameters import ParameterValue, bind
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.plan import Plan
from duckfleet.planner.quoting import quote_ident
from duckfleet.planner.system_tables import relation

NO_ROWS = pa.schema([])


class DescribeError(PlanError):
    """DuckDB could not bind a statement the planner accepted."""


@dataclass(frozen=True)
class Prepared:
    dataset_schema: pa.Schema  # empty for a statement that returns no rows
    parameter_schema: pa.Schema
    is_update: bool


class Describer:
    """DuckDB over empty copies of the catalog, rebuilt when the catalog changes."""

    def __init__(self, settings: PlannerSettings | None = None) -> None:
        self.settings = settings or PlannerSettings()
        self._lock = threading.Lock()
        self._db: duckdb.DuckDBPyConnection | None = None
        self._key: tuple[int, tuple[str, ...], tuple[str, ...]] | None = None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def prepare(self, sql: str, catalog: Catalog) -> Prepared:
        explain = explain_statement(sql)
        if explain is not None:  # a fixed schema; the query itself must plan
            plan_query(explain.sql, catalog, self.settings)
            schema = ANALYZE_SCHEMA if explain.analyze else EXPLAIN_SCHEMA
            return Prepared(schema, parameter_schema([]), False)
        statement = parse_statement_text(sql)
        types = self.parameter_types(statement, catalog)
        if statement.is_update:
            return Prepared(NO_ROWS, parameter_schema(types), True)
        if statement.tree is None or not statement.parameters:
            plan = plan_query(sql, catalog, self.settings)  # refuses what the planner refuses
            columns = self.columns(describable(sql, plan), catalog)
        else:
            columns = self._bound_columns(statement, types, catalog)
        schema = pa.schema([pa.field(c.name, arrow_type(c.type)) for c in columns])
        return Prepared(schema, parameter_schema(types), False)

    def parameter_types(self, statement: ClientStatement, catalog: Catalog) -> list[str | None]:
        return declared_types(statement, catalog)

    def _bound_columns(
        self, statement: ClientStatement, types: list[str | None], catalog: Catalog
    ) -> list[Column]:
        """The result columns with the parameters bound as NULLs of their types, else
        (DuckDB refusing a type the planner read) as untyped NULLs."""
        try:
            return self._columns_with_nulls(statement, types, catalog)
        except DescribeError:
            if not any(types):
                raise
            return self._columns_with_nulls(statement, [None] * len(types), catalog)

    def _columns_with_nulls(
        self, statement: ClientStatement, types: list[str | None], catalog: Catalog
    ) -> list[Column]:
        assert statement.tree is not None
        nulls = [ParameterValue(None, t or "") for t in types]
        text = bind(statement.tree, nulls).sql(dialect=DIALECT)
        plan = plan_query(text, catalog, self.settings)  # refuses what the planner refuses
        return self.columns(describable(text, plan), catalog)

    def columns(self, query: str, catalog: Catalog) -> list[Column]:
        """The result columns of ``query`` (already accepted by the planner) as DuckDB
        types them."""
        with self._lock:  # binding only: fast, and the database may be rebuilt
            cur = self._database(catalog).cursor()
            try:
                relation = cur.sql(query)
                if relation is None:
                    raise DescribeError("the statement returns no rows")
                return [
                    Column(n, str(t)) for n, t in zip(relation.columns, relation.types, strict=True)
                ]
            except duckdb.Error as exc:
                raise DescribeError(str(exc).split("\n")[0]) from None
            finally:
                cur.close()

    def _database(self, catalog: Catalog) -> duckdb.DuckDBPyConnection:
        key = (catalog.version, tuple(sorted(catalog.tables)), tuple(sorted(catalog.views)))
        if self._db is not None and self._key == key:
            return self._db
        if self._db is not None:
            self._db.close()
        db = duckdb.connect(
            config={
                "enable_external_access": "false",
                "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false",
                "threads": "1",
            }
        )
        for table in catalog.tables.values():
            columns = ", ".join(f"{quote_ident(c.name)} {c.type}" for c in table.columns)
            db.execute(f"CREATE TABLE {quote_ident(table.name)} ({columns})")
        for name, table in catalog.system.items():  # as the planner renames system.<name>
            columns = ", ".join(f"{quote_ident(c.name)} {c.type}" for c in table.columns)
            db.execute(f"CREATE TABLE {quote_ident(relation(name))} ({columns})")
        pending = dict(catalog.views)
        for _ in range(len(pending) + 1):  # views over views: create in dependency order
            for name, view in list(pending.items()):
                names = ""
                if view.column_names:
                    names = " (" + ", ".join(quote_ident(c) for c in view.column_names) + ")"
                try:
                    db.execute(f"CREATE VIEW {quote_ident(name)}{names} AS {view.sql}")
                    del pending[name]
                except (duckdb.CatalogException, duckdb.BinderException):
                    # reads a view not created yet, or a table since dropped; or the
                    # system schema, which statements over it are described without
                    continue
        db.execute("SET lock_configuration = true")
        self._db, self._key = db, key
        return db


def describable(sql: str, plan: Plan) -> str:
    """The text DuckDB binds to describe ``sql``: its own, or for a statement over
    system tables the task's, which names their snapshots as this database does
    (``system`` is a catalog of DuckDB's own)."""
    if len(plan.tasks) == 1 and plan.tasks[0].inline:
        return plan.tasks[0].sql
    return sql
