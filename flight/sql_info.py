"""The answer to ``CommandGetSqlInfo``: what this server is and what SQL it speaks.

The result schema is the one FlightSql.proto documents for CommandGetSqlInfo, names,
order, types and nullability (a field is nullable unless the comment says "not
null"; list items carry the names it gives them)::

    info_name: uint32 not null,
    value: dense_union<
                string_value: utf8 = 0,
                bool_value: bool = 1,
                bigint_value: int64 = 2,
                int32_bitmask: int32 = 3,
                string_list: list<string_data: utf8> = 4,
                int32_to_int32_list_map: map<key: int32, value: list<$data$: int32>> = 5>

(Arrow C++'s ``SqlSchema::GetSqlInfoSchema`` and arrow-go's ``schema_ref.SqlInfo``
mark the value and its members not null and name the list items ``item``; clients
read the members by type code, which all agree on.)

Which union member carries a value follows the spec's wording for each id: "a UTF-8
string" -> string_value, "a boolean" -> bool_value, "an int64" -> bigint_value, "an
int32 bitmask" *and* "an int32 ordinal" (enum values such as SQL_NULL_ORDERING or
FLIGHT_SQL_SERVER_TRANSACTION) -> int32_bitmask, "a list of strings" -> string_list,
"a map" (SQL_SUPPORTS_CONVERT) -> int32_to_int32_list_map. DuckDB's keywords and
function lists come from dialect.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import pyarrow as pa

from duckfleet.flight import dialect
from duckfleet.version import version


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
    SQL_KEYWORDS = 508
    SQL_NUMERIC_FUNCTIONS = 509
    SQL_STRING_FUNCTIONS = 510
    SQL_SYSTEM_FUNCTIONS = 511
    SQL_DATETIME_FUNCTIONS = 512
    SQL_SEARCH_STRING_ESCAPE = 513
    SQL_EXTRA_NAME_CHARACTERS = 514
    SQL_SUPPORTS_COLUMN_ALIASING = 515
    SQL_NULL_PLUS_NULL_IS_NULL = 516
    SQL_SUPPORTS_CONVERT = 517
    SQL_SUPPORTS_TABLE_CORRELATION_NAMES = 518
    SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES = 519
    SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY = 520
    SQL_SUPPORTS_ORDER_BY_UNRELATED = 521
    SQL_SUPPORTED_GROUP_BY = 522
    SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE = 523
    SQL_SUPPORTS_NON_NULLABLE_COLUMNS = 524
    SQL_SUPPORTED_GRAMMAR = 525
    SQL_ANSI92_SUPPORTED_LEVEL = 526
    SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY = 527
    SQL_OUTER_JOINS_SUPPORT_LEVEL = 528
    SQL_SCHEMA_TERM = 529
    SQL_PROCEDURE_TERM = 530
    SQL_CATALOG_TERM = 531
    SQL_CATALOG_AT_START = 532
    SQL_SCHEMAS_SUPPORTED_ACTIONS = 533
    SQL_CATALOGS_SUPPORTED_ACTIONS = 534
    SQL_SUPPORTED_POSITIONED_COMMANDS = 535
    SQL_SELECT_FOR_UPDATE_SUPPORTED = 536
    SQL_STORED_PROCEDURES_SUPPORTED = 537
    SQL_SUPPORTED_SUBQUERIES = 538
    SQL_CORRELATED_SUBQUERIES_SUPPORTED = 539
    SQL_SUPPORTED_UNIONS = 540
    SQL_MAX_BINARY_LITERAL_LENGTH = 541
    SQL_MAX_CHAR_LITERAL_LENGTH = 542
    SQL_MAX_COLUMN_NAME_LENGTH = 543
    SQL_MAX_COLUMNS_IN_GROUP_BY = 544
    SQL_MAX_COLUMNS_IN_INDEX = 545
    SQL_MAX_COLUMNS_IN_ORDER_BY = 546
    SQL_MAX_COLUMNS_IN_SELECT = 547
    SQL_MAX_COLUMNS_IN_TABLE = 548
    SQL_MAX_CONNECTIONS = 549
    SQL_MAX_CURSOR_NAME_LENGTH = 550
    SQL_MAX_INDEX_LENGTH = 551
    SQL_DB_SCHEMA_NAME_LENGTH = 552
    SQL_MAX_PROCEDURE_NAME_LENGTH = 553
    SQL_MAX_CATALOG_NAME_LENGTH = 554
    SQL_MAX_ROW_SIZE = 555
    SQL_MAX_ROW_SIZE_INCLUDES_BLOBS = 556
    SQL_MAX_STATEMENT_LENGTH = 557
    SQL_MAX_STATEMENTS = 558
    SQL_MAX_TABLE_NAME_LENGTH = 559
    SQL_MAX_TABLES_IN_SELECT = 560
    SQL_MAX_USERNAME_LENGTH = 561
    SQL_DEFAULT_TRANSACTION_ISOLATION = 562
    SQL_TRANSACTIONS_SUPPORTED = 563
    SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS = 564
    SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT = 565
    SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED = 566
    SQL_SUPPORTED_RESULT_SET_TYPES = 567
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_UNSPECIFIED = 568
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_FORWARD_ONLY = 569
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_SENSITIVE = 570
    SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_INSENSITIVE = 571
    SQL_BATCH_UPDATES_SUPPORTED = 572
    SQL_SAVEPOINTS_SUPPORTED = 573
    SQL_NAMED_PARAMETERS_SUPPORTED = 574
    SQL_LOCATORS_UPDATE_COPY = 575
    SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED = 576


# Union type codes = child positions.
STRING, BOOL, BIGINT, INT32, STRING_LIST, INT32_MAP = range(6)

VALUE_TYPE = pa.dense_union(
    [
        pa.field("string_value", pa.utf8()),
        pa.field("bool_value", pa.bool_()),
        pa.field("bigint_value", pa.int64()),
        pa.field("int32_bitmask", pa.int32()),
        pa.field("string_list", pa.list_(pa.field("string_data", pa.utf8()))),
        pa.field(
            "int32_to_int32_list_map",
            pa.map_(pa.int32(), pa.list_(pa.field("$data$", pa.int32()))),
        ),
    ]
)

SCHEMA = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", VALUE_TYPE),
    ]
)

# Enum values and bitmask bits from FlightSql.proto. An "int32 ordinal" is the value
# itself; an "int32 bitmask" sets bit (1 << value) for each value supported.
SQL_SUPPORTED_TRANSACTION_NONE = 0  # SqlSupportedTransaction
SQL_CASE_SENSITIVITY_CASE_INSENSITIVE = 1  # SqlSupportedCaseSensitivity
SQL_NULLS_SORTED_AT_END = 3  # SqlNullOrdering
SQL_FULL_OUTER_JOINS = 2  # SqlOuterJoinsSupportLevel
SQL_TRANSACTION_NONE = 0  # SqlTransactionIsolationLevel
SQL_GROUP_BY_UNRELATED, SQL_GROUP_BY_BEYOND_SELECT = 0, 1  # SqlSupportedGroupBy
SQL_MINIMUM_GRAMMAR, SQL_CORE_GRAMMAR, SQL_EXTENDED_GRAMMAR = 0, 1, 2  # SupportedSqlGrammar
ANSI92_ENTRY_SQL, ANSI92_INTERMEDIATE_SQL, ANSI92_FULL_SQL = 0, 1, 2  # ...Ansi92SqlGrammarLevel
SQL_SUBQUERIES_IN_COMPARISONS, SQL_SUBQUERIES_IN_EXISTS = 0, 1  # SqlSupportedSubqueries
SQL_SUBQUERIES_IN_INS, SQL_SUBQUERIES_IN_QUANTIFIEDS = 2, 3
SQL_UNION, SQL_UNION_ALL = 0, 1  # SqlSupportedUnions
SQL_RESULT_SET_TYPE_FORWARD_ONLY = 1  # SqlSupportedResultSetType
SQL_RESULT_SET_CONCURRENCY_READ_ONLY = 1  # SqlSupportedResultSetConcurrency

CATALOG_TERM = "catalog"
SCHEMA_TERM = "schema"
PROCEDURE_TERM = "procedure"

# Limits DuckDB does not have or does not state: "0 means no limit or not known".
UNKNOWN_LIMITS = (
    SqlInfo.SQL_MAX_BINARY_LITERAL_LENGTH,
    SqlInfo.SQL_MAX_CHAR_LITERAL_LENGTH,
    SqlInfo.SQL_MAX_COLUMN_NAME_LENGTH,
    SqlInfo.SQL_MAX_COLUMNS_IN_GROUP_BY,
    SqlInfo.SQL_MAX_COLUMNS_IN_INDEX,
    SqlInfo.SQL_MAX_COLUMNS_IN_ORDER_BY,
    SqlInfo.SQL_MAX_COLUMNS_IN_SELECT,
    SqlInfo.SQL_MAX_COLUMNS_IN_TABLE,
    SqlInfo.SQL_MAX_CONNECTIONS,
    SqlInfo.SQL_MAX_CURSOR_NAME_LENGTH,
    SqlInfo.SQL_MAX_INDEX_LENGTH,
    SqlInfo.SQL_DB_SCHEMA_NAME_LENGTH,
    SqlInfo.SQL_MAX_PROCEDURE_NAME_LENGTH,
    SqlInfo.SQL_MAX_CATALOG_NAME_LENGTH,
    SqlInfo.SQL_MAX_ROW_SIZE,
    SqlInfo.SQL_MAX_STATEMENT_LENGTH,
    SqlInfo.SQL_MAX_STATEMENTS,
    SqlInfo.SQL_MAX_TABLE_NAME_LENGTH,
    SqlInfo.SQL_MAX_TABLES_IN_SELECT,
    SqlInfo.SQL_MAX_USERNAME_LENGTH,
)

InfoValue = tuple[int, object]  # (union type code, value)


def bitmask(*bits: int) -> int:
    """An int32 bitmask with bit ``1 << b`` set for each ``b``."""
    mask = 0
    for bit in bits:
        mask |= 1 << bit
    return mask


def server_info() -> dict[int, InfoValue]:
    """Every value duckfleet reports, by info id."""
    info: dict[int, InfoValue] = {
        SqlInfo.FLIGHT_SQL_SERVER_NAME: (STRING, "duckfleet"),
        SqlInfo.FLIGHT_SQL_SERVER_VERSION: (STRING, version()),
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
        SqlInfo.SQL_KEYWORDS: (STRING_LIST, list(dialect.KEYWORDS)),
        SqlInfo.SQL_NUMERIC_FUNCTIONS: (STRING_LIST, list(dialect.NUMERIC_FUNCTIONS)),
        SqlInfo.SQL_STRING_FUNCTIONS: (STRING_LIST, list(dialect.STRING_FUNCTIONS)),
        SqlInfo.SQL_SYSTEM_FUNCTIONS: (STRING_LIST, list(dialect.SYSTEM_FUNCTIONS)),
        SqlInfo.SQL_DATETIME_FUNCTIONS: (STRING_LIST, list(dialect.DATETIME_FUNCTIONS)),
        # The escape of '_' and '%' in the metadata commands' LIKE patterns.
        SqlInfo.SQL_SEARCH_STRING_ESCAPE: (STRING, "\\"),
        SqlInfo.SQL_EXTRA_NAME_CHARACTERS: (STRING, ""),
        SqlInfo.SQL_SUPPORTS_COLUMN_ALIASING: (BOOL, True),
        SqlInfo.SQL_NULL_PLUS_NULL_IS_NULL: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_CONVERT: (INT32_MAP, dialect.SUPPORTS_CONVERT),
        SqlInfo.SQL_SUPPORTS_TABLE_CORRELATION_NAMES: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_ORDER_BY_UNRELATED: (BOOL, True),
        SqlInfo.SQL_SUPPORTED_GROUP_BY: (
            INT32,
            bitmask(SQL_GROUP_BY_UNRELATED, SQL_GROUP_BY_BEYOND_SELECT),
        ),
        SqlInfo.SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE: (BOOL, True),
        SqlInfo.SQL_SUPPORTS_NON_NULLABLE_COLUMNS: (BOOL, True),
        SqlInfo.SQL_SUPPORTED_GRAMMAR: (INT32, bitmask(SQL_MINIMUM_GRAMMAR, SQL_CORE_GRAMMAR)),
        # Tableau refuses a Flight SQL source that leaves this one out.
        SqlInfo.SQL_ANSI92_SUPPORTED_LEVEL: (
            INT32,
            bitmask(ANSI92_ENTRY_SQL, ANSI92_INTERMEDIATE_SQL),
        ),
        SqlInfo.SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY: (BOOL, False),
        SqlInfo.SQL_OUTER_JOINS_SUPPORT_LEVEL: (INT32, SQL_FULL_OUTER_JOINS),
        SqlInfo.SQL_SCHEMA_TERM: (STRING, SCHEMA_TERM),
        SqlInfo.SQL_PROCEDURE_TERM: (STRING, PROCEDURE_TERM),
        SqlInfo.SQL_CATALOG_TERM: (STRING, CATALOG_TERM),
        SqlInfo.SQL_CATALOG_AT_START: (BOOL, True),
        SqlInfo.SQL_SCHEMAS_SUPPORTED_ACTIONS: (INT32, 0),
        SqlInfo.SQL_CATALOGS_SUPPORTED_ACTIONS: (INT32, 0),
        SqlInfo.SQL_SUPPORTED_POSITIONED_COMMANDS: (INT32, 0),
        SqlInfo.SQL_SELECT_FOR_UPDATE_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_STORED_PROCEDURES_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_SUPPORTED_SUBQUERIES: (
            INT32,
            bitmask(
                SQL_SUBQUERIES_IN_COMPARISONS,
                SQL_SUBQUERIES_IN_EXISTS,
                SQL_SUBQUERIES_IN_INS,
                SQL_SUBQUERIES_IN_QUANTIFIEDS,
            ),
        ),
        SqlInfo.SQL_CORRELATED_SUBQUERIES_SUPPORTED: (BOOL, True),
        SqlInfo.SQL_SUPPORTED_UNIONS: (INT32, bitmask(SQL_UNION, SQL_UNION_ALL)),
        SqlInfo.SQL_MAX_ROW_SIZE_INCLUDES_BLOBS: (BOOL, False),
        # The proto says "an int32 ordinal", but arrow-java writes it as a bigint
        # (SqlInfoBuilder.withSqlDefaultTransactionIsolation) and the JDBC driver casts
        # it to Long (ArrowDatabaseMetadata.getDefaultTransactionIsolation): an int32
        # there is a ClassCastException in DBeaver. tests/test_jdbc_replay.py checks it.
        SqlInfo.SQL_DEFAULT_TRANSACTION_ISOLATION: (BIGINT, SQL_TRANSACTION_NONE),
        SqlInfo.SQL_TRANSACTIONS_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS: (INT32, 0),
        SqlInfo.SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT: (BOOL, False),
        SqlInfo.SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED: (BOOL, False),
        # Results stream forward only, read only.
        SqlInfo.SQL_SUPPORTED_RESULT_SET_TYPES: (
            INT32,
            bitmask(SQL_RESULT_SET_TYPE_FORWARD_ONLY),
        ),
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_UNSPECIFIED: (INT32, 0),
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_FORWARD_ONLY: (
            INT32,
            bitmask(SQL_RESULT_SET_CONCURRENCY_READ_ONLY),
        ),
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_SENSITIVE: (INT32, 0),
        SqlInfo.SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_SCROLL_INSENSITIVE: (INT32, 0),
        SqlInfo.SQL_BATCH_UPDATES_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_SAVEPOINTS_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_NAMED_PARAMETERS_SUPPORTED: (BOOL, False),
        SqlInfo.SQL_LOCATORS_UPDATE_COPY: (BOOL, False),
        SqlInfo.SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED: (BOOL, False),
    }
    info.update(dict.fromkeys(UNKNOWN_LIMITS, (BIGINT, 0)))
    return info


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
    # Built with the exact type: UnionArray.from_dense would name the list items "item".
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
