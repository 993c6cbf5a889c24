"""The SQL sandbox: user SQL reaches catalog tables and views only.

1. Every escape below, sent by a logged-in user through a real front door, is refused
   at planning with INVALID_ARGUMENT (or PERMISSION_DENIED) and a message saying why;
   the front door answers SELECT 1 afterwards.
2. Every DuckDB table function but those that read nothing is refused, in FROM and
   as a scalar (the list comes from DuckDB itself, so new ones are caught).
3. A worker runs its fragments in a DuckDB that cannot reach a file outside the
   table storage, change its settings, or run a second statement, even when a plan
   that no planner would make reaches it through etcd; CTAS-style writes into the
   storage still work.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_manager import ProgrammingError
from secure_fleet import READER, READER_PASSWORD, SecureFleet, connect, login
from test_planner_errors import CATALOG

from duckfleet.client import statement_descriptor
from duckfleet.control import QueryStore
from duckfleet.control.records import QueryStatus
from duckfleet.ids import MemberId, new_query_id, task_id
from duckfleet.planner import plan_query
from duckfleet.planner.errors import SqlSyntaxError, UnsupportedStatementError
from duckfleet.planner.plan import Plan, Stage, StageKind, TableBinding, TaskPlan

pytestmark = pytest.mark.timeout(120)

TABLE_FN = "table function"
FILE_PATH = "looks like a file path"
NOT_A_QUERY = "only queries are supported"
ONE_STATEMENT = "one statement at a time"
SYSTEM = "reads the server's files, settings or environment"
OTHER_SCHEMA = "names another catalog or schema"
NESTED = "is not allowed inside a query"

# (escape, what the refusal says)
ESCAPES: list[tuple[str, str]] = [
    # files by path, glob, URL
    ("SELECT * FROM read_csv('/etc/passwd')", TABLE_FN),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", TABLE_FN),
    ("SELECT * FROM read_parquet('/etc/*.parquet')", TABLE_FN),
    ("SELECT * FROM read_parquet(['/a.parquet', '/b.parquet'])", TABLE_FN),
    ("SELECT * FROM parquet_scan('/x.parquet')", TABLE_FN),
    ("SELECT * FROM read_json('/etc/hosts')", TABLE_FN),
    ("SELECT * FROM read_text('/etc/passwd')", TABLE_FN),
    ("SELECT * FROM read_blob('/etc/shadow')", TABLE_FN),
    ("SELECT * FROM read_duckdb('/tmp/x.db')", TABLE_FN),
    ("SELECT * FROM glob('/etc/*')", TABLE_FN),
    ("SELECT * FROM sniff_csv('/etc/passwd')", TABLE_FN),
    ("SELECT * FROM parquet_metadata('/x.parquet')", TABLE_FN),
    ("SELECT * FROM '/etc/passwd'", FILE_PATH),
    ('SELECT * FROM "/etc/passwd"', FILE_PATH),
    ("SELECT * FROM 'lineitem.parquet'", FILE_PATH),
    ("SELECT * FROM '/data/*.csv'", FILE_PATH),
    ("SELECT * FROM 'https://example.com/x.parquet'", FILE_PATH),
    ("SELECT * FROM 's3://bucket/x.parquet'", FILE_PATH),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", TABLE_FN),
    # statements that are not queries
    ("ATTACH '/tmp/x.db' AS x", NOT_A_QUERY),
    ("ATTACH 'md:' AS md", NOT_A_QUERY),
    ("DETACH x", NOT_A_QUERY),
    ("USE x", NOT_A_QUERY),
    ("INSTALL httpfs", NOT_A_QUERY),
    ("FORCE INSTALL httpfs FROM community", NOT_A_QUERY),
    ("LOAD httpfs", NOT_A_QUERY),
    ("SET enable_external_access = true", NOT_A_QUERY),
    ("SET GLOBAL threads = 1", NOT_A_QUERY),
    ("SET VARIABLE x = 1", NOT_A_QUERY),
    ("RESET allowed_directories", NOT_A_QUERY),
    ("PRAGMA version", NOT_A_QUERY),
    ("PRAGMA enable_profiling", NOT_A_QUERY),
    ("CALL pragma_version()", NOT_A_QUERY),
    ("COPY nation TO '/tmp/nation.csv'", NOT_A_QUERY),
    ("COPY (SELECT 1) TO '/tmp/one.parquet' (FORMAT parquet)", NOT_A_QUERY),
    ("COPY nation FROM '/etc/passwd'", NOT_A_QUERY),
    ("EXPORT DATABASE '/tmp/everything'", NOT_A_QUERY),
    ("IMPORT DATABASE '/tmp/everything'", NOT_A_QUERY),
    ("CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')", NOT_A_QUERY),
    ("CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", NOT_A_QUERY),
    ("DROP SECRET s", NOT_A_QUERY),
    ("CREATE MACRO m() AS TABLE SELECT * FROM read_csv('/etc/passwd')", NOT_A_QUERY),
    ("CHECKPOINT", NOT_A_QUERY),
    ("DESCRIBE nation", NOT_A_QUERY),
    ("SUMMARIZE nation", NOT_A_QUERY),
    # the environment, settings, system tables
    ("SELECT getenv('HOME')", SYSTEM),
    ("SELECT GETENV('HOME')", SYSTEM),
    ('SELECT "getenv"(\'HOME\')', SYSTEM),
    ("SELECT main.getenv('HOME')", SYSTEM),
    ("SELECT current_setting('allowed_directories')", SYSTEM),
    ("SELECT system.main.current_setting('threads')", SYSTEM),
    ("SELECT * FROM nation WHERE n_name = getenv('USER')", SYSTEM),
    ("SELECT * FROM duckdb_settings()", TABLE_FN),
    ("SELECT * FROM duckdb_secrets()", TABLE_FN),
    ("SELECT * FROM duckdb_extensions()", TABLE_FN),
    ("SELECT * FROM duckdb_databases()", TABLE_FN),
    ("SELECT * FROM pragma_version()", TABLE_FN),
    ("SELECT * FROM which_secret('s3://b/x', 's3')", TABLE_FN),
    ("SELECT * FROM query('SELECT 1')", TABLE_FN),
    ("SELECT * FROM query_table('nation')", TABLE_FN),
    ("SELECT json_execute_serialized_sql('x')", SYSTEM),
    ("SELECT * FROM test_all_types()", TABLE_FN),
    ("SELECT unnest(glob('/etc/*'))", SYSTEM),
    ("SELECT * FROM information_schema.tables", OTHER_SCHEMA),
    ("SELECT * FROM pg_catalog.pg_settings", OTHER_SCHEMA),
    ("SELECT * FROM system.main.duckdb_tables", OTHER_SCHEMA),
    ("SELECT * FROM temp.main.nation", OTHER_SCHEMA),
    ("SELECT * FROM memory.nation", OTHER_SCHEMA),
    ("SELECT * FROM other_db.main.nation", OTHER_SCHEMA),
    ("SELECT * FROM sqlite_master", "unknown table"),
    ("SELECT * FROM duckdb_tables", "unknown table"),
    # nested: subqueries, CTEs, LATERAL, set operations, lambdas, FROM-first
    ("SELECT * FROM nation WHERE n_name IN (SELECT * FROM read_csv('/etc/passwd'))", TABLE_FN),
    ("WITH x AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM x", TABLE_FN),
    ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n FROM glob('/*')) "
     "SELECT * FROM r", TABLE_FN),
    ("SELECT * FROM nation, LATERAL (SELECT * FROM glob('/etc/*')) g", TABLE_FN),
    ("SELECT * FROM nation n JOIN read_csv('/etc/passwd') r ON true", TABLE_FN),
    ("SELECT * FROM nation POSITIONAL JOIN read_csv('/etc/passwd')", TABLE_FN),
    ("SELECT n_name FROM nation UNION ALL SELECT * FROM read_text('/etc/passwd')", TABLE_FN),
    ("SELECT * FROM nation WHERE EXISTS (FROM glob('/etc/*'))", TABLE_FN),
    ("SELECT (SELECT count(*) FROM read_csv('/etc/passwd')) AS n", TABLE_FN),
    ("SELECT list_transform([1], x -> (SELECT count(*) FROM glob('/*')))", TABLE_FN),
    ("FROM read_csv('/etc/passwd')", TABLE_FN),
    ('SELECT * FROM "read_csv"(\'/etc/passwd\')', TABLE_FN),
    ("SELECT * FROM (DESCRIBE SELECT * FROM nation)", NESTED),
    ("SELECT * FROM (SUMMARIZE nation)", NESTED),
    ("SELECT * FROM (SUMMARIZE SELECT * FROM read_csv('/etc/passwd'))", TABLE_FN),
    # comments, quotes and several statements
    ("SELECT 1; ATTACH '/tmp/x.db' AS x", ONE_STATEMENT),
    ("SELECT 1; SELECT 2", ONE_STATEMENT),
    ("SELECT 1 /* hidden? */; COPY nation TO '/tmp/x.csv'", ONE_STATEMENT),
    ("SELECT 1 -- comment\n; INSTALL httpfs", ONE_STATEMENT),
    ("SELECT $a$ x $a$; LOAD httpfs", ONE_STATEMENT),
    ("SELECT '\\'; ATTACH '/tmp/x.db' AS x; --'", ONE_STATEMENT),
    ("/* leading comment */ ATTACH '/tmp/x.db' AS x", NOT_A_QUERY),
    ("  \n\t-- only a comment\n  PRAGMA version", NOT_A_QUERY),
]  # fmt: skip


@pytest.fixture(scope="module")
def reader(secure_fleet: SecureFleet):
    with fl.connect(secure_fleet.uri) as client:
        yield client, login(client, READER, READER_PASSWORD)


@pytest.mark.parametrize(("sql_text", "says"), ESCAPES, ids=[e[0][:60] for e in ESCAPES])
def test_every_escape_is_refused_by_a_real_front_door(reader, sql_text: str, says: str):
    client, options = reader
    with pytest.raises((pa.ArrowInvalid, fl.FlightUnauthorizedError)) as refused:
        client.get_flight_info(statement_descriptor(sql_text), options=options)
    assert says in str(refused.value), str(refused.value)


def test_the_front_door_still_answers_after_every_escape(reader, secure_fleet: SecureFleet):
    client, options = reader
    for sql_text, _ in ESCAPES:  # all of them again, on one connection
        with pytest.raises((pa.ArrowInvalid, fl.FlightUnauthorizedError)):
            client.get_flight_info(statement_descriptor(sql_text), options=options)
    info = client.get_flight_info(statement_descriptor("SELECT 1 AS one"), options=options)
    (endpoint,) = info.endpoints
    table = fl.connect(endpoint.locations[0]).do_get(endpoint.ticket, options=options).read_all()
    assert table.to_pylist() == [{"one": 1}]
    with connect(secure_fleet.uri, READER, READER_PASSWORD) as conn, conn.cursor() as cur:
        with pytest.raises(ProgrammingError, match=r"INVALID_ARGUMENT.*table function"):
            cur.execute("SELECT * FROM read_csv('/etc/passwd')")
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]


HARMLESS_IN_FROM = {"range", "generate_series", "unnest"}  # read nothing
HARMLESS_AS_SCALAR = HARMLESS_IN_FROM | {"repeat", "repeat_row", "json_each", "json_tree",
                                         "histogram", "histogram_values", "summary"}  # fmt: skip


def duckdb_table_functions() -> list[str]:
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_type IN ('table', 'table_macro') ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _refused(sql_text: str) -> bool:
    for args in ("'x'", "'x', 'y'"):
        try:
            plan_query(sql_text.replace("ARGS", args), CATALOG)
            return False
        except UnsupportedStatementError:
            return True
        except SqlSyntaxError:
            continue  # sqlglot wants other arguments: try two
    raise AssertionError(f"{sql_text} does not parse with one or two arguments")


def test_every_duckdb_table_function_that_reads_something_is_refused():
    names = duckdb_table_functions()
    assert len(names) > 50 and "read_csv" in names and "duckdb_settings" in names
    let_through_from = [n for n in names if not _refused(f"SELECT * FROM {n}(ARGS)")]
    assert set(let_through_from) <= HARMLESS_IN_FROM, let_through_from
    as_scalar = [n for n in names if not _refused(f"SELECT {n}(ARGS) AS v")]
    assert set(as_scalar) <= HARMLESS_AS_SCALAR, as_scalar


# --- the worker's own DuckDB ---------------------------------------------------------


def run_on_worker(fleet: SecureFleet, fragment: str, tables=()) -> QueryStatus:
    """Publish a one-task plan straight to etcd, as no planner would, and wait for it."""
    task = TaskPlan(id=task_id(0), stage=0, sql=fragment, tables=tuple(tables))
    plan = Plan(sql=fragment, stages=(Stage(0, StageKind.SINGLE, (task,)),), reason="sandbox")
    store = fleet.fleet.store()
    try:
        queries = QueryStore(store)
        q = new_query_id()
        queries.publish(q, plan, frontdoor=MemberId("test"), ttl=60, max_attempts=1)
        return queries.wait(q, 60)
    finally:
        store.close()


def test_a_worker_cannot_reach_files_outside_the_table_storage(
    secure_fleet: SecureFleet, tmp_path: Path
):
    outside = tmp_path / "outside.parquet"
    duckdb.sql(f"COPY (SELECT 42 AS secret) TO '{outside}'")
    nation = next((secure_fleet.data_root / "nation").glob("*.parquet"))
    stolen = TableBinding("stolen", (str(outside),))
    cases = [
        # a catalog binding pointing outside the storage
        ("SELECT * FROM stolen", [stolen], "outside.parquet"),
        # table functions a planner gap might let through
        ("SELECT * FROM read_csv('/etc/passwd')", [], "/etc/passwd"),
        (f"SELECT * FROM read_parquet('{outside}')", [], "outside.parquet"),
        (f"SELECT * FROM read_parquet('{nation.parent}/../../{tmp_path.name}/x')", [], ".."),
        ("SELECT * FROM glob('/etc/*')", [], "/etc/*"),
        ("SELECT * FROM read_text('https://example.com/')", [], "https://"),
        (f"COPY (SELECT 1 AS x) TO '{tmp_path / 'written.parquet'}'", [], "written.parquet"),
    ]
    for fragment, tables, names in cases:
        status = run_on_worker(secure_fleet, fragment, tables)
        assert status.state == "failed", (fragment, status)
        assert "Permission Error" in status.error and names in status.error, status.error
        assert "table storage only" in status.error
    assert not (tmp_path / "written.parquet").exists()
    for fragment, says in [
        ("SELECT 1; ATTACH '/tmp/x.db' AS x", "2 statement(s)"),
        ("SET enable_external_access = true", "(SET)"),
        ("ATTACH ':memory:' AS x", "(ATTACH)"),
        ("INSTALL httpfs", "(LOAD)"),  # DuckDB's statement type for INSTALL and LOAD
        ("PRAGMA version", "(PRAGMA)"),
    ]:
        status = run_on_worker(secure_fleet, fragment)
        assert status.state == "failed" and says in status.error, (fragment, status)
        assert "refused by the worker's sandbox" in status.error


def test_ctas_style_writes_into_the_storage_still_work(secure_fleet: SecureFleet):
    nation = sorted(str(p) for p in (secure_fleet.data_root / "nation").glob("*.parquet"))
    target = secure_fleet.store_dir / f"ctas-{uuid.uuid4().hex[:6]}.parquet"
    fragment = f"COPY (SELECT n_name FROM nation WHERE n_regionkey = 1) TO '{target}'"
    status = run_on_worker(secure_fleet, fragment, [TableBinding("nation", tuple(nation))])
    assert status.state == "finished", status
    deadline = time.monotonic() + 10
    while not target.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    names = duckdb.sql(f"SELECT n_name FROM '{target}' ORDER BY 1").fetchall()
    assert [n for (n,) in names] == ["ARGENTINA", "BRAZIL", "CANADA", "PERU", "UNITED STATES"]
