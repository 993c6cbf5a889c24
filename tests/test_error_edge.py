"""What a client sees of an error, from a real front door and a real worker: the
message and the right status code, nothing else (wire/status.py, wire/edge.py).

The protocol tests' bad requests (malformed commands, tickets and actions, bad SQL,
SQL the sandbox refuses, RPCs a server does not serve, missing or too weak
credentials) go over raw gRPC, so the exact message and every trailer pyarrow adds
are read, to a front door and a worker of the shared secure fleet (real processes,
auth on). No message or trailer may hold a traceback, a .py path, a source line or a
class name, and each status code is the one the protocol tests expect. SQL errors
through pyarrow.flight and the ADBC driver, as applications see them, are checked
the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_manager import Error as AdbcError
from secure_fleet import READER, READER_PASSWORD, SecureFleet, connect, login
from test_flight_protocol import any_message, varint

from duckfleet.client import statement_descriptor
from duckfleet.ids import QueryId, TaskId
from duckfleet.wire import commands, status, tickets
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(120)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
NOT_FOUND = grpc.StatusCode.NOT_FOUND



def _class_names() -> set[str]:
    """duckfleet's exception classes and pyarrow's (Python's end in Error or Exception)."""
    # every error class of a front door and a worker is defined once these are imported
    import duckfleet.flight.server
    import duckfleet.worker.worker  # noqa: F401
    from duckfleet.errors import DuckfleetError

    names: set[str] = set()
    todo: list[type] = [DuckfleetError, pa.ArrowException, fl.FlightError, status.StatusError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    # Status codes in the spelling Arrow ("<msg>. Detail: Unavailable") and the ADBC
    # driver ("(InvalidArgument; Prepare)") print them: not class names, whatever
    # some of ours are called.
    codes = {"Unauthenticated", "Unauthorized", "PermissionDenied", "Unavailable", "Internal"}
    codes |= {"Cancelled", "TimedOut", "InvalidArgument", "NotFound", "Unimplemented"}
    return names - codes


# What must never reach a client.
LEAKS: dict[str, re.Pattern[str]] = {
    "a traceback": re.compile(r"Traceback|most recent call"),
    "a .py path": re.compile(r"\.pyx?\b"),
    "a source line": re.compile(r'File "|line \d+, in \w'),
    "a class name": re.compile(
        r"\b(?:\w+(?:Error|Exception)|" + "|".join(sorted(_class_names())) + r")\b"
    ),
}


def assert_clean(text: str) -> None:
    for what, pattern in LEAKS.items():
        found = pattern.search(text)
        assert found is None, f"{what} ({found.group(0)!r}) reaches the client: {text!r}"


def test_the_check_catches_what_pyarrow_sends_by_default():
    before = (  # an INVALID_ARGUMENT raised as a plain pa.ArrowInvalid, as received
        "unknown table nope. Detail: Python exception: Traceback (most recent call last):\n"
        '  File "pyarrow/_flight.pyx", line 2222, in pyarrow._flight._get_flight_info\n'
        "pyarrow.lib.ArrowInvalid: unknown table nope\n"
    )
    for line in before.splitlines():
        with pytest.raises(AssertionError):
            assert_clean(line)
    for leak in ("at /srv/flight/server.py", "QueryNotFound: x", "a ValueError"):
        with pytest.raises(AssertionError):
            assert_clean(leak)
    assert_clean("unknown table 'nope'. Detail: Python exception: INVALID_ARGUMENT")


# --- raw gRPC, with the bearer token -------------------------------------------------------


def _flight_data(descriptor: fl.FlightDescriptor) -> bytes:
    # message FlightData { FlightDescriptor flight_descriptor = 1; ... }
    serialized = descriptor.serialize()
    return b"\x0a" + varint(len(serialized)) + serialized


def _command(message: object) -> bytes:
    return fl.FlightDescriptor.for_command(commands.pack(message)).serialize()  # type: ignore[arg-type]


def _query(text: str) -> bytes:
    return _command(sql.CommandStatementQuery(query=text))


def _raw_command(data: bytes) -> bytes:
    return fl.FlightDescriptor.for_command(data).serialize()


def _ticket(data: bytes) -> bytes:
    return fl.Ticket(data).serialize()


def _action(kind: str, body: bytes = b"") -> bytes:
    return fl.Action(kind, body).serialize()


URL = commands.TYPE_URL_PREFIX
UNKNOWN_RESULT = tickets.result_ticket(QueryId("0000000000000000"), TaskId("t0"))
BAD_QUERY_ID = commands.pack(
    sql.TicketStatementQuery(statement_handle=b'{"q":"x/y","t":"t0"}')
)
SUBSTRAIT = fl.FlightDescriptor.for_command(commands.pack(sql.CommandStatementSubstraitPlan()))

# (rpc, request, status code, words the message must carry): every bad request of the
# protocol tests (tests/test_flight_protocol.py), at a front door.
FRONT_DOOR_REQUESTS: list[tuple[str, bytes, grpc.StatusCode, str]] = [
    ("GetFlightInfo", _raw_command(b"\xff\x00garbage"), INVALID, "malformed Flight SQL command"),
    ("GetFlightInfo", _raw_command(any_message(f"{URL}acme.Widget")), INVALID, "acme.Widget"),
    (
        "GetFlightInfo",
        _raw_command(any_message(f"{URL}arrow.flight.protocol.sql.CommandFromTheFuture")),
        UNIMPLEMENTED,
        "CommandFromTheFuture",
    ),
    ("GetFlightInfo", SUBSTRAIT.serialize(), UNIMPLEMENTED, "CommandStatementSubstraitPlan"),
    ("GetFlightInfo", fl.FlightDescriptor.for_path("a").serialize(), INVALID, "type CMD"),
    ("GetFlightInfo", _query("SELEC 1"), INVALID, "SQL syntax error at line 1"),
    ("GetFlightInfo", _query("SELECT * FROM nope"), INVALID, "nope"),
    ("GetFlightInfo", _query("SELECT * FROM read_csv('/etc/passwd')"), INVALID, "READ_CSV()"),
    ("GetFlightInfo", _query("SELECT * FROM '/etc/passwd'"), INVALID, "file path"),
    ("GetFlightInfo", _query("  "), INVALID, "the SQL statement is empty"),
    (
        "GetFlightInfo",
        _command(sql.CommandStatementQuery(query="SELECT 1", transaction_id=b"t")),
        UNIMPLEMENTED,
        "transactions are not supported",
    ),
    (
        "GetFlightInfo",
        _command(sql.CommandPreparedStatementQuery(prepared_statement_handle=b"junk")),
        INVALID,
        "invalid prepared statement handle",
    ),
    ("GetSchema", _raw_command(b"\xff\x00garbage"), INVALID, "malformed Flight SQL command"),
    ("GetSchema", _query("SELECT * FROM nope"), INVALID, "nope"),
    ("DoGet", _ticket(b"not a ticket"), INVALID, "invalid ticket"),
    ("DoGet", _ticket(BAD_QUERY_ID), INVALID, "query id"),
    ("DoGet", _ticket(UNKNOWN_RESULT), NOT_FOUND, "0000000000000000"),
    ("DoAction", _action("Frobnicate"), UNIMPLEMENTED, "Frobnicate"),
    (
        "DoAction",
        _action("BeginTransaction", commands.pack(sql.ActionBeginTransactionRequest())),
        UNIMPLEMENTED,
        "BeginTransaction",
    ),
    ("DoAction", _action("CreatePreparedStatement", b"\xff"), INVALID, "malformed action body"),
    (
        "DoAction",
        _action("CreatePreparedStatement", commands.pack(sql.CommandStatementQuery())),
        INVALID,
        "expected ActionCreatePreparedStatementRequest",
    ),
    (
        "DoAction",
        _action(
            "CreatePreparedStatement",
            commands.pack(sql.ActionCreatePreparedStatementRequest(query="SELECT * FROM nope")),
        ),
        INVALID,
        "nope",
    ),
    (
        "DoAction",
        _action(
            "ClosePreparedStatement",
            commands.pack(sql.ActionClosePreparedStatementRequest(prepared_statement_handle=b"?")),
        ),
        INVALID,
        "invalid prepared statement handle",
    ),
    ("DoAction", _action("CancelFlightInfo"), INVALID, "carries no FlightInfo"),
    ("ListFlights", b"", UNIMPLEMENTED, "ListFlights"),
    ("DoPut", _flight_data(SUBSTRAIT), UNIMPLEMENTED, "CommandStatementSubstraitPlan"),
    ("DoExchange", _flight_data(SUBSTRAIT), UNIMPLEMENTED, "DoExchange"),
]

# ... and at a worker, which serves DoGet of the results it holds and nothing else.
WORKER_REQUESTS: list[tuple[str, bytes, grpc.StatusCode, str]] = [
    ("DoGet", _ticket(b"not a ticket"), INVALID, "invalid ticket"),
    ("DoGet", _ticket(BAD_QUERY_ID), INVALID, "query id"),
    ("DoGet", _ticket(UNKNOWN_RESULT), NOT_FOUND, "fetch it from a front door"),
    ("GetFlightInfo", _query("SELECT 1"), UNIMPLEMENTED, "front door"),
    ("GetSchema", _query("SELECT 1"), UNIMPLEMENTED, "front door"),
    ("DoAction", _action("CreatePreparedStatement"), UNIMPLEMENTED, "front door"),
    ("ListFlights", b"", UNIMPLEMENTED, "front door"),
    ("DoPut", _flight_data(SUBSTRAIT), UNIMPLEMENTED, "front door"),
    ("DoExchange", _flight_data(SUBSTRAIT), UNIMPLEMENTED, "front door"),
]

_KINDS = {
    "GetFlightInfo": "unary_unary",
    "GetSchema": "unary_unary",
    "DoGet": "unary_stream",
    "DoAction": "unary_stream",
    "ListFlights": "unary_stream",
    "DoPut": "stream_stream",
    "DoExchange": "stream_stream",
}


def rpc_error(
    channel: grpc.Channel, rpc: str, request: bytes, token: bytes | None
) -> grpc.RpcError:
    kind = _KINDS[rpc]
    method = getattr(channel, kind)(
        f"/arrow.flight.protocol.FlightService/{rpc}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    metadata = [("authorization", token.decode())] if token else []
    argument = iter([request]) if kind == "stream_stream" else request
    with pytest.raises(grpc.RpcError) as info:
        answer = method(argument, metadata=metadata, timeout=30)
        if kind != "unary_unary":
            list(answer)
    return info.value


def assert_error(error: grpc.RpcError, code: grpc.StatusCode, words: str) -> None:
    assert error.code() == code, (error.code(), error.details())
    message = error.details()
    assert words in message.split(". Detail: ")[0], message
    assert_clean(message)
    for key, value in error.trailing_metadata() or ():
        assert_clean(value.decode() if isinstance(value, bytes) else value)
        if key == "x-arrow-status-message-bin":
            assert words in value.decode()


@pytest.fixture(scope="module")
def admin_token(secure_fleet: SecureFleet) -> bytes:
    with fl.connect(secure_fleet.uri) as client:
        [(_, value)] = login(client).headers  # type: ignore[attr-defined]
    return value


def _channel(uri: str) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(uri.removeprefix("grpc://"))
    try:
        yield channel
    finally:
        channel.close()


@pytest.fixture(scope="module")
def front_door(secure_fleet: SecureFleet) -> Iterator[grpc.Channel]:
    yield from _channel(secure_fleet.uri)


@pytest.fixture(scope="module")
def worker(secure_fleet: SecureFleet) -> Iterator[grpc.Channel]:
    yield from _channel(secure_fleet.worker_locations()[0])


def _id(case: tuple[str, bytes, grpc.StatusCode, str]) -> str:
    return f"{case[0]}-{case[3][:30]}"


@pytest.mark.parametrize("case", FRONT_DOOR_REQUESTS, ids=_id)
def test_front_door_errors_are_the_message_and_the_code(front_door, admin_token, case):
    rpc, request, code, words = case
    assert_error(rpc_error(front_door, rpc, request, admin_token), code, words)


@pytest.mark.parametrize("case", WORKER_REQUESTS, ids=_id)
def test_worker_errors_are_the_message_and_the_code(worker, admin_token, case):
    rpc, request, code, words = case
    assert_error(rpc_error(worker, rpc, request, admin_token), code, words)


def test_credentials_errors_are_clean_at_both(front_door, worker, secure_fleet):
    error = rpc_error(front_door, "GetFlightInfo", _query("SELECT 1"), None)
    assert_error(error, grpc.StatusCode.UNAUTHENTICATED, "authentication required")
    error = rpc_error(worker, "DoGet", _ticket(UNKNOWN_RESULT), None)
    assert_error(error, grpc.StatusCode.UNAUTHENTICATED, "authentication required")
    with fl.connect(secure_fleet.uri) as client:
        [(_, reader)] = login(client, READER, READER_PASSWORD).headers  # type: ignore[attr-defined]
    error = rpc_error(front_door, "GetFlightInfo", _query("CREATE TABLE x AS SELECT 1"), reader)
    assert_error(error, grpc.StatusCode.PERMISSION_DENIED, "admin")


SQL_ERRORS = [
    ("SELEC 1", "SQL syntax error"),
    ("SELECT * FROM nope", "nope"),
    ("SELECT * FROM read_csv('/etc/passwd')", "READ_CSV() is not allowed"),
    ("SELECT 'x'::INTEGER", "Could not convert"),  # DuckDB's error, on a worker
]


@pytest.mark.parametrize(("text", "words"), SQL_ERRORS)
def test_sql_errors_through_pyarrow_and_adbc_are_clean(secure_fleet, text, words):
    with fl.connect(secure_fleet.uri) as client:
        with pytest.raises(pa.ArrowException) as info:
            info_ = client.get_flight_info(statement_descriptor(text), login(client))
            for endpoint in info_.endpoints:
                client.do_get(endpoint.ticket, login(client)).read_all()
    assert words in str(info.value)
    assert_clean(str(info.value))
    with connect(secure_fleet.uri) as conn, conn.cursor() as cur:
        with pytest.raises(AdbcError) as adbc_info:
            cur.execute(text)
            cur.fetch_arrow_table()
    assert words in str(adbc_info.value)
    assert_clean(str(adbc_info.value))
