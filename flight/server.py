"""The front door's Flight SQL server: the protocol, and nothing behind it.

Everything about planning, etcd and workers sits behind ``QueryBackend``; this class
turns Flight SQL requests into ``backend.run`` / ``backend.open_partition`` calls and
their outcomes into FlightInfo and record batch streams. It keeps no state between
calls: prepared-statement handles carry their SQL, tickets carry their query and task,
so any front door can serve any request.

Implemented:
    Handshake                   accepts anything, answers empty (no auth yet)
    GetFlightInfo               CommandStatementQuery, CommandPreparedStatementQuery,
                                the metadata commands (metadata.py: GetSqlInfo,
                                GetXdbcTypeInfo, GetCatalogs, GetDbSchemas, GetTables,
                                GetTableTypes, GetPrimaryKeys, GetImportedKeys,
                                GetExportedKeys, GetCrossReference)
    GetSchema                   the metadata commands
    DoGet                       result tickets (fallback path: backend.open_partition),
                                explain tickets (backend.open_partition makes the answer),
                                front-door-local tickets (metadata commands)
    DoAction                    CreatePreparedStatement, ClosePreparedStatement,
                                CloseSession
    ListActions
Everything else answers UNIMPLEMENTED (or INVALID_ARGUMENT if malformed), naming what
was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf.message import Message

from duckfleet.flight import commands, metadata, tickets
from duckfleet.flight import sql_messages as sql
from duckfleet.flight.backend import QueryBackend, QueryOutcome
from duckfleet.flight.commands import MalformedRequest, UnsupportedRequest
from duckfleet.flight.status import Call, flight_call, translate_stream

# DoAction types (Flight SQL and Flight). Flight SQL bodies and results are wrapped in
# google.protobuf.Any; Flight's own session actions carry their messages raw.
CREATE_PREPARED_STATEMENT = "CreatePreparedStatement"
CLOSE_PREPARED_STATEMENT = "ClosePreparedStatement"
CLOSE_SESSION = "CloseSession"

ACTIONS: dict[str, str] = {
    CREATE_PREPARED_STATEMENT: (
        "Creates a reusable prepared statement resource on the server.\n"
        "Request Message: ActionCreatePreparedStatementRequest\n"
        "Response Message: ActionCreatePreparedStatementResult"
    ),
    CLOSE_PREPARED_STATEMENT: (
        "Closes a reusable prepared statement resource on the server.\n"
        "Request Message: ActionClosePreparedStatementRequest\n"
        "Response Message: N/A"
    ),
    CLOSE_SESSION: (
        "Explicitly close/invalidate the cookie-specified client session.\n"
        "Request Message: CloseSessionRequest\n"
        "Response Message: CloseSessionResult"
    ),
}

KNOWN_UNSUPPORTED_ACTIONS = frozenset(
    {
        "BeginTransaction",
        "EndTransaction",
        "BeginSavepoint",
        "EndSavepoint",
        "CancelQuery",
        "CreatePreparedSubstraitPlan",
        "CancelFlightInfo",
        "RenewFlightEndpoint",
        "SetSessionOptions",
        "GetSessionOptions",
    }
)


class AcceptAnyAuthHandler(flight.ServerAuthHandler):
    """Handshake without authentication: any client, any payload, an empty answer."""

    def authenticate(
        self, outgoing: flight.ServerAuthSender, incoming: flight.ServerAuthReader
    ) -> None:
        with flight_call("Handshake"):
            # Nothing to read: reading past the client's last message would raise.
            outgoing.write(b"")

    def is_valid(self, token: bytes) -> bytes:
        return b""


class FrontDoorServer(flight.FlightServerBase):
    """A Flight SQL server that hands every query to ``backend``.

    ``location``: where to listen, e.g. ``grpc://0.0.0.0:31337`` (port 0: a free one).
    ``advertise``: the URI others reach this front door at; defaults to ``location``
    with the port actually bound. Other keyword arguments go to FlightServerBase
    (``tls_certificates``, ``middleware``, ``auth_handler``, ...).
    """

    def __init__(
        self,
        location: str,
        backend: QueryBackend,
        advertise: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auth_handler", AcceptAnyAuthHandler())
        super().__init__(location, **kwargs)
        self._backend = backend
        self._advertise = advertise or re.sub(r":0(?=/|$)", f":{self.port}", location)

    @property
    def advertised_location(self) -> str:
        return self._advertise

    # --- GetFlightInfo / GetSchema ----------------------------------------------------

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        with flight_call("GetFlightInfo", context) as call:
            command = self._command(descriptor, call)
            if call.what in metadata.COMMANDS:
                # Answered by whichever front door the client asks next (DoGet).
                endpoint = flight.FlightEndpoint(tickets.local_ticket(command), [])
                schema = metadata.result_schema(command)
                return flight.FlightInfo(schema, descriptor, [endpoint], -1, -1)
            outcome = self._backend.run(self._statement_sql(command))
            call.query_id = outcome.query_id
            call.detail = f"partitions={len(outcome.partitions)} rows={outcome.rows}"
            return self._flight_info(descriptor, outcome)

    def get_schema(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.SchemaResult:
        with flight_call("GetSchema", context) as call:
            command = self._command(descriptor, call)
            if call.what in metadata.COMMANDS:
                return flight.SchemaResult(metadata.result_schema(command))
            raise UnsupportedRequest(
                f"GetSchema for {call.what} is not implemented by duckfleet yet; "
                "call GetFlightInfo, whose answer carries the schema"
            )

    def _command(self, descriptor: flight.FlightDescriptor, call: Call) -> Message:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise MalformedRequest(
                "duckfleet serves Flight SQL commands: the FlightDescriptor must be of type CMD, "
                "not PATH"
            )
        command = commands.parse_command(descriptor.command)
        call.what = sql.short_name(command)
        return command

    def _statement_sql(self, command: Message) -> str:
        if isinstance(command, sql.CommandStatementQuery):
            if command.HasField("transaction_id"):
                raise UnsupportedRequest("transactions are not supported by duckfleet")
            text: str = command.query  # type: ignore[attr-defined]
        else:
            handle = command.prepared_statement_handle  # type: ignore[attr-defined]
            text = tickets.parse_prepared_statement_handle(handle)
        if not text.strip():
            raise MalformedRequest("the SQL statement is empty")
        return text

    def _flight_info(
        self, descriptor: flight.FlightDescriptor, outcome: QueryOutcome
    ) -> flight.FlightInfo:
        endpoints = [flight.FlightEndpoint(p.ticket, list(p.locations)) for p in outcome.partitions]
        return flight.FlightInfo(outcome.schema, descriptor, endpoints, outcome.rows, outcome.bytes)

    # --- DoGet ------------------------------------------------------------------------

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.FlightDataStream:
        with flight_call("DoGet", context, finish=False) as call:
            parsed = tickets.parse_ticket(ticket.ticket)
            if isinstance(parsed, tickets.LocalTicket):
                call.what = sql.short_name(parsed.command)
                table = metadata.result_table(parsed.command, self._backend.catalog)
                call.detail = f"rows={table.num_rows}"
                return flight.GeneratorStream(
                    table.schema, translate_stream(call, table.to_batches())
                )
            if isinstance(parsed, tickets.ExplainTicket):
                call.what = "explain"
                call.query_id = parsed.query_id
            else:
                call.what = f"task={parsed.task_id}"
                call.query_id = parsed.query_id
            reader = self._backend.open_partition(ticket.ticket)
            batches = translate_stream(call, _batches(reader, call))
            return flight.GeneratorStream(reader.schema, batches)

    # --- DoAction / ListActions -------------------------------------------------------

    def do_action(
        self, context: flight.ServerCallContext, action: flight.Action
    ) -> list[flight.Result]:
        with flight_call("DoAction", context) as call:
            call.what = action.type
            body = action.body.to_pybytes() if action.body is not None else b""
            if action.type == CREATE_PREPARED_STATEMENT:
                request = commands.unpack(
                    body, sql.ActionCreatePreparedStatementRequest, "action body"
                )
                if request.HasField("transaction_id"):
                    raise UnsupportedRequest("transactions are not supported by duckfleet")
                result = sql.ActionCreatePreparedStatementResult(
                    prepared_statement_handle=tickets.prepared_statement_handle(request.query)  # type: ignore[attr-defined]
                )
                return [flight.Result(commands.pack(result))]
            if action.type == CLOSE_PREPARED_STATEMENT:
                request = commands.unpack(
                    body, sql.ActionClosePreparedStatementRequest, "action body"
                )
                tickets.parse_prepared_statement_handle(request.prepared_statement_handle)  # type: ignore[attr-defined]
                return []  # handles hold no server state
            if action.type == CLOSE_SESSION:
                commands.parse_message(sql.CloseSessionRequest, body, "action body")
                closed = sql.CloseSessionResult(status=sql.CloseSessionResult.CLOSED)  # type: ignore[attr-defined]
                return [flight.Result(closed.SerializeToString())]
            if action.type in KNOWN_UNSUPPORTED_ACTIONS:
                raise UnsupportedRequest(
                    f"the {action.type} action is not implemented by duckfleet yet"
                )
            raise UnsupportedRequest(
                f"unknown action type {action.type!r}; duckfleet implements: {', '.join(ACTIONS)}"
            )

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        with flight_call("ListActions", context):
            return list(ACTIONS.items())

    # --- DoPut / DoExchange: not served -----------------------------------------------

    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        with flight_call("DoPut", context) as call:
            if descriptor.descriptor_type != flight.DescriptorType.CMD:
                raise MalformedRequest("DoPut needs a Flight SQL command descriptor (type CMD)")
            command = commands.parse_command(descriptor.command, accept=commands.KNOWN_COMMANDS)
            call.what = sql.short_name(command)
            raise UnsupportedRequest(
                f"DoPut with {call.what} is not implemented by duckfleet: it answers queries "
                "only (no updates, ingestion or bound parameters yet)"
            )

    def do_exchange(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.MetadataRecordBatchWriter,
    ) -> None:
        with flight_call("DoExchange", context):
            raise UnsupportedRequest("DoExchange is not implemented by duckfleet")


def _batches(reader: pa.RecordBatchReader, call: Call) -> Iterator[pa.RecordBatch]:
    rows = 0
    try:
        for batch in reader:
            rows += batch.num_rows
            call.detail = f"rows={rows}"
            yield batch
    finally:
        reader.close()
