"""The dataframe and ORM clients people point at a Flight SQL server, through ADBC, on
a real fleet (etcd, a front door, two workers as processes, TPC-H registered):
pandas, polars and a SQLAlchemy engine, answers compared with DuckDB in-process."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import sqlalchemy as sa
from fleet_fixture import reference

from duckfleet.verify import assert_same_result

pytestmark = pytest.mark.timeout(120)

AGGREGATE = (
    "SELECT o_orderpriority, count(*) AS n, sum(o_totalprice) AS total FROM orders "
    "GROUP BY o_orderpriority ORDER BY o_orderpriority"
)


@pytest.fixture(scope="module")
def conn(fleet):
    with flightsql.connect(fleet.uri) as c:
        yield c


def test_pandas_read_sql(conn, tpch_dir):
    frame = pd.read_sql(AGGREGATE, conn)
    expected = reference(tpch_dir, AGGREGATE)
    assert list(frame.columns) == expected.column_names
    actual = pa.Table.from_pandas(frame, preserve_index=False)
    assert_same_result(actual, expected, ordered=True, check_types=False)


def test_polars_read_database_with_parameters(conn, tpch_dir):
    frame = pl.read_database(
        "SELECT n_name FROM nation WHERE n_regionkey = ? ORDER BY n_name",
        conn,
        execute_options={"parameters": (3,)},
    )
    expected = reference(tpch_dir, "SELECT n_name FROM nation WHERE n_regionkey = 3 ORDER BY 1")
    assert frame["n_name"].to_list() == expected.column("n_name").to_pylist()


def test_polars_read_database(conn, tpch_dir):
    frame = pl.read_database(AGGREGATE, conn)
    assert_same_result(frame.to_arrow(), reference(tpch_dir, AGGREGATE), ordered=True)


def test_pandas_to_sql_and_polars_write_database_ingest(conn):
    frame = pd.DataFrame({"id": [1, 2, 3], "label": ["a", "b", None]})
    assert frame.to_sql("from_pandas", conn, if_exists="replace", index=False) == 3
    back = pd.read_sql("SELECT * FROM from_pandas ORDER BY id", conn)
    assert back["label"].tolist()[:2] == ["a", "b"]
    assert pd.isna(back["label"][2])
    pl.DataFrame({"x": [0.5, 1.5]}).write_database(
        "from_polars", conn, engine="adbc", if_table_exists="replace"
    )
    assert pl.read_database("SELECT sum(x) AS s FROM from_polars", conn).item() == 2.0


def test_sqlalchemy_engine_through_the_adbc_flightsql_dialect(fleet, tpch_dir):
    port = fleet.frontdoor_ports[0]
    engine = sa.create_engine(f"adbc+flightsql://127.0.0.1:{port}?tls=false")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT count(*) AS n FROM orders WHERE o_orderstatus = :status"),
                {"status": "F"},
            ).all()
            expected = reference(
                tpch_dir, "SELECT count(*) AS n FROM orders WHERE o_orderstatus = 'F'"
            )
            assert rows == [(expected.column("n")[0].as_py(),)]
            frame = pd.read_sql(sa.text(AGGREGATE), connection)
            assert (
                frame["n"].sum() == reference(tpch_dir, "SELECT count(*) FROM orders")[0][0].as_py()
            )
    finally:
        engine.dispose()
