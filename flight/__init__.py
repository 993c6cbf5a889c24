"""duckfleet's front door: the Arrow Flight SQL protocol layer.

    server.py        FrontDoorServer: Flight SQL requests -> QueryBackend calls
    backend.py       QueryBackend: what the protocol layer asks of the fleet
    commands.py      google.protobuf.Any in and out; malformed / unsupported requests
    sql_messages.py  the Flight SQL protobuf messages, built without protoc
    tickets.py       self-contained result tickets and prepared-statement handles
    metadata.py      the metadata commands (GetCatalogs, GetTables, ...): schemas, answers
    sql_info.py      the GetSqlInfo answer
    dialect.py       DuckDB's keywords, function lists and casts, for GetSqlInfo
    xdbc.py          the GetXdbcTypeInfo answer
    types.py         DuckDB type names -> Arrow types
    status.py        duckfleet errors -> Flight statuses; one log line per call

The names below are imported on first use, so that ``duckfleet.flight.tickets`` (read
by workers) does not pull in the server.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FrontDoorServer": "server",
    "QueryBackend": "backend",
    "QueryOutcome": "backend",
    "Partition": "backend",
    "InvalidTicket": "tickets",
    "result_ticket": "tickets",
    "parse_result_ticket": "tickets",
    "MalformedRequest": "commands",
    "UnsupportedRequest": "commands",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
