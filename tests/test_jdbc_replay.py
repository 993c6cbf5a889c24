"""What DBeaver sends through the Arrow Flight SQL JDBC driver, replayed message by
message against a real fleet with auth on (tests/secure_fleet.py), every answer's
schema checked against the spec's (tests/test_flight_metadata.py holds them).

The driver's jar cannot be fetched here; the sequence comes from its public source,
apache/arrow-java, flight/flight-sql-jdbc-core/src/main/java/org/apache/arrow/driver/jdbc/:

* client/ArrowFlightSqlClientHandler.java, Builder.build(): with user and password,
  ClientAuthenticationUtils.getAuthenticate runs Handshake with a
  BasicAuthCredentialWriter header (``authorization: Basic base64(user:password)``,
  padded) and one empty HandshakeRequest; ClientIncomingAuthHeaderMiddleware with
  ClientBearerHeaderHandler keeps the ``Bearer`` value of the response's
  ``authorization`` header as the credential of every later call.
  getStreams(): an endpoint without locations is read on the same connection; for
  one with locations, a new client per location, reusing the bearer token
  (retainAuth, on by default), no new Handshake.
* ArrowDatabaseMetadata.java: getSqlInfoAndCacheIfCacheIsEmpty sends GetSqlInfo once
  with no ids and casts each value to the Java class of its getter (String, Boolean,
  Integer for bitmasks and ordinals, Long, List, Map; see JDBC_CASTS); getCatalogs,
  getSchemas(catalog, pattern), getTableTypes, getTables(..., include_schema=false),
  getColumns -> getTables(..., include_schema=true) then deserializes each
  ``table_schema`` as an IPC schema message; getPrimaryKeys, getImportedKeys,
  getExportedKeys.
* ArrowFlightMetaImpl.java: prepareAndExecute -> prepare (DoAction
  CreatePreparedStatement), the statement type from ``is_update`` or else from the
  dataset schema (empty: an update, executeUpdate via DoPut), then
  GetFlightInfo(CommandPreparedStatementQuery) and getStreams; closeStatement ->
  DoAction ClosePreparedStatement.

DBeaver calls these DatabaseMetaData methods when it connects and as its navigator
opens the catalog, the schema, the table list and a table's columns and keys.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import grpc
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference
from secure_fleet import ADMIN, ADMIN_PASSWORD, SecureFleet
from test_flight_metadata import (
    CATALOGS,
    DB_SCHEMAS,
    KEYS,
    PRIMARY_KEYS,
    SQL_INFO,
    TABLE_TYPES,
    TABLES,
    TABLES_WITH_SCHEMA,
)

from duckfleet.auth import TokenSigner
from duckfleet.local_fleet import TPCH_TABLES
from duckfleet.verify import assert_same_result
from duckfleet.wire import commands
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(120)

QUERY = "SELECT o_orderpriority, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1"

# SqlInfo id -> the dense union member ArrowDatabaseMetadata's cast needs
# (String.class -> string_value, Boolean.class -> bool_value, Integer.class ->
# int32_bitmask, Long.class -> bigint_value, List.class -> string_list,
# Map.class -> int32_to_int32_list_map). Another member is a ClassCastException.
JDBC_CASTS: dict[int, str] = {
    **dict.fromkeys([0, 1, 504, 513, 514, 529, 530, 531], "string_value"),
    **dict.fromkeys([3, 515, 516, 518, 519, 520, 521, 523, 524, 527, 532], "bool_value"),
    **dict.fromkeys([536, 537, 539, 556, 563, 565, 566, 572, 573, 574, 575, 576], "bool_value"),
    **dict.fromkeys([522, 525, 526, 528, 533, 534, 535, 538, 540, 564, 567], "int32_bitmask"),
    **dict.fromkeys([*range(541, 556), *range(557, 563)], "bigint_value"),
    **dict.fromkeys([508, 509, 510, 511, 512], "string_list"),
    517: "int32_to_int32_list_map",
}


class JdbcReplay:
    """The calls the driver makes, in its order, on pyarrow.flight and raw gRPC."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.target = uri.split("://", 1)[1]
        self.client = fl.connect(uri)
        self.bearer = ""

    def close(self) -> None:
        self.client.close()

    def handshake(self, user: str, password: str) -> str:
        """Handshake as ClientAuthenticationUtils does; the response's authorization."""
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()  # padded, as Java
        with grpc.insecure_channel(self.target) as channel:
            call = channel.stream_stream(
                "/arrow.flight.protocol.FlightService/Handshake",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )(iter([b""]), metadata=[("authorization", f"Basic {basic}")], timeout=30)
            responses = list(call)
            headers = [v for k, v in call.initial_metadata() if k == "authorization"]
        assert responses == [b""]
        assert len(headers) == 1, headers
        self.bearer = headers[0]
        return self.bearer

    @property
    def options(self) -> fl.FlightCallOptions:
        return fl.FlightCallOptions(headers=[(b"authorization", self.bearer.encode())])

    def metadata(self, command: object, spec: pa.Schema) -> pa.Table:
        """GetFlightInfo + getStreams for a metadata command; both schemas checked."""
        descriptor = fl.FlightDescriptor.for_command(commands.pack(command))  # type: ignore[arg-type]
        info = self.client.get_flight_info(descriptor, options=self.options)
        assert info.schema.equals(spec), (type(command).__name__, info.schema)
        tables = [self._stream(endpoint) for endpoint in info.endpoints]
        for table in tables:
            assert table.schema.equals(spec), (type(command).__name__, table.schema)
        return pa.concat_tables(tables) if tables else spec.empty_table()

    def _stream(self, endpoint: fl.FlightEndpoint) -> pa.Table:
        if not endpoint.locations:  # "use the current client only"
            return self.client.do_get(endpoint.ticket, options=self.options).read_all()
        errors = []
        for location in endpoint.locations:  # FlightLocationQueue: the first that answers
            try:
                with fl.connect(location) as other:  # a new client, the retained token
                    return other.do_get(endpoint.ticket, options=self.options).read_all()
            except fl.FlightError as exc:
                errors.append(exc)
        raise errors[0]

    def action(self, kind: str, request: object) -> list[bytes]:
        body = commands.pack(request)  # type: ignore[arg-type]
        results = self.client.do_action(fl.Action(kind, body), options=self.options)
        return [r.body.to_pybytes() for r in results]


@pytest.fixture
def replay(secure_fleet: SecureFleet) -> Iterator[JdbcReplay]:
    r = JdbcReplay(secure_fleet.uri)
    try:
        yield r
    finally:
        r.close()


def union_members(column: pa.ChunkedArray) -> list[str]:
    names = []
    for chunk in column.chunks:
        codes = chunk.type.type_codes
        for code in chunk.type_codes.to_pylist():
            names.append(chunk.type.field(codes.index(code)).name)
    return names


def test_dbeaver_connects_and_browses_the_catalog(replay: JdbcReplay, secure_fleet: SecureFleet):
    # Handshake with user and password: a bearer token the fleet's key signed
    bearer = replay.handshake(ADMIN, ADMIN_PASSWORD)
    assert bearer.startswith("Bearer ")
    identity = TokenSigner(secure_fleet.token_key, 60).verify(bearer.removeprefix("Bearer "))
    assert (identity.user, identity.role) == (ADMIN, "admin")

    # getDatabaseProductName() & co: one GetSqlInfo with no ids, cached by the driver
    info = replay.metadata(sql.CommandGetSqlInfo(), SQL_INFO)
    ids = info.column("info_name").to_pylist()
    members = dict(zip(ids, union_members(info.column("value")), strict=True))
    values = dict(zip(ids, info.column("value").to_pylist(), strict=True))
    assert {0, 1, 3, 504, 508, 526}.issubset(members)
    wrong = {i: (members[i], w) for i, w in JDBC_CASTS.items() if members.get(i, w) != w}
    assert not wrong, f"the JDBC driver's casts would fail for: {wrong}"
    assert values[0] and values[1] and values[504] == '"'

    # the navigator: catalogs, schemas, table types, tables
    catalogs = replay.metadata(sql.CommandGetCatalogs(), CATALOGS)
    assert catalogs.column("catalog_name").to_pylist() == ["duckfleet"]
    schemas = replay.metadata(sql.CommandGetDbSchemas(catalog="duckfleet"), DB_SCHEMAS)
    assert schemas.to_pylist() == [
        {"catalog_name": "duckfleet", "db_schema_name": "main"},
        {"catalog_name": "duckfleet", "db_schema_name": "system"},
    ]
    types = replay.metadata(sql.CommandGetTableTypes(), TABLE_TYPES)
    assert "TABLE" in types.column("table_type").to_pylist()
    tables = replay.metadata(
        sql.CommandGetTables(
            catalog="duckfleet", db_schema_filter_pattern="main", table_name_filter_pattern="%"
        ),
        TABLES,
    )
    assert sorted(tables.column("table_name").to_pylist()) == sorted(TPCH_TABLES)

    # getColumns("duckfleet", "main", "lineitem", "%"): the table's schema as IPC bytes
    columns = replay.metadata(
        sql.CommandGetTables(
            catalog="duckfleet",
            db_schema_filter_pattern="main",
            table_name_filter_pattern="lineitem",
            include_schema=True,
        ),
        TABLES_WITH_SCHEMA,
    )
    (raw_schema,) = columns.column("table_schema").to_pylist()
    schema = pa.ipc.read_schema(pa.py_buffer(raw_schema))
    sample = reference(secure_fleet.data_root, "SELECT * FROM lineitem LIMIT 0")
    assert schema.names == sample.schema.names
    assert [f.type for f in schema] == [f.type for f in sample.schema]

    # keys of the table: none declared, the right shape
    where = {"catalog": "duckfleet", "db_schema": "main", "table": "lineitem"}
    assert replay.metadata(sql.CommandGetPrimaryKeys(**where), PRIMARY_KEYS).num_rows == 0
    assert replay.metadata(sql.CommandGetImportedKeys(**where), KEYS).num_rows == 0
    assert replay.metadata(sql.CommandGetExportedKeys(**where), KEYS).num_rows == 0


def _prepare(replay: JdbcReplay) -> sql.ActionCreatePreparedStatementResult:  # type: ignore[name-defined]
    (body,) = replay.action(
        "CreatePreparedStatement", sql.ActionCreatePreparedStatementRequest(query=QUERY)
    )
    return commands.unpack(body, sql.ActionCreatePreparedStatementResult, "action result")


def test_dbeaver_runs_a_prepared_query_and_reads_it_from_the_workers(
    replay: JdbcReplay, secure_fleet: SecureFleet
):
    replay.handshake(ADMIN, ADMIN_PASSWORD)
    prepared = _prepare(replay)
    handle = prepared.prepared_statement_handle
    assert handle
    # executeQuery(): GetFlightInfo on the handle, then every endpoint from its location
    command = sql.CommandPreparedStatementQuery(prepared_statement_handle=handle)
    descriptor = fl.FlightDescriptor.for_command(commands.pack(command))
    info = replay.client.get_flight_info(descriptor, options=replay.options)
    workers = set(secure_fleet.worker_locations())
    assert info.endpoints and all(
        ep.locations[0].uri.decode() in workers for ep in info.endpoints
    )  # the driver goes straight to the worker that holds each partition
    table = pa.concat_tables([replay._stream(ep) for ep in info.endpoints])
    assert table.schema.equals(info.schema)
    assert_same_result(table, reference(secure_fleet.data_root, QUERY), ordered=True)
    # closeStatement(): nothing to return, and the front door keeps serving
    assert (
        replay.action(
            "ClosePreparedStatement",
            sql.ActionClosePreparedStatementRequest(prepared_statement_handle=handle),
        )
        == []
    )
    # a token the fleet did not sign stops the driver at the first call
    replay.bearer = "Bearer v1.forged.token"
    with pytest.raises(fl.FlightUnauthenticatedError):
        replay.metadata(sql.CommandGetCatalogs(), CATALOGS)


def test_the_driver_sees_a_select_from_the_prepared_statement(replay: JdbcReplay):
    replay.handshake(ADMIN, ADMIN_PASSWORD)
    prepared = _prepare(replay)
    fields = prepared.DESCRIPTOR.fields_by_name
    if "is_update" in fields and prepared.HasField("is_update"):
        assert not prepared.is_update
    schema = pa.ipc.read_schema(pa.py_buffer(prepared.dataset_schema))
    assert schema.names == ["o_orderpriority", "n"]


def test_a_wrong_password_is_refused_at_the_handshake(replay: JdbcReplay):
    with pytest.raises(grpc.RpcError) as refused:
        replay.handshake(ADMIN, "not-the-password")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong user name or password" in refused.value.details()
