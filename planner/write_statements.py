"""The statements that change the catalog, parsed into what the front door carries out.

    CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t AS <query>     CreateTableAs
    INSERT INTO t [(columns)] <query> | VALUES (...)            InsertInto
    CREATE [OR REPLACE] VIEW [IF NOT EXISTS] v [(columns)] AS <query>   CreateView
    DROP TABLE|VIEW [IF EXISTS] name                             Drop

``parse_write`` returns None for anything else, which then goes to the query planner
(and gets its usual answer, a refusal for other DDL included). Names are a catalog
table's: optionally ``main.`` or ``duckfleet.main.`` in front, letters, digits and
``_``, stored lower-case (they also name the table's directory).

Pure: sqlglot only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError

from duckfleet.catalog import Column
from duckfleet.planner.errors import UnsupportedStatementError
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.rules.unqualify_tables import CATALOG as CATALOG_NAME
from duckfleet.planner.rules.unqualify_tables import SCHEMA as DEFAULT_SCHEMA

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class CreateTableAs:
    name: str
    query: exp.Expression
    replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class InsertInto:
    name: str
    columns: tuple[str, ...]  # () = every column, in order
    query: exp.Expression


@dataclass(frozen=True)
class CreateView:
    name: str
    query: exp.Expression
    columns: tuple[str, ...] = ()
    replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class Drop:
    kind: str  # "TABLE" | "VIEW"
    name: str
    if_exists: bool = False


WriteStatement = CreateTableAs | InsertInto | CreateView | Drop


def parse_tree(sql: str) -> exp.Expression | None:
    """The one statement in ``sql``, or None when it does not parse as exactly one
    (the query planner then says why)."""
    try:
        trees = [
            t
            for t in Dialect.get_or_raise(DIALECT).parse(sql)
            if t is not None and not isinstance(t, exp.Semicolon)
        ]
    except SqlglotError:
        return None
    return trees[0] if len(trees) == 1 else None


def parse_write(tree: exp.Expression) -> WriteStatement | None:
    """The write statement ``tree`` is, or None if it is not one duckfleet carries out."""
    if isinstance(tree, exp.Create):
        kind = str(tree.args.get("kind") or "").upper()
        if kind not in ("TABLE", "VIEW"):
            return None
        if tree.args.get("temporary") or tree.args.get("properties"):
            raise UnsupportedStatementError(f"CREATE {kind} with options is not supported")
        target = tree.this
        columns: tuple[str, ...] = ()
        if isinstance(target, exp.Schema):
            columns = tuple(c.name for c in target.expressions)
            target = target.this
        query = tree.expression
        if kind == "TABLE":
            if not isinstance(query, exp.Query):
                raise UnsupportedStatementError(
                    "CREATE TABLE needs AS <query>: tables are made from a query or by "
                    "ingestion (ADBC adbc_ingest)"
                )
            if columns:
                raise UnsupportedStatementError(
                    "CREATE TABLE ... AS takes its columns from the query; name them there"
                )
            return CreateTableAs(
                table_name(target),
                query,
                replace=bool(tree.args.get("replace")),
                if_not_exists=bool(tree.args.get("exists")),
            )
        if not isinstance(query, exp.Query):
            raise UnsupportedStatementError("CREATE VIEW needs AS <query>")
        return CreateView(
            table_name(target),
            query,
            columns,
            replace=bool(tree.args.get("replace")),
            if_not_exists=bool(tree.args.get("exists")),
        )
    if isinstance(tree, exp.Drop):
        kind = str(tree.args.get("kind") or "").upper()
        if kind not in ("TABLE", "VIEW"):
            return None
        if tree.args.get("cascade"):
            raise UnsupportedStatementError(f"DROP {kind} ... CASCADE is not supported")
        targets = tree.args.get("tables") or [tree.this]
        if len(targets) != 1:
            raise UnsupportedStatementError(f"DROP {kind} takes one name at a time")
        return Drop(kind, table_name(targets[0]), if_exists=bool(tree.args.get("exists")))
    if isinstance(tree, exp.Insert):
        for arg in ("overwrite", "ignore", "by_name", "conflict", "returning", "where"):
            if tree.args.get(arg):
                raise UnsupportedStatementError(
                    f"INSERT with {arg.upper().replace('_', ' ')} is not supported"
                )
        target = tree.this
        names: tuple[str, ...] = ()
        if isinstance(target, exp.Schema):
            names = tuple(c.name for c in target.expressions)
            target = target.this
        source = tree.expression
        if not isinstance(source, exp.Query | exp.Values):
            raise UnsupportedStatementError("INSERT needs VALUES (...) or a query")
        return InsertInto(table_name(target), names, source)
    return None


def table_name(target: exp.Expression) -> str:
    """The catalog name a CREATE, DROP or INSERT target names."""
    if not isinstance(target, exp.Table) or not isinstance(target.this, exp.Identifier):
        raise UnsupportedStatementError(f"{target.sql(dialect=DIALECT)} is not a table name")
    if target.catalog and target.catalog.lower() != CATALOG_NAME:
        raise UnsupportedStatementError(
            f"catalog {target.catalog!r} does not exist; duckfleet has one: {CATALOG_NAME}"
        )
    if target.db and target.db.lower() != DEFAULT_SCHEMA:
        raise UnsupportedStatementError(
            f"schema {target.db!r} does not exist; duckfleet has one: {DEFAULT_SCHEMA}"
        )
    name = target.name.lower()
    if not _NAME.fullmatch(name):
        raise UnsupportedStatementError(
            f"table name {target.name!r} is not allowed: use letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    return name


def insert_query(
    source: exp.Expression, columns: Sequence[str], table: Sequence[Column]
) -> exp.Select:
    """The query whose rows an INSERT appends: ``source``'s columns, by position,
    cast to the table's column types; table columns the INSERT does not list are NULL."""
    by_name = {c.name.lower(): c for c in table}
    listed = [c.lower() for c in columns] or [c.name.lower() for c in table]
    unknown = [c for c in listed if c not in by_name]
    if unknown:
        raise UnsupportedStatementError(
            f"INSERT names column {unknown[0]!r}, which the table does not have "
            f"(columns: {', '.join(c.name for c in table)})"
        )
    if len(set(listed)) != len(listed):
        raise UnsupportedStatementError("INSERT names a column twice")
    relation = "__insert"
    slots = {name: f"c{n}" for n, name in enumerate(listed)}
    projections = []
    for column in table:
        slot = slots.get(column.name.lower())
        value: exp.Expression = exp.column(slot, relation) if slot else exp.Null()
        cast = exp.Cast(this=value, to=exp.DataType.build(column.type, dialect=DIALECT))
        projections.append(exp.alias_(cast, column.name, quoted=True))
    alias = exp.TableAlias(
        this=exp.to_identifier(relation), columns=[exp.to_identifier(s) for s in slots.values()]
    )
    subquery = exp.Subquery(this=source.copy(), alias=alias)
    return exp.select(*projections).from_(subquery)
