"""The front door's Flight SQL server: the protocol, and nothing behind it.

Everything about planning, etcd and workers sits behind ``QueryBackend``; this class
turns Flight SQL requests into ``backend.run`` / ``backend.open_partition`` calls and
their outcomes into FlightInfo and record batch streams. It keeps no state between
calls: prepared-statement handles carry their SQL, tickets carry their query and task,
so any front door can serve any request.

Implemented:
    Handshake                   answers empty; with auth on, the auth middleware
                                (wire/auth.py) checks Basic user:password and sends
                                the bearer token back in the response headers
    GetFlightInfo               CommandStatementQuery, CommandPreparedStatementQuery
                                (a write statement runs right there and answers an
                                empty schema, no endpoints and its row count), the
                                metadata commands (metadata.py: GetSqlInfo,
                                GetXdbcTypeInfo, GetCatalogs, GetDbSchemas, GetTables,
                                GetTableTypes, GetPrimaryKeys, GetImportedKeys,
                                GetExportedKeys, GetCrossReference)
    GetSchema                   statements, prepared statements, metadata commands
    DoGet                       result tickets (fallback path: backend.open_partition),
                                explain tickets (backend.open_partition makes the answer),
                                front-door-local tickets (metadata commands)
    DoPut                       CommandPreparedStatementQuery (binds parameters: answers
                                a new handle carrying them), CommandStatementUpdate,
                                CommandPreparedStatementUpdate, CommandStatementIngest
                                (all answer DoPutUpdateResult with the row count)
    PollFlightInfo              (the grpcio front door only: flight/grpc_service.py)
                                statements and prepared statements, published and
                                answered at once with their progress (flight/poll.py)
    DoAction                    CreatePreparedStatement, ClosePreparedStatement,
                                SetSessionOptions, GetSessionOptions, CloseSession,
                                CancelFlightInfo, CancelQuery
    ListActions
Everything else (ListFlights, DoExchange, other commands and actions) answers
UNIMPLEMENTED (or INVALID_ARGUMENT if malformed), naming what was asked for.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf.message import Message

from duckfleet.control.records import QueryState
from duckfleet.flight import binding, metadata, parameter_values, poll, sessions
from duckfleet.flight.backend import QueryBackend, QueryOutcome
from duckfleet.flight.describe import NO_ROWS
from duckfleet.flight.statements import ClientStatement, executions, parse_statement_text
from duckfleet.flight.writes import IngestRequest
from duckfleet.planner.dialects import (
    DEFAULT_DIALECT,
    DialectError,
    DialectSyntaxError,
    check_dialect,
    to_duckdb,
)
from duckfleet.planner.errors import PlanError
from duckfleet.wire import commands, tickets
from duckfleet.wire import sql_messages as sql
from duckfleet.wire.auth import require_admin
from duckfleet.wire.commands import MalformedRequest, UnsupportedRequest
from duckfleet.wire.edge import FlightEdge
from duckfleet.wire.poll_handle import is_poll_command, parse_poll_command
from duckfleet.wire.status import Call, flight_call, translate_stream

# DoAction types (Flight SQL and Flight). Flight SQL bodies and results are wrapped in
# google.protobuf.Any; Flight's own session actions carry their messages raw.
CREATE_PREPARED_STATEMENT = "CreatePreparedStatement"
CLOSE_PREPARED_STATEMENT = "ClosePreparedStatement"
CLOSE_SESSION = "CloseSession"
SET_SESSION_OPTIONS = "SetSessionOptions"
GET_SESSION_OPTIONS = "GetSessionOptions"
CANCEL_FLIGHT_INFO = "CancelFlightInfo"
CANCEL_QUERY = "CancelQuery"  # Flight SQL's older form of CancelFlightInfo

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
    SET_SESSION_OPTIONS: (
        "Set client session options (catalog, schema, priority, dialect) by name/value "
        "pairs.\n"
        "Request Message: SetSessionOptionsRequest\n"
        "Response Message: SetSessionOptionsResult"
    ),
    GET_SESSION_OPTIONS: (
        "Get current client session options.\n"
        "Request Message: GetSessionOptionsRequest\n"
        "Response Message: GetSessionOptionsResult"
    ),
    CLOSE_SESSION: (
        "Explicitly close/invalidate the cookie-specified client session.\n"
        "Request Message: CloseSessionRequest\n"
        "Response Message: CloseSessionResult"
    ),
    CANCEL_FLIGHT_INFO: (
        "Explicitly cancel a running FlightInfo.\n"
        "Request Message: CancelFlightInfoRequest\n"
        "Response Message: CancelFlightInfoResult"
    ),
    CANCEL_QUERY: (
        "Explicitly cancel a running query.\n"
        "Request Message: ActionCancelQueryRequest\n"
        "Response Message: ActionCancelQueryResult"
    ),
}

KNOWN_UNSUPPORTED_ACTIONS = frozenset(
    {
        "BeginTransaction",
        "EndTransaction",
        "BeginSavepoint",
        "EndSavepoint",
        "CreatePreparedSubstraitPlan",
        "RenewFlightEndpoint",
    }
)


# Longer statements are refused before parsing: a request that size is a mistake or an
# attack, and planning time grows faster than the text.
MAX_SQL_BYTES = 1 << 20


class AcceptAnyAuthHandler(flight.ServerAuthHandler):
    """The Handshake body: any payload, an empty answer. Credentials travel in headers,
    checked by the auth middleware (wire/auth.py) before this runs."""

    def authenticate(
        self, outgoing: flight.ServerAuthSender, incoming: flight.ServerAuthReader
    ) -> None:
        with flight_call("Handshake"):
            # Nothing to read: reading past the client's last message would raise.
            outgoing.write(b"")

    def is_valid(self, token: bytes) -> bytes:
        return b""


class FrontDoorServer(FlightEdge):
    """A Flight SQL server that hands every query to ``backend``.

    ``location``: where to listen, e.g. ``grpc://0.0.0.0:31337`` (port 0: a free one).
    ``advertise``: the URI others reach this front door at; defaults to ``location``
    with the port actually bound. Other keyword arguments go to FlightServerBase
    (``tls_certificates``, ``middleware``, ``auth_handler``, ...).
    """

    serves = "a front door"

    def __init__(
        self,
        location: str,
        backend: QueryBackend,
        advertise: str | None = None,
        served_bytes: Callable[[int], None] = lambda n: None,  # metrics: each batch's bytes
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("auth_handler", AcceptAnyAuthHandler())
        middleware = dict(kwargs.pop("middleware", None) or {})
        middleware.setdefault(sessions.MIDDLEWARE_KEY, sessions.SessionMiddlewareFactory())
        super().__init__(location, middleware=middleware, **kwargs)
        self._backend = backend
        self._served_bytes = served_bytes
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
            text, params = self._statement(command, context)
            dialect = self._client_dialect(command, context)
            with _sent_as(dialect, text):
                return self._execute(context, call, descriptor, text, params, dialect)

    def get_schema(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.SchemaResult:
        with flight_call("GetSchema", context) as call:
            command = self._command(descriptor, call)
            if call.what in metadata.COMMANDS:
                return flight.SchemaResult(metadata.result_schema(command))
            text, _ = self._statement(command, context)
            self._backend.check_read(text, call.identity)  # grants (flight/access.py)
            return flight.SchemaResult(self._backend.prepare(text).dataset_schema)

    def poll_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> poll.PollAnswer:
        """PollFlightInfo (the grpcio front door serves it): a statement is published
        and answered at once, with its progress; flight/poll.py says what is answered."""
        with flight_call("PollFlightInfo", context) as call:
            cmd = (
                descriptor.command
                if descriptor.descriptor_type == flight.DescriptorType.CMD
                else b""
            )
            if is_poll_command(cmd):
                handle = parse_poll_command(cmd)
                call.what, call.query_id = "poll", handle.query_id
                polled = self._backend.poll(handle.query_id, call.identity, handle.given)
                call.detail = f"progress={polled.progress:.3f}"
                return poll.answer(
                    descriptor, polled.outcome, polled.progress, polled.finished, handle.progress
                )
            command = self._command(descriptor, call)
            if call.what not in metadata.COMMANDS:
                text, params = self._statement(command, context)
                if params is None and not parse_statement_text(text).is_update:
                    dialect = self._client_dialect(command, context)
                    with _sent_as(dialect, text):
                        started = self._backend.start(
                            text,
                            priority=self._priority(context),
                            user=call.identity.user,
                            role=call.identity.role,
                            dialect=dialect,
                        )
                    if isinstance(started, QueryOutcome):  # answered at once
                        call.query_id = started.query_id
                        return poll.whole(self._flight_info(descriptor, started))
                    call.query_id = started
                    polled = self._backend.poll(started, call.identity)
                    return poll.answer(descriptor, polled.outcome, polled.progress, polled.finished)
        return poll.whole(self.get_flight_info(context, descriptor))

    def _command(self, descriptor: flight.FlightDescriptor, call: Call) -> Message:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise MalformedRequest(
                "duckfleet serves Flight SQL commands: the FlightDescriptor must be of type CMD, "
                "not PATH"
            )
        command = commands.parse_command(descriptor.command)
        call.what = sql.short_name(command)
        return command

    def _statement(
        self, command: Message, context: flight.ServerCallContext | None
    ) -> tuple[str, str | None]:
        """The DuckDB SQL of a statement (transpiled from the client's dialect) or
        prepared statement (its handle holds DuckDB SQL), and its bound parameters."""
        if isinstance(command, sql.CommandStatementQuery | sql.CommandStatementUpdate):
            if command.HasField("transaction_id"):
                raise UnsupportedRequest("transactions are not supported by duckfleet")
            text = _checked_sql(command.query)  # type: ignore[attr-defined]
            return self._to_duckdb(text, context), None
        handle = command.prepared_statement_handle  # type: ignore[attr-defined]
        parsed = tickets.parse_handle(handle)
        return _checked_sql(parsed.sql), parsed.params

    def _to_duckdb(self, text: str, context: flight.ServerCallContext | None) -> str:
        """`text` in this call's dialect as DuckDB SQL (planner/dialects.py); the
        catalog's column types tell integer from other division."""
        return to_duckdb(text, self._dialect(context), self._backend.catalog)

    def _dialect(self, context: flight.ServerCallContext | None) -> str:
        """The SQL dialect of this call: its x-duckfleet-dialect header, else the
        session's dialect option, else DuckDB's (flight/sessions.py)."""
        session = sessions.middleware_of(context)
        if session is None:
            return DEFAULT_DIALECT
        if session.dialect is not None:
            return check_dialect(session.dialect)
        if session.fresh:
            return DEFAULT_DIALECT
        return sessions.dialect_of(self._backend.session(session.session_id))

    def _client_dialect(
        self, command: Message, context: flight.ServerCallContext | None
    ) -> str | None:
        """The dialect a statement's text was transpiled from (a prepared statement's
        handle says); None: DuckDB's own."""
        if not isinstance(command, sql.CommandStatementQuery | sql.CommandStatementUpdate):
            handle = command.prepared_statement_handle  # type: ignore[attr-defined]
            return tickets.parse_handle(handle).dialect
        dialect = self._dialect(context)
        return None if dialect == DEFAULT_DIALECT else dialect

    def _execute(
        self,
        context: flight.ServerCallContext,
        call: Call,
        descriptor: flight.FlightDescriptor,
        text: str,
        params: str | None,
        dialect: str | None = None,
    ) -> flight.FlightInfo:
        """Run a statement once per bound parameter row. A query answers every
        run's partitions, in order; a write runs now and answers its row count.
        ``dialect``: the one `text` was transpiled from (EXPLAIN shows it)."""
        statement = parse_statement_text(text)
        runs = executions(statement, self._bound(statement, params))
        priority = self._priority(context)
        if statement.is_update:
            self._require_write(call, statement.action)
            count = sum(self._backend.update(run, priority=priority) for run in runs)
            call.detail = f"update rows={count}"
            return flight.FlightInfo(NO_ROWS, descriptor, [], count, 0)
        outcomes = [
            self._backend.run(
                run,
                priority=priority,
                cancelled=context.is_cancelled,
                user=call.identity.user,
                role=call.identity.role,
                **({"dialect": dialect} if dialect is not None else {}),
            )
            for run in runs
        ]
        call.query_id = ",".join(o.query_id for o in outcomes)
        partitions = [p for o in outcomes for p in o.partitions]
        call.detail = f"partitions={len(partitions)} rows={sum(o.rows for o in outcomes)}"
        if len(outcomes) == 1:
            return self._flight_info(descriptor, outcomes[0])
        endpoints = [flight.FlightEndpoint(p.ticket, list(p.locations)) for p in partitions]
        rows = sum(o.rows for o in outcomes)
        size = sum(o.bytes for o in outcomes)
        return flight.FlightInfo(outcomes[0].schema, descriptor, endpoints, rows, size)

    def _require_write(self, call: Call, what: str = "") -> None:
        """Every path that changes the catalog or writes files (or grants) passes
        through here first: admins only may write (wire/auth.py)."""
        require_admin(call, what or call.what or "a write")

    def _priority(self, context: flight.ServerCallContext | None) -> int:
        session = sessions.middleware_of(context)
        if session is None or session.fresh:
            return 0
        return sessions.priority_of(self._backend.session(session.session_id))

    def _flight_info(
        self, descriptor: flight.FlightDescriptor, outcome: QueryOutcome
    ) -> flight.FlightInfo:
        endpoints = [flight.FlightEndpoint(p.ticket, list(p.locations)) for p in outcome.partitions]
        return flight.FlightInfo(outcome.schema, descriptor, endpoints, outcome.rows, outcome.bytes)

    # --- DoGet ------------------------------------------------------------------------

    def do_get(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> flight.FlightDataStream:
        return flight.GeneratorStream(*self.do_get_batches(context, ticket))

    def do_get_batches(
        self, context: flight.ServerCallContext, ticket: flight.Ticket
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """DoGet's answer: its schema and batches (the grpcio front door sends them too)."""
        with flight_call("DoGet", context, finish=False) as call:
            parsed = tickets.parse_ticket(ticket.ticket)
            if isinstance(parsed, tickets.LocalTicket):
                call.what = sql.short_name(parsed.command)
                table = metadata.result_table(  # what the caller may read (grants)
                    parsed.command, lambda: self._backend.readable_catalog(call.identity)
                )
                call.detail = f"rows={table.num_rows}"
                return table.schema, translate_stream(call, table.to_batches())
            if isinstance(parsed, tickets.ExplainTicket):
                call.what = "explain"
                call.query_id = parsed.query_id
                self._backend.check_read(parsed.sql, call.identity)
            else:
                call.what = f"task={parsed.task_id}"
                call.query_id = parsed.query_id
            reader = self._backend.open_partition(ticket.ticket)
            batches = translate_stream(call, _batches(reader, call, self._served_bytes))
            return reader.schema, batches

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
                text = _checked_sql(request.query)  # type: ignore[attr-defined]
                dialect = self._dialect(context)
                text = to_duckdb(text, dialect, self._backend.catalog)  # the handle: DuckDB SQL
                source = None if dialect == DEFAULT_DIALECT else dialect
                self._backend.check_read(text, call.identity)  # grants (flight/access.py)
                with _sent_as(source, text):
                    prepared = self._backend.prepare(text)
                call.detail = "update" if prepared.is_update else "query"
                result = sql.ActionCreatePreparedStatementResult(
                    prepared_statement_handle=tickets.prepared_statement_handle(text, None, source),
                    dataset_schema=prepared.dataset_schema.serialize().to_pybytes(),
                    parameter_schema=prepared.parameter_schema.serialize().to_pybytes(),
                )
                return [flight.Result(commands.pack(result))]
            if action.type == CLOSE_PREPARED_STATEMENT:
                request = commands.unpack(
                    body, sql.ActionClosePreparedStatementRequest, "action body"
                )
                tickets.parse_prepared_statement_handle(request.prepared_statement_handle)  # type: ignore[attr-defined]
                return []  # handles hold no server state
            if action.type in (SET_SESSION_OPTIONS, GET_SESSION_OPTIONS, CLOSE_SESSION):
                return [flight.Result(self._session_action(context, action.type, body))]
            if action.type == CANCEL_FLIGHT_INFO:
                request = commands.parse_message(sql.CancelFlightInfoRequest, body, "action body")
                done = self._cancel(request.info, call)  # type: ignore[attr-defined]
                status = "CANCEL_STATUS_CANCELLED" if done else "CANCEL_STATUS_NOT_CANCELLABLE"
                result = sql.CancelFlightInfoResult(status=status)
                return [flight.Result(result.SerializeToString())]
            if action.type == CANCEL_QUERY:
                request = commands.unpack(body, sql.ActionCancelQueryRequest, "action body")
                done = self._cancel(request.info, call)  # type: ignore[attr-defined]
                status = "CANCEL_RESULT_CANCELLED" if done else "CANCEL_RESULT_NOT_CANCELLABLE"
                result = sql.ActionCancelQueryResult(result=status)
                return [flight.Result(commands.pack(result))]
            if action.type in KNOWN_UNSUPPORTED_ACTIONS:
                raise UnsupportedRequest(
                    f"the {action.type} action is not implemented by duckfleet yet"
                )
            raise UnsupportedRequest(
                f"unknown action type {action.type!r}; duckfleet implements: {', '.join(ACTIONS)}"
            )

    def _session_action(
        self, context: flight.ServerCallContext | None, kind: str, body: bytes
    ) -> bytes:
        """Flight's session actions: raw messages in and out (no Any)."""
        middleware = sessions.middleware_of(context)
        if middleware is None:  # a server built without the session middleware
            raise UnsupportedRequest(f"{kind}: sessions need the session cookie middleware")
        session_id = middleware.session_id
        stored = None if middleware.fresh else self._backend.session(session_id)
        if kind == SET_SESSION_OPTIONS:
            request = commands.parse_message(sql.SetSessionOptionsRequest, body, "action body")
            applied = sessions.apply_options(stored or {}, request)
            self._backend.save_session(session_id, applied.options)
            errors = {
                name: sql.SetSessionOptionsResult.Error(value=code)  # type: ignore[attr-defined]
                for name, code in applied.errors.items()
            }
            return sql.SetSessionOptionsResult(errors=errors).SerializeToString()
        if kind == GET_SESSION_OPTIONS:
            commands.parse_message(sql.GetSessionOptionsRequest, body, "action body")
            options = sessions.options_message(stored or {})
            return sql.GetSessionOptionsResult(session_options=options).SerializeToString()
        commands.parse_message(sql.CloseSessionRequest, body, "action body")
        if stored is not None:
            self._backend.close_session(session_id)
        closed = sql.CloseSessionResult(status=sql.CloseSessionResult.CLOSED)  # type: ignore[attr-defined]
        return closed.SerializeToString()

    def _cancel(self, info: bytes, call: Call) -> bool:
        """Cancel the query a serialized FlightInfo answered; True if it is cancelled
        now (or was already), False if it had failed and cannot be."""
        if not info:
            raise MalformedRequest("the cancel request carries no FlightInfo")
        try:
            endpoints = flight.FlightInfo.deserialize(info).endpoints
        except (pa.ArrowException, TypeError, ValueError):
            raise MalformedRequest("the cancel request's FlightInfo does not parse") from None
        queries = {
            t.query_id
            for t in (tickets.parse_ticket(e.ticket.ticket) for e in endpoints)
            if isinstance(t, tickets.ResultTicket)
        }
        queries |= poll.polled_query(flight.FlightInfo.deserialize(info))  # PollInfo's info
        if not queries:
            raise MalformedRequest(
                "the FlightInfo names no query duckfleet is running: only the answer to a "
                "statement or prepared statement can be cancelled"
            )
        states = []
        for q in sorted(queries):
            call.query_id = q
            states.append(self._backend.cancel(q).state)
        call.detail = "states=" + ",".join(states)
        return all(s == QueryState.CANCELLED for s in states)

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        with flight_call("ListActions", context):
            return list(ACTIONS.items())

    # --- DoPut ------------------------------------------------------------------------

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
            if isinstance(command, sql.CommandPreparedStatementQuery):
                text, _ = self._statement(command, context)
                params = binding.encode(binding.to_ipc(_read_all(reader)))
                dialect = self._client_dialect(command, context)
                handle = tickets.prepared_statement_handle(text, params, dialect)
                result = sql.DoPutPreparedStatementResult(prepared_statement_handle=handle)
                writer.write(pa.py_buffer(result.SerializeToString()))
                return
            if isinstance(command, sql.CommandStatementUpdate):
                count = self._update(context, call, self._statement(command, context)[0], None)
            elif isinstance(command, sql.CommandPreparedStatementUpdate):
                text, params = self._statement(command, context)
                data = _read_all(reader)
                if data.num_columns:  # parameters bound with this very call
                    params = binding.encode(binding.to_ipc(data))
                count = self._update(context, call, text, params)
            elif isinstance(command, sql.CommandStatementIngest):
                self._require_write(call)
                count = self._backend.ingest(_ingest_request(command), _read_all(reader))
            else:
                raise UnsupportedRequest(f"DoPut with {call.what} is not implemented by duckfleet")
            call.detail = f"rows={count}"
            writer.write(
                pa.py_buffer(sql.DoPutUpdateResult(record_count=count).SerializeToString())
            )

    def _update(
        self, context: flight.ServerCallContext, call: Call, text: str, params: str | None
    ) -> int:
        statement = parse_statement_text(text)
        runs = executions(statement, self._bound(statement, params))
        if not statement.is_update:
            raise MalformedRequest(
                "this statement returns rows, it is not an update: execute it as a query "
                "(GetFlightInfo with CommandStatementQuery or CommandPreparedStatementQuery)"
            )
        self._require_write(call, statement.action)
        priority = self._priority(context)
        return sum(self._backend.update(run, priority=priority) for run in runs)

    def _bound(self, statement: ClientStatement, params: str | None) -> list[list[Any]] | None:
        """The bound rows, each value made its parameter's declared type."""
        return parameter_values.bound_rows(
            statement, _parameter_rows(params), self._backend.catalog
        )


def _read_all(reader: flight.MetadataRecordBatchReader) -> pa.Table:
    """Every batch a DoPut client sent: none at all when it sent not even a schema."""
    try:
        return reader.read_all()
    except OSError as exc:
        if "never sent a data message" in str(exc):
            return pa.table({})
        raise


def _parameter_rows(params: str | None) -> list[list[Any]] | None:
    if params is None:
        return None
    return binding.rows(binding.from_ipc(binding.decode(params)))  # type: ignore[return-value]


_NOT_EXIST = {0: True, 1: True, 2: False}  # UNSPECIFIED, CREATE, FAIL
_EXISTS = {0: "fail", 1: "fail", 2: "append", 3: "replace"}  # UNSPECIFIED, FAIL, APPEND, REPLACE


def _ingest_request(command: Message) -> IngestRequest:
    if command.temporary:  # type: ignore[attr-defined]
        raise UnsupportedRequest("temporary tables are not supported by duckfleet")
    if command.HasField("transaction_id"):
        raise UnsupportedRequest("transactions are not supported by duckfleet")
    for field, ours in (("catalog", metadata.CATALOG_NAME), ("schema", metadata.DB_SCHEMA_NAME)):
        if command.HasField(field) and getattr(command, field).lower() not in ("", ours):
            raise MalformedRequest(
                f"{field} {getattr(command, field)!r} does not exist; duckfleet has one: {ours}"
            )
    options = command.table_definition_options  # type: ignore[attr-defined]
    return IngestRequest(
        table=command.table,  # type: ignore[attr-defined]
        create=_NOT_EXIST.get(options.if_not_exist, False),
        if_exists=_EXISTS.get(options.if_exists, "fail"),
    )


def _checked_sql(text: str) -> str:
    if not text.strip():
        raise MalformedRequest("the SQL statement is empty")
    size = len(text.encode())
    if size > MAX_SQL_BYTES:
        raise MalformedRequest(
            f"the SQL statement is {size} bytes; duckfleet accepts at most {MAX_SQL_BYTES} "
            "bytes: put large value lists in a table"
        )
    return text


SHOWN_SQL_CHARS = 400  # of the transpiled statement, in an error message


@contextlib.contextmanager
def _sent_as(dialect: str | None, text: str) -> Iterator[None]:
    """A planner error about a statement transpiled from `dialect` says so, and shows
    the DuckDB SQL it was about (its line and column are that text's)."""
    try:
        yield
    except (DialectError, DialectSyntaxError):
        raise  # they name the dialect already
    except PlanError as exc:
        if dialect is None:
            raise
        shown = text if len(text) <= SHOWN_SQL_CHARS else text[:SHOWN_SQL_CHARS] + " ..."
        exc.args = (f"{exc} (sent as {dialect} SQL, which reads as this DuckDB SQL: {shown})",)
        raise


def _batches(
    reader: pa.RecordBatchReader, call: Call, served: Callable[[int], None]
) -> Iterator[pa.RecordBatch]:
    rows = 0
    try:
        for batch in reader:
            rows += batch.num_rows
            call.detail = f"rows={rows}"
            served(batch.nbytes)
            yield batch
    finally:
        reader.close()
