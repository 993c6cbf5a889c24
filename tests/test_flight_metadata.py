"""The metadata commands and the health service, on a real fleet (etcd, a front door
and two workers as processes, TPC-H registered): through the ADBC Flight SQL driver
as BI tools use them, and through raw pyarrow.flight against the spec's schemas.

The expected schemas below are the text of FlightSql.proto's comments, each command's
"The returned Arrow schema will be: < ... >" with the explanations in parentheses left
out, read by a small parser (``spec_schema``): names, order, types, and nullability
(a field is nullable unless the text says "not null"). Not duckfleet's code, nor
another implementation's."""

from __future__ import annotations

import re
import subprocess
import sys

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import reference

from duckfleet.catalog import Catalog
from duckfleet.control import CatalogStore
from duckfleet.health import HealthServer
from duckfleet.local_fleet import TPCH_TABLES
from duckfleet.wire import sql_messages as sql
from duckfleet.wire.commands import pack

pytestmark = pytest.mark.timeout(120)

TPCH = sorted(TPCH_TABLES)
SYSTEM = ["queries", "tasks", "workers"]  # the system schema (tests/test_system_tables.py)

# --- the spec's result schemas, as FlightSql.proto writes them ----------------------------

SPEC: dict[str, str] = {
    "CommandGetCatalogs": "catalog_name: utf8 not null",
    "CommandGetDbSchemas": "catalog_name: utf8, db_schema_name: utf8 not null",
    "CommandGetTables": """
        catalog_name: utf8,
        db_schema_name: utf8,
        table_name: utf8 not null,
        table_type: utf8 not null,
        [optional] table_schema: bytes not null""",
    "CommandGetTableTypes": "table_type: utf8 not null",
    "CommandGetPrimaryKeys": """
        catalog_name: utf8,
        db_schema_name: utf8,
        table_name: utf8 not null,
        column_name: utf8 not null,
        key_name: utf8,
        key_sequence: int32 not null""",
    # the same text for CommandGetImportedKeys, CommandGetExportedKeys and
    # CommandGetCrossReference
    "keys": """
        pk_catalog_name: utf8,
        pk_db_schema_name: utf8,
        pk_table_name: utf8 not null,
        pk_column_name: utf8 not null,
        fk_catalog_name: utf8,
        fk_db_schema_name: utf8,
        fk_table_name: utf8 not null,
        fk_column_name: utf8 not null,
        key_sequence: int32 not null,
        fk_key_name: utf8,
        pk_key_name: utf8,
        update_rule: uint8 not null,
        delete_rule: uint8 not null""",
    "CommandGetXdbcTypeInfo": """
        type_name: utf8 not null,
        data_type: int32 not null,
        column_size: int32,
        literal_prefix: utf8,
        literal_suffix: utf8,
        create_params: list<utf8 not null>,
        nullable: int32 not null,
        case_sensitive: bool not null,
        searchable: int32 not null,
        unsigned_attribute: bool,
        fixed_prec_scale: bool not null,
        auto_increment: bool,
        local_type_name: utf8,
        minimum_scale: int32,
        maximum_scale: int32,
        sql_data_type: int32 not null,
        datetime_subcode: int32,
        num_prec_radix: int32,
        interval_precision: int32""",
    "CommandGetSqlInfo": """
        info_name: uint32 not null,
        value: dense_union<
                    string_value: utf8,
                    bool_value: bool,
                    bigint_value: int64,
                    int32_bitmask: int32,
                    string_list: list<string_data: utf8>
                    int32_to_int32_list_map: map<key: int32, value: list<$data$: int32>>
        >""",
}

_PRIMITIVES = {
    "utf8": pa.utf8(),
    "bytes": pa.binary(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint32": pa.uint32(),
}


class _SpecReader:
    """FlightSql.proto's schema notation: ``name: type [not null]`` separated by commas
    (the spec forgets one in GetSqlInfo's union; a new line separates too); types are
    the primitives above, ``list<[name:] type>`` (an unnamed item is Arrow's "item"),
    ``map<key: type, value: type>`` (Arrow map keys are never null) and
    ``dense_union<fields>`` (type codes in order)."""

    def __init__(self, text: str) -> None:
        text = text.replace("[optional]", "")
        self.tokens = re.findall(r"[\w$]+|[:,<>]|\n", text)
        self.pos = 0

    def peek(self) -> str:
        while self.pos < len(self.tokens) and self.tokens[self.pos] == "\n":
            self.pos += 1
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        assert token and (expected is None or token == expected), (expected, token, self.pos)
        self.pos += 1
        return token

    def fields(self, end: str = "") -> list[pa.Field]:
        out = [self.field()]
        while self.peek() not in (end, ""):
            if self.peek() == ",":
                self.take(",")
            out.append(self.field())
        return out

    def field(self) -> pa.Field:
        name = self.take()
        self.take(":")
        return self.nullability(name, self.type())

    def nullability(self, name: str, type_: pa.DataType) -> pa.Field:
        if self.peek() == "not":
            self.take("not")
            self.take("null")
            return pa.field(name, type_, nullable=False)
        return pa.field(name, type_)

    def type(self) -> pa.DataType:
        word = self.take()
        if word in _PRIMITIVES:
            return _PRIMITIVES[word]
        self.take("<")
        if word == "list":
            self.peek()  # past line breaks
            named = self.tokens[self.pos + 1] == ":"
            item = self.field() if named else self.nullability("item", self.type())
            result: pa.DataType = pa.list_(item)
        elif word == "map":
            key, value = self.field(), (self.take(","), self.field())[1]
            result = pa.map_(key.type, value)
        else:
            assert word == "dense_union", word
            result = pa.dense_union(self.fields(end=">"))
        self.take(">")
        return result


def spec_schema(command: str) -> pa.Schema:
    reader = _SpecReader(SPEC[command])
    schema = pa.schema(reader.fields())
    assert reader.peek() == "", f"unread spec text: {reader.tokens[reader.pos :]}"
    return schema


def assert_spec_schema(actual: pa.Schema, spec: pa.Schema) -> None:
    """Field by field: name, type (children included), nullability; then the whole."""
    assert actual.names == spec.names
    for got, want in zip(actual, spec, strict=True):
        assert (got.name, str(got.type), got.nullable) == (want.name, str(want.type), want.nullable)
        assert got.equals(want), (got, want)
    assert actual.equals(spec)


CATALOGS = spec_schema("CommandGetCatalogs")
DB_SCHEMAS = spec_schema("CommandGetDbSchemas")
TABLES_WITH_SCHEMA = spec_schema("CommandGetTables")
TABLES = pa.schema(list(TABLES_WITH_SCHEMA)[:-1])  # table_schema only with include_schema
TABLE_TYPES = spec_schema("CommandGetTableTypes")
PRIMARY_KEYS = spec_schema("CommandGetPrimaryKeys")
KEYS = spec_schema("keys")
XDBC_TYPE_INFO = spec_schema("CommandGetXdbcTypeInfo")
SQL_INFO = spec_schema("CommandGetSqlInfo")


def test_the_spec_reader_reads_what_the_proto_writes():
    assert TABLES_WITH_SCHEMA.field("table_schema") == pa.field("table_schema", pa.binary(), False)
    assert PRIMARY_KEYS.names[-2:] == ["key_name", "key_sequence"]
    create_params = XDBC_TYPE_INFO.field("create_params")
    assert create_params.type == pa.list_(pa.field("item", pa.utf8(), False))
    value = SQL_INFO.field("value")
    assert value.nullable and isinstance(value.type, pa.UnionType)
    assert [f.name for f in value.type] == [
        "string_value", "bool_value", "bigint_value", "int32_bitmask", "string_list",
        "int32_to_int32_list_map",
    ]  # fmt: skip
    assert value.type.field(4).type == pa.list_(pa.field("string_data", pa.utf8()))
    assert value.type.field(5).type == pa.map_(
        pa.int32(), pa.field("value", pa.list_(pa.field("$data$", pa.int32())))
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
    assert_spec_schema(info.schema, schema)
    assert_spec_schema(client.get_schema(descriptor).schema, schema)
    assert_spec_schema(table.schema, schema)
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
    assert schemas == [
        {"catalog_name": "duckfleet", "db_schema_name": "main"},
        {"catalog_name": "duckfleet", "db_schema_name": "system"},
    ]
    assert fetch(client, sql.CommandGetDbSchemas(db_schema_filter_pattern="m_i%"))[1].num_rows == 1
    assert fetch(client, sql.CommandGetDbSchemas(db_schema_filter_pattern="x%"))[1].num_rows == 0
    assert fetch(client, sql.CommandGetDbSchemas(catalog="other"))[1].num_rows == 0
    types = fetch(client, sql.CommandGetTableTypes())[1]
    assert types.column("table_type").to_pylist() == ["SYSTEM TABLE", "TABLE", "VIEW"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (sql.CommandGetTables(), TPCH + SYSTEM),
        (sql.CommandGetTables(db_schema_filter_pattern="sys%"), SYSTEM),
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
    assert set(table.column("table_type").to_pylist()) <= {"TABLE", "SYSTEM TABLE"}
    assert set(table.column("catalog_name").to_pylist()) <= {"duckfleet"}


def test_get_tables_include_schema_serializes_each_tables_schema(client, catalog):
    _, table = fetch(
        client, sql.CommandGetTables(include_schema=True, db_schema_filter_pattern="main")
    )
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
    assert conn.adbc_get_table_types() == ["SYSTEM TABLE", "TABLE", "VIEW"]


def _objects(conn, depth: str, **filters) -> list[dict]:
    return conn.adbc_get_objects(depth=depth, **filters).read_all().to_pylist()


def _main(catalog: dict) -> dict:
    """The `main` schema's entry of a catalog get_objects returned."""
    [schema] = [s for s in catalog["catalog_db_schemas"] if s["db_schema_name"] == "main"]
    return schema


def test_adbc_get_objects_catalogs(conn):
    assert _objects(conn, "catalogs") == [{"catalog_name": "duckfleet", "catalog_db_schemas": None}]


def test_adbc_get_objects_db_schemas(conn):
    [catalog] = _objects(conn, "db_schemas")
    assert catalog["catalog_name"] == "duckfleet"
    assert catalog["catalog_db_schemas"] == [
        {"db_schema_name": "main", "db_schema_tables": None},
        {"db_schema_name": "system", "db_schema_tables": None},
    ]
    [catalog] = _objects(conn, "db_schemas", db_schema_filter="nope")
    assert not catalog["catalog_db_schemas"]


def test_adbc_get_objects_tables(conn):
    [catalog] = _objects(conn, "tables")
    tables = _main(catalog)["db_schema_tables"]
    assert [t["table_name"] for t in tables] == TPCH
    assert {t["table_type"] for t in tables} == {"TABLE"}
    assert all(t["table_columns"] is None for t in tables)
    [catalog] = _objects(conn, "tables", table_name_filter="n%")
    assert [t["table_name"] for t in _main(catalog)["db_schema_tables"]] == ["nation"]
    [catalog] = _objects(conn, "tables", table_types_filter=["VIEW"])
    assert not any(s["db_schema_tables"] for s in catalog["catalog_db_schemas"] or [])


@pytest.mark.parametrize("depth", ["all", "columns"])
def test_adbc_get_objects_columns(conn, catalog, depth):
    [cat] = _objects(conn, depth)
    tables = {t["table_name"]: t for t in _main(cat)["db_schema_tables"]}
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
    [table] = _main(cat)["db_schema_tables"]
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
