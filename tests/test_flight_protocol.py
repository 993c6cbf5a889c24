"""Protocol unit tests for duckfleet.flight (the Flight SQL front door).

These are ONLY protocol tests: the backend below runs DuckDB in-process and cuts each
result into a few partitions; there is no etcd, no planner and no worker. They check
what travels on the wire (message encodings, tickets, GetSqlInfo, status codes,
messages) with pyarrow.flight, raw gRPC and the real ADBC Flight SQL driver. The
end-to-end tests with etcd and real worker processes live elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import threading
from collections.abc import Iterator

import adbc_driver_flightsql.dbapi as adbc
import duckdb
import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from adbc_driver_manager import AdbcStatusCode
from google.protobuf import any_pb2
from test_flight_metadata import SQL_INFO, assert_spec_schema

from duckfleet.catalog import Catalog, Column, Table
from duckfleet.control.errors import (
    QueryFailed,
    QueryNotFound,
    QueryTimeout,
    ResultsLost,
    StoreUnavailable,
)
from duckfleet.control.records import QueryState, QueryStatus
from duckfleet.flight import sql_info
from duckfleet.flight.backend import Partition, QueryOutcome
from duckfleet.flight.describe import Describer, Prepared
from duckfleet.flight.server import FrontDoorServer
from duckfleet.flight.writes import IngestRequest
from duckfleet.ids import QueryId, TaskId, new_query_id, task_id
from duckfleet.planner.errors import SqlSyntaxError, UnknownTableError
from duckfleet.wire import commands, status, tickets
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(60)


# --- an in-process stand-in for the fleet ------------------------------------------------


class DuckDBBackend:
    """QueryBackend for protocol tests: DuckDB in this process, results kept in a dict."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.results: dict[tuple[QueryId, TaskId], pa.Table] = {}
        self.lock = threading.Lock()
        self.fail_with: Exception | None = None  # raised by the next run()
        self.stream_fail_with: Exception | None = None  # raised mid-stream by open_partition
        self.priorities: list[int] = []  # of every run()
        self.updates: list[str] = []  # every update() statement, as bound
        self.ingested: list[tuple[IngestRequest, pa.Table]] = []
        self.sessions: dict[str, dict] = {}
        self.describer = Describer()

    def prepare(self, sql_text: str) -> Prepared:
        return self.describer.prepare(sql_text, self.catalog())

    def update(self, sql_text: str, *, priority: int = 0) -> int:
        self.updates.append(sql_text)
        return 7  # a stand-in row count

    def ingest(self, request: IngestRequest, data: pa.Table) -> int:
        self.ingested.append((request, data))
        return data.num_rows

    def session(self, session_id: str) -> dict | None:
        return self.sessions.get(session_id)

    def save_session(self, session_id: str, options: dict) -> None:
        self.sessions[session_id] = dict(options)

    def close_session(self, session_id: str) -> bool:
        return self.sessions.pop(session_id, None) is not None

    def run(self, sql_text: str, *, priority: int = 0, **options: object) -> QueryOutcome:
        self.priorities.append(priority)
        self.options = options  # what the server passed besides the SQL and priority
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        try:
            table = duckdb.connect().sql(sql_text).arrow().read_all()
        except duckdb.ParserException as exc:
            raise _syntax_error(str(exc)) from None
        except duckdb.CatalogException as exc:
            raise UnknownTableError(str(exc)) from None
        query_id = new_query_id()
        size = -(-table.num_rows // self.partitions) or 1
        parts = []
        for n in range(self.partitions):
            chunk = table.slice(n * size, size)
            with self.lock:
                self.results[(query_id, task_id(n))] = chunk
            ticket = tickets.result_ticket(query_id, task_id(n))
            parts.append(Partition(ticket, (), chunk.num_rows, chunk.nbytes))
        return QueryOutcome(query_id, table.schema, tuple(parts))

    def cancel(self, query_id: QueryId) -> QueryStatus:
        with self.lock:
            dropped = [k for k in self.results if k[0] == query_id]
            for k in dropped:
                del self.results[k]
        if not dropped:
            raise QueryNotFound(f"query {query_id} is unknown or its results have expired")
        return QueryStatus(QueryState.CANCELLED, error="cancelled at the client's request")

    def catalog(self) -> Catalog:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        columns = (
            Column("id", "BIGINT"),
            Column("name", "VARCHAR"),
            Column("price", "DECIMAL(15,2)"),
        )
        return Catalog(tables={"t": Table("t", columns, ())})

    def check_read(self, sql_text: str, who: object) -> None:
        pass  # no grants here: everyone reads everything

    def readable_catalog(self, who: object) -> Catalog:
        return self.catalog()

    def open_partition(self, ticket: bytes) -> pa.RecordBatchReader:
        query_id, task = tickets.parse_result_ticket(ticket)
        with self.lock:
            table = self.results.get((query_id, task))
        if table is None:
            raise QueryNotFound(f"no result for query {query_id} task {task}; run the query again")
        if self.stream_fail_with is not None:
            error = self.stream_fail_with

            def failing() -> Iterator[pa.RecordBatch]:
                yield from table.to_batches()[:1]
                raise error

            return pa.RecordBatchReader.from_batches(table.schema, failing())
        return table.to_reader()


def _syntax_error(message: str) -> SqlSyntaxError:
    # DuckDB: '...\n\nLINE 1: SELEC 1\n        ^^^^^'
    match = re.search(r"LINE (\d+): .*\n( *)\^", message)
    if match is None:
        return SqlSyntaxError(message)
    line = int(match.group(1))
    column = len(match.group(2)) - len(f"LINE {line}: ") + 1
    return SqlSyntaxError(message.split("\n")[0], line, column)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def backend() -> DuckDBBackend:
    return DuckDBBackend()


@pytest.fixture
def server(backend: DuckDBBackend) -> Iterator[FrontDoorServer]:
    srv = FrontDoorServer("grpc://127.0.0.1:0", backend)
    try:
        yield srv
    finally:
        srv.shutdown()


@pytest.fixture
def client(server: FrontDoorServer) -> Iterator[flight.FlightClient]:
    with flight.connect(f"grpc://127.0.0.1:{server.port}") as c:
        yield c


@pytest.fixture
def raw(server: FrontDoorServer) -> Iterator[RawFlight]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield RawFlight(channel)
    finally:
        channel.close()


@pytest.fixture
def adbc_conn(server: FrontDoorServer) -> Iterator[adbc.Connection]:
    with pytest.warns(Warning, match="autocommit"):  # no transactions: expected, harmless
        conn = adbc.connect(f"grpc://127.0.0.1:{server.port}")
    try:
        yield conn
    finally:
        conn.close()


class RawFlight:
    """FlightService over plain gRPC, to see the exact status codes and messages."""

    def __init__(self, channel: grpc.Channel) -> None:
        def method(kind: str, name: str) -> grpc.UnaryStreamMultiCallable:
            factory = getattr(channel, kind)
            return factory(
                f"/arrow.flight.protocol.FlightService/{name}",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )

        self._get_flight_info = method("unary_unary", "GetFlightInfo")
        self._do_get = method("unary_stream", "DoGet")
        self._do_action = method("unary_stream", "DoAction")
        self._handshake = method("stream_stream", "Handshake")

    def get_flight_info(self, command: bytes) -> bytes:
        return self._get_flight_info(flight.FlightDescriptor.for_command(command).serialize())

    def do_get(self, ticket: bytes) -> list[bytes]:
        return list(self._do_get(flight.Ticket(ticket).serialize()))

    def do_action(self, action_type: str, body: bytes = b"") -> list[bytes]:
        """The bodies of the arrow.flight.protocol.Result messages."""
        results = self._do_action(flight.Action(action_type, body).serialize())
        return [_result_body(result) for result in results]

    def handshake(self, requests: list[bytes]) -> list[bytes]:
        return list(self._handshake(iter(requests)))


def _result_body(result: bytes) -> bytes:
    # message Result { bytes body = 1; }: tag 0x0a, varint length, body (or nothing)
    if not result:
        return b""
    assert result[0] == 0x0A
    length, shift, pos = 0, 0, 1
    while True:
        byte = result[pos]
        length |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            break
    assert len(result) == pos + length
    return result[pos:]


def rpc_error(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def run_query(client: flight.FlightClient, query: str) -> pa.Table:
    descriptor = flight.FlightDescriptor.for_command(
        commands.pack(sql.CommandStatementQuery(query=query))
    )
    info = client.get_flight_info(descriptor)
    tables = [client.do_get(e.ticket).read_all() for e in info.endpoints]
    return pa.concat_tables(tables) if tables else info.schema.empty_table()


def assert_still_serves(client: flight.FlightClient) -> None:
    table = run_query(client, "SELECT sum(range) AS s FROM range(100)")
    assert table.column("s").to_pylist() == [4950]


# --- messages --------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@pytest.mark.parametrize(
    ("message", "encoding"),
    [
        (sql.CommandStatementQuery(query="SELECT 1"), b"\x0a\x08SELECT 1"),
        (sql.CommandStatementQuery(query="q", transaction_id=b"t"), b"\x0a\x01q\x12\x01t"),
        (sql.CommandGetSqlInfo(info=[0, 1000]), b"\x0a\x03\x00\xe8\x07"),  # packed uint32
        (sql.CommandGetXdbcTypeInfo(data_type=4), b"\x08\x04"),
        (sql.CommandGetDbSchemas(catalog=""), b"\x0a\x00"),  # proto3 optional: presence kept
        (sql.CommandGetTables(table_types=["T"], include_schema=True), b"\x22\x01T\x28\x01"),
        (sql.CommandGetPrimaryKeys(table="t"), b"\x1a\x01t"),
        (sql.CommandGetCrossReference(pk_table="p", fk_table="f"), b"\x1a\x01p\x32\x01f"),
        (sql.TicketStatementQuery(statement_handle=b"h"), b"\x0a\x01h"),
        (sql.CommandPreparedStatementQuery(prepared_statement_handle=b"h"), b"\x0a\x01h"),
        (
            sql.ActionCreatePreparedStatementResult(
                prepared_statement_handle=b"h", dataset_schema=b"d", parameter_schema=b"p"
            ),
            b"\x0a\x01h\x12\x01d\x1a\x01p",
        ),
        (
            sql.ActionCreatePreparedStatementRequest(query="q", transaction_id=b"t"),
            b"\x0a\x01q\x12\x01t",
        ),
        (
            sql.ActionEndTransactionRequest(
                transaction_id=b"t", action=sql.ActionEndTransactionRequest.END_TRANSACTION_ROLLBACK
            ),
            b"\x0a\x01t\x10\x02",
        ),
        (sql.ActionBeginSavepointRequest(transaction_id=b"t", name="s"), b"\x0a\x01t\x12\x01s"),
        (sql.DoPutUpdateResult(record_count=-1), b"\x08" + b"\xff" * 9 + b"\x01"),
        (
            sql.CommandStatementIngest(table="t", options={"a": "b"}),
            b"\x12\x01t" + varint(1000 << 3 | 2) + b"\x06\x0a\x01a\x12\x01b",
        ),
        (
            sql.ActionCancelQueryResult(result=sql.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED),
            b"\x08\x01",
        ),
        (sql.CloseSessionResult(status=sql.CloseSessionResult.CLOSED), b"\x08\x01"),
        (sql.SessionOptionValue(int64_value=1), b"\x19" + struct.pack("<q", 1)),  # sfixed64
        (sql.CloseSessionRequest(), b""),
    ],
    ids=lambda v: sql.short_name(v) if hasattr(v, "DESCRIPTOR") else None,
)
def test_message_encodings_match_flight_sql_proto(message, encoding):
    assert message.SerializeToString(deterministic=True) == encoding
    parsed = type(message)()
    parsed.ParseFromString(encoding)
    assert parsed == message


def test_every_command_of_the_spec_is_declared():
    expected = {
        "CommandStatementQuery", "TicketStatementQuery", "CommandPreparedStatementQuery",
        "ActionCreatePreparedStatementRequest", "ActionCreatePreparedStatementResult",
        "ActionClosePreparedStatementRequest", "CommandGetSqlInfo", "CommandGetCatalogs",
        "CommandGetDbSchemas", "CommandGetTables", "CommandGetTableTypes",
        "CommandGetXdbcTypeInfo", "CommandGetPrimaryKeys", "CommandGetExportedKeys",
        "CommandGetImportedKeys", "CommandGetCrossReference", "CommandStatementUpdate",
        "CommandPreparedStatementUpdate", "CommandStatementIngest", "DoPutUpdateResult",
        "ActionCancelQueryRequest", "ActionCancelQueryResult", "ActionBeginTransactionRequest",
        "ActionEndTransactionRequest", "ActionBeginSavepointRequest", "ActionEndSavepointRequest",
        "CommandStatementSubstraitPlan", "ActionCreatePreparedSubstraitPlanRequest",
    }  # fmt: skip
    declared = {name.rsplit(".", 1)[1] for name in sql.CLASSES if name.startswith(sql.SQL_PACKAGE)}
    assert expected <= declared
    assert {"CloseSessionRequest", "CloseSessionResult"} <= {
        name.rsplit(".", 1)[1] for name in sql.CLASSES if name.startswith(sql.FLIGHT_PACKAGE + ".")
    }


@pytest.mark.parametrize("full_name", sorted(sql.CLASSES))
def test_any_round_trip(full_name):
    message = sql.CLASSES[full_name]()
    packed = commands.pack(message)
    envelope = any_pb2.Any.FromString(packed)
    assert envelope.type_url == f"type.googleapis.com/{full_name}"
    assert commands.unpack(packed) == message


def test_pack_has_the_standard_any_layout():
    packed = commands.pack(sql.CommandStatementQuery(query="SELECT 1"))
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    payload = b"\x0a\x08SELECT 1"
    assert packed == b"\x0a" + bytes([len(url)]) + url + b"\x12" + bytes([len(payload)]) + payload


# --- commands ---------------------------------------------------------------------------------


def any_message(type_url: str, value: bytes = b"") -> bytes:
    return any_pb2.Any(type_url=type_url, value=value).SerializeToString()


def test_parse_command_returns_the_typed_message():
    command = commands.parse_command(commands.pack(sql.CommandStatementQuery(query="SELECT 1")))
    assert isinstance(command, sql.CommandStatementQuery)
    assert command.query == "SELECT 1"


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (
            commands.pack(sql.CommandStatementSubstraitPlan()),
            commands.UnsupportedRequest,
            "CommandStatementSubstraitPlan is not implemented by duckfleet yet",
        ),
        (
            commands.pack(sql.CommandStatementUpdate(query="DELETE FROM t")),
            commands.UnsupportedRequest,
            "CommandStatementUpdate is not implemented",
        ),
        (
            any_message("type.googleapis.com/arrow.flight.protocol.sql.CommandFromTheFuture"),
            commands.UnsupportedRequest,
            "arrow.flight.protocol.sql.CommandFromTheFuture",
        ),
        (any_message("type.googleapis.com/acme.Widget"), commands.MalformedRequest, "acme.Widget"),
        (
            commands.pack(sql.TicketStatementQuery()),
            commands.MalformedRequest,
            "TicketStatementQuery is not a Flight SQL command",
        ),
        (b"\xff\xff\xff", commands.MalformedRequest, "malformed Flight SQL command"),
        (b"", commands.MalformedRequest, "malformed Flight SQL command"),
        (b"SELECT 1", commands.MalformedRequest, "malformed Flight SQL command"),
        (
            any_message(commands.type_url(sql.CommandStatementQuery), b"\x0a\x02\xff\xfe"),
            commands.MalformedRequest,
            "CommandStatementQuery payload does not parse",
        ),
    ],
)
def test_parse_command_errors(data, error, text):
    with pytest.raises(error, match=re.escape(text)):
        commands.parse_command(data)


# --- tickets and handles ----------------------------------------------------------------------


def test_result_ticket_round_trip_and_encoding():
    ticket = tickets.result_ticket(QueryId("0123456789abcdef"), TaskId("t3"))
    assert tickets.parse_result_ticket(ticket) == ("0123456789abcdef", "t3")
    handle = b'{"q":"0123456789abcdef","t":"t3"}'
    assert ticket == commands.pack(sql.TicketStatementQuery(statement_handle=handle))


def test_result_ticket_ignores_extra_keys():
    handle = json.dumps({"q": "abc", "t": "t1", "p": 7}).encode()
    ticket = commands.pack(sql.TicketStatementQuery(statement_handle=handle))
    assert tickets.parse_result_ticket(ticket) == ("abc", "t1")


def _statement_ticket(handle: bytes) -> bytes:
    return commands.pack(sql.TicketStatementQuery(statement_handle=handle))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xff",
        b"x" * 5000,
        commands.pack(sql.CommandStatementQuery(query="SELECT 1")),
        any_message("type.googleapis.com/acme.Widget"),
        _statement_ticket(b"not json"),
        _statement_ticket(b"\xff\xfe"),
        _statement_ticket(b"[1, 2]"),
        _statement_ticket(b'{"q": "abc"}'),
        _statement_ticket(b'{"q": "abc", "t": 3}'),
        _statement_ticket(b'{"q": "../../etc", "t": "t0"}'),
        _statement_ticket(b'{"q": "", "t": "t0"}'),
        _statement_ticket(json.dumps({"q": "a" * 65, "t": "t0"}).encode()),
        tickets.local_ticket(sql.CommandGetSqlInfo()),
    ],
)
def test_parse_result_ticket_rejects_anything_else(data):
    with pytest.raises(tickets.InvalidTicket):
        tickets.parse_result_ticket(data)


def test_result_ticket_refuses_ids_that_cannot_round_trip():
    with pytest.raises(ValueError):
        tickets.result_ticket(QueryId("a/b"), TaskId("t0"))


def test_local_ticket_carries_the_command():
    ticket = tickets.parse_ticket(tickets.local_ticket(sql.CommandGetSqlInfo(info=[0, 3])))
    assert isinstance(ticket, tickets.LocalTicket)
    assert list(ticket.command.info) == [0, 3]


def test_prepared_statement_handle_round_trip():
    text = "SELECT 'é' AS \"x\" -- comment\nFROM range(3)"
    handle = tickets.prepared_statement_handle(text)
    assert tickets.parse_prepared_statement_handle(handle) == text
    for bad in (b"", b"{}", b'{"sql": 1}', b"\xff", b"[]"):
        with pytest.raises(tickets.InvalidTicket):
            tickets.parse_prepared_statement_handle(bad)


# --- GetSqlInfo ---------------------------------------------------------------------------------


def test_sql_info_schema_is_the_spec_schema():
    assert_spec_schema(sql_info.SCHEMA, SQL_INFO)  # FlightSql.proto's text, parsed
    table = sql_info.sql_info_table()
    assert_spec_schema(table.schema, SQL_INFO)
    table.validate(full=True)


def test_sql_info_values_and_filtering():
    table = sql_info.sql_info_table([0, 3, 8, 9999, 0])
    names, values = table.column("info_name").to_pylist(), table.column("value").to_pylist()
    rows = dict(zip(names, values, strict=True))
    assert list(rows) == [0, 3, 8]  # unknown ids left out, duplicates once, request order
    assert rows[0] == "duckfleet"
    assert rows[3] is True
    assert rows[8] == 0  # SQL_SUPPORTED_TRANSACTION_NONE, as int32
    everything = sql_info.sql_info_table()
    assert everything.num_rows == len(sql_info.server_info())
    assert sql_info.sql_info_table([9999]).num_rows == 0


def test_sql_info_covers_every_union_member():
    info = {
        1: (sql_info.STRING, "s"),
        2: (sql_info.BOOL, False),
        3: (sql_info.BIGINT, 2**40),
        4: (sql_info.INT32, 5),
        5: (sql_info.STRING_LIST, ["a", "b"]),
        6: (sql_info.INT32_MAP, {1: [2, 3]}),
    }
    table = sql_info.sql_info_table(info=info)
    table.validate(full=True)
    values = table.column("value").to_pylist()
    assert values[:5] == ["s", False, 2**40, 5, ["a", "b"]]
    assert values[5] == [(1, [2, 3])]


# --- status translation (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "exception"),
    [
        (SqlSyntaxError("bad", 1, 8), "INVALID_ARGUMENT", status.InvalidArgument),
        (UnknownTableError("no table t"), "INVALID_ARGUMENT", status.InvalidArgument),
        (commands.MalformedRequest("m"), "INVALID_ARGUMENT", status.InvalidArgument),
        (tickets.InvalidTicket("t"), "INVALID_ARGUMENT", status.InvalidArgument),
        (commands.UnsupportedRequest("u"), "UNIMPLEMENTED", status.Unimplemented),
        (QueryNotFound("gone"), "NOT_FOUND", status.NotFound),
        (StoreUnavailable("down"), "UNAVAILABLE", flight.FlightUnavailableError),
        (ResultsLost("lost"), "UNAVAILABLE", flight.FlightUnavailableError),
        (QueryTimeout("slow"), "DEADLINE_EXCEEDED", flight.FlightTimedOutError),
        (QueryFailed("boom"), "INTERNAL", flight.FlightInternalError),
        (RuntimeError("bug"), "", flight.FlightInternalError),
    ],
)
def test_translation_table(error, code, exception):
    assert status.classify(error)[0] == code
    translated = status.to_flight_error(error)
    assert type(translated) is exception
    if code:
        assert str(error) in str(translated)


# --- the server over pyarrow.flight and raw gRPC ---------------------------------------------


def test_statement_query_endpoints_and_data(client, backend):
    descriptor = flight.FlightDescriptor.for_command(
        commands.pack(sql.CommandStatementQuery(query="SELECT range AS x FROM range(10)"))
    )
    info = client.get_flight_info(descriptor)
    assert info.schema == pa.schema([("x", pa.int64())])
    assert len(info.endpoints) == backend.partitions
    assert info.total_records == 10
    assert info.total_bytes > 0
    assert info.descriptor == descriptor
    rows = []
    for endpoint in info.endpoints:
        assert endpoint.locations == []
        tickets.parse_result_ticket(endpoint.ticket.ticket)  # a duckfleet result ticket
        rows += client.do_get(endpoint.ticket).read_all().column("x").to_pylist()
    assert rows == list(range(10))


def test_endpoint_locations_come_from_the_partitions(client, backend):
    outcome = QueryOutcome(
        QueryId("feedfacefeedface"),
        pa.schema([("x", pa.int64())]),
        (Partition(b"tk", ("grpc://worker-1:9000", "grpc://door-2:8815"), 1, 8),),
    )
    backend.run = lambda sql_text, **options: outcome  # type: ignore[method-assign]
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(commands.pack(sql.CommandStatementQuery(query="x")))
    )
    [endpoint] = info.endpoints
    assert endpoint.ticket.ticket == b"tk"
    assert [loc.uri.decode() for loc in endpoint.locations] == [
        "grpc://worker-1:9000",
        "grpc://door-2:8815",
    ]


def test_prepared_statement_is_stateless_across_front_doors(backend, raw):
    [result] = raw.do_action(
        "CreatePreparedStatement",
        commands.pack(sql.ActionCreatePreparedStatementRequest(query="SELECT 41 + 1 AS v")),
    )
    created = commands.unpack(result, sql.ActionCreatePreparedStatementResult)
    handle = created.prepared_statement_handle
    other = FrontDoorServer("grpc://127.0.0.1:0", backend)  # a different front door
    try:
        with flight.connect(f"grpc://127.0.0.1:{other.port}") as c:
            command = sql.CommandPreparedStatementQuery(prepared_statement_handle=handle)
            info = c.get_flight_info(flight.FlightDescriptor.for_command(commands.pack(command)))
            table = pa.concat_tables(c.do_get(e.ticket).read_all() for e in info.endpoints)
            assert table.column("v").to_pylist() == [42]
            close = sql.ActionClosePreparedStatementRequest(prepared_statement_handle=handle)
            assert (
                list(c.do_action(flight.Action("ClosePreparedStatement", commands.pack(close))))
                == []
            )
    finally:
        other.shutdown()


def test_sql_info_via_flight(client):
    command = commands.pack(sql.CommandGetSqlInfo(info=[0, 2]))
    descriptor = flight.FlightDescriptor.for_command(command)
    info = client.get_flight_info(descriptor)
    assert info.schema.equals(sql_info.SCHEMA)
    [endpoint] = info.endpoints
    assert endpoint.locations == []  # redeem on this same connection
    table = client.do_get(endpoint.ticket).read_all()
    assert table.schema.equals(sql_info.SCHEMA)
    assert table.column("value").to_pylist() == ["duckfleet", pa.__version__]
    assert client.get_schema(descriptor).schema.equals(sql_info.SCHEMA)


def test_metadata_while_the_catalog_is_unreachable_is_unavailable(client, backend):
    descriptor = flight.FlightDescriptor.for_command(commands.pack(sql.CommandGetTables()))
    [endpoint] = client.get_flight_info(descriptor).endpoints  # needs no catalog yet
    backend.fail_with = StoreUnavailable("etcd: connection refused")
    with pytest.raises(flight.FlightUnavailableError, match="etcd"):
        client.do_get(endpoint.ticket).read_all()
    names = client.do_get(endpoint.ticket).read_all().column("table_name").to_pylist()
    assert names == ["t", "queries", "tasks", "workers"]  # main, then the system schema
    catalogs = commands.pack(sql.CommandGetCatalogs())  # answered without the catalog
    backend.fail_with = StoreUnavailable("etcd: connection refused")
    [endpoint] = client.get_flight_info(flight.FlightDescriptor.for_command(catalogs)).endpoints
    assert client.do_get(endpoint.ticket).read_all().num_rows == 1
    backend.fail_with = None
    assert_still_serves(client)


def test_handshake_accepts_anything(client, raw):
    assert client.authenticate_basic_token("anyone", "anything") == (b"", b"")
    assert raw.handshake([]) == [b""]
    assert raw.handshake([b"\x12\x03abc"]) == [b""]
    assert_still_serves(client)


def test_advertised_location_has_the_bound_port(server, backend):
    assert server.advertised_location == f"grpc://127.0.0.1:{server.port}"
    other = FrontDoorServer("grpc://127.0.0.1:0", backend, advertise="grpc://door-1:8815")
    try:
        assert other.advertised_location == "grpc://door-1:8815"
    finally:
        other.shutdown()


def test_list_actions(client):
    types = {action.type for action in client.list_actions()}
    assert types == {
        "CreatePreparedStatement",
        "ClosePreparedStatement",
        "SetSessionOptions",
        "GetSessionOptions",
        "CloseSession",
        "CancelFlightInfo",
        "CancelQuery",
    }


def test_close_session_answers_closed_raw_not_any(raw):
    [body] = raw.do_action("CloseSession", sql.CloseSessionRequest().SerializeToString())
    result = sql.CloseSessionResult.FromString(body)
    assert result.status == sql.CloseSessionResult.CLOSED


@pytest.mark.parametrize(
    ("command", "code", "text"),
    [
        (
            commands.pack(sql.CommandStatementSubstraitPlan()),
            grpc.StatusCode.UNIMPLEMENTED,
            "CommandStatementSubstraitPlan is not implemented by duckfleet yet",
        ),
        (
            commands.pack(sql.CommandStatementUpdate(query="DELETE FROM t")),
            grpc.StatusCode.UNIMPLEMENTED,
            "CommandStatementUpdate is not implemented by duckfleet yet",
        ),
        (
            any_message("type.googleapis.com/arrow.flight.protocol.sql.CommandFromTheFuture"),
            grpc.StatusCode.UNIMPLEMENTED,
            "arrow.flight.protocol.sql.CommandFromTheFuture",
        ),
        (
            any_message("type.googleapis.com/acme.Widget"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "acme.Widget",
        ),
        (b"\xff\x00garbage", grpc.StatusCode.INVALID_ARGUMENT, "malformed Flight SQL command"),
        (
            commands.pack(sql.CommandStatementQuery(query="SELEC 1")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "SQL syntax error at line 1, column 1",
        ),
        (
            commands.pack(sql.CommandStatementQuery(query="SELECT * FROM nope")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "nope",
        ),
        (
            commands.pack(sql.CommandStatementQuery(query="SELECT 1", transaction_id=b"t")),
            grpc.StatusCode.UNIMPLEMENTED,
            "transactions are not supported",
        ),
        (
            commands.pack(sql.CommandStatementQuery(query="  ")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "the SQL statement is empty",
        ),
        (
            commands.pack(sql.CommandPreparedStatementQuery(prepared_statement_handle=b"junk")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid prepared statement handle",
        ),
    ],
)
def test_get_flight_info_errors_then_still_serving(raw, client, command, code, text):
    error = rpc_error(raw.get_flight_info, command)
    assert error.code() == code
    assert text in error.details().split(". Detail: ")[0]  # our message, before pyarrow's detail
    assert_still_serves(client)


def test_path_descriptor_is_invalid(client):
    with pytest.raises(pa.ArrowInvalid, match="must be of type CMD"):
        client.get_flight_info(flight.FlightDescriptor.for_path("a", "b"))
    assert_still_serves(client)


@pytest.mark.parametrize(
    ("action", "body", "code", "text"),
    [
        (
            "BeginTransaction",
            commands.pack(sql.ActionBeginTransactionRequest()),
            grpc.StatusCode.UNIMPLEMENTED,
            "the BeginTransaction action is not implemented",
        ),
        ("CancelFlightInfo", b"", grpc.StatusCode.INVALID_ARGUMENT, "carries no FlightInfo"),
        ("Frobnicate", b"", grpc.StatusCode.UNIMPLEMENTED, "unknown action type 'Frobnicate'"),
        (
            "CreatePreparedStatement",
            b"\xff",
            grpc.StatusCode.INVALID_ARGUMENT,
            "malformed action body",
        ),
        (
            "CreatePreparedStatement",
            commands.pack(sql.CommandStatementQuery()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected ActionCreatePreparedStatementRequest",
        ),
        (
            "ClosePreparedStatement",
            commands.pack(sql.ActionClosePreparedStatementRequest(prepared_statement_handle=b"?")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid prepared statement handle",
        ),
    ],
)
def test_do_action_errors_then_still_serving(raw, client, action, body, code, text):
    error = rpc_error(raw.do_action, action, body)
    assert error.code() == code
    assert text in error.details()
    assert_still_serves(client)


def test_do_put_of_an_unsupported_command_is_unimplemented_naming_it(client):
    descriptor = flight.FlightDescriptor.for_command(
        commands.pack(sql.CommandStatementSubstraitPlan())
    )
    writer, _ = client.do_put(descriptor, pa.schema([("a", pa.int64())]))
    with pytest.raises(pa.ArrowNotImplementedError, match="DoPut with CommandStatementSubst"):
        writer.write_table(pa.table({"a": [1]}))
        writer.close()
    assert_still_serves(client)


def _do_put(client, command, table=None) -> bytes:
    descriptor = flight.FlightDescriptor.for_command(commands.pack(command))
    schema = table.schema if table is not None else pa.schema([])
    writer, reader = client.do_put(descriptor, schema)
    if table is not None:
        writer.write_table(table)
    writer.done_writing()
    answer = reader.read()
    writer.close()
    return answer.to_pybytes()


def test_do_put_statement_update_answers_the_row_count_raw(client, backend):
    answer = _do_put(client, sql.CommandStatementUpdate(query="DROP VIEW IF EXISTS v"))
    assert sql.DoPutUpdateResult.FromString(answer).record_count == 7
    assert backend.updates == ["DROP VIEW IF EXISTS v"]


def test_do_put_statement_update_of_a_query_is_invalid(client, backend):
    with pytest.raises(pa.ArrowInvalid, match="not an update"):
        _do_put(client, sql.CommandStatementUpdate(query="SELECT 1"))
    assert backend.updates == []
    assert_still_serves(client)


def test_prepared_update_runs_once_per_parameter_row(client, backend):
    handle = prepare(client, "CREATE OR REPLACE VIEW v AS SELECT ? AS a, ? AS b")
    rows = pa.table({"0": [1, 2], "1": ["x", "it's"]})
    command = sql.CommandPreparedStatementUpdate(prepared_statement_handle=handle)
    answer = _do_put(client, command, rows)
    assert sql.DoPutUpdateResult.FromString(answer).record_count == 14  # 7 per row
    assert backend.updates == [
        "CREATE OR REPLACE VIEW v AS SELECT CAST('1' AS BIGINT) AS a, 'x' AS b",
        "CREATE OR REPLACE VIEW v AS SELECT CAST('2' AS BIGINT) AS a, 'it''s' AS b",
    ]


def test_prepared_insert_values_binds_every_row_into_one_statement(client, backend):
    handle = prepare(client, "INSERT INTO t (id, name) VALUES (?, ?)")
    rows = pa.table({"0": [1, None], "1": ["a", "b"]})
    command = sql.CommandPreparedStatementUpdate(prepared_statement_handle=handle)
    _do_put(client, command, rows)
    assert backend.updates == [
        "INSERT INTO t (id, name) VALUES (CAST('1' AS BIGINT), 'a'), (CAST(NULL AS BIGINT), 'b')"
    ]


def test_ingest_reaches_the_backend_with_its_mode(client, backend):
    options = sql.CommandStatementIngest.TableDefinitionOptions(
        if_not_exist=sql.CommandStatementIngest.TableDefinitionOptions.TABLE_NOT_EXIST_OPTION_CREATE,
        if_exists=sql.CommandStatementIngest.TableDefinitionOptions.TABLE_EXISTS_OPTION_APPEND,
    )
    command = sql.CommandStatementIngest(table="events", table_definition_options=options)
    answer = _do_put(client, command, pa.table({"a": [1, 2, 3]}))
    assert sql.DoPutUpdateResult.FromString(answer).record_count == 3
    [(request, data)] = backend.ingested
    assert (request.table, request.create, request.if_exists) == ("events", True, "append")
    assert data.column("a").to_pylist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (sql.CommandStatementIngest(table="x", temporary=True), "temporary tables"),
        (sql.CommandStatementIngest(table="x", schema="other"), "schema 'other' does not exist"),
    ],
)
def test_ingest_refusals(client, command, text):
    error = pa.ArrowNotImplementedError if "temporary" in text else pa.ArrowInvalid
    with pytest.raises(error) as info:
        _do_put(client, command, pa.table({"a": [1]}))
    assert text in str(info.value)
    assert_still_serves(client)


def prepare(client, text: str) -> bytes:
    request = sql.ActionCreatePreparedStatementRequest(query=text)
    [result] = client.do_action(flight.Action("CreatePreparedStatement", commands.pack(request)))
    created = commands.unpack(result.body.to_pybytes(), sql.ActionCreatePreparedStatementResult)
    return created.prepared_statement_handle


def test_create_prepared_statement_answers_both_schemas(client):
    request = sql.ActionCreatePreparedStatementRequest(
        query="SELECT id, name || ? AS label FROM t WHERE price > ? AND id IN ($1)".replace(
            "$1", "?"
        )
    )
    [result] = client.do_action(flight.Action("CreatePreparedStatement", commands.pack(request)))
    created = commands.unpack(result.body.to_pybytes(), sql.ActionCreatePreparedStatementResult)
    dataset = pa.ipc.read_schema(pa.py_buffer(created.dataset_schema))
    parameters = pa.ipc.read_schema(pa.py_buffer(created.parameter_schema))
    assert dataset == pa.schema([("id", pa.int64()), ("label", pa.utf8())])
    assert parameters == pa.schema(
        [("1", pa.utf8()), ("2", pa.decimal128(15, 2)), ("3", pa.int64())]
    )


def test_a_write_statement_prepares_with_an_empty_dataset_schema(client):
    request = sql.ActionCreatePreparedStatementRequest(query="DROP TABLE t")
    [result] = client.do_action(flight.Action("CreatePreparedStatement", commands.pack(request)))
    created = commands.unpack(result.body.to_pybytes(), sql.ActionCreatePreparedStatementResult)
    assert pa.ipc.read_schema(pa.py_buffer(created.dataset_schema)) == pa.schema([])


def test_bound_parameters_travel_in_the_handle_to_another_front_door(client, backend):
    handle = prepare(client, "SELECT ? + 1 AS v")
    command = sql.CommandPreparedStatementQuery(prepared_statement_handle=handle)
    answer = _do_put(client, command, pa.table({"0": [41, 1, 9]}))
    bound = sql.DoPutPreparedStatementResult.FromString(answer).prepared_statement_handle
    assert bound != handle
    other = FrontDoorServer("grpc://127.0.0.1:0", backend)  # knows nothing of this client
    try:
        with flight.connect(f"grpc://127.0.0.1:{other.port}") as c:
            bound_command = sql.CommandPreparedStatementQuery(prepared_statement_handle=bound)
            descriptor = flight.FlightDescriptor.for_command(commands.pack(bound_command))
            info = c.get_flight_info(descriptor)
            table = pa.concat_tables(c.do_get(e.ticket).read_all() for e in info.endpoints)
    finally:
        other.shutdown()
    assert table.column("v").to_pylist() == [42, 2, 10]  # one result per row, in order


def test_executing_without_binding_says_how_many_parameters(client):
    handle = prepare(client, "SELECT ? AS a, ? AS b")
    command = sql.CommandPreparedStatementQuery(prepared_statement_handle=handle)
    with pytest.raises(pa.ArrowInvalid, match="takes 2 parameter"):
        client.get_flight_info(flight.FlightDescriptor.for_command(commands.pack(command)))


def test_get_schema_of_statements_and_prepared_statements(client):
    query = sql.CommandStatementQuery(query="SELECT id, price * 2 AS p FROM t")
    schema = client.get_schema(flight.FlightDescriptor.for_command(commands.pack(query))).schema
    assert schema == pa.schema([("id", pa.int64()), ("p", pa.decimal128(18, 2))])
    prepared = sql.CommandPreparedStatementQuery(
        prepared_statement_handle=prepare(client, "DROP VIEW v")
    )
    descriptor = flight.FlightDescriptor.for_command(commands.pack(prepared))
    assert client.get_schema(descriptor).schema == pa.schema([])


def test_session_options_round_trip_through_the_cookie(server, backend):
    with flight.connect(f"grpc://127.0.0.1:{server.port}") as c:
        request = sql.SetSessionOptionsRequest(
            session_options={
                "priority": sql.SessionOptionValue(int64_value=5),
                "schema": sql.SessionOptionValue(string_value="other"),
                "colour": sql.SessionOptionValue(string_value="blue"),
            }
        )
        [body] = c.do_action(flight.Action("SetSessionOptions", request.SerializeToString()))
        result = sql.SetSessionOptionsResult.FromString(body.body.to_pybytes())
        errors = {name: error.value for name, error in result.errors.items()}
        codes = sql.SetSessionOptionsResult.ErrorValue
        assert errors == {
            "schema": codes.Value("INVALID_VALUE"),
            "colour": codes.Value("INVALID_NAME"),
        }
    [(session_id, options)] = backend.sessions.items()
    assert options == {"priority": 5}
    cookie = (b"cookie", f"arrow_flight_session_id={session_id}".encode())
    with flight.connect(f"grpc://127.0.0.1:{server.port}") as c:
        call = flight.FlightCallOptions(headers=[cookie])
        [body] = c.do_action(
            flight.Action("GetSessionOptions", sql.GetSessionOptionsRequest().SerializeToString()),
            call,
        )
        got = sql.GetSessionOptionsResult.FromString(body.body.to_pybytes()).session_options
        assert got["priority"].int64_value == 5
        assert got["catalog"].string_value == "duckfleet"
        descriptor = flight.FlightDescriptor.for_command(
            commands.pack(sql.CommandStatementQuery(query="SELECT 1 AS one"))
        )
        c.get_flight_info(descriptor, call)
        assert backend.priorities[-1] == 5
        [body] = c.do_action(
            flight.Action("CloseSession", sql.CloseSessionRequest().SerializeToString()), call
        )
    assert backend.sessions == {}


@pytest.mark.parametrize(
    ("ticket", "code", "text"),
    [
        (b"not a ticket", grpc.StatusCode.INVALID_ARGUMENT, "invalid ticket"),
        (_statement_ticket(b'{"q":"x/y","t":"t0"}'), grpc.StatusCode.INVALID_ARGUMENT, "query id"),
        (
            tickets.result_ticket(QueryId("0000000000000000"), TaskId("t0")),
            grpc.StatusCode.NOT_FOUND,
            "no result for query 0000000000000000",
        ),
    ],
)
def test_do_get_errors_then_still_serving(raw, client, ticket, code, text):
    error = rpc_error(raw.do_get, ticket)
    assert error.code() == code
    assert text in error.details()
    assert_still_serves(client)


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (
            StoreUnavailable("etcd: connection refused"),
            grpc.StatusCode.UNAVAILABLE,
            "the fleet's state store (etcd) is unreachable; retry shortly",
        ),
        (
            QueryTimeout("query 1 did not finish within 30s"),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "did not finish within 30s",
        ),
        (
            QueryFailed("task t3 failed: Conversion Error"),
            grpc.StatusCode.INTERNAL,
            "query failed: task t3 failed: Conversion Error",
        ),
        (RuntimeError("a bug"), grpc.StatusCode.INTERNAL, "internal error in duckfleet"),
    ],
)
def test_backend_errors_reach_the_client(raw, client, backend, error, code, text):
    backend.fail_with = error
    failure = rpc_error(raw.get_flight_info, commands.pack(sql.CommandStatementQuery(query="x")))
    assert failure.code() == code
    assert text in failure.details()
    assert "Traceback" not in failure.details()  # these codes come out clean
    assert_still_serves(client)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StoreUnavailable("gone"), grpc.StatusCode.UNAVAILABLE),
        (QueryNotFound("result expired"), grpc.StatusCode.NOT_FOUND),
        (ValueError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_mid_stream_are_translated(raw, client, backend, error, code):
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(
            commands.pack(sql.CommandStatementQuery(query="SELECT range FROM range(30)"))
        )
    )
    backend.stream_fail_with = error
    failure = rpc_error(raw.do_get, info.endpoints[0].ticket.ticket)
    assert failure.code() == code
    backend.stream_fail_with = None
    assert_still_serves(client)


def test_one_log_line_per_request_with_the_query_id(client, caplog):
    caplog.set_level(logging.INFO, logger="duckfleet.flight")
    run_query(client, "SELECT range AS x FROM range(3)")
    lines = [r.getMessage() for r in caplog.records if r.name == "duckfleet.flight"]
    [info_line] = [line for line in lines if line.startswith("GetFlightInfo")]
    query_id = re.search(r"query=(\w+)", info_line).group(1)
    do_gets = [line for line in lines if line.startswith("DoGet")]
    assert len(do_gets) == 3
    assert all(f"query={query_id}" in line and " OK " in line for line in do_gets)


def test_unexpected_errors_are_logged_with_a_traceback(client, backend, caplog):
    caplog.set_level(logging.INFO, logger="duckfleet.flight")
    backend.fail_with = ZeroDivisionError("division by zero")
    with pytest.raises(flight.FlightInternalError) as info:
        run_query(client, "SELECT 1")
    incident = re.search(r"incident (\w+)", str(info.value)).group(1)
    assert "ZeroDivision" not in str(info.value) and "division by zero" not in str(info.value)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"incident={incident}" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_an_unexpected_error_mid_stream_is_logged_with_its_query_id_and_traceback(
    raw, client, backend, caplog
):
    caplog.set_level(logging.INFO, logger="duckfleet.flight")
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(
            commands.pack(sql.CommandStatementQuery(query="SELECT range FROM range(30)"))
        )
    )
    query_id, _ = tickets.parse_result_ticket(info.endpoints[0].ticket.ticket)
    backend.stream_fail_with = TypeError("a bug in a reader")
    failure = rpc_error(raw.do_get, info.endpoints[0].ticket.ticket)
    assert failure.code() == grpc.StatusCode.INTERNAL
    assert "TypeError" not in failure.details() and "a bug" not in failure.details()
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"query={query_id}" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is TypeError


# --- the real ADBC Flight SQL driver -----------------------------------------------------------


def test_adbc_execute_and_fetch(adbc_conn):
    with adbc_conn.cursor() as cur:
        cur.execute("SELECT range AS x, range * 2 AS y FROM range(100) ORDER BY x")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 100
    assert table.column("y").to_pylist() == [2 * i for i in range(100)]


def test_adbc_statement_query_without_prepare(adbc_conn):
    with adbc_conn.cursor() as cur:
        stmt = cur.adbc_statement
        stmt.set_sql_query("SELECT 7 AS z")
        handle, _ = stmt.execute_query()
        table = pa.RecordBatchReader._import_from_c(handle.address).read_all()
    assert table.column("z").to_pylist() == [7]


def test_adbc_get_info(adbc_conn):
    info = adbc_conn.adbc_get_info()
    assert info["vendor_name"] == "duckfleet"
    assert info["vendor_arrow_version"] == pa.__version__
    assert info["vendor_version"]


def test_adbc_syntax_error_is_invalid_argument_and_server_keeps_serving(adbc_conn):
    with adbc_conn.cursor() as cur:
        with pytest.raises(adbc.ProgrammingError) as info:
            cur.execute("SELEC 1")
        assert info.value.status_code == AdbcStatusCode.INVALID_ARGUMENT
        assert "INVALID_ARGUMENT" in str(info.value)
        assert "SQL syntax error at line 1" in str(info.value)
        cur.execute("SELECT 1 AS one")
        assert cur.fetch_arrow_table().column("one").to_pylist() == [1]


def test_adbc_metadata_from_the_backend_catalog(adbc_conn):
    assert adbc_conn.adbc_get_table_types() == ["SYSTEM TABLE", "TABLE", "VIEW"]
    assert adbc_conn.adbc_get_table_schema("t").names == ["id", "name", "price"]
    with pytest.raises(adbc.Error) as info:
        adbc_conn.adbc_get_table_schema("nope")
    assert info.value.status_code == AdbcStatusCode.NOT_FOUND
    with adbc_conn.cursor() as cur:
        cur.execute("SELECT 2 AS two")
        assert cur.fetch_arrow_table().column("two").to_pylist() == [2]


def test_adbc_bound_parameters(adbc_conn):
    with adbc_conn.cursor() as cur:
        cur.execute("SELECT ? AS p, ? AS q", parameters=(1, "x"))
        assert cur.fetch_arrow_table().to_pylist() == [{"p": 1, "q": "x"}]
