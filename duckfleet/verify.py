"""Differential checks: is a distributed result the same as DuckDB's?

Used by the tests and by the benchmarks before a timing counts. Floating-point
values are compared with a relative tolerance (a parallel sum may round in another
order); everything else exactly. Unordered results are compared as multisets.
"""

from __future__ import annotations

import datetime
import decimal
import math
from typing import Any

import pyarrow as pa

REL_TOL = 1e-9
ABS_TOL = 1e-12


def _sort_key(v: Any) -> tuple[int, Any]:
    if v is None:
        return (0, "")
    if isinstance(v, float):
        if math.isnan(v):
            return (2, "nan")
        return (1, float(f"{v:.9g}"))
    if isinstance(v, bool | int | decimal.Decimal):
        return (1, float(v))
    if isinstance(v, datetime.datetime | datetime.date | datetime.time | datetime.timedelta):
        return (3, v.isoformat() if hasattr(v, "isoformat") else str(v))
    return (4, str(v))


def _same_value(a: Any, b: Any, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            _same_value(x, y, rel_tol, abs_tol) for x, y in zip(a, b, strict=True)
        )
    return bool(a == b)


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    cols = [c.to_pylist() for c in table.columns]
    return list(zip(*cols, strict=True)) if cols else []


def _normal_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    return str(t)


def difference(
    actual: pa.Table,
    expected: pa.Table,
    *,
    ordered: bool,
    check_types: bool = True,
    rel_tol: float = REL_TOL,
    abs_tol: float = ABS_TOL,
) -> str | None:
    """None if the tables hold the same result, else what differs first. `rel_tol`
    and `abs_tol` loosen the float comparison (other engines round decimal averages
    to another scale)."""
    if actual.column_names != expected.column_names:
        return f"columns differ: {actual.column_names} != {expected.column_names}"
    if check_types:
        for name, ta, te in zip(
            actual.column_names, actual.schema.types, expected.schema.types, strict=True
        ):
            if _normal_type(ta) != _normal_type(te):
                return f"column {name!r} has type {ta}, expected {te}"
    if actual.num_rows != expected.num_rows:
        return f"row count {actual.num_rows} != expected {expected.num_rows}"
    ra, re = _rows(actual), _rows(expected)
    if not ordered:
        ra.sort(key=lambda r: [_sort_key(v) for v in r])
        re.sort(key=lambda r: [_sort_key(v) for v in r])
    for i, (x, y) in enumerate(zip(ra, re, strict=True)):
        if not all(_same_value(a, b, rel_tol, abs_tol) for a, b in zip(x, y, strict=True)):
            return f"row {i} differs: {x} != expected {y}"
    return None


def assert_same_result(
    actual: pa.Table, expected: pa.Table, *, ordered: bool, check_types: bool = True
) -> None:
    diff = difference(actual, expected, ordered=ordered, check_types=check_types)
    if diff is not None:
        raise AssertionError(diff)
