"""The grpcio front door's pieces without a network: record batches as FlightData and
back (flight/flight_data.py), the poll descriptor (wire/poll_handle.py), and errors
as pyarrow's server sends them (flight/grpc_service.py)."""

from __future__ import annotations

import grpc
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from duckfleet.flight import flight_data
from duckfleet.flight.grpc_service import status_of
from duckfleet.wire import flight_messages as msg
from duckfleet.wire.poll_handle import is_poll_command, parse_poll_command, poll_command
from duckfleet.wire.status import InvalidArgument, NotFound, Unimplemented
from duckfleet.wire.tickets import InvalidTicket


def _round_trip(schema: pa.Schema, batches: list[pa.RecordBatch]) -> pa.Table:
    pairs = []
    for raw in flight_data.to_flight_data(schema, iter(batches)):
        data = msg.FlightData()
        data.ParseFromString(raw)
        pairs.append((data.data_header, data.data_body))
    return flight_data.PutReader(pairs).read_all()


TABLE = pa.table(
    {
        "n": pa.array([1, None, 3, 4, 5], pa.int64()),
        "s": pa.array(["a", "bb", None, "a", "ccc"]),
        "d": pa.array(["x", "y", "x", "z", "y"]).dictionary_encode(),
        "l": pa.array([[1], [], None, [2, 3], [4]], pa.list_(pa.int32())),
    }
)


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_batches_come_back_as_they_went(chunk):
    back = _round_trip(TABLE.schema, TABLE.to_batches(max_chunksize=chunk))
    assert back.equals(TABLE)


def test_a_stream_without_batches_still_sends_its_schema():
    raws = list(flight_data.to_flight_data(TABLE.schema, iter([])))
    assert len(raws) == 1
    back = _round_trip(TABLE.schema, [])
    assert back.schema == TABLE.schema and back.num_rows == 0


def test_nothing_sent_reads_as_an_empty_table():
    assert flight_data.PutReader([]).read_all().num_columns == 0


def test_the_poll_descriptor_names_its_query_and_progress():
    command = poll_command("q1", 0.25, ["t3", "t0"])
    assert is_poll_command(command)
    handle = parse_poll_command(command)
    assert (handle.query_id, handle.progress, handle.given) == ("q1", 0.25, ("t3", "t0"))
    assert parse_poll_command(poll_command("q1", 0.0)).given == ()
    for bad in (
        b'{"poll":"../x"}',
        b'{"poll":"q","p":2}',
        b'{"poll":',
        b'{"poll":"q","p":"x"}',
        b'{"poll":"q","e":"t0"}',
        b'{"poll":"q","e":["a/b"]}',
    ):
        with pytest.raises(InvalidTicket):
            parse_poll_command(bad)


@pytest.mark.parametrize(
    ("error", "code", "detail"),
    [
        (
            InvalidArgument("bad"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Python exception: INVALID_ARGUMENT",
        ),
        (NotFound("bad"), grpc.StatusCode.NOT_FOUND, "Python exception: NOT_FOUND"),
        (Unimplemented("bad"), grpc.StatusCode.UNIMPLEMENTED, "Python exception: UNIMPLEMENTED"),
        (fl.FlightUnavailableError("bad"), grpc.StatusCode.UNAVAILABLE, "Unavailable"),
        (fl.FlightTimedOutError("bad"), grpc.StatusCode.DEADLINE_EXCEEDED, "TimedOut"),
        (fl.FlightCancelledError("bad"), grpc.StatusCode.CANCELLED, "Cancelled"),
        (fl.FlightUnauthenticatedError("bad"), grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated"),
        (fl.FlightUnauthorizedError("bad"), grpc.StatusCode.PERMISSION_DENIED, "Unauthorized"),
        (fl.FlightInternalError("bad"), grpc.StatusCode.INTERNAL, "Internal"),
    ],
)
def test_errors_leave_as_pyarrow_s_server_sends_them(error, code, detail):
    got, message, trailers = status_of(error)
    assert (got, message) == (code, f"bad. Detail: {detail}")
    assert dict(trailers)["x-arrow-status-message-bin"] == b"bad"


def test_an_unexpected_error_is_internal_and_says_nothing_of_itself():
    code, message, _ = status_of(RuntimeError("/secret/path.py line 3"))
    assert code == grpc.StatusCode.INTERNAL
    assert "internal error in duckfleet (incident" in message and "secret" not in message
