"""Which row groups of the split table a query's filters may need, from min/max.

    SELECT ... FROM lineitem WHERE l_orderkey < 1000 AND l_shipdate > DATE '1995-01-01'

needs only the row groups whose l_orderkey minimum is below 1000 (a row group the
catalog keeps no l_orderkey statistics for may hold anything). Only conditions
that filter the split table's own rows count: the WHERE clause and the ON clauses
of inner joins. A condition prunes when it compares a column with a constant the
planner evaluates itself (numbers, strings, dates, timestamps, date +/- interval),
with =, <>, <, <=, >, >=, BETWEEN or IN, under AND and OR; anything else may
match. A row whose column is NULL never satisfies such a comparison, so the
statistics (which ignore NULLs) are enough.
"""

from __future__ import annotations

import calendar
import datetime
import decimal
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from duckfleet.catalog import RowGroup, Table, stat_value

RowGroupFilter = Callable[[RowGroup], bool]

_COMPARISONS: dict[type[exp.Expression], Callable[[Any, Any, Any], bool]] = {
    # (min, max, constant) -> whether some value in [min, max] may satisfy it
    exp.EQ: lambda lo, hi, v: lo <= v <= hi,
    exp.NEQ: lambda lo, hi, v: not (lo == hi == v),
    exp.LT: lambda lo, hi, v: lo < v,
    exp.LTE: lambda lo, hi, v: lo <= v,
    exp.GT: lambda lo, hi, v: hi > v,
    exp.GTE: lambda lo, hi, v: hi >= v,
}
_FLIPPED: dict[type[exp.Expression], type[exp.Expression]] = {
    exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
    exp.LT: exp.GT,
    exp.LTE: exp.GTE,
    exp.GT: exp.LT,
    exp.GTE: exp.LTE,
}


def row_group_filter(query: exp.Expression, table: Table) -> RowGroupFilter | None:
    """A test of whether a row group of `table` may hold rows `query` keeps, or None
    when its filters prune nothing."""
    if not isinstance(query, exp.Select):
        return None
    alias = _alias_of(query, table.name)
    if alias is None:
        return None
    conditions = _conditions(query)
    types = {c.name: c.type for c in table.columns}
    if not conditions:
        return None
    return lambda group: all(_may_match(c, group, alias, types) for c in conditions)


def _alias_of(select: exp.Select, name: str) -> str | None:
    """The one name the table goes by in FROM and the joins, if it is read once."""
    sources = [select.args["from_"].this] if select.args.get("from_") else []
    sources += [j.this for j in select.args.get("joins") or ()]
    found = [s for s in sources if isinstance(s, exp.Table) and s.name.lower() == name.lower()]
    return found[0].alias_or_name if len(found) == 1 else None


def _conditions(select: exp.Select) -> list[exp.Expression]:
    out = []
    where = select.args.get("where")
    if where is not None:
        out.append(where.this)
    for join in select.args.get("joins") or ():
        inner = not join.side and join.kind.upper() in ("", "INNER") and not join.method
        if inner and join.args.get("on") is not None:
            out.append(join.args["on"])
    return out


def _may_match(node: exp.Expression, group: RowGroup, alias: str, types: dict[str, str]) -> bool:
    if isinstance(node, exp.Paren):
        return _may_match(node.this, group, alias, types)
    if isinstance(node, exp.And):
        return _may_match(node.this, group, alias, types) and _may_match(
            node.expression, group, alias, types
        )
    if isinstance(node, exp.Or):
        return _may_match(node.this, group, alias, types) or _may_match(
            node.expression, group, alias, types
        )
    bounds = _bounds(node.this, group, alias, types)
    if isinstance(node, exp.Between) and bounds is not None and not node.args.get("symmetric"):
        lo, hi, kind = bounds
        low, high = _constant(node.args["low"], kind), _constant(node.args["high"], kind)
        if low is not None and high is not None:
            return hi >= low and lo <= high
        return True
    if isinstance(node, exp.In) and bounds is not None and not node.args.get("query"):
        lo, hi, kind = bounds
        values = [_constant(v, kind) for v in node.expressions]
        if values and all(v is not None for v in values):
            return any(lo <= v <= hi for v in values)
        return True
    compare = _COMPARISONS.get(type(node))
    if compare is None:
        return True
    column, other, kind_of = node.this, node.expression, type(node)
    if not isinstance(column, exp.Column):
        column, other, kind_of = other, column, _FLIPPED[type(node)]
    bounds = _bounds(column, group, alias, types)
    if bounds is None:
        return True
    lo, hi, kind = bounds
    value = _constant(other, kind)
    if value is None:
        return True
    return _COMPARISONS[kind_of](lo, hi, value)


def _bounds(
    node: exp.Expression, group: RowGroup, alias: str, types: dict[str, str]
) -> tuple[Any, Any, str] | None:
    """(min, max, kind) of a column of the split table in this row group, if known."""
    if not isinstance(node, exp.Column) or node.table.lower() != alias.lower():
        return None
    stats = group.stats.get(node.name)
    column_type = types.get(node.name)
    if stats is None or column_type is None:
        return None
    kind = _kind(column_type)
    if kind is None:
        return None
    return stat_value(column_type, stats[0]), stat_value(column_type, stats[1]), kind


def _kind(column_type: str) -> str | None:
    t = column_type.upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT"):
        return "number"
    if t in ("UINTEGER", "UBIGINT", "UHUGEINT") or t.startswith(("DECIMAL", "NUMERIC")):
        return "number"
    if t == "DATE":
        return "date"
    if t in ("TIMESTAMP", "DATETIME", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"):
        return "timestamp"
    if t in ("VARCHAR", "STRING", "TEXT"):
        return "string"
    return None


def _constant(node: exp.Expression, kind: str) -> Any:
    """The value of a constant expression compared with a column of `kind`, or None
    when the planner does not evaluate it exactly as DuckDB would."""
    value = _evaluate(node)
    if kind == "number" and isinstance(value, decimal.Decimal):
        return value
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "date" and type(value) is datetime.date:
        return value
    if kind == "timestamp" and type(value) is datetime.datetime:
        return value
    return None


def _evaluate(node: exp.Expression) -> Any:
    if isinstance(node, exp.Paren):
        return _evaluate(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        try:
            return decimal.Decimal(str(node.this))
        except decimal.InvalidOperation:
            return None
    if isinstance(node, exp.Neg):
        inner = _evaluate(node.this)
        return -inner if isinstance(inner, decimal.Decimal) else None
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
        return _cast_text(str(node.this.this), node.to)
    if isinstance(node, exp.Add | exp.Sub):
        left, right = _evaluate(node.this), _evaluate(node.expression)
        sign = 1 if isinstance(node, exp.Add) else -1
        if isinstance(left, decimal.Decimal) and isinstance(right, decimal.Decimal):
            return left + sign * right
        if isinstance(left, datetime.date) and isinstance(node.expression, exp.Interval):
            return _shift(left, node.expression, sign)
        return None
    if isinstance(node, exp.Mul):
        left, right = _evaluate(node.this), _evaluate(node.expression)
        if isinstance(left, decimal.Decimal) and isinstance(right, decimal.Decimal):
            return left * right
    return None


def _cast_text(text: str, to: exp.DataType) -> Any:
    try:
        if to.is_type(exp.DataType.Type.DATE):
            return datetime.date.fromisoformat(text.strip())
        if to.is_type(exp.DataType.Type.TIMESTAMP):
            return datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return None


def _shift(start: datetime.date, interval: exp.Interval, sign: int) -> Any:
    """date +/- INTERVAL 'n' DAY|WEEK|MONTH|YEAR; months only where no day is clamped."""
    unit = interval.unit.name.upper() if interval.unit is not None else ""
    try:
        n = int(str(interval.this.this)) * sign
    except (ValueError, AttributeError):
        return None
    unit = unit.rstrip("S")
    if unit in ("DAY", "WEEK"):
        return start + datetime.timedelta(days=n * (7 if unit == "WEEK" else 1))
    if unit in ("MONTH", "YEAR") and start.day <= 28 and type(start) is datetime.date:
        months = start.year * 12 + start.month - 1 + n * (12 if unit == "YEAR" else 1)
        year, month = divmod(months, 12)
        if not 1 <= year <= 9999:
            return None
        assert start.day <= calendar.monthrange(year, month + 1)[1]
        return datetime.date(year, month + 1, start.day)
    return None
