"""Bound values meet declared parameter types: each value is made the type its
parameter was declared with, or refused with a message that names the parameter.

    declared_types(statement, catalog) -> each parameter's type, None where nothing says
    bound_rows(statement, rows, catalog) -> rows whose values have the declared types
    coerce(rows, declared)             -> the same, for given types

A prepared statement declares each parameter's type (planner/parameter_inference.py);
a client may bind a value of another type there (JDBC's setString on an INTEGER
parameter, ADBC's Python int on a DECIMAL one). For each value:

* its parameter has no declared type (the wire said utf8): kept as bound, so a string
  stays a string literal and DuckDB casts it where it stands (``SELECT ? AS x`` is the
  string);
* it already has the declared type, or both are numbers: kept (DuckDB's own numeric
  promotion, no rounding of what the client sent);
* a NULL: a NULL of the declared type;
* anything else: cast to the declared type by DuckDB in-process (``'1995-01-01'`` to
  DATE, ``'42'`` to INTEGER); a value that does not cast (``'abc'`` for INTEGER) is
  INVALID_ARGUMENT: "parameter 2: cannot use 'abc' (VARCHAR) as INTEGER: ...".

DuckDB here evaluates one literal cast, over no table, with external access off.
The declared types are kept per statement text and catalog version, so executing a
prepared statement again infers nothing again, and its bound SQL (which the plan
cache keys on) is the same text for the same values.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import duckdb
from sqlglot import exp
from sqlglot.errors import SqlglotError

from duckfleet.catalog import Catalog
from duckfleet.flight.statements import ClientStatement
from duckfleet.planner.errors import PlanError
from duckfleet.planner.parameters import ParameterValue, literal, parameter_types
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.system_tables import reads_system, typed_snapshots
from duckfleet.wire.commands import MalformedRequest

_NUMERIC = exp.DataType.NUMERIC_TYPES
TYPES_KEPT = 256  # statements whose declared types are kept
_SHOWN = 60  # characters of a refused value shown in the message


def schema_mapping(catalog: Catalog) -> dict[str, dict[str, str]]:
    """Table and view name -> column name -> DuckDB type."""
    mapping = catalog.schema_mapping()
    for name, view in catalog.views.items():
        mapping[name] = {c.name: c.type for c in view.columns}
    return mapping


_kept: OrderedDict[tuple[str, int, int, int], list[str | None]] = OrderedDict()
_kept_lock = threading.Lock()


def declared_types(statement: ClientStatement, catalog: Catalog) -> list[str | None]:
    """The type each parameter of ``statement`` is declared with (None: a string)."""
    if statement.tree is None or statement.parameters == 0:
        return []
    key = (statement.sql, catalog.version, len(catalog.tables), len(catalog.views))
    with _kept_lock:
        types = _kept.get(key)
        if types is not None:
            _kept.move_to_end(key)
            return list(types)
    tree, mapping = statement.tree, schema_mapping(catalog)
    if reads_system(tree, catalog):  # typed against system.queries etc. as a task names them
        tree, snapshots = typed_snapshots(tree, catalog)
        mapping |= snapshots
    types = parameter_types(tree, statement.parameters, mapping)
    with _kept_lock:
        _kept[key] = types
        while len(_kept) > TYPES_KEPT:
            _kept.popitem(last=False)
    return list(types)


def bound_rows(
    statement: ClientStatement,
    rows: Sequence[Sequence[ParameterValue]] | None,
    catalog: Callable[[], Catalog],
) -> list[list[ParameterValue]] | None:
    """The bound ``rows`` of ``statement`` made their parameters' declared types;
    ``catalog`` is read only when there is something to make."""
    if rows is None:
        return None
    if statement.tree is None or statement.parameters == 0 or not rows:
        return [list(r) for r in rows]
    return coerce(rows, declared_types(statement, catalog()))


def coerce(
    rows: Sequence[Sequence[ParameterValue]], declared: Sequence[str | None]
) -> list[list[ParameterValue]]:
    """``rows`` with every value made its parameter's declared type."""
    targets = [_data_type(t) for t in declared]
    out = []
    for row in rows:
        coerced = list(row)
        for i, (value, target) in enumerate(zip(row, targets, strict=False)):
            if target is not None:
                coerced[i] = _coerce(value, target, i + 1)
        out.append(coerced)
    return out


def _data_type(name: str | None) -> exp.DataType | None:
    if not name:
        return None
    try:
        return exp.DataType.build(name, dialect=DIALECT)
    except (SqlglotError, ValueError):  # a type sqlglot cannot read: nothing declared
        return None


def _coerce(value: ParameterValue, target: exp.DataType, number: int) -> ParameterValue:
    name = _duckdb_name(target)
    if value.text is None:
        return ParameterValue(None, name)
    if not value.type:
        return value
    bound = _data_type(value.type)
    if bound is None or bound == target:
        return value
    if bound.this in _NUMERIC and target.this in _NUMERIC:
        return value
    return ParameterValue(_cast(value, name, number), name)


def _duckdb_name(type_: exp.DataType) -> str:
    """The type's name as planner/parameters.py's literals know it."""
    if type_.this in exp.DataType.TEXT_TYPES:
        return "VARCHAR"
    if type_.this == exp.DataType.Type.INT:
        return "INTEGER"
    return type_.sql(dialect=DIALECT)


def _shorter(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most] + "..."


class _Caster:
    """One in-memory DuckDB for literal casts, shared by the front door's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db: duckdb.DuckDBPyConnection | None = None

    def cast(self, sql: str) -> object:
        with self._lock:
            if self._db is None:
                self._db = duckdb.connect(
                    config={
                        "enable_external_access": "false",
                        "autoinstall_known_extensions": "false",
                        "autoload_known_extensions": "false",
                        "threads": "1",
                    }
                )
            row = self._db.execute(sql).fetchone()
            return row[0] if row else None


_CASTER = _Caster()


def _cast(value: ParameterValue, target: str, number: int) -> str | None:
    """The text of ``value`` cast to ``target`` by DuckDB."""
    try:
        source = literal(value)
        query = exp.select(exp.cast(exp.cast(source, target, dialect=DIALECT), "VARCHAR"))
        text = _CASTER.cast(query.sql(dialect=DIALECT))
    except (duckdb.Error, PlanError) as exc:
        shown = _shorter(value.text or "", _SHOWN)
        reason = _shorter(str(exc).split("\n")[0], 2 * _SHOWN)
        raise MalformedRequest(
            f"parameter {number}: cannot use {shown!r} ({value.type}) as {target}, the type "
            f"the statement gives it: {reason}; bind a value of type {target}"
        ) from None
    return None if text is None else str(text)
