"""Prepared statements with parameters, and writes, on a real fleet (etcd, two front
doors, two workers as processes, TPC-H registered) through the ADBC Flight SQL
driver; every answer compared with DuckDB in-process on the same files."""

from __future__ import annotations

import datetime
import decimal
import os
import threading

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference, start_fleet

from duckfleet.control import CatalogStore, QueryStore
from duckfleet.verify import assert_same_result
from duckfleet.wire import commands
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, tmp_path_factory):
    f = start_fleet(etcd, str(tpch_dir), str(tmp_path_factory.mktemp("logs")), frontdoors=2)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def conn(fleet):
    with flightsql.connect(fleet.uri) as c:
        yield c


def other_uri(fleet) -> str:
    return f"grpc://127.0.0.1:{fleet.frontdoor_ports[1]}"


def catalog_of(fleet):
    store = fleet.store()
    try:
        return CatalogStore(store).read()
    finally:
        store.close()


def query(conn, text: str, parameters=None) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(text, parameters=parameters)
        return cur.fetch_arrow_table()


# --- parameters ---------------------------------------------------------------------------


PARAMETER_QUERIES = [
    (
        "SELECT l_returnflag, count(*) AS n, sum(l_extendedprice) AS s FROM lineitem "
        "WHERE l_quantity > ? AND l_shipdate < ? GROUP BY l_returnflag",
        (30, datetime.date(1995, 1, 1)),
        "SELECT l_returnflag, count(*) AS n, sum(l_extendedprice) AS s FROM lineitem "
        "WHERE l_quantity > 30 AND l_shipdate < DATE '1995-01-01' GROUP BY l_returnflag",
    ),
    (
        "SELECT n_name FROM nation WHERE n_regionkey = $1 OR n_nationkey = $1 + $2",
        (2, 20),
        "SELECT n_name FROM nation WHERE n_regionkey = 2 OR n_nationkey = 2 + 20",
    ),
    (
        "SELECT o_orderkey, o_totalprice FROM orders WHERE o_comment LIKE ? "
        "AND o_totalprice BETWEEN ? AND ?",
        ("%special%", decimal.Decimal("1000.50"), 200000.0),
        "SELECT o_orderkey, o_totalprice FROM orders WHERE o_comment LIKE '%special%' "
        "AND o_totalprice BETWEEN 1000.50 AND 200000.0",
    ),
    (
        "SELECT ? AS s, ? AS n, ? AS b",
        ("it's", None, True),
        "SELECT 'it''s' AS s, NULL AS n, TRUE AS b",
    ),
]


@pytest.mark.parametrize(("text", "parameters", "literal"), PARAMETER_QUERIES)
def test_execute_with_parameters_is_duckdbs_answer(conn, tpch_dir, text, parameters, literal):
    actual = query(conn, text, parameters)
    assert_same_result(actual, reference(tpch_dir, literal), ordered=False, check_types=False)


def test_parameters_keep_a_query_distributed(fleet, conn, tpch_dir):
    text = "SELECT count(*) AS n FROM lineitem WHERE l_partkey < ?"
    actual = query(conn, text, (100,))
    assert actual == reference(tpch_dir, "SELECT count(*) AS n FROM lineitem WHERE l_partkey < 100")
    store = fleet.store()
    try:
        qs = QueryStore(store)
        [record] = [r for r in qs.all_records() if "l_partkey < CAST('100' AS BIGINT)" in r.sql]
        assert record.ntasks == 5  # a partial per file of lineitem, and the merge
    finally:
        store.close()


def test_prepare_describes_parameters_and_get_schema_the_result(conn):
    text = "SELECT o_orderkey, o_orderdate FROM orders WHERE o_orderdate > ? AND o_custkey = ?"
    with conn.cursor() as cur:
        parameters = cur.adbc_prepare(text)  # CreatePreparedStatement
        assert parameters.types == [pa.date32(), pa.int64()]
        result = cur.adbc_execute_schema("SELECT o_orderkey, o_orderdate FROM orders")  # GetSchema
    assert result == pa.schema([("o_orderkey", pa.int64()), ("o_orderdate", pa.date32())])


def test_a_handle_with_bound_parameters_runs_on_another_front_door(fleet):
    with fl.connect(fleet.uri) as one, fl.connect(other_uri(fleet)) as two:
        request = sql.ActionCreatePreparedStatementRequest(
            query="SELECT n_name FROM nation WHERE n_nationkey = ?"
        )
        [result] = one.do_action(fl.Action("CreatePreparedStatement", commands.pack(request)))
        created = commands.unpack(result.body.to_pybytes(), sql.ActionCreatePreparedStatementResult)
        command = sql.CommandPreparedStatementQuery(
            prepared_statement_handle=created.prepared_statement_handle
        )
        writer, reader = one.do_put(
            fl.FlightDescriptor.for_command(commands.pack(command)), pa.schema([("0", pa.int32())])
        )
        writer.write_table(pa.table({"0": pa.array([3, 7], pa.int32())}))
        writer.done_writing()
        answer = sql.DoPutPreparedStatementResult.FromString(reader.read().to_pybytes())
        writer.close()
        bound = sql.CommandPreparedStatementQuery(
            prepared_statement_handle=answer.prepared_statement_handle
        )
        info = two.get_flight_info(fl.FlightDescriptor.for_command(commands.pack(bound)))
        names = [two.do_get(e.ticket).read_all().column(0)[0].as_py() for e in info.endpoints]
    assert names == ["CANADA", "GERMANY"]  # one result per parameter row, in order


def test_wrong_parameters_are_invalid_and_the_fleet_still_answers(conn):
    with conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError, match="takes 2 parameter"):
            cur.execute("SELECT ? + ? AS x", parameters=(1,))
        with pytest.raises(flightsql.Error, match="cannot bind"):
            cur.execute("SELECT ? AS x", parameters=pa.table({"0": [[1, 2]]}))
    assert query(conn, "SELECT 1 AS one").column("one").to_pylist() == [1]


# --- CREATE TABLE AS, INSERT, views, DROP ---------------------------------------------------


def test_create_table_as_is_written_by_every_task_then_queried_back(fleet, conn, tpch_dir):
    select = "SELECT * FROM lineitem WHERE l_quantity > 45"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE big_items AS {select}")
        assert cur.rowcount == reference(tpch_dir, select).num_rows
    table = catalog_of(fleet).get("big_items")
    assert len(table.files) == 4  # one per split of lineitem: each task wrote its own
    assert {os.path.dirname(f.path) for f in table.files} == {
        os.path.join(fleet.extra_env["DUCKFLEET_DATA_DIR"], "big_items")
    }
    check = "SELECT l_returnflag, count(*) AS n, sum(l_extendedprice) AS s FROM {} GROUP BY 1"
    assert_same_result(
        query(conn, check.format("big_items")),
        reference(tpch_dir, check.format(f"({select})")),
        ordered=False,
    )


def test_create_table_as_an_aggregate_and_its_errors(conn, tpch_dir):
    select = "SELECT o_orderpriority, count(*) AS n FROM orders GROUP BY 1"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE priorities AS {select}")
        assert cur.rowcount == 5
        with pytest.raises(flightsql.ProgrammingError, match="already exists"):
            cur.execute(f"CREATE TABLE priorities AS {select}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS priorities AS {select}")
        cur.execute("CREATE OR REPLACE TABLE priorities AS SELECT * FROM priorities WHERE n > 0")
    assert_same_result(
        query(conn, "SELECT * FROM priorities"), reference(tpch_dir, select), ordered=False
    )


def test_insert_values_and_executemany_append_to_a_table(fleet, conn):
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE notes AS SELECT n_nationkey AS k, n_name AS name FROM nation LIMIT 0"
        )
        cur.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "one"), (2, "two"), (3, None)])
        cur.execute("INSERT INTO notes (name, k) VALUES ('four', 4)")
        cur.execute(
            "INSERT INTO notes SELECT n_nationkey + 100, n_name FROM nation WHERE n_regionkey = ?",
            (0,),
        )
    rows = query(conn, "SELECT k, name FROM notes ORDER BY k").to_pylist()
    assert rows[:4] == [
        {"k": 1, "name": "one"},
        {"k": 2, "name": "two"},
        {"k": 3, "name": None},
        {"k": 4, "name": "four"},
    ]
    assert [r["k"] for r in rows[4:]] == [100, 105, 114, 115, 116]
    catalog = catalog_of(fleet)
    assert catalog.get("notes").columns[0].type == catalog.get("nation").columns[0].type


def test_views_are_stored_as_sql_and_expanded_by_the_planner(fleet, conn, tpch_dir):
    view = (
        "SELECT n_name AS nation, r_name AS region FROM nation JOIN region "
        "ON n_regionkey = r_regionkey"
    )
    with conn.cursor() as cur:
        cur.execute(f"CREATE VIEW nations AS {view}")
        cur.execute("CREATE VIEW asia (who) AS SELECT nation FROM nations WHERE region = 'ASIA'")
    assert catalog_of(fleet).view("nations").sql.startswith("SELECT n_name AS nation")
    assert_same_result(
        query(conn, "SELECT who FROM asia ORDER BY who"),
        reference(tpch_dir, f"SELECT nation AS who FROM ({view}) WHERE region = 'ASIA' ORDER BY 1"),
        ordered=True,
    )
    with flightsql.connect(other_uri(fleet)) as other:  # the catalog, not a front door, holds it
        assert other.adbc_get_table_schema("asia").names == ["who"]
        objects = other.adbc_get_objects(depth="tables", table_name_filter="asia").read_all()
        [catalog] = objects.to_pylist()
        [table] = catalog["catalog_db_schemas"][0]["db_schema_tables"]
        assert table["table_type"] == "VIEW"
    with conn.cursor() as cur:
        with pytest.raises(flightsql.ProgrammingError, match="is a view"):
            cur.execute("DROP TABLE asia")
        cur.execute("DROP VIEW asia")
        cur.execute("DROP VIEW IF EXISTS asia")
        with pytest.raises(flightsql.ProgrammingError, match="unknown table 'asia'"):
            cur.execute("SELECT * FROM asia")


def test_drop_table_and_execute_update(fleet, conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE scratch AS SELECT 1 AS a")
    with conn.cursor() as cur:  # CommandStatementUpdate through DoPut, no prepare
        cur.adbc_statement.set_sql_query("DROP TABLE scratch")
        assert cur.adbc_statement.execute_update() == 0
    assert catalog_of(fleet).get("scratch") is None
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query("DROP TABLE IF EXISTS scratch")
        assert cur.adbc_statement.execute_update() == 0
        with pytest.raises(flightsql.ProgrammingError, match="no table 'scratch'"):
            cur.execute("DROP TABLE scratch")
        cur.adbc_statement.set_sql_query("CREATE TABLE five AS SELECT * FROM range(5)")
        assert cur.adbc_statement.execute_update() == 5


# --- ingest -----------------------------------------------------------------------------------


EVENTS = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "kind": ["a", "b", None],
        "at": pa.array([datetime.datetime(2024, 1, d) for d in (1, 2, 3)], pa.timestamp("us")),
        "amount": pa.array(
            [decimal.Decimal("1.50"), None, decimal.Decimal("-2.25")], pa.decimal128(9, 2)
        ),
    }
)


def same_as(conn, table: str, expected: pa.Table) -> None:
    actual = query(conn, f"SELECT * FROM {table}")
    assert_same_result(actual, expected, ordered=False)


def test_ingest_in_all_four_modes_then_query_back(conn):
    more = EVENTS.slice(0, 2)
    with conn.cursor() as cur:
        assert cur.adbc_ingest("events", EVENTS, mode="create") == 3
        same_as(conn, "events", EVENTS)
        with pytest.raises(flightsql.Error, match="already exists"):
            cur.adbc_ingest("events", EVENTS, mode="create")
        assert cur.adbc_ingest("events", more, mode="append") == 2
        same_as(conn, "events", pa.concat_tables([EVENTS, more]))
        assert cur.adbc_ingest("events", more, mode="create_append") == 2
        same_as(conn, "events", pa.concat_tables([EVENTS, more, more]))
        assert cur.adbc_ingest("events", more, mode="replace") == 2
        same_as(conn, "events", more)
        assert cur.adbc_ingest("fresh", more, mode="create_append") == 2
        same_as(conn, "fresh", more)
        assert cur.adbc_ingest("fresh2", more, mode="replace") == 2
        with pytest.raises(flightsql.Error, match="no table 'nothing'"):
            cur.adbc_ingest("nothing", more, mode="append")
        with pytest.raises(flightsql.Error, match="missing"):
            cur.adbc_ingest("events", more.drop_columns(["kind"]), mode="append")
    joined = "SELECT count(*) AS n, sum(e.amount) AS s FROM events e JOIN fresh f ON e.id = f.id"
    total = query(conn, joined)
    assert total.to_pylist() == [{"n": 2, "s": decimal.Decimal("1.50")}]


def test_concurrent_appends_lose_no_file(fleet):
    with flightsql.connect(fleet.uri) as c, c.cursor() as cur:
        cur.adbc_ingest("tally", pa.table({"n": pa.array([0], pa.int64())}), mode="create")
    errors: list[BaseException] = []

    def append(uri: str, start: int) -> None:
        try:
            with flightsql.connect(uri) as c, c.cursor() as cur:
                for i in range(start, start + 5):
                    cur.adbc_ingest(
                        "tally", pa.table({"n": pa.array([i], pa.int64())}), mode="append"
                    )
        except BaseException as exc:
            errors.append(exc)

    uris = [fleet.uri, other_uri(fleet)]
    threads = [threading.Thread(target=append, args=(uris[k % 2], 1 + 5 * k)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with flightsql.connect(fleet.uri) as c:
        rows = query(c, "SELECT n FROM tally ORDER BY n").column("n").to_pylist()
    assert rows == list(range(21))
    assert len(catalog_of(fleet).get("tally").files) == 21


# --- sessions ---------------------------------------------------------------------------------


class CookieJar(fl.ClientMiddlewareFactory):
    """Keeps the session cookie a front door sets and sends it on every call, across
    clients: what the JDBC driver and ADBC's cookie middleware do."""

    def __init__(self) -> None:
        self.cookie: str | None = None

    def start_call(self, info):
        return _CookieCall(self)


class _CookieCall(fl.ClientMiddleware):
    def __init__(self, jar: CookieJar) -> None:
        self.jar = jar

    def sending_headers(self):
        return {"cookie": self.jar.cookie} if self.jar.cookie else {}

    def received_headers(self, headers):
        for value in headers.get("set-cookie", []):
            if self.jar.cookie is None:
                self.jar.cookie = value.split(";")[0]


def session_action(client, name: str, message) -> bytes:
    [result] = client.do_action(fl.Action(name, message.SerializeToString()))
    return result.body.to_pybytes()


def test_a_session_set_on_one_front_door_is_seen_by_another(fleet):
    jar = CookieJar()
    with fl.connect(fleet.uri, middleware=[jar]) as one:
        request = sql.SetSessionOptionsRequest(
            session_options={
                "priority": sql.SessionOptionValue(int64_value=7),
                "catalog": sql.SessionOptionValue(string_value="elsewhere"),
            }
        )
        result = sql.SetSessionOptionsResult.FromString(
            session_action(one, "SetSessionOptions", request)
        )
        assert list(result.errors) == ["catalog"]  # validated against the catalog
    assert jar.cookie is not None and jar.cookie.startswith("arrow_flight_session_id=")
    with fl.connect(other_uri(fleet), middleware=[jar]) as two:
        got = sql.GetSessionOptionsResult.FromString(
            session_action(two, "GetSessionOptions", sql.GetSessionOptionsRequest())
        ).session_options
        assert got["priority"].int64_value == 7
        assert (got["catalog"].string_value, got["schema"].string_value) == ("duckfleet", "main")
        closed = sql.CloseSessionResult.FromString(
            session_action(two, "CloseSession", sql.CloseSessionRequest())
        )
        assert closed.status == sql.CloseSessionResult.CLOSED
    with fl.connect(fleet.uri, middleware=[jar]) as one:  # closed everywhere
        got = sql.GetSessionOptionsResult.FromString(
            session_action(one, "GetSessionOptions", sql.GetSessionOptionsRequest())
        ).session_options
        assert got["priority"].int64_value == 0


def test_adbc_session_options_give_the_sessions_queries_their_priority(fleet):
    cookies = {"adbc.flight.sql.rpc.with_cookie_middleware": "true"}
    text = "SELECT 'priority test' AS p"
    with flightsql.connect(fleet.uri, db_kwargs=cookies) as c:
        c.adbc_connection.set_options(**{"adbc.flight.sql.session.option.priority": "5"})
        assert '"priority":5' in c.adbc_connection.get_option("adbc.flight.sql.session.options")
        assert (c.adbc_current_catalog, c.adbc_current_db_schema) == ("duckfleet", "main")
        with pytest.raises(flightsql.Error, match="invalid value"):
            c.adbc_current_db_schema = "public"
        assert query(c, text).column("p").to_pylist() == ["priority test"]
    store = fleet.store()
    try:
        [record] = [r for r in QueryStore(store).all_records() if r.sql == text]
    finally:
        store.close()
    assert record.priority == 5
