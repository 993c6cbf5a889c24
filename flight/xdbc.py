"""The answer to ``CommandGetXdbcTypeInfo``: the SQL types duckfleet's catalog uses.

One row per DuckDB type name a catalog column may carry, described the way JDBC's
``DatabaseMetaData.getTypeInfo`` and ODBC's ``SQLGetTypeInfo`` expect (data_type from
the ``XdbcDataType`` enum; date/time types report ``sql_data_type`` XDBC_DATETIME
with their ``XdbcDatetimeSubcode``, as the spec asks). Rows are ordered by data_type,
then type_name; ``data_type`` in the command keeps only the rows of that type.

Result schema (FlightSql.proto, ``SqlSchema::GetXdbcTypeInfoSchema`` in Arrow C++)::

    type_name: utf8 not null, data_type: int32 not null, column_size: int32,
    literal_prefix: utf8, literal_suffix: utf8, create_params: list<item: utf8 not null>,
    nullable: int32 not null, case_sensitive: bool not null, searchable: int32 not null,
    unsigned_attribute: bool, fixed_prec_scale: bool not null, auto_increment: bool,
    local_type_name: utf8, minimum_scale: int32, maximum_scale: int32,
    sql_data_type: int32 not null, datetime_subcode: int32, num_prec_radix: int32,
    interval_precision: int32
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace
from enum import IntEnum

import pyarrow as pa


class Xdbc(IntEnum):
    """``XdbcDataType`` (FlightSql.proto): the JDBC / ODBC type codes."""

    UNKNOWN_TYPE = 0
    CHAR = 1
    NUMERIC = 2
    DECIMAL = 3
    INTEGER = 4
    SMALLINT = 5
    FLOAT = 6
    REAL = 7
    DOUBLE = 8
    DATETIME = 9
    INTERVAL = 10
    VARCHAR = 12
    DATE = 91
    TIME = 92
    TIMESTAMP = 93
    LONGVARCHAR = -1
    BINARY = -2
    VARBINARY = -3
    LONGVARBINARY = -4
    BIGINT = -5
    TINYINT = -6
    BIT = -7
    WCHAR = -8
    WVARCHAR = -9


# XdbcDatetimeSubcode
SUBCODE_DATE = 1
SUBCODE_TIME = 2
SUBCODE_TIMESTAMP = 3
SUBCODE_TIMESTAMP_WITH_TIMEZONE = 5
# Nullable, Searchable
NULLABILITY_NULLABLE = 1
SEARCHABLE_BASIC = 2
SEARCHABLE_FULL = 3

SCHEMA = pa.schema(
    [
        pa.field("type_name", pa.utf8(), nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32()),
        pa.field("literal_prefix", pa.utf8()),
        pa.field("literal_suffix", pa.utf8()),
        pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), nullable=False))),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_()),
        pa.field("local_type_name", pa.utf8()),
        pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32()),
        pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32()),
    ]
)


@dataclass(frozen=True)
class TypeInfo:
    """One row of the result, in schema order."""

    type_name: str
    data_type: int
    column_size: int | None = None
    literal_prefix: str | None = None
    literal_suffix: str | None = None
    create_params: list[str] | None = None
    nullable: int = NULLABILITY_NULLABLE
    case_sensitive: bool = False
    searchable: int = SEARCHABLE_FULL
    unsigned_attribute: bool | None = None
    fixed_prec_scale: bool = False
    auto_increment: bool | None = None
    local_type_name: str | None = None
    minimum_scale: int | None = None
    maximum_scale: int | None = None
    sql_data_type: int | None = None  # None: the same as data_type
    datetime_subcode: int | None = None
    num_prec_radix: int | None = None
    interval_precision: int | None = None


def _integer(name: str, code: Xdbc, digits: int) -> TypeInfo:
    return TypeInfo(
        name,
        code,
        column_size=digits,
        unsigned_attribute=False,
        auto_increment=False,
        minimum_scale=0,
        maximum_scale=0,
        num_prec_radix=10,
    )


def _binary_float(name: str, code: Xdbc, bits: int) -> TypeInfo:
    return TypeInfo(
        name,
        code,
        column_size=bits,
        unsigned_attribute=False,
        auto_increment=False,
        num_prec_radix=2,
    )


def _datetime(name: str, code: Xdbc, size: int, subcode: int, scale: int | None) -> TypeInfo:
    keyword = name.split(" ")[0]
    return TypeInfo(
        name,
        code,
        column_size=size,
        literal_prefix=f"{keyword} '",
        literal_suffix="'",
        minimum_scale=scale,
        maximum_scale=scale,
        sql_data_type=Xdbc.DATETIME,
        datetime_subcode=subcode,
    )


TYPES: tuple[TypeInfo, ...] = (
    TypeInfo("BOOLEAN", Xdbc.BIT, column_size=1, searchable=SEARCHABLE_BASIC),
    _integer("TINYINT", Xdbc.TINYINT, 3),
    _integer("SMALLINT", Xdbc.SMALLINT, 5),
    _integer("INTEGER", Xdbc.INTEGER, 10),
    _integer("BIGINT", Xdbc.BIGINT, 19),
    _integer("HUGEINT", Xdbc.NUMERIC, 38),
    _binary_float("FLOAT", Xdbc.REAL, 24),
    _binary_float("REAL", Xdbc.REAL, 24),
    _binary_float("DOUBLE", Xdbc.DOUBLE, 53),
    TypeInfo(
        "DECIMAL",
        Xdbc.DECIMAL,
        column_size=38,
        create_params=["precision", "scale"],
        unsigned_attribute=False,
        auto_increment=False,
        minimum_scale=0,
        maximum_scale=38,
        num_prec_radix=10,
    ),
    TypeInfo("VARCHAR", Xdbc.VARCHAR, literal_prefix="'", literal_suffix="'", case_sensitive=True),
    TypeInfo("BLOB", Xdbc.VARBINARY, searchable=SEARCHABLE_BASIC),
    _datetime("DATE", Xdbc.DATE, 10, SUBCODE_DATE, None),
    _datetime("TIME", Xdbc.TIME, 15, SUBCODE_TIME, 6),
    _datetime("TIMESTAMP", Xdbc.TIMESTAMP, 26, SUBCODE_TIMESTAMP, 6),
    _datetime("TIMESTAMP WITH TIME ZONE", Xdbc.TIMESTAMP, 32, SUBCODE_TIMESTAMP_WITH_TIMEZONE, 6),
    TypeInfo(
        "INTERVAL",
        Xdbc.INTERVAL,
        literal_prefix="INTERVAL '",
        literal_suffix="'",
        searchable=SEARCHABLE_BASIC,
    ),
)


def type_info_table(data_type: int | None = None) -> pa.Table:
    """The rows of ``TYPES`` (only those of ``data_type`` if given), in spec order."""
    rows = sorted(
        (t for t in TYPES if data_type is None or t.data_type == data_type),
        key=lambda t: (t.data_type, t.type_name),
    )
    values = [
        astuple(row if row.sql_data_type is not None else replace(row, sql_data_type=row.data_type))
        for row in rows
    ]
    columns = zip(*values, strict=True) if values else ([] for _ in SCHEMA)
    arrays = [pa.array(list(column), f.type) for column, f in zip(columns, SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)
