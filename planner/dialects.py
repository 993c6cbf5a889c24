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

What sqlglot cannot write for DuckDB (it raises UnsupportedError with
``unsupported_level=RAISE``) is refused, naming the dialect and the construct;
text that does not parse in its dialect is a syntax error that names the dialect.
Pure: no I/O; kept per (text, dialect), since a dashboard sends the same text again
and again.
"""

from __future__ import annotations

import functools

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, Dialects
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError
from sqlglot.tokens import Token

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


@functools.lru_cache(maxsize=TEXTS_KEPT)
def to_duckdb(sql: str, dialect: str) -> str:
    """`sql`, written in `dialect`, as DuckDB SQL."""
    name = check_dialect(dialect)
    if name == DEFAULT_DIALECT:
        return sql
    prefix, query = _split_explain(sql, name)
    reader = Dialect.get_or_raise(name)
    try:
        trees = [t for t in reader.parse(query) if t is not None]
    except ParseError as e:
        raise DialectSyntaxError(name, _syntax_error(e)) from None
    except TokenError as e:
        raise DialectSyntaxError(name, _token_error(query, e)) from None
    written = [_written(tree, name) for tree in trees if not isinstance(tree, exp.Semicolon)]
    return prefix + "; ".join(written)


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
