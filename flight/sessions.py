"""Client sessions: Flight's SetSessionOptions, GetSessionOptions and CloseSession.

A session is named by the ``arrow_flight_session_id`` cookie, which the client sends
back on every call (the ADBC driver with its cookie middleware on, the JDBC driver
always). pyarrow sends a call's response headers before its handler runs, so the
front door cannot wait for SetSessionOptions to name a session: every call that
comes without the cookie is answered with a fresh one, and the session exists once
options are set under it. The options themselves live in etcd
(control/session_store.py), so whichever front door a call reaches sees the same
session; CloseSession deletes them.

Options:

    catalog   string  must be ``duckfleet`` (the only catalog)
    schema    string  must be ``main`` (the only schema)
    priority  int64   passed to the fleet with each query of the session; higher
                      runs first among queries that wait for workers
    dialect   string  the SQL dialect the session's statements are written in, a
                      sqlglot name (trino, snowflake, spark, bigquery, ...;
                      default duckdb): they are transpiled to DuckDB's
                      (planner/dialects.py). A call's ``x-duckfleet-dialect``
                      header wins over it. An unknown name fails the whole request
                      with INVALID_ARGUMENT listing the names, so the client sees them.

An unknown name answers INVALID_NAME and a bad value INVALID_VALUE in the result's
error map; the valid options of the same request are still applied. Setting an
option to no value (an empty SessionOptionValue) removes it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pyarrow.flight as flight
from google.protobuf.message import Message

from duckfleet.flight.metadata import CATALOG_NAME, DB_SCHEMA_NAME
from duckfleet.planner.dialects import DEFAULT_DIALECT, check_dialect
from duckfleet.wire import sql_messages as sql

COOKIE = "arrow_flight_session_id"
MIDDLEWARE_KEY = "session"
DIALECT_HEADER = "x-duckfleet-dialect"
DEFAULTS: dict[str, Any] = {
    "catalog": CATALOG_NAME,
    "schema": DB_SCHEMA_NAME,
    "priority": 0,
    "dialect": DEFAULT_DIALECT,
}
MAX_PRIORITY = 1_000_000


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def session_id_of(headers: dict[str, list[str]]) -> str | None:
    """The session cookie among a call's ``cookie`` headers."""
    for value in headers.get("cookie", []):
        for part in value.split(";"):
            name, _, cookie = part.strip().partition("=")
            if name == COOKIE and cookie:
                return cookie
    return None


class SessionMiddleware(flight.ServerMiddleware):
    """One call's session: the cookie it came with, or the fresh one sent back."""

    def __init__(self, session_id: str | None, dialect: str | None = None) -> None:
        self.fresh = session_id is None  # nothing can be stored under a new id yet
        self.session_id = session_id or new_session_id()
        self.dialect = dialect  # the call's x-duckfleet-dialect header, unchecked

    def sending_headers(self) -> dict[str, str]:
        if not self.fresh:
            return {}
        return {"set-cookie": f"{COOKIE}={self.session_id}; Path=/; HttpOnly"}


class SessionMiddlewareFactory(flight.ServerMiddlewareFactory):
    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> SessionMiddleware:
        dialect = next(iter(headers.get(DIALECT_HEADER, [])), None)
        return SessionMiddleware(session_id_of(headers), dialect)


def middleware_of(context: flight.ServerCallContext | None) -> SessionMiddleware | None:
    if context is None:
        return None
    found = context.get_middleware(MIDDLEWARE_KEY)
    return found if isinstance(found, SessionMiddleware) else None


@dataclass
class Applied:
    options: dict[str, Any]
    # option name -> SetSessionOptionsResult.ErrorValue
    errors: dict[str, int] = field(default_factory=dict)


def apply_options(current: dict[str, Any], request: Message) -> Applied:
    """``current`` with the options of a SetSessionOptionsRequest applied."""
    out = Applied(dict(current))
    error = sql.SetSessionOptionsResult.ErrorValue  # type: ignore[attr-defined]
    for name, value in request.session_options.items():  # type: ignore[attr-defined]
        kind = value.WhichOneof("option_value")
        if name not in DEFAULTS:
            out.errors[name] = error.Value("INVALID_NAME")
            continue
        if kind is None:
            out.options.pop(name, None)
            continue
        parsed = _parse(name, kind, getattr(value, kind))
        if parsed is None:
            out.errors[name] = error.Value("INVALID_VALUE")
        else:
            out.options[name] = parsed
    return out


def _parse(name: str, kind: str, value: Any) -> Any:
    if name == "dialect":
        return check_dialect(value) if kind == "string_value" else None
    if name == "priority":
        if kind == "int64_value":
            number = int(value)
        elif kind == "string_value" and value.strip().lstrip("-").isdigit():
            number = int(value)
        elif kind == "double_value" and float(value).is_integer():
            number = int(value)
        else:
            return None
        return number if abs(number) <= MAX_PRIORITY else None
    if kind != "string_value":
        return None
    wanted = CATALOG_NAME if name == "catalog" else DB_SCHEMA_NAME
    return wanted if value.lower() == wanted else None


def options_message(options: dict[str, Any]) -> dict[str, Message]:
    """Every option's current value (defaults filled in) as SessionOptionValues."""
    out: dict[str, Message] = {}
    for name, default in DEFAULTS.items():
        value = options.get(name, default)
        if isinstance(value, int):
            out[name] = sql.SessionOptionValue(int64_value=value)
        else:
            out[name] = sql.SessionOptionValue(string_value=str(value))
    return out


def priority_of(options: dict[str, Any] | None) -> int:
    return int((options or {}).get("priority", 0))


def dialect_of(options: dict[str, Any] | None) -> str:
    return str((options or {}).get("dialect", DEFAULT_DIALECT))
