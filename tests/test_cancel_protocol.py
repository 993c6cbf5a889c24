"""CancelFlightInfo and CancelQuery on the wire, against the in-process stand-in
backend of test_flight_protocol (no etcd, no workers: see test_query_lifecycle for
the fleet)."""

# ruff: noqa: F811  (the fixtures are imported from test_flight_protocol)

from __future__ import annotations

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from test_flight_protocol import (  # noqa: F401  (fixtures)
    DuckDBBackend,
    backend,
    client,
    raw,
    rpc_error,
    server,
)

from duckfleet.control.records import QueryState, QueryStatus
from duckfleet.ids import QueryId
from duckfleet.wire import commands, tickets
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(60)


def statement_info(client: flight.FlightClient, query: str) -> flight.FlightInfo:
    command = commands.pack(sql.CommandStatementQuery(query=query))
    return client.get_flight_info(flight.FlightDescriptor.for_command(command))


def cancel_request(info: flight.FlightInfo | bytes) -> bytes:
    raw_info = info if isinstance(info, bytes) else info.serialize()
    return sql.CancelFlightInfoRequest(info=raw_info).SerializeToString()


def test_cancel_flight_info_cancels_the_query_its_tickets_name(raw, client, backend):
    info = statement_info(client, "SELECT * FROM range(10)")
    (query_id,) = {tickets.parse_result_ticket(e.ticket.ticket)[0] for e in info.endpoints}
    [body] = raw.do_action("CancelFlightInfo", cancel_request(info))  # raw, not Any
    result = sql.CancelFlightInfoResult.FromString(body)
    assert result.status == sql.CancelFlightInfoResult.CANCEL_STATUS_CANCELLED
    assert not any(q == query_id for q, _ in backend.results)  # the backend freed it
    with pytest.raises(pa.ArrowKeyError):
        client.do_get(info.endpoints[0].ticket).read_all()


def test_cancel_query_is_the_same_action_wrapped_in_any(raw, client):
    info = statement_info(client, "SELECT 1 AS x")
    request = commands.pack(sql.ActionCancelQueryRequest(info=info.serialize()))
    [body] = raw.do_action("CancelQuery", request)
    result = commands.unpack(body, sql.ActionCancelQueryResult, "result")
    assert result.result == sql.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED  # type: ignore[attr-defined]


def test_a_query_that_already_failed_is_not_cancellable(raw, client, backend):
    info = statement_info(client, "SELECT 1 AS x")
    failed = QueryStatus(QueryState.FAILED, error="boom")
    backend.cancel = lambda query_id: failed  # type: ignore[method-assign]
    [body] = raw.do_action("CancelFlightInfo", cancel_request(info))
    result = sql.CancelFlightInfoResult.FromString(body)
    assert result.status == sql.CancelFlightInfoResult.CANCEL_STATUS_NOT_CANCELLABLE


def test_an_expired_query_is_not_found(raw):
    ticket = tickets.result_ticket(QueryId("0123456789abcdef"), "t0")  # type: ignore[arg-type]
    info = flight.FlightInfo(
        pa.schema([]),
        flight.FlightDescriptor.for_command(b"x"),
        [flight.FlightEndpoint(ticket, [])],
        -1,
        -1,
    )
    error = rpc_error(raw.do_action, "CancelFlightInfo", cancel_request(info))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "0123456789abcdef" in error.details()


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"\xff\x00", "malformed action body"),
        (b"", "carries no FlightInfo"),
        (cancel_request(b"\x0a\x03abc"), "does not parse"),
    ],
)
def test_malformed_cancel_requests_are_invalid_argument(raw, client, body, text):
    error = rpc_error(raw.do_action, "CancelFlightInfo", body)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert text in error.details()
    assert statement_info(client, "SELECT 1 AS x").total_records == 1  # still serving


def test_a_metadata_flight_info_names_no_query_to_cancel(raw, client):
    command = commands.pack(sql.CommandGetTableTypes())
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
    error = rpc_error(raw.do_action, "CancelFlightInfo", cancel_request(info))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "names no query" in error.details()


def test_get_flight_info_lets_the_backend_ask_whether_the_call_was_cancelled(
    client, backend: DuckDBBackend
):
    asked: list[bool] = []
    run = backend.run

    def run_and_ask(sql_text: str, **options: object) -> object:
        cancelled = options["cancelled"]
        assert callable(cancelled)
        asked.append(cancelled())  # only while the call lives: the context dies with it
        return run(sql_text, **options)

    backend.run = run_and_ask  # type: ignore[method-assign]
    statement_info(client, "SELECT 1 AS x")
    assert asked == [False]
