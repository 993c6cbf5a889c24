"""The descriptor a PollFlightInfo answer tells the client to poll with next.

A FlightDescriptor of type CMD whose command is compact JSON::

    {"poll":"<query id>","p":<progress answered so far>,"e":["<task id>", ...]}

It names the query, so any front door answers the next poll from etcd alone
(flight/poll.py); "p" is the progress the client was last told, so that the next
answer never says less even when a lost worker's finished task has to run again;
"e" the output tasks whose endpoints it was given, in that order: the next answer
lists them first, in the same places, so a client that reads only the endpoints
past those it has (the ADBC driver) misses none and reads none twice.
It is not a Flight SQL command (no ``Any``): the front door recognises it by its
first bytes before it parses commands.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from duckfleet.ids import QueryId, TaskId
from duckfleet.wire.tickets import InvalidTicket

PREFIX = b'{"poll":'
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class PollHandle:
    query_id: QueryId
    progress: float  # 0..1, what the client was last told
    given: tuple[TaskId, ...] = ()  # the output tasks of the endpoints it was given


def poll_command(query_id: QueryId, progress: float, given: Sequence[TaskId] = ()) -> bytes:
    for value in (query_id, *given):
        if not _ID.fullmatch(value):
            raise ValueError(f"id {value!r} cannot go in a poll descriptor")
    fields: dict[str, object] = {"poll": query_id, "p": round(min(max(progress, 0.0), 1.0), 6)}
    if given:
        fields["e"] = list(given)
    return json.dumps(fields, separators=(",", ":")).encode()


def is_poll_command(data: bytes) -> bool:
    return data.startswith(PREFIX)


def parse_poll_command(data: bytes) -> PollHandle:
    """The handle of a poll command; InvalidTicket if duckfleet could not have made it."""
    try:
        fields = json.loads(data)
        query_id, progress = fields["poll"], float(fields.get("p", 0.0))
        given = fields.get("e", [])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InvalidTicket("invalid poll descriptor: it does not parse") from None
    if not isinstance(query_id, str) or not _ID.fullmatch(query_id):
        raise InvalidTicket("invalid poll descriptor: it names no query")
    if not isinstance(given, list) or not all(
        isinstance(t, str) and _ID.fullmatch(t) for t in given
    ):
        raise InvalidTicket("invalid poll descriptor: its endpoints are not task ids")
    if not math.isfinite(progress) or not 0.0 <= progress <= 1.0:
        raise InvalidTicket("invalid poll descriptor: its progress is not between 0 and 1")
    return PollHandle(QueryId(query_id), progress, tuple(TaskId(t) for t in given))
