"""The answer to ``CommandGetSqlInfo``: what this server is and what SQL it speaks.

The result schema is fixed by the Flight SQL spec (``SqlSchema::GetSqlInfoSchema`` in
Arrow C++, ``schema_ref.SqlInfo`` in arrow-go); drivers compare it field by field,
nullability included::

    info_name: uint32 not null
    value: dense_union<string_value: utf8 not null = 0,
                       bool_value: bool not null = 1,
                       bigint_value: int64 not null = 2,
                       int32_bitmask: int32 not null = 3,
                       string_list: list<item: utf8> not null = 4,
                       int32_to_int32_list_map: map<int32, list<item: int32>> not null = 5>
           not null

Which union member carries a value follows the spec's wording for each id: "a UTF-8
string" -> string_value, "a boolean" -> bool_value, "an int64" -> bigint_value, "an
int32 bitmask" *and* "an int32 ordinal" (enum values such as SQL_NULL_ORDERING or
FLIGHT_SQL_SERVER_TRANSACTION) -> int32_bitmask, "a list of strings" -> string_list.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from enum import IntEnum

import pyarrow as pa


class SqlInfo(IntEnum):
    """The ``SqlInfo`` ids duckfleet answers (numbers from FlightSql.proto)."""

    FLIGHT_SQL_SERVER_NAME = 0
    FLIGHT_SQL_SERVER_VERSION = 1
    FLIGHT_SQL_SERVER_ARROW_VERSION = 2
    FLIGHT_SQL_SERVER_READ_ONLY = 3
    FLIGHT_SQL_SERVER_SQL = 4
    FLIGHT_SQL_SERVER_SUBSTRAIT = 5
    FLIGHT_SQL_SERVER_TRANSACTION = 8
    FLIGHT_SQL_SERVER_CANCEL = 9
    FLIGHT_SQL_SERVER_BULK_INGESTION = 10
    FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED = 11
    FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT = 100
    FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT = 101
    SQL_DDL_CATALOG = 500
    SQL_DDL_SCHEMA = 501
    SQL_DDL_TABLE = 502
    SQL_IDENTIFIER_CASE = 503
    SQL_IDENTIFIER_QUOTE_CHAR = 504
    SQL_QUOTED_IDENTIFIER_CASE = 505
    SQL_ALL_TABLES_ARE_SELECTABLE = 506
    SQL_NULL_ORDERING = 507
    SQL_SEARCH_STRING_ESCAPE = 513
    SQL_SUPPORTS_COLUMN_ALIASING = 515
    SQL_NULL_PLUS_NULL_IS_NULL = 516
    SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY = 520
    SQL_SUPPORTS_ORDER_BY_UNRELATED = 521
    SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE = 523
    SQL_SELECT_FOR_UPDATE_SUPPORTED = 536
    SQL_STORED_PROCEDURES_SUPPORTED = 537
    SQL_TRANSACTIONS_SUPPORTED = 563
    SQL_BATCH_UPDATES_SUPPORTED = 572
    SQL_SAVEPOINTS_SUPPORTED = 573


# Union type codes = child positions.
STRING, BOOL, BIGINT, INT32, STRING_LIST, INT32_MAP = range(6)

VALUE_TYPE = pa.dense_union(
    [
        pa.field("string_value", pa.utf8(), nullable=False),
        pa.field("bool_value", pa.bool_(), nullable=False),
        pa.field("bigint_value", pa.int64(), nullable=False),
        pa.field("int32_bitmask", pa.int32(), nullable=False),
        pa.field("string_list", pa.list_(pa.utf8()), nullable=False),
        pa.field(
            "int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), nullable=False
        ),
    ]
)

SCHEMA = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", VALUE_TYPE, nullable=False),
    ]
)

# SqlSupportedTransaction, SqlSupportedCaseSensitivity, SqlNullOrdering (FlightSql.proto)
SQL_SUPPORTED_TRANSACTION_NONE = 0
SQL_CASE_SENSITIVITY_CASE_INSENSITIVE = 1
SQL_NULLS_SORTED_AT_END = 3

InfoValue = tuple[int, object]  # (union type code, value)


def _server_version() -> str:
    try:
        return importlib.metadata.version("duckfleet")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0+unknown"


def server_info() -> dict[int, InfoValue]:
    """Every value duckfleet reports, by info id."""
    return {
        SqlInfo.FLIGHT_SQL_SERVER_NAME: (STRING, "duckfleet"),
        SqlInfo.FLIGHT_SQL_SERVER_VERSION: (STRING, _server_version()),
        SqlInfo.FLIGHT_SQL_SERVER_ARROW_VERSION: (STRING, pa.__version__),
        # Only queries are accepted (see the planner); no DML, DDL or ingestion.
        SqlInfo.FLIGHT_SQL_SERVER_READ_ONLY: (BOOL, True),
        SqlInfo.FLIGHT_SQL_SERVER_SQL: (BOOL, True),
        SqlInfo.FLIGHT_SQL_SERVER_SUBSTRAIT: (BOOL, False),
        SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION: (INT32, SQL_SUPPORTED_TRANSACTION_NONE),
        SqlInfo.FLIGHT_SQL_SERVER_CANCEL: (BOOL, False),
        SqlInfo.FLIGHT_SQL_SERVER_BULK_INGESTION: (BOOL, False),
        SqlInfo.FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED: (BOOL, False),
        # Prepared-statement handles are self-contained and never expire: 0 = no timeout.
        SqlInfo.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: (INT32, 0),
        SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT: (INT32, 0),
        SqlInfo.SQL_DDL_CATALOG: (BOOL, False),
        SqlInfo.SQL_DDL_SCHEMA: (BOOL, False),
        SqlInfo.SQL_DDL_TABLE: (BOOL, False),
        # DuckDB's dialect: identifiers, quoted or not, match case-insensitively;
        # NULLs sort last in both directions unless NULLS FIRST is given.
        SqlInfo.SQL_IDENTIFIER_CASE: (INT32, SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        SqlInfo.SQL_IDENTIFIER_QUOTE_CHAR: (STRING, '"'),
        SqlInfo.SQL_QUOTED_IDENTIFIER_CASE: (INT32, SQL_CASE_SENSITIVITY_CASE_INSENSITIVE),
        SqlInfo.SQL_ALL_TABLES_ARE_SELECTABLE: (BOOL, True),
        SqlInfo.SQL_NULL_ORDERING: (INT32, SQL_NULLS_SORTED_AT_END),
        SqlInfo.SQL_SEARCH_STRING_ESCAPE: (STRING, "\\"),
        SqlInfo.SQL_SUPPORTS_COLUMN_ALIASING: (BOOL, True),
        SqlInfo.SQL_NULL_PLUS_NULL_IS_NULL: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_ORDER_BY_UNRELATED: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE: (BOOL, True),
        SqlInfo.SQL_SELECT_FOR_UPDATE_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_STORED_PROCEDURES_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_TRANSACTIONS_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_BATCH_UPDATES_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_SAVEPOINTS_SUPPORTED: (BOOL, False),
    }


_CHILD_TYPES = [field.type for field in VALUE_TYPE]


def sql_info_table(
    requested: Iterable[int] = (), info: dict[int, InfoValue] | None = None
) -> pa.Table:
    """The GetSqlInfo result for the requested ids (all of them when none are named).

    Ids duckfleet has no value for are left out, as the spec allows; a requested id
    appears once even if requested twice, in the order first requested.
    """
    info = server_info() if info is None else info
    wanted = list(dict.fromkeys(requested)) or sorted(info)
    names: list[int] = []
    type_codes: list[int] = []
    offsets: list[int] = []
    children: list[list[object]] = [[] for _ in _CHILD_TYPES]
    for info_id in wanted:
        if info_id not in info:
            continue
        code, value = info[info_id]
        names.append(info_id)
        type_codes.append(code)
        offsets.append(len(children[code]))
        if code == INT32_MAP:
            value = list(value.items())  # type: ignore[attr-defined]
        children[code].append(value)
    # UnionArray.from_dense would make every child nullable; build with the exact type.
    values = pa.Array.from_buffers(
        VALUE_TYPE,
        len(names),
        [
            None,
            pa.array(type_codes, pa.int8()).buffers()[1],
            pa.array(offsets, pa.int32()).buffers()[1],
        ],
        children=[
            pa.array(child, type) for child, type in zip(children, _CHILD_TYPES, strict=True)
        ],
    )
    return pa.Table.from_arrays([pa.array(names, pa.uint32()), values], schema=SCHEMA)
