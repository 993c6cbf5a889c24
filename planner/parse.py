"""Parse one statement of user SQL and refuse anything that is not a query.

sqlglot's errors become the planner's: a `ParseError` or `TokenError` becomes
`SqlSyntaxError` with its line and column; DDL, DML, SET, COPY, ATTACH, PRAGMA, ...
and more than one statement become `UnsupportedStatementError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from duckfleet.planner.errors import SqlSyntaxError, UnsupportedStatementError

DIALECT = "duckdb"

# First words of DuckDB statements that are not queries: refused as such even where
# sqlglot cannot parse the rest. Any other unparsable text is a syntax error.
_OTHER_STATEMENTS = frozenset(
    "ABORT ALTER ANALYZE ATTACH BEGIN CALL CHECKPOINT COMMENT COMMIT COPY CREATE DEALLOCATE "
    "DELETE DESCRIBE DETACH DROP EXECUTE EXPLAIN EXPORT FORCE GRANT IMPORT INSERT INSTALL "
    "LOAD MERGE PRAGMA PREPARE RESET REVOKE ROLLBACK SET SHOW SUMMARIZE TRUNCATE UPDATE "
    "UPSERT USE VACUUM".split()
)
_QUERY_HINT = "send SELECT, WITH ... SELECT, VALUES or a set operation over catalog tables"


@dataclass(frozen=True)
class Statement:
    tree: exp.Expression  # as parsed, never changed
    text: str  # the statement's own text: no trailing semicolon or comment


def parse_statement(sql: str) -> Statement:
    """Parse `sql`, which must hold exactly one query."""
    dialect = Dialect.get_or_raise(DIALECT)
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as e:
        raise _token_error(sql, e) from None
    words = [t for t in tokens if t.token_type != TokenType.SEMICOLON]
    if not words:
        raise SqlSyntaxError(f"empty statement: {_QUERY_HINT}")
    try:
        parsed = dialect.parser().parse(tokens, sql)
        trees = [t for t in parsed if t is not None and not isinstance(t, exp.Semicolon)]
    except ParseError as e:
        if _first_word(words) in _OTHER_STATEMENTS:
            raise _not_a_query(words, None) from None
        raise _syntax_error(e) from None
    if len(trees) > 1:
        raise UnsupportedStatementError(
            f"one statement at a time: got {len(trees)} statements separated by ';'"
        )
    tree = trees[0]
    if not isinstance(tree, exp.Query | exp.Values):
        raise _not_a_query(words, tree)
    text = sql[: words[-1].end + 1].strip()
    return Statement(tree=tree, text=text)


def _first_word(tokens: list[Token]) -> str:
    return tokens[0].text.upper()


def _not_a_query(words: list[Token], tree: exp.Expression | None) -> UnsupportedStatementError:
    kind = _first_word(words)
    if kind in ("CREATE", "DROP", "ALTER"):
        detail = tree.args.get("kind") if tree is not None else None
        if isinstance(detail, str):
            kind = f"{kind} {detail.upper()}"
        elif len(words) > 1:
            kind = f"{kind} {words[1].text.upper()}"
    elif kind == "WITH" and tree is not None:
        kind = tree.key.upper()
    return UnsupportedStatementError(f"only queries are supported: got {kind} ({_QUERY_HINT})")


_TOKEN_REPR = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: \d+, col: \d+[^>]*>")
_CLASS_REPR = re.compile(r"<class 'sqlglot\.expressions\.[\w.]*?(\w+)'>")
_MISSING_ARGUMENT = re.compile(r"Required keyword: '\w+' missing for (\w+)")


def _syntax_error(error: ParseError) -> SqlSyntaxError:
    first = error.errors[0] if error.errors else {}
    description = str(first.get("description") or error)
    description = _TOKEN_REPR.sub(lambda m: f"'{m.group(1)}'", description)
    description = _CLASS_REPR.sub(lambda m: m.group(1), description)
    description = _MISSING_ARGUMENT.sub(
        lambda m: f"incomplete {m.group(1)} expression", description
    )
    near = first.get("highlight")
    if near:
        description = f"{description} near '{near}'"
    return SqlSyntaxError(description, first.get("line"), first.get("col"))


_MISSING = re.compile(r"Missing (.+) from (\d+):(\d+)")


def _token_error(sql: str, error: TokenError) -> SqlSyntaxError:
    """sqlglot's tokenizer says what is missing and from which offset, in its cause."""
    match = _MISSING.search(str(error.__cause__ or ""))
    if match is None:
        return SqlSyntaxError(str(error))
    offset = int(match.group(3))
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return SqlSyntaxError(f"unterminated {match.group(1)}", line, column)
