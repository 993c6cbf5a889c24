"""Pure pieces of the metadata commands, each checked against DuckDB itself: the DuckDB
type -> Arrow type mapping, the dialect lists GetSqlInfo reports, the XdbcTypeInfo
rows and the filter patterns."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from duckfleet.catalog import Column, Table
from duckfleet.flight import dialect, metadata, sql_info, xdbc
from duckfleet.flight.types import FALLBACK, arrow_type


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as c:
        c.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
        yield c


# --- DuckDB type -> Arrow type ------------------------------------------------------------

EXPRESSIONS = [
    "true",
    "1::TINYINT",
    "1::SMALLINT",
    "1::INTEGER",
    "1::BIGINT",
    "1::HUGEINT",
    "1::UTINYINT",
    "1::USMALLINT",
    "1::UINTEGER",
    "1::UBIGINT",
    "1::UHUGEINT",
    "1::FLOAT",
    "1::REAL",
    "1::DOUBLE",
    "1::DECIMAL(15,2)",
    "1::DECIMAL(4,1)",
    "1::DECIMAL(38,10)",
    "1::DECIMAL",
    "1::DECIMAL(5)",
    "1::NUMERIC(10,3)",
    "'a'::VARCHAR",
    "'a'::VARCHAR(10)",
    "'a'::TEXT",
    "'a'::BLOB",
    "DATE '2020-01-02'",
    "TIME '01:02:03'",
    "TIMESTAMP '2020-01-02 03:04:05'",
    "'2020-01-02'::TIMESTAMP_S",
    "'2020-01-02'::TIMESTAMP_MS",
    "'2020-01-02'::TIMESTAMP_NS",
    "'01:02:03+01'::TIMETZ",
    "INTERVAL 1 DAY",
    "uuid()",
    "'{}'::JSON",
    "'0101'::BIT",
    "[1, 2]::INTEGER[]",
    "[['a']]::VARCHAR[][]",
    "[1, 2, 3]::INTEGER[3]",
    "{'a': 1, 'b c': 'x', 'Q\"R': [1.5::DECIMAL(9,2)]}",
    "map(['k'], [[1]])",
    "{'m': map(['k'], [{'x': 1, 'y': 2.5::DOUBLE}])}",
    "'ok'::mood",
    "union_value(k := 1)",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_arrow_type_is_what_duckdb_exports(con, expression):
    [(_, duckdb_type, *_)] = con.execute(f"DESCRIBE SELECT {expression} AS x").fetchall()
    exported = con.sql(f"SELECT {expression} AS x").to_arrow_table().schema.field("x").type
    assert arrow_type(duckdb_type) == exported, duckdb_type


def test_timestamptz_is_microseconds_with_a_zone(con):
    [(_, duckdb_type, *_)] = con.execute("DESCRIBE SELECT now() AS x").fetchall()
    mapped = arrow_type(duckdb_type)
    assert pa.types.is_timestamp(mapped) and mapped.unit == "us" and mapped.tz


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DECIMAL(15,2)", pa.decimal128(15, 2)),
        ("decimal( 15 , 2 )", pa.decimal128(15, 2)),
        ("VARCHAR", pa.utf8()),
        ("DATE", pa.date32()),
        ("TIMESTAMP", pa.timestamp("us")),
        ("HUGEINT", pa.decimal128(38, 0)),
        ("timestamp with time zone", pa.timestamp("us", tz="UTC")),
        ('STRUCT("a ""b""" INTEGER)', pa.struct([pa.field('a "b"', pa.int32())])),
        ("GEOMETRY", FALLBACK),
        ("BIGNUM", FALLBACK),
        ("STRUCT(a)", FALLBACK),
        ("MAP(INTEGER)", FALLBACK),
        ("", FALLBACK),
        ("DECIMAL(15,2", FALLBACK),
    ],
)
def test_arrow_type_spellings_and_fallback(text, expected):
    assert arrow_type(text) == expected


# --- GetTables' table schema ----------------------------------------------------------------


def test_table_schema_carries_the_column_metadata():
    table = Table("t", (Column("price", "DECIMAL(15,2)"), Column("name", "VARCHAR")), ())
    schema = metadata.table_schema(table)
    assert schema.types == [pa.decimal128(15, 2), pa.utf8()]
    price, name = (f.metadata for f in schema)
    assert price[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"DECIMAL(15,2)"
    assert price[b"ARROW:FLIGHT:SQL:PRECISION"] == b"15"
    assert price[b"ARROW:FLIGHT:SQL:SCALE"] == b"2"
    assert name[b"ARROW:FLIGHT:SQL:TABLE_NAME"] == b"t"
    assert name[b"ARROW:FLIGHT:SQL:SCHEMA_NAME"] == b"main"
    assert name[b"ARROW:FLIGHT:SQL:CATALOG_NAME"] == b"duckfleet"
    assert name[b"ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE"] == b"1"
    assert pa.ipc.read_schema(pa.py_buffer(schema.serialize())).equals(schema, check_metadata=True)


# --- filter patterns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        (None, "anything", True),
        ("%", "lineitem", True),
        ("line%", "lineitem", True),
        ("LINE%", "lineitem", True),
        ("%item", "lineitem", True),
        ("l_neitem", "lineitem", True),
        ("l_item", "lineitem", False),
        ("lineitem", "lineitem", True),
        ("lineite", "lineitem", False),
        ("", "lineitem", False),
        ("a.b", "axb", False),  # regex characters are literal
        ("a\\_b", "a_b", True),  # escaped wildcard
        ("a\\_b", "axb", False),
        ("a\\%", "a%", True),
        ("a\\%", "ab", False),
    ],
)
def test_like(pattern, name, matches):
    assert metadata.like(pattern)(name) is matches


# --- GetSqlInfo's DuckDB lists -----------------------------------------------------------------


def test_keywords_are_duckdbs_reserved_keywords(con):
    rows = con.execute(
        "SELECT upper(keyword_name) FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
    ).fetchall()
    assert set(dialect.KEYWORDS) == {r[0] for r in rows}


def test_function_lists_name_duckdb_functions(con):
    known = {r[0] for r in con.execute("SELECT function_name FROM duckdb_functions()").fetchall()}
    lists = (
        dialect.NUMERIC_FUNCTIONS,
        dialect.STRING_FUNCTIONS,
        dialect.DATETIME_FUNCTIONS,
        dialect.SYSTEM_FUNCTIONS,
    )
    for names in lists:
        assert len(set(names)) == len(names)
        missing = set(names) - known - dialect.SYNTAX_FUNCTIONS
        assert not missing
    for name in dialect.SYNTAX_FUNCTIONS:
        call = f"{name}(YEAR FROM DATE '2020-01-01')" if name == "extract" else name
        call = f"{name}(NULL, 1)" if name in ("coalesce", "ifnull") else call
        con.execute(f"SELECT {call}")


_SAMPLES = {
    dialect.Convert.BIGINT: ("1::BIGINT", "BIGINT"),
    dialect.Convert.BINARY: ("'ab'::BLOB", "BLOB"),
    dialect.Convert.BIT: ("true", "BOOLEAN"),
    dialect.Convert.CHAR: ("'x'", "VARCHAR"),
    dialect.Convert.DATE: ("DATE '2020-01-02'", "DATE"),
    dialect.Convert.DECIMAL: ("1.5::DECIMAL(10,2)", "DECIMAL(10,2)"),
    dialect.Convert.FLOAT: ("1.5::DOUBLE", "DOUBLE"),
    dialect.Convert.INTEGER: ("1::INTEGER", "INTEGER"),
    dialect.Convert.INTERVAL_DAY_TIME: ("INTERVAL 1 DAY", "INTERVAL"),
    dialect.Convert.INTERVAL_YEAR_MONTH: ("INTERVAL 1 MONTH", "INTERVAL"),
    dialect.Convert.LONGVARBINARY: ("'ab'::BLOB", "BLOB"),
    dialect.Convert.LONGVARCHAR: ("'x'", "VARCHAR"),
    dialect.Convert.NUMERIC: ("1.5::DECIMAL(10,2)", "DECIMAL(10,2)"),
    dialect.Convert.REAL: ("1.5::FLOAT", "FLOAT"),
    dialect.Convert.SMALLINT: ("1::SMALLINT", "SMALLINT"),
    dialect.Convert.TIME: ("TIME '01:02:03'", "TIME"),
    dialect.Convert.TIMESTAMP: ("TIMESTAMP '2020-01-02 03:04:05'", "TIMESTAMP"),
    dialect.Convert.TINYINT: ("1::TINYINT", "TINYINT"),
    dialect.Convert.VARBINARY: ("'ab'::BLOB", "BLOB"),
    dialect.Convert.VARCHAR: ("'x'", "VARCHAR"),
}
_TEXT = {dialect.Convert.CHAR, dialect.Convert.LONGVARCHAR, dialect.Convert.VARCHAR}


def test_supports_convert_is_what_duckdb_casts(con):
    assert set(dialect.SUPPORTS_CONVERT) == {int(c) for c in dialect.Convert}
    for source, targets in dialect.SUPPORTS_CONVERT.items():
        assert int(source) in targets  # every type converts to itself
        for target in targets:
            value, _ = _SAMPLES[dialect.Convert(source)]
            target_value, target_type = _SAMPLES[dialect.Convert(target)]
            if source in _TEXT:  # a string that spells a value of the target type
                value = f"CAST({target_value} AS VARCHAR)"
            con.execute(f"SELECT CAST({value} AS {target_type})")


def test_sql_info_reports_what_jdbc_and_bi_tools_read():
    info = {
        row["info_name"]: row["value"]
        for row in sql_info.sql_info_table(
            [508, 509, 510, 511, 512, 517, 522, 525, 526, 529, 531]
        ).to_pylist()
    }
    assert "SELECT" in info[508] and "abs" in info[509] and "lower" in info[510]
    assert "date_trunc" in info[512] and "version" in info[511]
    assert dict(info[517])[3] == sorted(int(c) for c in dialect.Convert)  # CHAR -> anything
    assert info[522] == 0b11  # GROUP BY unrelated and beyond select
    assert info[525] == 0b11  # minimum and core grammar
    assert info[526] == 0b11  # ANSI-92 entry and intermediate
    assert (info[529], info[531]) == ("schema", "catalog")
    limits = sql_info.sql_info_table(sql_info.UNKNOWN_LIMITS)
    assert limits.column("value").to_pylist() == [0] * len(sql_info.UNKNOWN_LIMITS)
    codes = limits.column("value").chunk(0).type_codes.to_pylist()
    assert codes == [sql_info.BIGINT] * len(sql_info.UNKNOWN_LIMITS)


# --- XdbcTypeInfo -------------------------------------------------------------------------------


def test_xdbc_types_cover_the_catalog_types_in_spec_order(con):
    table = xdbc.type_info_table()
    names = table.column("type_name").to_pylist()
    for required in (
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "TINYINT",
        "DOUBLE",
        "FLOAT",
        "REAL",
        "DECIMAL",
        "VARCHAR",
        "DATE",
        "TIMESTAMP",
        "BOOLEAN",
        "BLOB",
    ):
        assert required in names
    order = list(zip(table.column("data_type").to_pylist(), names, strict=True))
    assert order == sorted(order)
    for name in names:  # each is a type DuckDB knows by that name
        con.execute(f"SELECT CAST(NULL AS {name})")
    [date] = xdbc.type_info_table(xdbc.Xdbc.DATE).to_pylist()
    assert (date["sql_data_type"], date["datetime_subcode"]) == (xdbc.Xdbc.DATETIME, 1)
    assert xdbc.type_info_table(12345).num_rows == 0


def test_every_metadata_command_is_served_by_front_door_local_tickets():
    from duckfleet.wire import commands, tickets

    assert metadata.COMMANDS == tickets.LOCAL_TICKET_COMMANDS
    assert metadata.COMMANDS <= commands.SUPPORTED_COMMANDS
