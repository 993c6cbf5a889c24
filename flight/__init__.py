"""duckfleet's front door: the Arrow Flight SQL protocol layer.

    server.py        FrontDoorServer: Flight SQL requests -> QueryBackend calls
    backend.py       QueryBackend: what the protocol layer asks of the fleet
    metadata.py      the metadata commands (GetCatalogs, GetTables, ...): schemas, answers
    sql_info.py      the GetSqlInfo answer
    dialect.py       DuckDB's keywords, function lists and casts, for GetSqlInfo
    xdbc.py          the GetXdbcTypeInfo answer
    types.py         DuckDB type names -> Arrow types
    runner.py        FleetBackend: plan, publish or offer (fast_path.py), wait, answer
    grpc_service.py  the grpcio front door (DUCKFLEET_FRONTDOOR_SERVER=grpc) over
                     FrontDoorServer's handlers; flight_data.py: batches <-> FlightData
    poll.py          PollFlightInfo's answers: progress, endpoints so far, poll again

The Flight plumbing it shares with the workers (auth, statuses, tickets, the Flight
SQL messages) is in ``duckfleet.wire``.

The names below are imported on first use, so that importing the package does not
pull in the server.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FrontDoorServer": "server",
    "QueryBackend": "backend",
    "QueryOutcome": "backend",
    "Partition": "backend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
