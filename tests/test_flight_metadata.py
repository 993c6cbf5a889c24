"""The metadata commands and the health service, on a real fleet (etcd, a front door
and two workers as processes, TPC-H registered): through the ADBC Flight SQL driver
as BI tools use them, and through raw pyarrow.flight against the spec's schemas.

The expected schemas below are written from FlightSql.proto (and Arrow C++'s
``SqlSchema`` / arrow-go's ``schema_ref`` where the proto comment leaves nullability
or order open), not from duckfleet's code."""

from __future__ import annotations

import subprocess
import sys

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference

from duckfleet.catalog import Catalog
from duckfleet.control import CatalogStore
from duckfleet.flight import sql_messages as sql
from duckfleet.flight.commands import pack
from duckfleet.health import HealthServer
from duckfleet.local_fleet import TPCH_TABLES

pytestmark = pytest.mark.timeout(120)

TPCH = sorted(TPCH_TABLES)

# --- the spec's result schemas -------------------------------------------------------------

S = pa.utf8()
CATALOGS = pa.schema([pa.field("catalog_name", S, False)])
DB_SCHEMAS = pa.schema([pa.field("catalog_name", S), pa.field("db_schema_name", S, False)])
TABLES = pa.schema(
    [
        pa.field("catalog_name", S),
        pa.field("db_schema_name", S),
        pa.field("table_name", S, False),
        pa.field("table_type", S, False),
    ]
)
TABLES_WITH_SCHEMA = pa.schema([*TABLES, pa.field("table_schema", pa.binary(), False)])
TABLE_TYPES = pa.schema([pa.field("table_type", S, False)])
PRIMARY_KEYS = pa.schema(
    [
        pa.field("catalog_name", S),
        pa.field("db_schema_name", S),
        pa.field("table_name", S, False),
        pa.field("column_name", S, False),
        pa.field("key_sequence", pa.int32(), False),
        pa.field("key_name", S),
    ]
)
KEYS = pa.schema(
    [
        pa.field("pk_catalog_name", S),
        pa.field("pk_db_schema_name", S),
        pa.field("pk_table_name", S, False),
        pa.field("pk_column_name", S, False),
        pa.field("fk_catalog_name", S),
        pa.field("fk_db_schema_name", S),
        pa.field("fk_table_name", S, False),
        pa.field("fk_column_name", S, False),
        pa.field("key_sequence", pa.int32(), False),
        pa.field("fk_key_name", S),
        pa.field("pk_key_name", S),
        pa.field("update_rule", pa.uint8(), False),
        pa.field("delete_rule", pa.uint8(), False),
    ]
)
XDBC_TYPE_INFO = pa.schema(
    [
        pa.field("type_name", S, False),
        pa.field("data_type", pa.int32(), False),
        pa.field("column_size", pa.int32()),
        pa.field("literal_prefix", S),
        pa.field("literal_suffix", S),
        pa.field("create_params", pa.list_(pa.field("item", S, False))),
        pa.field("nullable", pa.int32(), False),
        pa.field("case_sensitive", pa.bool_(), False),
        pa.field("searchable", pa.int32(), False),
        pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), False),
        pa.field("auto_increment", pa.bool_()),
        pa.field("local_type_name", S),
        pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()),
        pa.field("sql_data_type", pa.int32(), False),
        pa.field("datetime_subcode", pa.int32()),
        pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32()),
    ]
)
SQL_INFO = pa.schema(
    [
        pa.field("info_name", pa.uint32(), False),
        pa.field(
            "value",
            pa.dense_union(
                [
                    pa.field("string_value", S, False),
                    pa.field("bool_value", pa.bool_(), False),
                    pa.field("bigint_value", pa.int64(), False),
                    pa.field("int32_bitmask", pa.int32(), False),
                    pa.field("string_list", pa.list_(S), False),
                    pa.field(
                        "int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), False
                    ),
                ]
            ),
            False,
        ),
    ]
)

COMMANDS = [
    (sql.CommandGetCatalogs(), CATALOGS),
    (sql.CommandGetDbSchemas(), DB_SCHEMAS),
    (sql.CommandGetTables(), TABLES),
    (sql.CommandGetTables(include_schema=True), TABLES_WITH_SCHEMA),
    (sql.CommandGetTableTypes(), TABLE_TYPES),
    (sql.CommandGetXdbcTypeInfo(), XDBC_TYPE_INFO),
    (sql.CommandGetSqlInfo(), SQL_INFO),
    (sql.CommandGetPrimaryKeys(table="lineitem"), PRIMARY_KEYS),
    (sql.CommandGetImportedKeys(table="lineitem"), KEYS),
    (sql.CommandGetExportedKeys(table="orders"), KEYS),
    (sql.CommandGetCrossReference(pk_table="orders", fk_table="lineitem"), KEYS),
]
COMMAND_IDS = [f"{type(c).__name__}-{n}" for n, (c, _) in enumerate(COMMANDS)]


@pytest.fixture(scope="module")
def client(fleet):
    with fl.connect(fleet.uri) as c:
        yield c


@pytest.fixture(scope="module")
def conn(fleet):
    with flightsql.connect(fleet.uri) as c:
        yield c


@pytest.fixture(scope="module")
def catalog(fleet) -> Catalog:
    store = fleet.store()
    try:
        return CatalogStore(store).read()
    finally:
        store.close()


def fetch(client, command) -> tuple[fl.FlightInfo, pa.Table]:
    info = client.get_flight_info(fl.FlightDescriptor.for_command(pack(command)))
    [endpoint] = info.endpoints
    return info, client.do_get(endpoint.ticket).read_all()


# --- raw Flight SQL: every command's schema is the spec's ----------------------------------------


@pytest.mark.parametrize(("command", "schema"), COMMANDS, ids=COMMAND_IDS)
def test_each_command_answers_with_the_spec_schema(client, command, schema):
    descriptor = fl.FlightDescriptor.for_command(pack(command))
    info, table = fetch(client, command)
    assert info.schema.equals(schema), info.schema
    assert client.get_schema(descriptor).schema.equals(schema)
    assert table.schema.equals(schema)
    assert info.endpoints[0].locations == []  # served by the front door it came from


@pytest.mark.parametrize(
    "command",
    [c for c, schema in COMMANDS if schema in (PRIMARY_KEYS, KEYS)],
    ids=lambda c: type(c).__name__,
)
def test_key_commands_answer_empty_tables(client, command):
    _, table = fetch(client, command)
    assert table.num_rows == 0


def test_catalogs_schemas_and_table_types(client):
    assert fetch(client, sql.CommandGetCatalogs())[1].to_pylist() == [{"catalog_name": "duckfleet"}]
    schemas = fetch(client, sql.CommandGetDbSchemas())[1].to_pylist()
    assert schemas == [{"catalog_name": "duckfleet", "db_schema_name": "main"}]
    assert fetch(client, sql.CommandGetDbSchemas(db_schema_filter_pattern="m_i%"))[1].num_rows == 1
    assert fetch(client, sql.CommandGetDbSchemas(db_schema_filter_pattern="x%"))[1].num_rows == 0
    assert fetch(client, sql.CommandGetDbSchemas(catalog="other"))[1].num_rows == 0
    types = fetch(client, sql.CommandGetTableTypes())[1]
    assert types.column("table_type").to_pylist() == ["TABLE", "VIEW"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (sql.CommandGetTables(), TPCH),
        (sql.CommandGetTables(catalog="duckfleet", db_schema_filter_pattern="main"), TPCH),
        (sql.CommandGetTables(table_name_filter_pattern="%item"), ["lineitem"]),
        (sql.CommandGetTables(table_name_filter_pattern="part%"), ["part", "partsupp"]),
        (sql.CommandGetTables(table_name_filter_pattern="part"), ["part"]),
        (sql.CommandGetTables(table_name_filter_pattern="_egion"), ["region"]),
        (sql.CommandGetTables(table_types=["TABLE", "VIEW"]), TPCH),
        (sql.CommandGetTables(table_types=["VIEW"]), []),
        (sql.CommandGetTables(catalog=""), []),  # "" = tables without a catalog: none
        (sql.CommandGetTables(db_schema_filter_pattern="public"), []),
    ],
)
def test_get_tables_filters(client, command, expected):
    _, table = fetch(client, command)
    assert table.column("table_name").to_pylist() == expected
    assert set(table.column("table_type").to_pylist()) <= {"TABLE"}
    assert set(table.column("catalog_name").to_pylist()) <= {"duckfleet"}


def test_get_tables_include_schema_serializes_each_tables_schema(client, catalog):
    _, table = fetch(client, sql.CommandGetTables(include_schema=True))
    for name, raw in zip(
        table.column("table_name").to_pylist(),
        table.column("table_schema").to_pylist(),
        strict=True,
    ):
        schema = pa.ipc.read_schema(pa.py_buffer(raw))
        columns = catalog.get(name).columns
        assert schema.names == [c.name for c in columns]
        types = [f.metadata[b"ARROW:FLIGHT:SQL:TYPE_NAME"].decode() for f in schema]
        assert types == [c.type for c in columns]


def test_xdbc_type_info_covers_every_catalog_type_and_filters(client, catalog):
    _, table = fetch(client, sql.CommandGetXdbcTypeInfo())
    names = set(table.column("type_name").to_pylist())
    used = {c.type.split("(")[0] for t in catalog.tables.values() for c in t.columns}
    assert used <= names, used - names
    _, integers = fetch(client, sql.CommandGetXdbcTypeInfo(data_type=4))  # XDBC_INTEGER
    assert integers.column("type_name").to_pylist() == ["INTEGER"]


def test_sql_info_ids_bi_tools_need(client):
    wanted = [504, 508, 509, 510, 512, 517, 522, 525, 526, 529, 531, 541, 559]
    _, table = fetch(client, sql.CommandGetSqlInfo(info=wanted))
    assert table.column("info_name").to_pylist() == wanted
    values = dict(zip(wanted, table.column("value").to_pylist(), strict=True))
    assert values[504] == '"'
    assert "SELECT" in values[508]
    assert values[526] > 0  # Tableau needs SQL_ANSI92_SUPPORTED_LEVEL
    assert (values[529], values[531]) == ("schema", "catalog")
    assert values[541] == values[559] == 0  # limits DuckDB does not state
    assert dict(values[517])  # SQL_SUPPORTS_CONVERT


def test_an_oversized_filter_is_invalid_argument(client):
    command = sql.CommandGetTables(table_name_filter_pattern="x" * 5000)
    with pytest.raises(pa.ArrowInvalid, match="at most 4096"):
        client.get_flight_info(fl.FlightDescriptor.for_command(pack(command)))


# --- through the ADBC driver, as BI tools ask ----------------------------------------------------


def test_adbc_get_info(conn):
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "duckfleet"
    assert info["vendor_arrow_version"] == pa.__version__
    assert info["vendor_version"]


def test_adbc_get_table_types(conn):
    assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]


def _objects(conn, depth: str, **filters) -> list[dict]:
    return conn.adbc_get_objects(depth=depth, **filters).read_all().to_pylist()


def test_adbc_get_objects_catalogs(conn):
    assert _objects(conn, "catalogs") == [{"catalog_name": "duckfleet", "catalog_db_schemas": None}]


def test_adbc_get_objects_db_schemas(conn):
    [catalog] = _objects(conn, "db_schemas")
    assert catalog["catalog_name"] == "duckfleet"
    assert catalog["catalog_db_schemas"] == [{"db_schema_name": "main", "db_schema_tables": None}]
    [catalog] = _objects(conn, "db_schemas", db_schema_filter="nope")
    assert not catalog["catalog_db_schemas"]


def test_adbc_get_objects_tables(conn):
    [catalog] = _objects(conn, "tables")
    [schema] = catalog["catalog_db_schemas"]
    tables = schema["db_schema_tables"]
    assert [t["table_name"] for t in tables] == TPCH
    assert {t["table_type"] for t in tables} == {"TABLE"}
    assert all(t["table_columns"] is None for t in tables)
    [catalog] = _objects(conn, "tables", table_name_filter="n%")
    [schema] = catalog["catalog_db_schemas"]
    assert [t["table_name"] for t in schema["db_schema_tables"]] == ["nation"]
    [catalog] = _objects(conn, "tables", table_types_filter=["VIEW"])
    assert not any(s["db_schema_tables"] for s in catalog["catalog_db_schemas"] or [])


@pytest.mark.parametrize("depth", ["all", "columns"])
def test_adbc_get_objects_columns(conn, catalog, depth):
    [cat] = _objects(conn, depth)
    [schema] = cat["catalog_db_schemas"]
    tables = {t["table_name"]: t for t in schema["db_schema_tables"]}
    assert sorted(tables) == TPCH
    for name, table in tables.items():
        columns = table["table_columns"]
        expected = catalog.get(name).columns
        assert [c["column_name"] for c in columns] == [c.name for c in expected]
        assert [c["ordinal_position"] for c in columns] == list(range(1, len(expected) + 1))
        assert [c["xdbc_type_name"] for c in columns] == [c.type for c in expected]
        assert {c["xdbc_scope_table"] for c in columns} == {name}


def test_adbc_get_objects_column_filter(conn):
    [cat] = _objects(conn, "columns", table_name_filter="lineitem", column_name_filter="l_ship%")
    [schema] = cat["catalog_db_schemas"]
    [table] = schema["db_schema_tables"]
    names = [c["column_name"] for c in table["table_columns"]]
    assert names == ["l_shipdate", "l_shipinstruct", "l_shipmode"]


def test_adbc_get_table_schema_is_duckdbs_schema(conn, tpch_dir):
    schema = conn.adbc_get_table_schema("lineitem")
    duckdb_schema = reference(tpch_dir, "SELECT * FROM lineitem LIMIT 0").schema
    assert schema.names == duckdb_schema.names
    assert schema.types == duckdb_schema.types
    assert str(schema.field("l_quantity").type) == "decimal128(15, 2)"


def test_adbc_get_table_schema_of_an_unknown_table_is_not_found(conn):
    with pytest.raises(flightsql.Error) as info:
        conn.adbc_get_table_schema("nope")
    assert "NOT_FOUND" in str(info.value) or info.value.status_code.name == "NOT_FOUND"


# --- gRPC health ------------------------------------------------------------------------------


def health_cli(target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duckfleet.cli", "health", "--target", target, *extra],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("kind", ["frontdoor", "worker"])
def test_fleet_members_advertise_a_serving_health_port(fleet, kind):
    members = fleet.members(kind)
    assert members
    for member in members:
        assert member.health_port > 0
        for service in ("", "duckfleet"):
            done = health_cli(f"127.0.0.1:{member.health_port}", "--service", service)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "SERVING"


def test_health_cli_fails_unless_serving():
    server = HealthServer("127.0.0.1", 0).start()
    target = f"127.0.0.1:{server.port}"
    try:
        not_yet = health_cli(target)
        assert (not_yet.returncode, not_yet.stdout.strip()) == (1, "NOT_SERVING")
        server.set_serving(True)
        assert health_cli(target).returncode == 0
        unknown = health_cli(target, "--service", "other")
        assert (unknown.returncode, unknown.stdout.strip()) == (1, "SERVICE_UNKNOWN")
    finally:
        server.stop()
    gone = health_cli(target, "--timeout", "1")
    assert gone.returncode == 1
    assert "UNAVAILABLE" in gone.stderr


def test_a_disabled_health_server_does_nothing():
    server = HealthServer("127.0.0.1", -1).start()
    server.set_serving(True)
    server.stop()
    assert server.port == 0
