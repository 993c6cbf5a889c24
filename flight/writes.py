"""Statements and requests that change the catalog, carried out when asked.

    CREATE [OR REPLACE] TABLE t AS q   q is planned like any query; each output task
                                       writes its own Parquet file into t's directory
                                       (workers, in parallel); once all are written the
                                       table enters the catalog
    INSERT INTO t ...                  the same, the rows cast to t's column types;
                                       the new files are appended to t's file list
    CREATE [OR REPLACE] VIEW v AS q    q checked by the planner, its columns described,
                                       stored as SQL; the planner expands it
    DROP TABLE|VIEW [IF EXISTS] x      removed from the catalog (its files stay)
    ingest (CommandStatementIngest)    the client's batches written by this front
                                       door as Parquet files, then create / append /
                                       replace in the catalog

Tables written here live under the data directory (DUCKFLEET_DATA_DIR), one
directory per table: ``<data dir>/<table>/<statement id>-<n>.parquet``. Files are
never overwritten, so queries running on the old file list are not disturbed.

Every catalog change is one etcd transaction compared on the revisions the statement
read (control/catalog_store.py). Appends retry on a conflict with the new file list,
so concurrent ingests and INSERTs all land; a create that loses a race says so.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import duckdb
import pyarrow as pa
from sqlglot import exp

from duckfleet.catalog import Catalog, Table, View
from duckfleet.control import CatalogStore
from duckfleet.flight.describe import Describer, describable
from duckfleet.flight.statements import parse_statement_text
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.errors import PlanError, UnknownTableError
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.plan import Plan, write_outputs
from duckfleet.planner.write_statements import (
    CreateTableAs,
    CreateView,
    Drop,
    InsertInto,
    insert_query,
    table_name,
)
from duckfleet.table_files import describe_files
from duckfleet.wire.commands import MalformedRequest, UnsupportedRequest

log = logging.getLogger("duckfleet.flight")

APPEND_RETRIES = 50
ROWS_PER_INGEST_FILE = 1_000_000


class CatalogConflict(PlanError):
    """The name already holds something else, or changed while the statement ran."""


@dataclass(frozen=True)
class IngestRequest:
    table: str
    create: bool  # the table may be created if missing
    if_exists: str  # "fail" | "append" | "replace"


RunPlan = Callable[[Plan, int], None]


class TableWriter:
    def __init__(
        self,
        catalog: CatalogStore,
        data_dir: str,
        run_plan: RunPlan,
        describer: Describer,
        settings: PlannerSettings,
    ) -> None:
        self.catalog = catalog
        self.data_dir = data_dir
        self.run_plan = run_plan
        self.describer = describer
        self.settings = settings

    # --- statements ------------------------------------------------------------------

    def update(self, sql: str, priority: int = 0) -> int:
        """Carry out a write statement; the rows it wrote (0 for views and drops)."""
        write = parse_statement_text(sql).write
        if isinstance(write, CreateTableAs):
            return self.create_table_as(write, priority)
        if isinstance(write, InsertInto):
            return self.insert_into(write, priority)
        if isinstance(write, CreateView):
            return self.create_view(write)
        if isinstance(write, Drop):
            return self.drop(write)
        raise MalformedRequest(
            "this statement returns rows, it is not an update: send it as a query "
            "(CommandStatementQuery, or execute the prepared statement)"
        )

    def create_table_as(self, stmt: CreateTableAs, priority: int) -> int:
        entry = self.catalog.entry(stmt.name)
        if entry.view is not None:
            raise CatalogConflict(f"{stmt.name} is a view; DROP VIEW {stmt.name} first")
        if entry.table is not None and not stmt.replace:
            if stmt.if_not_exists:
                return 0
            raise CatalogConflict(
                f"table {stmt.name} already exists; use CREATE OR REPLACE TABLE, or "
                "CREATE TABLE IF NOT EXISTS"
            )
        table = self._write_query(stmt.name, stmt.query.sql(dialect=DIALECT), priority, "ctas")
        if not self.catalog.put_table_if(table, entry):
            raise CatalogConflict(
                f"table {stmt.name} was created or changed by another statement meanwhile"
            )
        log.info("created table %s: %d file(s), %d rows", table.name, len(table.files), table.rows)
        return table.rows

    def insert_into(self, stmt: InsertInto, priority: int) -> int:
        entry = self.catalog.entry(stmt.name)
        if entry.table is None:
            if entry.view is not None:
                raise CatalogConflict(f"{stmt.name} is a view; INSERT goes into tables only")
            raise UnknownTableError(f"no table {stmt.name!r} to INSERT INTO")
        query = insert_query(stmt.query, stmt.columns, entry.table.columns)
        written = self._write_query(stmt.name, query.sql(dialect=DIALECT), priority, "insert")
        self._append(stmt.name, written)
        return written.rows

    def create_view(self, stmt: CreateView) -> int:
        entry = self.catalog.entry(stmt.name)
        if entry.table is not None:
            raise CatalogConflict(f"{stmt.name} is a table; DROP TABLE {stmt.name} first")
        if entry.view is not None and not stmt.replace:
            if stmt.if_not_exists:
                return 0
            raise CatalogConflict(f"view {stmt.name} already exists; use CREATE OR REPLACE VIEW")
        sql = stmt.query.sql(dialect=DIALECT)
        catalog = self.catalog.read()
        plan = plan_query(sql, catalog, self.settings)  # reads catalog tables and views only
        columns = self.describer.columns(describable(sql, plan), _without(catalog, stmt.name))
        if stmt.columns:
            if len(stmt.columns) > len(columns):
                raise CatalogConflict(
                    f"view {stmt.name} names {len(stmt.columns)} columns but its query "
                    f"returns {len(columns)}"
                )
            columns = [
                replace(c, name=stmt.columns[i]) if i < len(stmt.columns) else c
                for i, c in enumerate(columns)
            ]
        view = View(stmt.name, sql, tuple(columns), stmt.columns)
        if not self.catalog.put_view_if(view, entry):
            raise CatalogConflict(f"view {stmt.name} was changed by another statement meanwhile")
        log.info("created view %s", stmt.name)
        return 0

    def drop(self, stmt: Drop) -> int:
        entry = self.catalog.entry(stmt.name)
        present = entry.table if stmt.kind == "TABLE" else entry.view
        other = entry.view if stmt.kind == "TABLE" else entry.table
        if present is None:
            if other is not None:
                kind = "view" if stmt.kind == "TABLE" else "table"
                raise CatalogConflict(
                    f"{stmt.name} is a {kind}; use DROP {kind.upper()} {stmt.name}"
                )
            if stmt.if_exists:
                return 0
            raise UnknownTableError(f"no {stmt.kind.lower()} {stmt.name!r} to drop")
        if not self.catalog.drop_if(stmt.name, entry):
            raise CatalogConflict(f"{stmt.name} was changed by another statement meanwhile")
        log.info("dropped %s %s", stmt.kind.lower(), stmt.name)
        return 0

    # --- ingest ----------------------------------------------------------------------

    def ingest(self, request: IngestRequest, data: pa.Table) -> int:
        name = _ingest_name(request.table)
        for _ in range(APPEND_RETRIES):
            entry = self.catalog.entry(name)
            if entry.view is not None:
                raise CatalogConflict(f"{name} is a view; ingest goes into tables only")
            if entry.table is None:
                if not request.create:
                    raise UnknownTableError(
                        f"no table {name!r} to append to; ingest with mode create or "
                        "create_append to create it"
                    )
                table = self._write_data(name, data, None)
                if self.catalog.put_table_if(table, entry):
                    log.info("ingest created table %s: %d rows", name, table.rows)
                    return table.rows
                continue  # created meanwhile: decide again
            if request.if_exists == "fail":
                raise CatalogConflict(
                    f"table {name} already exists; ingest with mode append, replace or "
                    "create_append"
                )
            if request.if_exists == "replace":
                table = self._write_data(name, data, None)
                if self.catalog.put_table_if(table, entry):
                    log.info("ingest replaced table %s: %d rows", name, table.rows)
                    return table.rows
                continue
            written = self._write_data(name, data, entry.table)
            self._append(name, written)
            log.info("ingest appended %d rows to %s", written.rows, name)
            return written.rows
        raise CatalogConflict(f"table {name} kept changing under the ingest; try again")

    # --- files -----------------------------------------------------------------------

    def _directory(self, name: str) -> str:
        if not self.data_dir:
            raise UnsupportedRequest(
                "writes are off: this front door has no data directory; set "
                "DUCKFLEET_DATA_DIR (storage every worker and front door reaches)"
            )
        return os.path.join(os.path.abspath(self.data_dir), name)

    def _new_files(self, name: str, kind: str, count: int) -> list[str]:
        directory = self._directory(name)
        stem = f"{kind}-{uuid.uuid4().hex[:12]}"
        return [os.path.join(directory, f"{stem}-{n}.parquet") for n in range(count)]

    def _write_query(self, name: str, sql: str, priority: int, kind: str) -> Table:
        """Run ``sql`` on the fleet, each output task writing one file; those files."""
        plan = plan_query(sql, self.catalog.read(), self.settings)
        files = self._new_files(name, kind, len(plan.output_tasks))
        self.run_plan(write_outputs(plan, files), priority)
        return describe_files(name, files)

    def _write_data(self, name: str, data: pa.Table, existing: Table | None) -> Table:
        """Write ingested rows (cast to ``existing``'s columns, if given) as Parquet."""
        count = max(1, -(-data.num_rows // ROWS_PER_INGEST_FILE))
        files = self._new_files(name, "ingest", count)
        os.makedirs(os.path.dirname(files[0]), exist_ok=True)
        con = duckdb.connect(config={"threads": "1"})
        try:
            for n, path in enumerate(files):
                chunk = data.slice(n * ROWS_PER_INGEST_FILE, ROWS_PER_INGEST_FILE)
                relation = con.from_arrow(chunk)
                if existing is not None:
                    relation = relation.select(*_cast_to(existing, chunk.schema))
                partial = f"{path}.tmp"
                relation.write_parquet(partial, compression="zstd")
                os.replace(partial, path)
        except duckdb.Error as exc:
            raise MalformedRequest(f"the ingested data cannot be written: {exc}") from None
        finally:
            con.close()
        return describe_files(name, files)

    def _append(self, name: str, written: Table) -> None:
        for _ in range(APPEND_RETRIES):
            entry = self.catalog.entry(name)
            if entry.table is None:
                raise UnknownTableError(f"table {name} was dropped while rows were added")
            if [c.type for c in written.columns] != [c.type for c in entry.table.columns]:
                raise CatalogConflict(f"table {name} changed its columns while rows were added")
            grown = replace(entry.table, files=entry.table.files + written.files)
            if self.catalog.put_table_if(grown, entry):
                return
        raise CatalogConflict(f"table {name} kept changing while rows were added; try again")


def _without(catalog: Catalog, view: str) -> Catalog:
    """The catalog without one view: describing its new definition must not read it."""
    views = {k: v for k, v in catalog.views.items() if k != view.lower()}
    return replace(catalog, views=views)


def _ingest_name(table: str) -> str:
    return table_name(exp.Table(this=exp.to_identifier(table)))


def _cast_to(table: Table, schema: pa.Schema) -> list[duckdb.Expression]:
    """Columns of ingested data matched to ``table``'s by name, cast to its types."""
    given = {name.lower(): name for name in schema.names}
    wanted = {c.name.lower() for c in table.columns}
    if set(given) != wanted:
        missing = sorted(wanted - set(given))
        extra = sorted(set(given) - wanted)
        raise MalformedRequest(
            f"the ingested columns do not match table {table.name}: "
            f"missing {missing or 'none'}, unknown {extra or 'none'}"
        )
    return [
        duckdb.ColumnExpression(given[c.name.lower()]).cast(duckdb.sqltype(c.type)).alias(c.name)
        for c in table.columns
    ]
