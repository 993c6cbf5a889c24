"""Every parameter of a prepared statement is declared with a type a driver can bind,
on the fleet with auth on (tests/secure_fleet.py, shared by the session): the 22
TPC-H queries written with ``?`` where their substitution values stand
(tests/tpch_params.py), bound through the ADBC driver and through the JDBC driver's
prepared-statement flow replayed message by message (tests/test_jdbc_replay.py),
each answer compared with DuckDB in-process running the query with literal values.

The JDBC driver (arrow-java, ArrowFlightMetaImpl / AvaticaParameterBinder) builds
the bound batch from the parameter schema CreatePreparedStatement answered: one
vector per declared field, each value converted to the field's type, sent by DoPut
on CommandPreparedStatementQuery; a null-typed field it cannot bind at all.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference
from secure_fleet import ADMIN, ADMIN_PASSWORD, SecureFleet, connect
from test_jdbc_replay import JdbcReplay
from tpch_data import is_ordered, tpch_query
from tpch_params import QUERIES

from duckfleet.verify import assert_same_result
from duckfleet.wire import commands
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def conn(secure_fleet: SecureFleet) -> Iterator[flightsql.Connection]:
    with connect(secure_fleet.uri) as c:
        yield c


@pytest.fixture(scope="module")
def jdbc(secure_fleet: SecureFleet) -> Iterator[JdbcReplay]:
    r = JdbcReplay(secure_fleet.uri)
    r.handshake(ADMIN, ADMIN_PASSWORD)
    try:
        yield r
    finally:
        r.close()


def untyped(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_null(f.type)]


# --- ADBC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", sorted(QUERIES))
def test_tpch_with_parameters_through_adbc(conn, secure_fleet: SecureFleet, n: int):
    text, values = QUERIES[n]
    with conn.cursor() as cur:
        declared = cur.adbc_prepare(text)  # CreatePreparedStatement
        assert len(declared) == len(values)
        assert not untyped(declared), f"Q{n}: parameters declared null: {untyped(declared)}"
        cur.execute(text, parameters=values)
        actual = cur.fetch_arrow_table()
    literal = tpch_query(n)
    assert_same_result(
        actual, reference(secure_fleet.data_root, literal), ordered=is_ordered(literal)
    )


# --- the JDBC driver's flow ---------------------------------------------------------------


def jdbc_value(value: object, type_: pa.DataType) -> object:
    """What AvaticaParameterBinder puts in a vector of ``type_`` for a Java value."""
    if pa.types.is_string(type_):
        return None if value is None else str(value)  # setString
    if pa.types.is_decimal(type_):
        return None if value is None else decimal.Decimal(str(value))
    if pa.types.is_floating(type_):
        return None if value is None else float(value)  # type: ignore[arg-type]
    return value


def jdbc_prepare(replay: JdbcReplay, text: str) -> tuple[bytes, pa.Schema]:
    (body,) = replay.action(
        "CreatePreparedStatement", sql.ActionCreatePreparedStatementRequest(query=text)
    )
    created = commands.unpack(body, sql.ActionCreatePreparedStatementResult, "action result")
    schema = pa.ipc.read_schema(pa.py_buffer(created.parameter_schema))
    return created.prepared_statement_handle, schema


def jdbc_execute(replay: JdbcReplay, text: str, values: tuple[object, ...]) -> pa.Table:
    """prepareStatement, setXxx for each parameter, executeQuery, read, close."""
    handle, schema = jdbc_prepare(replay, text)
    assert len(schema) == len(values)
    assert not untyped(schema), f"parameters declared null (JDBC cannot bind): {untyped(schema)}"
    columns = [
        pa.array([jdbc_value(v, f.type)], type=f.type) for v, f in zip(values, schema, strict=True)
    ]
    batch = pa.record_batch(columns, schema=schema)
    command = sql.CommandPreparedStatementQuery(prepared_statement_handle=handle)
    descriptor = fl.FlightDescriptor.for_command(commands.pack(command))
    writer, reader = replay.client.do_put(descriptor, schema, options=replay.options)
    writer.write_batch(batch)
    writer.done_writing()
    answer = sql.DoPutPreparedStatementResult.FromString(reader.read().to_pybytes())
    writer.close()
    bound = answer.prepared_statement_handle or handle
    command = sql.CommandPreparedStatementQuery(prepared_statement_handle=bound)
    info = replay.client.get_flight_info(
        fl.FlightDescriptor.for_command(commands.pack(command)), options=replay.options
    )
    tables = [replay._stream(ep) for ep in info.endpoints]
    replay.action(
        "ClosePreparedStatement",
        sql.ActionClosePreparedStatementRequest(prepared_statement_handle=handle),
    )
    return pa.concat_tables(tables) if tables else info.schema.empty_table()


@pytest.mark.parametrize("n", sorted(QUERIES))
def test_tpch_with_parameters_through_the_jdbc_flow(jdbc, secure_fleet: SecureFleet, n: int):
    text, values = QUERIES[n]
    actual = jdbc_execute(jdbc, text, values)
    literal = tpch_query(n)
    assert_same_result(
        actual, reference(secure_fleet.data_root, literal), ordered=is_ordered(literal)
    )


# --- the contexts of the issue, and values of another type --------------------------------

CONTEXTS = [
    # (sql, values, the same with literals, declared Arrow types or "table.column": its type)
    ("SELECT ? AS x", ("hello",), "SELECT 'hello' AS x", [pa.utf8()]),
    (
        "SELECT n_name FROM nation WHERE n_nationkey = ? + 1",
        (6,),
        "SELECT n_name FROM nation WHERE n_nationkey = 6 + 1",
        ["nation.n_nationkey"],
    ),
    (
        "SELECT n_name FROM nation WHERE upper(n_name) LIKE ?",
        ("%AN%",),
        "SELECT n_name FROM nation WHERE upper(n_name) LIKE '%AN%'",
        [pa.utf8()],
    ),
    (
        "SELECT n_name FROM nation ORDER BY n_name LIMIT ? OFFSET ?",
        (5, 3),
        "SELECT n_name FROM nation ORDER BY n_name LIMIT 5 OFFSET 3",
        [pa.int64(), pa.int64()],
    ),
    (
        "SELECT count(*) AS n FROM lineitem WHERE l_shipdate <= date '1998-12-01' - interval ? day",
        (90,),
        "SELECT count(*) AS n FROM lineitem WHERE l_shipdate <= date '1998-12-01' - interval 90 day",  # noqa: E501
        [pa.int64()],
    ),
    (
        "SELECT substring(n_name, ?, ?) AS s FROM nation WHERE n_name IN (?, ?)",
        (2, 3, "CANADA", "CHINA"),
        "SELECT substring(n_name, 2, 3) AS s FROM nation WHERE n_name IN ('CANADA', 'CHINA')",
        [pa.int64(), pa.int64(), pa.utf8(), pa.utf8()],
    ),
    (
        "WITH p AS (SELECT ? AS d) SELECT count(*) AS n FROM orders, p WHERE o_orderdate < p.d",
        (datetime.date(1995, 6, 1),),
        "SELECT count(*) AS n FROM orders WHERE o_orderdate < DATE '1995-06-01'",
        [pa.date32()],
    ),
    (
        "SELECT n_name FROM nation WHERE n_regionkey = 1 UNION ALL SELECT ?",
        ("ATLANTIS",),
        "SELECT n_name FROM nation WHERE n_regionkey = 1 UNION ALL SELECT 'ATLANTIS'",
        [pa.utf8()],
    ),
]


def column_type(secure_fleet: SecureFleet, column: str) -> pa.DataType:
    table, name = column.split(".")
    return reference(secure_fleet.data_root, f"SELECT {name} FROM {table} LIMIT 0").schema[0].type


@pytest.mark.parametrize(("text", "values", "literal", "types"), CONTEXTS)
def test_each_context_is_typed_and_answers_through_both_drivers(
    conn, jdbc, secure_fleet: SecureFleet, text, values, literal, types
):
    expected = reference(secure_fleet.data_root, literal)
    types = [column_type(secure_fleet, t) if isinstance(t, str) else t for t in types]
    with conn.cursor() as cur:
        assert cur.adbc_prepare(text).types == types
        cur.execute(text, parameters=values)
        assert_same_result(cur.fetch_arrow_table(), expected, ordered=is_ordered(literal))
    assert_same_result(jdbc_execute(jdbc, text, values), expected, ordered=is_ordered(literal))


def test_a_string_for_a_typed_parameter_is_cast_to_its_type(conn, secure_fleet: SecureFleet):
    text = "SELECT o_orderkey FROM orders WHERE o_orderdate = ? AND o_custkey < ?"
    with conn.cursor() as cur:
        cur.execute(text, parameters=("1996-01-02", "500"))
        actual = cur.fetch_arrow_table()
        cur.execute("SELECT ? AS x, ? AS y", parameters=(42, datetime.date(2024, 1, 31)))
        untyped_values = cur.fetch_arrow_table()
    literal = (
        "SELECT o_orderkey FROM orders WHERE o_orderdate = DATE '1996-01-02' AND o_custkey < 500"
    )
    assert_same_result(actual, reference(secure_fleet.data_root, literal), ordered=False)
    # nothing says what x and y are: each value keeps the type it was bound with
    assert untyped_values.to_pylist() == [{"x": 42, "y": datetime.date(2024, 1, 31)}]


def test_a_value_that_does_not_cast_is_invalid_and_names_its_parameter(conn, jdbc):
    text = "SELECT n_name FROM nation WHERE n_regionkey = ? AND n_nationkey = ?"
    with conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError) as raised:
            cur.execute(text, parameters=(1, "abc"))
        assert raised.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
        message = str(raised.value)
        assert "parameter 2: cannot use 'abc' (VARCHAR) as BIGINT" in message
        assert "Traceback" not in message and ".py" not in message
        with pytest.raises(flightsql.ProgrammingError, match="parameter 1"):
            cur.execute("SELECT count(*) FROM orders WHERE o_orderdate < ?", parameters=(7,))
    # the JDBC flow: a string vector where an INTEGER was declared, INVALID_ARGUMENT
    handle, _ = jdbc_prepare(jdbc, text)
    command = sql.CommandPreparedStatementQuery(prepared_statement_handle=handle)
    descriptor = fl.FlightDescriptor.for_command(commands.pack(command))
    schema = pa.schema([("1", pa.utf8()), ("2", pa.utf8())])
    writer, reader = jdbc.client.do_put(descriptor, schema, options=jdbc.options)
    writer.write_table(pa.table({"1": ["one"], "2": ["2"]}))
    writer.done_writing()
    answer = sql.DoPutPreparedStatementResult.FromString(reader.read().to_pybytes())
    writer.close()
    bound = sql.CommandPreparedStatementQuery(
        prepared_statement_handle=answer.prepared_statement_handle
    )
    with pytest.raises(pa.ArrowInvalid, match="parameter 1: cannot use 'one'"):  # INVALID_ARGUMENT
        jdbc.client.get_flight_info(
            fl.FlightDescriptor.for_command(commands.pack(bound)), options=jdbc.options
        )
    with conn.cursor() as cur:  # the fleet keeps answering
        cur.execute(text, parameters=(1, 2))
        assert cur.fetch_arrow_table().column(0).to_pylist() == ["BRAZIL"]
