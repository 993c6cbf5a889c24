"""The descriptor a PollFlightInfo answer tells the client to poll with next.

A FlightDescriptor of type CMD whose command is compact JSON::

    {"poll":"<query id>","p":<progress answered so far>}

It names the query, so any front door answers the next poll from etcd alone
(flight/poll.py); "p" is the progress the client was last told, so that the next
answer never says less even when a lost worker's finished task has to run again.
It is not a Flight SQL command (no ``Any``): the front door recognises it by its
first bytes before it parses commands.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from duckfleet.ids import QueryId
from duckfleet.wire.tickets import InvalidTicket

PREFIX = b'{"poll":'
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class PollHandle:
    query_id: QueryId
    progress: float  # 0..1, what the client was last told


def poll_command(query_id: QueryId, progress: float) -> bytes:
    if not _ID.fullmatch(query_id):
        raise ValueError(f"query id {query_id!r} cannot go in a poll descriptor")
    fields = {"poll": query_id, "p": round(min(max(progress, 0.0), 1.0), 6)}
    return json.dumps(fields, separators=(",", ":")).encode()


def is_poll_command(data: bytes) -> bool:
    return data.startswith(PREFIX)


def parse_poll_command(data: bytes) -> PollHandle:
    """The handle of a poll command; InvalidTicket if duckfleet could not have made it."""
    try:
        fields = json.loads(data)
        query_id, progress = fields["poll"], float(fields.get("p", 0.0))
    except (ValueError, TypeError, KeyError):
        raise InvalidTicket("invalid poll descriptor: it does not parse") from None
    if not isinstance(query_id, str) or not _ID.fullmatch(query_id):
        raise InvalidTicket("invalid poll descriptor: it names no query")
    if not math.isfinite(progress) or not 0.0 <= progress <= 1.0:
        raise InvalidTicket("invalid poll descriptor: its progress is not between 0 and 1")
    return PollHandle(QueryId(query_id), progress)
