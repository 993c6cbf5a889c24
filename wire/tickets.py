"""Self-contained tokens a client hands back: tickets and prepared-statement handles.

Every token carries all it needs, so any front door (and, for result tickets, the
worker holding the partition) can redeem it with no state of its own.

Result ticket (minted by the front door for each result partition, redeemed by DoGet on
the worker that holds it or on any front door)::

    Any(TicketStatementQuery{statement_handle = b'{"q":"<query id>","t":"<task id>"}'})

    The handle is compact JSON; keys other than "q", "t" and "b" are ignored, so
    later versions may add some. Ids are 1-64 characters of [A-Za-z0-9_-]. "b", a
    bucket number, names one bucket of a partitioned (exchange) result: workers
    fetch it from each other; clients never see such tickets.

Explain ticket (the one endpoint of an EXPLAIN or EXPLAIN ANALYZE, answered by any
front door)::

    Any(TicketStatementQuery{statement_handle = b'{"explain":"EXPLAIN ...","q":"<id>"}'})

    The whole statement, and for EXPLAIN ANALYZE the query that ran (its task records
    stay in etcd until its results expire); "d": the dialect the client wrote it in,
    when not DuckDB's (the statement itself is already DuckDB SQL). Up to
    MAX_EXPLAIN_TICKET_BYTES.

Front-door-local ticket (the endpoint of a metadata command: GetSqlInfo, GetCatalogs,
GetTables, ...): the Flight SQL command itself, e.g. ``Any(CommandGetTables{...})``, as
the Flight SQL reference server does. Any front door answers it, from its own
constants or the catalog in etcd (flight/metadata.py).

Prepared-statement handle: compact JSON ``{"sql": "<statement text>"}``, plus
``"params": "<base64 Arrow IPC stream>"`` once parameters are bound (DoPut answers
with that new handle in DoPutPreparedStatementResult). Preparing stores nothing;
executing the handle runs its SQL, once per bound parameter row, on any front door.

Pure: protobuf and json only; workers import it to read their tickets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from google.protobuf.message import Message

from duckfleet.errors import DuckfleetError
from duckfleet.ids import QueryId, TaskId
from duckfleet.wire import commands
from duckfleet.wire import sql_messages as sql

MAX_TICKET_BYTES = 4096
MAX_EXPLAIN_TICKET_BYTES = 256 * 1024  # it carries the statement
LOCAL_TICKET_COMMANDS = commands.METADATA_COMMANDS  # served by the front door itself

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidTicket(DuckfleetError):
    """A ticket or handle that duckfleet did not mint, or that was altered."""


@dataclass(frozen=True)
class ResultTicket:
    query_id: QueryId
    task_id: TaskId
    bucket: int | None = None  # one bucket of a partitioned result


@dataclass(frozen=True)
class ExplainTicket:
    sql: str  # the EXPLAIN statement as sent
    query_id: QueryId | None  # EXPLAIN ANALYZE: the query that ran
    dialect: str | None = None  # the client's dialect, when the text was transpiled


@dataclass(frozen=True)
class LocalTicket:
    command: Message  # e.g. CommandGetTables, answered by the front door itself


def result_ticket(query_id: QueryId, task_id: TaskId, bucket: int | None = None) -> bytes:
    for kind, value in (("query id", query_id), ("task id", task_id)):
        if not _ID.fullmatch(value):
            raise ValueError(f"{kind} {value!r} cannot go in a ticket: use 1-64 of [A-Za-z0-9_-]")
    fields: dict[str, object] = {"q": query_id, "t": task_id}
    if bucket is not None:
        fields["b"] = bucket
    handle = json.dumps(fields, separators=(",", ":")).encode()
    return commands.pack(sql.TicketStatementQuery(statement_handle=handle))


def explain_ticket(
    statement: str, query_id: QueryId | None = None, dialect: str | None = None
) -> bytes:
    fields: dict[str, str] = {"explain": statement}
    if query_id is not None:
        fields["q"] = query_id
    if dialect is not None:
        fields["d"] = dialect
    handle = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    ticket = commands.pack(sql.TicketStatementQuery(statement_handle=handle))
    if len(ticket) > MAX_EXPLAIN_TICKET_BYTES:
        raise commands.MalformedRequest(
            f"the statement is {len(statement)} characters; EXPLAIN answers statements of at most "
            f"{MAX_EXPLAIN_TICKET_BYTES // 1024} KiB"
        )
    return ticket


def local_ticket(command: Message) -> bytes:
    name = command.DESCRIPTOR.name
    if name not in LOCAL_TICKET_COMMANDS:
        raise ValueError(f"{name} is not answered by front-door-local tickets")
    ticket = commands.pack(command)
    if len(ticket) > MAX_TICKET_BYTES:
        raise commands.MalformedRequest(
            f"the {name} command is {len(ticket)} bytes; duckfleet accepts at most "
            f"{MAX_TICKET_BYTES}: shorten its filter patterns"
        )
    return ticket


def parse_ticket(data: bytes) -> ResultTicket | LocalTicket | ExplainTicket:
    """What a ticket refers to; InvalidTicket if duckfleet could not have minted it."""
    if len(data) > MAX_EXPLAIN_TICKET_BYTES:
        raise InvalidTicket(f"invalid ticket: {len(data)} bytes, more than any duckfleet ticket")
    try:
        message = commands.unpack(data, what="ticket")
    except commands.FlightRequestError as exc:
        raise InvalidTicket(f"invalid ticket: {exc}") from None
    name = message.DESCRIPTOR.name
    if name == "TicketStatementQuery":
        explain = _explain_handle(message.statement_handle)  # type: ignore[attr-defined]
        if explain is not None:
            return explain
        if len(data) > MAX_TICKET_BYTES:
            raise InvalidTicket(f"invalid ticket: {len(data)} bytes, more than a result ticket")
        return _parse_statement_handle(message.statement_handle)  # type: ignore[attr-defined]
    if len(data) > MAX_TICKET_BYTES:
        raise InvalidTicket(f"invalid ticket: {len(data)} bytes, more than any duckfleet ticket")
    if name in LOCAL_TICKET_COMMANDS:
        return LocalTicket(message)
    raise InvalidTicket(f"invalid ticket: a {name} is not a ticket duckfleet issues")


def parse_result_ticket(data: bytes) -> tuple[QueryId, TaskId]:
    """``(query id, task id)`` of a result ticket; InvalidTicket on anything else."""
    ticket = parse_result_ticket_bucket(data)
    return ticket.query_id, ticket.task_id


def _explain_handle(handle: bytes) -> ExplainTicket | None:
    try:
        fields = json.loads(handle)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(fields, dict) or "explain" not in fields:
        return None
    sql, query_id = fields["explain"], fields.get("q")
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidTicket("invalid ticket: the explain ticket carries no statement")
    if query_id is not None and (not isinstance(query_id, str) or not _ID.fullmatch(query_id)):
        raise InvalidTicket("invalid ticket: malformed query id")
    dialect = fields.get("d")
    if dialect is not None and (not isinstance(dialect, str) or not _ID.fullmatch(dialect)):
        raise InvalidTicket("invalid ticket: malformed dialect")
    return ExplainTicket(sql, QueryId(query_id) if query_id is not None else None, dialect)


def parse_result_ticket_bucket(data: bytes) -> ResultTicket:
    """A result ticket with its bucket, if it names one; InvalidTicket on anything else."""
    ticket = parse_ticket(data)
    if not isinstance(ticket, ResultTicket):
        raise InvalidTicket("invalid ticket: not a result ticket")
    return ticket


def _parse_statement_handle(handle: bytes) -> ResultTicket:
    try:
        fields = json.loads(handle)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidTicket(
            "invalid ticket: the statement handle is not duckfleet's JSON"
        ) from None
    if not isinstance(fields, dict):
        raise InvalidTicket("invalid ticket: the statement handle is not a JSON object")
    query_id, task_id = fields.get("q"), fields.get("t")
    for kind, value in (("query id", query_id), ("task id", task_id)):
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise InvalidTicket(f"invalid ticket: missing or malformed {kind}")
    bucket = fields.get("b")
    if bucket is not None and (type(bucket) is not int or bucket < 0):
        raise InvalidTicket("invalid ticket: malformed bucket")
    return ResultTicket(QueryId(query_id), TaskId(task_id), bucket)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PreparedHandle:
    sql: str
    params: str | None = None  # base64 Arrow IPC stream of the bound parameter rows
    dialect: str | None = None  # the client's dialect, when `sql` was transpiled from it


def prepared_statement_handle(
    sql_text: str, params: str | None = None, dialect: str | None = None
) -> bytes:
    fields = {"sql": sql_text} if params is None else {"sql": sql_text, "params": params}
    if dialect is not None:
        fields["d"] = dialect
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def parse_handle(handle: bytes) -> PreparedHandle:
    """What a handle carries; InvalidTicket if it is not a duckfleet handle."""
    try:
        fields = json.loads(handle)
    except (UnicodeDecodeError, json.JSONDecodeError):
        fields = None
    if (
        not isinstance(fields, dict)
        or not isinstance(fields.get("sql"), str)
        or not isinstance(fields.get("params", ""), str)
        or not isinstance(fields.get("d", ""), str)
    ):
        raise InvalidTicket(
            "invalid prepared statement handle: not one duckfleet issued; "
            "prepare the statement again (CreatePreparedStatement)"
        )
    return PreparedHandle(fields["sql"], fields.get("params"), fields.get("d"))


def parse_prepared_statement_handle(handle: bytes) -> str:
    """The SQL a handle carries; InvalidTicket if it is not a duckfleet handle."""
    return parse_handle(handle).sql
