"""Dialects end to end: real etcd, a front door and two workers, the ADBC driver.

Each case of tests/dialect_cases.py is sent in its dialect (the ``dialect`` session
option, or the ``x-duckfleet-dialect`` header) and its answer compared with the
hand-written DuckDB query run in DuckDB in-process on the same files."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from dialect_cases import CASES, Case
from fleet_fixture import reference
from tpch_data import is_ordered

from duckfleet.client import statement_descriptor
from duckfleet.planner.dialects import to_duckdb
from duckfleet.verify import assert_same_result

COOKIES = {"adbc.flight.sql.rpc.with_cookie_middleware": "true"}
SESSION_DIALECT = "adbc.flight.sql.session.option.dialect"
HEADER = "adbc.flight.sql.rpc.call_header.x-duckfleet-dialect"
# Spark reads "n_name" as a string, DuckDB as a column
SAME_TEXT = 'SELECT "n_name" AS v FROM nation WHERE n_nationkey = 3'


def query(conn, text: str, parameters=None) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(text, parameters=parameters)
        return cur.fetch_arrow_table()


@pytest.fixture(scope="module")
def sessions(fleet) -> Iterator[dict[str, flightsql.Connection]]:
    """One ADBC connection per dialect, its dialect set as a session option."""
    conns: dict[str, flightsql.Connection] = {}
    try:
        for dialect in sorted({c.dialect for c in CASES}):
            conn = flightsql.connect(fleet.uri, db_kwargs=COOKIES)
            conn.adbc_connection.set_options(**{SESSION_DIALECT: dialect})
            conns[dialect] = conn
        yield conns
    finally:
        for conn in conns.values():
            conn.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_query_in_its_dialect_equals_duckdb(sessions, tpch_dir, case: Case) -> None:
    got = query(sessions[case.dialect], case.sql)
    assert_same_result(got, reference(tpch_dir, case.duckdb), ordered=is_ordered(case.duckdb))


def test_the_session_option_is_stored_and_read_back(sessions) -> None:
    options = sessions["trino"].adbc_connection.get_option("adbc.flight.sql.session.options")
    assert '"dialect":"trino"' in options


@pytest.mark.parametrize("dialect", ["spark", "bigquery"])
def test_the_dialect_by_adbc_call_header(fleet, tpch_dir, dialect: str) -> None:
    cases = [c for c in CASES if c.dialect == dialect]
    with flightsql.connect(fleet.uri, db_kwargs={HEADER: dialect}) as conn:
        for case in cases:
            expected = reference(tpch_dir, case.duckdb)
            assert_same_result(query(conn, case.sql), expected, ordered=is_ordered(case.duckdb))


def test_the_dialect_by_pyarrow_flight_header(fleet, tpch_dir) -> None:
    [case] = [c for c in CASES if c.sql.startswith("SELECT TOP 5")]
    options = fl.FlightCallOptions(headers=[(b"x-duckfleet-dialect", b"tsql")])
    with fl.connect(fleet.uri) as client:
        info = client.get_flight_info(statement_descriptor(case.sql), options)
        parts = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    got = pa.concat_tables(parts)
    assert_same_result(got, reference(tpch_dir, case.duckdb), ordered=True)


def test_the_header_wins_over_the_session_option(fleet) -> None:
    with flightsql.connect(fleet.uri, db_kwargs=COOKIES) as conn:
        conn.adbc_connection.set_options(**{SESSION_DIALECT: "spark"})
        assert query(conn, SAME_TEXT).column("v").to_pylist() == ["n_name"]
    with flightsql.connect(fleet.uri, db_kwargs={**COOKIES, HEADER: "duckdb"}) as conn:
        conn.adbc_connection.set_options(**{SESSION_DIALECT: "spark"})
        assert query(conn, SAME_TEXT).column("v").to_pylist() == ["CANADA"]


def test_the_same_text_in_two_dialects_gives_two_answers_every_time(fleet) -> None:
    """The plan cache holds the DuckDB text each dialect's reading became."""
    with (
        flightsql.connect(fleet.uri, db_kwargs={HEADER: "spark"}) as spark,
        flightsql.connect(fleet.uri) as duckdb,
    ):
        for _ in range(3):  # planned once per dialect, then from the cache
            assert query(spark, SAME_TEXT).column("v").to_pylist() == ["n_name"]
            assert query(duckdb, SAME_TEXT).column("v").to_pylist() == ["CANADA"]
    assert to_duckdb(SAME_TEXT, "spark") != to_duckdb(SAME_TEXT, "duckdb")


def test_a_bad_dialect_name_is_invalid_argument_listing_the_valid_ones(fleet) -> None:
    with flightsql.connect(fleet.uri, db_kwargs=COOKIES) as conn:
        with pytest.raises(flightsql.ProgrammingError) as e:
            conn.adbc_connection.set_options(**{SESSION_DIALECT: "trinoo"})
        message = str(e.value)
        assert "unknown SQL dialect 'trinoo'" in message and "snowflake" in message
        assert "INVALID_ARGUMENT" in message and "Traceback" not in message
        assert query(conn, "SELECT 1 AS one").column("one").to_pylist() == [1]  # unchanged
    with flightsql.connect(fleet.uri, db_kwargs={HEADER: "sparkk"}) as conn:
        with pytest.raises(flightsql.ProgrammingError, match=r"unknown SQL dialect .sparkk.*tsql"):
            query(conn, "SELECT 1")


def test_a_construct_that_does_not_transpile_names_dialect_and_construct(fleet) -> None:
    with flightsql.connect(fleet.uri, db_kwargs={HEADER: "bigquery"}) as conn:
        with pytest.raises(flightsql.ProgrammingError) as e:
            query(conn, "SELECT ARRAY_AGG(n_name LIMIT 2) AS a FROM nation")
        message = str(e.value)
        assert "this bigquery SQL has no DuckDB form" in message
        assert "LIMIT inside ARRAY_AGG" in message and "INVALID_ARGUMENT" in message
        assert "Traceback" not in message and ".py" not in message
        with pytest.raises(flightsql.ProgrammingError, match="bigquery SQL syntax error at line 1"):
            query(conn, "SELECT FROM WHERE")


def test_explain_shows_the_transpiled_sql(fleet) -> None:
    text = "EXPLAIN SELECT o_orderstatus, approx_distinct(o_custkey) AS n FROM orders GROUP BY 1"
    with flightsql.connect(fleet.uri, db_kwargs={HEADER: "trino"}) as conn:
        rows = query(conn, text).to_pylist()
    [dialect] = [r for r in rows if r["kind"] == "dialect"]
    assert dialect["detail"] == "trino SQL transpiled to DuckDB by sqlglot"
    assert "APPROX_COUNT_DISTINCT(o_custkey)" in dialect["sql"]
    assert "approx_distinct" not in dialect["sql"]
    with flightsql.connect(fleet.uri) as conn:  # DuckDB's own: no such row
        rows = query(conn, "EXPLAIN SELECT count(*) AS n FROM orders").to_pylist()
    assert "dialect" not in {r["kind"] for r in rows}


def test_prepared_statements_with_parameters_in_a_dialect(fleet, tpch_dir) -> None:
    day = datetime.date(1995, 3, 15)
    with flightsql.connect(fleet.uri, db_kwargs={**COOKIES, HEADER: "trino"}) as conn:
        got = query(
            conn,
            "SELECT count_if(o_orderdate < date_add('day', 1, CAST(? AS DATE))) AS n FROM orders "
            "WHERE o_totalprice > ?",
            parameters=(day, 100000),
        )
    expected = reference(
        tpch_dir,
        "SELECT sum(CASE WHEN o_orderdate < DATE '1995-03-16' THEN 1 ELSE 0 END) AS n "
        "FROM orders WHERE o_totalprice > 100000",
    )
    assert got.column("n").to_pylist() == expected.column("n").to_pylist()
    with flightsql.connect(fleet.uri, db_kwargs={HEADER: "postgres"}) as conn:
        got = query(
            conn, "SELECT n_name FROM nation WHERE n_nationkey = $1 OR n_name ILIKE $2", (3, "ger%")
        )
    assert sorted(got.column("n_name").to_pylist()) == ["CANADA", "GERMANY"]


def test_metadata_still_answers_with_a_dialect_set(sessions, fleet) -> None:
    conn = sessions["snowflake"]
    schema = conn.adbc_get_table_schema("nation")
    assert schema.names[:2] == ["n_nationkey", "n_name"]
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = {
        t["table_name"]
        for c in objects
        for s in c["catalog_db_schemas"]
        for t in s["db_schema_tables"]
    }
    assert {"nation", "orders", "lineitem"} <= tables
    assert "TABLE" in conn.adbc_get_table_types()


def test_a_planner_error_after_transpiling_names_the_dialect(fleet) -> None:
    with flightsql.connect(fleet.uri, db_kwargs={HEADER: "snowflake"}) as conn:
        with pytest.raises(flightsql.ProgrammingError) as e:
            query(conn, "SELECT IFF(n_nope > 0, 1, 2) AS x FROM nation")
    message = str(e.value)
    assert "n_nope" in message and "sent as snowflake SQL" in message
    assert "CASE WHEN n_nope > 0 THEN 1 ELSE 2 END" in message and "Traceback" not in message


def test_a_write_in_a_dialect_is_transpiled_too(fleet, tpch_dir) -> None:
    with flightsql.connect(fleet.uri, db_kwargs={HEADER: "snowflake"}) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE OR REPLACE TABLE dialect_regions AS "
                "SELECT r_regionkey, IFF(r_regionkey < 2, 'low', 'high') AS band FROM region"
            )
        got = query(conn, "SELECT band, COUNT(*)::INT AS n FROM dialect_regions GROUP BY 1")
    expected = reference(
        tpch_dir,
        "SELECT CASE WHEN r_regionkey < 2 THEN 'low' ELSE 'high' END AS band, "
        "CAST(count(*) AS INTEGER) AS n FROM region GROUP BY 1",
    )
    assert_same_result(got, expected, ordered=False)
