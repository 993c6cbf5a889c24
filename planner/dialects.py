"""SQL written for another engine, read in its dialect and written as DuckDB's.

    check_dialect(name)      the dialect's canonical name, or DialectError listing
                             the names sqlglot knows
    to_duckdb(sql, dialect)  the statement as DuckDB SQL (sqlglot transpiles it);
                             duckdb's own text is returned unchanged

A dashboard written for Trino, Snowflake, Spark or BigQuery sends its own SQL; the
front door turns it into DuckDB's before anything else reads it, so the planner,
prepared statements, writes and EXPLAIN see DuckDB SQL only. ``EXPLAIN [ANALYZE]``
keeps its prefix and the query behind it is transpiled. Placeholders (``?``,
``$1``) pass through as they are.

Division: in Trino, Postgres, T-SQL, ... an integer divided by an integer is an
integer (``7 / 2`` is 3), in DuckDB a DOUBLE (3.5). sqlglot writes the source's
meaning (truncated division) only where it knows both operands are integers, so a
statement with such a division is typed first, on a copy qualified against the
catalog's column types (``catalog``, asked for only then); a division whose
operands stay untyped (a view's column, a parameter) is written as DuckDB's ``/``.

What sqlglot cannot write for DuckDB (it raises UnsupportedError with
``unsupported_level=RAISE``) is refused, naming the dialect and the construct;
text that does not parse in its dialect is a syntax error that names the dialect.
Pure: no I/O; kept per (text, dialect), since a dashboard sends the same text again
and again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, Dialects
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema
from sqlglot.tokens import Token

from duckfleet.catalog import Catalog
from duckfleet.planner.errors import PlanError, SqlSyntaxError
from duckfleet.planner.parse import DIALECT, _syntax_error, _token_error

DEFAULT_DIALECT = DIALECT  # "duckdb": what the planner and the workers speak
TEXTS_KEPT = 1024  # transpiled statements kept


class DialectError(PlanError):
    """An unknown dialect name, or a construct of a dialect DuckDB has no form for."""


class DialectSyntaxError(SqlSyntaxError):
    """The text does not parse as SQL of the dialect it was sent in."""

    def __init__(self, dialect: str, error: SqlSyntaxError) -> None:
        PlanError.__init__(self, f"{dialect} {error} ({_read_as(dialect)})")
        self.line = error.line
        self.column = error.column


@functools.cache
def dialect_names() -> tuple[str, ...]:
    """Every dialect name sqlglot knows, sorted."""
    return tuple(sorted(d.value for d in Dialects if d.value))


def check_dialect(name: str) -> str:
    """`name` as sqlglot spells it (lower case, no spaces), if sqlglot knows it."""
    wanted = name.strip().lower()
    if wanted in dialect_names():
        return wanted
    raise DialectError(
        f"unknown SQL dialect {name!r}: use one of sqlglot's dialect names, "
        f"{', '.join(dialect_names())} (the default is {DEFAULT_DIALECT})"
    )


def to_duckdb(sql: str, dialect: str, catalog: Callable[[], Catalog] | None = None) -> str:
    """`sql`, written in `dialect`, as DuckDB SQL. `catalog` gives the column types
    that integer division needs (see above)."""
    name = check_dialect(dialect)
    if name == DEFAULT_DIALECT:
        return sql
    text, typed_division = _transpiled(sql, name)
    if not typed_division:
        return text
    prefix, trees = _parsed(sql, name)
    columns = _column_types(catalog() if catalog is not None else Catalog())
    for tree in trees:
        _type_divisions(tree, name, columns)
    return prefix + "; ".join(_written(tree, name) for tree in trees)


@functools.lru_cache(maxsize=TEXTS_KEPT)
def _transpiled(sql: str, dialect: str) -> tuple[str, bool]:
    """The DuckDB text, and whether it has a division whose meaning needs types."""
    prefix, trees = _parsed(sql, dialect)
    typed = any(d.args.get("typed") for tree in trees for d in tree.find_all(exp.Div))
    return prefix + "; ".join(_written(tree, dialect) for tree in trees), typed


def _parsed(sql: str, dialect: str) -> tuple[str, list[exp.Expression]]:
    prefix, query = _split_explain(sql, dialect)
    try:
        trees = Dialect.get_or_raise(dialect).parse(query)
    except ParseError as e:
        raise DialectSyntaxError(dialect, _syntax_error(e)) from None
    except TokenError as e:
        raise DialectSyntaxError(dialect, _token_error(query, e)) from None
    return prefix, [t for t in trees if t is not None and not isinstance(t, exp.Semicolon)]


_DIVISION = "duckfleet_division"  # meta key: a division's index, kept by copy()


def _type_divisions(tree: exp.Expression, dialect: str, columns: MappingSchema) -> None:
    """Give the operands of each typed division of `tree` the types sqlglot infers on
    a qualified copy, where both are integers, so that it writes truncated division."""
    divisions = [d for d in tree.find_all(exp.Div) if d.args.get("typed")]
    for n, division in enumerate(divisions):
        division.meta[_DIVISION] = n
    try:
        typed = qualify(
            tree.copy(),
            schema=columns,
            dialect=dialect,
            validate_qualify_columns=False,
            quote_identifiers=False,
        )
        annotate_types(typed, schema=columns, dialect=dialect)
    except Exception:  # types are a help here: untyped, the division stays DuckDB's
        typed = exp.Null()
    for division in typed.find_all(exp.Div):
        n = division.meta.get(_DIVISION)
        left, right = division.left.type, division.right.type
        if n is None or left is None or right is None:
            continue
        if left.is_type(*exp.DataType.INTEGER_TYPES) and right.is_type(*exp.DataType.INTEGER_TYPES):
            divisions[n].left.type = left.copy()
            divisions[n].right.type = right.copy()
    for division in divisions:
        division.meta.pop(_DIVISION, None)


def _column_types(catalog: Catalog) -> MappingSchema:
    tables = {
        **{name: {c.name: c.type for c in t.columns} for name, t in catalog.tables.items()},
        **{name: {c.name: c.type for c in v.columns} for name, v in catalog.views.items()},
    }
    return MappingSchema({n: cols for n, cols in tables.items() if cols}, dialect=DEFAULT_DIALECT)


def _written(tree: exp.Expression, dialect: str) -> str:
    try:
        return tree.sql(dialect=DEFAULT_DIALECT, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as e:
        what = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise DialectError(
            f"this {dialect} SQL has no DuckDB form: {what}. Rewrite that construct, or send "
            f"the statement in DuckDB's dialect ({_read_as(dialect)})"
        ) from None


def _split_explain(sql: str, dialect: str) -> tuple[str, str]:
    """("EXPLAIN [ANALYZE] ", query) for an EXPLAIN, else ("", sql). Tokenized in the
    statement's own dialect (a backtick is no DuckDB token)."""
    tokens = _tokens(sql, dialect)
    if not tokens or tokens[0].text.upper() != "EXPLAIN":
        return "", sql
    rest = sql[tokens[0].end + 1 :]  # sqlglot reads EXPLAIN as a command: the rest is text
    after = _tokens(rest, dialect)
    if after and after[0].text.upper() in ("ANALYZE", "ANALYSE"):
        return "EXPLAIN ANALYZE ", rest[after[0].end + 1 :].strip()
    return "EXPLAIN ", rest.strip()


def _tokens(sql: str, dialect: str) -> list[Token]:
    try:
        return Dialect.get_or_raise(dialect).tokenize(sql)
    except TokenError as e:
        raise DialectSyntaxError(dialect, _token_error(sql, e)) from None


def _read_as(dialect: str) -> str:
    return (
        f"the statement is read as {dialect} SQL, as the x-duckfleet-dialect header or the "
        "dialect session option says"
    )
