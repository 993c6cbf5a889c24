"""What DuckDB's SQL dialect offers, as GetSqlInfo reports it to JDBC / ODBC clients.

JDBC's ``DatabaseMetaData`` (getSQLKeywords, getNumericFunctions, getStringFunctions,
getTimeDateFunctions, getSystemFunctions, supportsConvert) and the BI tools built on
it (DBeaver, Tableau) read these lists to decide what SQL to generate. They are
constants here, checked against DuckDB itself by the tests, so the front door needs no
DuckDB connection to answer them.

Pure: no I/O.
"""

from __future__ import annotations

from enum import IntEnum

# duckdb_keywords() WHERE keyword_category = 'reserved'
KEYWORDS: tuple[str, ...] = tuple(
    word.upper()
    for word in """
    all analyse analyze and any array as asc asymmetric both case cast check collate column
    constraint create default deferrable desc describe distinct do else end except false fetch
    for foreign from group having in initially intersect into lambda lateral leading limit not
    null offset on only or order pivot pivot_longer pivot_wider placing primary qualify
    references returning select show some summarize symmetric table then to trailing true union
    unique unpivot using variadic when where window with
    """.split()
)

NUMERIC_FUNCTIONS: tuple[str, ...] = tuple(
    """
    abs acos asin atan atan2 bit_count cbrt ceil ceiling cos cot degrees even exp factorial
    floor gamma gcd greatest isfinite isinf isnan lcm least lgamma ln log log10 log2 mod
    nextafter pi pow power radians random round setseed sign signbit sin sqrt tan trunc xor
    """.split()
)

STRING_FUNCTIONS: tuple[str, ...] = tuple(
    """
    array_to_string ascii bit_length chr concat concat_ws contains ends_with format instr
    jaro_winkler_similarity lcase left length levenshtein lower lpad ltrim md5 octet_length
    position prefix printf regexp_extract regexp_matches regexp_replace repeat replace reverse
    right rpad rtrim sha256 split_part starts_with string_split strip_accents strlen strpos
    substr substring suffix translate trim ucase upper
    """.split()
)

DATETIME_FUNCTIONS: tuple[str, ...] = tuple(
    """
    age century current_date current_time current_timestamp date_add date_diff date_part
    date_sub date_trunc datediff datepart datesub datetrunc day dayname dayofmonth dayofweek
    dayofyear decade epoch epoch_ms extract hour isodow isoyear last_day make_date make_time
    make_timestamp microsecond millennium millisecond minute month monthname now quarter second
    strftime strptime time_bucket to_timestamp week weekday weekofyear year yearweek
    """.split()
)

SYSTEM_FUNCTIONS: tuple[str, ...] = tuple(
    """
    coalesce current_catalog current_database current_schema current_user ifnull nullif
    typeof user version
    """.split()
)

# Functions above that are SQL syntax rather than entries of duckdb_functions().
SYNTAX_FUNCTIONS = frozenset({"coalesce", "current_time", "current_timestamp", "extract", "ifnull"})


class Convert(IntEnum):
    """``SqlSupportsConvert`` (FlightSql.proto): JDBC type families for CAST."""

    BIGINT = 0
    BINARY = 1
    BIT = 2
    CHAR = 3
    DATE = 4
    DECIMAL = 5
    FLOAT = 6
    INTEGER = 7
    INTERVAL_DAY_TIME = 8
    INTERVAL_YEAR_MONTH = 9
    LONGVARBINARY = 10
    LONGVARCHAR = 11
    NUMERIC = 12
    REAL = 13
    SMALLINT = 14
    TIME = 15
    TIMESTAMP = 16
    TINYINT = 17
    VARBINARY = 18
    VARCHAR = 19


_C = Convert
_NUMBERS = frozenset(
    {_C.BIGINT, _C.BIT, _C.DECIMAL, _C.FLOAT, _C.INTEGER, _C.NUMERIC, _C.REAL, _C.SMALLINT}
    | {_C.TINYINT}
)
_TEXT = frozenset({_C.CHAR, _C.LONGVARCHAR, _C.VARCHAR})
_BYTES = frozenset({_C.BINARY, _C.LONGVARBINARY, _C.VARBINARY})
_INTERVALS = frozenset({_C.INTERVAL_DAY_TIME, _C.INTERVAL_YEAR_MONTH})


def _convert_targets(source: Convert) -> frozenset[Convert]:
    if source in _TEXT:
        return frozenset(Convert)  # a string casts to any type whose literal it spells
    if source in _NUMBERS:
        return _NUMBERS | _TEXT
    if source in _BYTES:
        return _BYTES | _TEXT
    if source in _INTERVALS:
        return _INTERVALS | _TEXT
    if source == _C.DATE:
        return frozenset({_C.DATE, _C.TIMESTAMP}) | _TEXT
    if source == _C.TIME:
        return frozenset({_C.TIME}) | _TEXT
    return frozenset({_C.DATE, _C.TIME, _C.TIMESTAMP}) | _TEXT  # TIMESTAMP


SUPPORTS_CONVERT: dict[int, list[int]] = {
    int(source): sorted(int(t) for t in _convert_targets(source)) for source in Convert
}
"""SQL_SUPPORTS_CONVERT: source family -> the families DuckDB's CAST turns it into."""
