"""DuckDB type names -> Arrow types: what a catalog column looks like on the wire.

The catalog stores each column's type as DuckDB spells it in ``DESCRIBE`` (e.g.
``DECIMAL(15,2)``, ``VARCHAR``, ``TIMESTAMP WITH TIME ZONE``, ``INTEGER[]``,
``STRUCT(a INTEGER, "b c" VARCHAR)``). ``arrow_type`` gives the Arrow type DuckDB
itself produces for such a column when it exports a result to Arrow, so the schemas
the front door announces (GetTables with include_schema) match what the workers
later send. A type it does not know falls back to utf8: a client can still show it.

Pure: no DuckDB, no I/O.
"""

from __future__ import annotations

import re

import pyarrow as pa

FALLBACK = pa.utf8()

# DuckDB's default time zone for TIMESTAMPTZ results when none is configured.
TIMESTAMPTZ_ZONE = "UTC"

_SIMPLE: dict[str, pa.DataType] = {
    **dict.fromkeys(("BOOLEAN", "BOOL", "LOGICAL"), pa.bool_()),
    **dict.fromkeys(("TINYINT", "INT1"), pa.int8()),
    **dict.fromkeys(("SMALLINT", "INT2", "SHORT"), pa.int16()),
    **dict.fromkeys(("INTEGER", "INT", "INT4", "SIGNED"), pa.int32()),
    **dict.fromkeys(("BIGINT", "INT8", "LONG"), pa.int64()),
    **dict.fromkeys(("HUGEINT", "INT128", "UHUGEINT", "UINT128"), pa.decimal128(38, 0)),
    **dict.fromkeys(("UTINYINT", "UINT8"), pa.uint8()),
    **dict.fromkeys(("USMALLINT", "UINT16"), pa.uint16()),
    **dict.fromkeys(("UINTEGER", "UINT32"), pa.uint32()),
    **dict.fromkeys(("UBIGINT", "UINT64"), pa.uint64()),
    **dict.fromkeys(("FLOAT", "FLOAT4", "REAL"), pa.float32()),
    **dict.fromkeys(("DOUBLE", "FLOAT8"), pa.float64()),
    **dict.fromkeys(
        ("VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "NVARCHAR", "UUID", "JSON"), pa.utf8()
    ),
    **dict.fromkeys(("BLOB", "BYTEA", "BINARY", "VARBINARY", "BIT", "BITSTRING"), pa.binary()),
    "DATE": pa.date32(),
    **dict.fromkeys(("TIME", "TIME WITH TIME ZONE", "TIMETZ"), pa.time64("us")),
    **dict.fromkeys(("TIMESTAMP", "DATETIME", "TIMESTAMP_US"), pa.timestamp("us")),
    "TIMESTAMP_S": pa.timestamp("s"),
    "TIMESTAMP_MS": pa.timestamp("ms"),
    "TIMESTAMP_NS": pa.timestamp("ns"),
    **dict.fromkeys(
        ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"), pa.timestamp("us", tz=TIMESTAMPTZ_ZONE)
    ),
    "INTERVAL": pa.month_day_nano_interval(),
}

_DECIMAL = re.compile(r"(?:DECIMAL|NUMERIC)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?", re.I)
_SIZED_TEXT = re.compile(r"(VARCHAR|CHAR|BPCHAR|NVARCHAR|TEXT|STRING)\s*\(\s*\d+\s*\)", re.I)
_ARRAY = re.compile(r"(.*)\[(\d*)\]", re.S)
_NESTED = re.compile(r"(STRUCT|MAP|UNION|ENUM)\s*\((.*)\)", re.I | re.S)
_DEFAULT_DECIMAL = (18, 3)  # DuckDB's DECIMAL without a width


def arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type of a column whose DuckDB type is ``duckdb_type``; utf8 if unknown."""
    try:
        return _parse(duckdb_type.strip())
    except (ValueError, pa.ArrowException):
        return FALLBACK


def arrow_field(name: str, duckdb_type: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, arrow_type(duckdb_type), nullable=nullable)


def _parse(text: str) -> pa.DataType:
    simple = _SIMPLE.get(" ".join(text.upper().split()))
    if simple is not None:
        return simple
    array = _ARRAY.fullmatch(text)
    if array is not None:
        inner = _parse(array.group(1).strip())
        size = array.group(2)
        return pa.list_(inner, int(size)) if size else pa.list_(inner)
    decimal = _DECIMAL.fullmatch(text)
    if decimal is not None:
        if decimal.group(1) is None:
            return pa.decimal128(*_DEFAULT_DECIMAL)
        precision, scale = int(decimal.group(1)), int(decimal.group(2) or 0)
        return (
            pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        )
    if _SIZED_TEXT.fullmatch(text):
        return pa.utf8()
    nested = _NESTED.fullmatch(text)
    if nested is not None:
        kind, body = nested.group(1).upper(), nested.group(2)
        if kind == "ENUM":
            return _enum(body)
        parts = _split_top_level(body)
        if kind == "MAP":
            if len(parts) != 2:
                raise ValueError(f"MAP takes two types: {text!r}")
            return pa.map_(_parse(parts[0]), _parse(parts[1]))
        fields = [_member(part) for part in parts]
        if kind == "STRUCT":
            return pa.struct(fields)
        return pa.sparse_union(fields)
    raise ValueError(f"unknown DuckDB type {text!r}")


def _enum(body: str) -> pa.DataType:
    count = len(_split_top_level(body))
    index = pa.uint8() if count <= 0xFF else pa.uint16() if count <= 0xFFFF else pa.uint32()
    return pa.dictionary(index, pa.utf8())


def _member(text: str) -> pa.Field:
    """``name TYPE`` or ``"quoted name" TYPE`` inside STRUCT(...) / UNION(...)."""
    text = text.strip()
    if text.startswith('"'):
        end = 1
        while True:
            end = text.index('"', end)
            if text[end + 1 : end + 2] == '"':  # an escaped quote
                end += 2
                continue
            break
        name, rest = text[1:end].replace('""', '"'), text[end + 1 :]
    else:
        name, _, rest = text.partition(" ")
    if not rest.strip():
        raise ValueError(f"no type for member {name!r}")
    return pa.field(name, _parse(rest.strip()))


def _split_top_level(body: str) -> list[str]:
    """``body`` split on commas outside parentheses, brackets and quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    parts.append(body[start:].strip())
    return [p for p in parts if p]
