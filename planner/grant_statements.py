"""GRANT and REVOKE of SELECT on catalog tables and views.

    GRANT SELECT ON [TABLE | VIEW] name [, name ...] TO principal [, principal ...]
    REVOKE SELECT ON [TABLE | VIEW] name [, name ...] FROM principal [, principal ...]

    principal:  USER user_name  |  ROLE role_name   (the only role to grant to: user)

Names are a catalog table's or view's (``main.`` or ``duckfleet.main.`` in front
allowed), compared in lower case; user names are kept as written (the users file's
names are case-sensitive). A trailing ``;`` is allowed. sqlglot 30 parses
``GRANT ... TO ROLE r`` but falls back to an opaque command for ``TO USER u``,
``ON TABLE t`` and lists, so this small parser reads the tokens itself.

``parse_grant`` returns None for text that does not start with GRANT or REVOKE.

Pure: sqlglot's tokenizer only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from duckfleet.grants import GrantError, Principal, principal, table_key
from duckfleet.planner.errors import UnsupportedStatementError
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.rules.unqualify_tables import CATALOG, SCHEMA

SYNTAX = (
    "GRANT SELECT ON name [, ...] TO USER u | ROLE user [, ...]; "
    "REVOKE SELECT ON name [, ...] FROM USER u | ROLE user [, ...]"
)


@dataclass(frozen=True)
class GrantChange:
    revoke: bool  # False: GRANT
    names: tuple[str, ...]  # catalog names, lower case
    principals: tuple[Principal, ...]

    @property
    def verb(self) -> str:
        return "REVOKE" if self.revoke else "GRANT"


class _Tokens:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def word(self) -> str:
        token = self.peek()
        return token.text.upper() if token is not None else ""

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _error("the statement ends too early")
        self.at += 1
        return token

    def expect(self, *words: str) -> str:
        token = self.take()
        if token.text.upper() not in words or token.token_type == TokenType.IDENTIFIER:
            raise _error(f"expected {' or '.join(words)}, found {token.text!r}")
        return token.text.upper()

    def accept(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.token_type != TokenType.IDENTIFIER:
            if token.text.upper() in words:
                self.at += 1
                return True
        return False

    def name(self, what: str) -> str:
        token = self.take()
        if token.token_type in (TokenType.COMMA, TokenType.DOT, TokenType.SEMICOLON):
            raise _error(f"expected {what}, found {token.text!r}")
        return token.text


def parse_grant(sql: str) -> GrantChange | None:
    """The GRANT or REVOKE ``sql`` holds, None if it starts with neither;
    UnsupportedStatementError if it does but is not one duckfleet carries out."""
    try:
        tokens = Dialect.get_or_raise(DIALECT).tokenize(sql)
    except TokenError:
        return None
    words = _Tokens(tokens)
    if words.word() not in ("GRANT", "REVOKE"):
        return None
    revoke = words.take().text.upper() == "REVOKE"
    privilege = words.take().text.upper()
    if privilege != "SELECT":
        raise UnsupportedStatementError(
            f"only SELECT can be granted or revoked, not {privilege}: duckfleet's users "
            "read, admins write; " + SYNTAX
        )
    words.expect("ON")
    words.accept("TABLE", "VIEW")
    names = [_table(words)]
    while words.accept(","):
        names.append(_table(words))
    words.expect("FROM" if revoke else "TO")
    principals = [_principal(words)]
    while words.accept(","):
        principals.append(_principal(words))
    words.accept(";")
    if words.peek() is not None:
        raise _error(f"unexpected {words.peek().text!r} after the statement")  # type: ignore[union-attr]
    return GrantChange(revoke, tuple(dict.fromkeys(names)), tuple(dict.fromkeys(principals)))


def _table(words: _Tokens) -> str:
    parts = [words.name("a table or view name")]
    while words.accept("."):
        parts.append(words.name("a table or view name"))
    if len(parts) > 3:
        raise _error(f"{'.'.join(parts)} is not a table name")
    *qualifiers, name = parts
    expected = [CATALOG, SCHEMA][-len(qualifiers) :] if qualifiers else []
    if [q.lower() for q in qualifiers] != expected:
        raise UnsupportedStatementError(
            f"{'.'.join(parts)}: duckfleet has one catalog, {CATALOG}, with one schema, "
            f"{SCHEMA}; name the table alone"
        )
    try:
        return table_key(name)
    except GrantError as exc:
        raise UnsupportedStatementError(str(exc)) from None


def _principal(words: _Tokens) -> Principal:
    token = words.peek()
    kind = words.word()
    if kind not in ("USER", "ROLE") or (token and token.token_type == TokenType.IDENTIFIER):
        found = token.text if token is not None else "the end"
        raise _error(f"expected USER name or ROLE name, found {found!r}")
    words.take()
    try:
        return principal(kind, words.name(f"a {kind.lower()} name"))
    except GrantError as exc:
        raise UnsupportedStatementError(str(exc)) from None


def _error(message: str) -> UnsupportedStatementError:
    return UnsupportedStatementError(f"{message}; the syntax: {SYNTAX}")
