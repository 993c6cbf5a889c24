"""Bound parameters on the wire: Arrow record batches in, planner values out.

A client binds parameters by sending record batches in DoPut (one column per
parameter, in order; one row per execution). The front door keeps them, as an Arrow
IPC stream, inside the prepared-statement handle it returns, so any front door can
execute the handle later. ``rows`` turns them into the planner's ``ParameterValue``
rows: each value's text and DuckDB type, from which the planner builds typed literals.

Arrow types with no DuckDB literal (lists, structs, maps, ...) are refused with a
message naming the parameter.
"""

from __future__ import annotations

import base64
import datetime
import decimal

import pyarrow as pa

from duckfleet.flight.types import arrow_type
from duckfleet.planner.parameters import ParameterValue
from duckfleet.wire.commands import MalformedRequest, UnsupportedRequest

MAX_BOUND_BYTES = 1 << 20  # parameters carried in a handle: at most 1 MiB


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    if len(data) > MAX_BOUND_BYTES:
        raise MalformedRequest(
            f"bound parameters are {len(data)} bytes; duckfleet keeps at most {MAX_BOUND_BYTES} "
            "per prepared statement: bind fewer rows at a time"
        )
    return data


def from_ipc(data: bytes) -> pa.Table:
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise MalformedRequest(f"the bound parameters in the handle do not parse: {exc}") from None


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise MalformedRequest("the bound parameters in the handle are not base64") from None


def parameter_schema(types: list[str | None]) -> pa.Schema:
    """The parameter schema of a prepared statement: one nullable field per
    parameter, named by its number, of the type the planner inferred; a string where
    nothing says (never Arrow null, which JDBC cannot bind): the bound text is then
    cast by DuckDB where it stands."""
    return pa.schema(
        [pa.field(str(n), arrow_type(t) if t else pa.utf8()) for n, t in enumerate(types, 1)]
    )


def rows(table: pa.Table) -> list[list[ParameterValue]]:
    """One list of parameter values per row of ``table``."""
    columns = [_column(table.column(i), table.schema.field(i)) for i in range(table.num_columns)]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _column(column: pa.ChunkedArray, field: pa.Field) -> list[ParameterValue]:
    type_ = field.type
    if pa.types.is_dictionary(type_):
        column = column.cast(type_.value_type)
        type_ = type_.value_type
    duckdb_type = _duckdb_type(type_, field.name)
    return [_value(v, type_, duckdb_type) for v in column.to_pylist()]


def _duckdb_type(type_: pa.DataType, name: str) -> str:
    t = pa.types
    simple = {
        pa.int8(): "TINYINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.uint8(): "UTINYINT",
        pa.uint16(): "USMALLINT",
        pa.uint32(): "UINTEGER",
        pa.uint64(): "UBIGINT",
        pa.float16(): "REAL",
        pa.float32(): "REAL",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
        pa.date64(): "DATE",
        pa.null(): "",
    }
    if type_ in simple:
        return simple[type_]
    if t.is_string(type_) or t.is_large_string(type_) or t.is_string_view(type_):
        return "VARCHAR"
    if t.is_binary(type_) or t.is_large_binary(type_) or t.is_fixed_size_binary(type_):
        return "BLOB"
    if t.is_binary_view(type_):
        return "BLOB"
    if t.is_timestamp(type_):
        return "TIMESTAMPTZ" if type_.tz else "TIMESTAMP"
    if t.is_time(type_):
        return "TIME"
    if t.is_decimal(type_) and type_.precision <= 38:
        return f"DECIMAL({type_.precision},{type_.scale})"
    if t.is_duration(type_) or t.is_interval(type_):
        return "INTERVAL"
    raise UnsupportedRequest(
        f"parameter {name!r} has Arrow type {type_}, which duckfleet cannot bind; "
        "bind numbers, strings, booleans, binary, decimals, dates, times or timestamps"
    )


def _value(value: object, type_: pa.DataType, duckdb_type: str) -> ParameterValue:
    if value is None:
        return ParameterValue(None, duckdb_type)
    if isinstance(value, bool):
        return ParameterValue("true" if value else "false", duckdb_type)
    if isinstance(value, bytes):
        return ParameterValue("".join(f"\\x{b:02X}" for b in value), duckdb_type)
    if isinstance(value, float):
        return ParameterValue(repr(value), duckdb_type)
    if isinstance(value, decimal.Decimal):
        return ParameterValue(format(value, "f"), duckdb_type)
    if isinstance(value, datetime.datetime):
        return ParameterValue(value.isoformat(sep=" "), duckdb_type)
    if isinstance(value, datetime.date | datetime.time):
        return ParameterValue(value.isoformat(), duckdb_type)
    if isinstance(value, datetime.timedelta):
        return ParameterValue(f"{value.total_seconds()} seconds", duckdb_type)
    if pa.types.is_interval(type_):
        months, days, nanos = value  # type: ignore[misc]
        return ParameterValue(
            f"{months} months {days} days {nanos / 1000} microseconds", duckdb_type
        )
    return ParameterValue(str(value), duckdb_type)
