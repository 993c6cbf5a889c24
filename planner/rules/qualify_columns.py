"""Rule: qualify a query against the catalog with sqlglot, and name unknown columns.

sqlglot's `qualify` (not the whole optimizer, so the tree stays close to what the
user wrote) qualifies every column with its table, expands stars, GROUP BY ordinals
and alias references, and gives every output column a name. Columns that no table
in scope has become `UnknownColumnError`; a query sqlglot cannot qualify for other
reasons still runs, as one task, because DuckDB may well understand it.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify as sqlglot_qualify

from duckfleet.planner.context import PlanContext
from duckfleet.planner.errors import UnknownColumnError
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.parse import DIALECT

_UNRESOLVED = re.compile(
    r"Column '(?P<name>[^']+)' could not be resolved(?: for table: '(?P<table>[^']+)')?"
    r"\.?(?: Line: (?P<line>\d+), Col: (?P<col>\d+))?"
)
_UNKNOWN = re.compile(r"Unknown column: (?P<name>\S+)")


def qualify_columns(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    """A copy of `tree` qualified against the catalog, its types annotated (the
    aggregate rules need to know what AVG is over).

    Raises UnknownColumnError, or NotDistributable when sqlglot cannot qualify it.
    """
    qualified = qualify(tree, ctx.schema)
    try:
        return annotate_types(qualified, schema=ctx.schema, dialect=DIALECT)
    except Exception:  # types stay unknown: what needs them runs as one task
        return qualified


def qualify(tree: exp.Expression, schema: dict[str, dict[str, str]]) -> exp.Expression:
    try:
        return sqlglot_qualify(tree.copy(), dialect=DIALECT, schema=schema, identify=False)
    except SqlglotError as e:
        raise _translate(str(e), schema) from None
    except Exception as e:  # a sqlglot limitation, not the user's mistake
        raise NotDistributable(f"one task: sqlglot cannot qualify the query ({e})") from None


def _translate(message: str, schema: dict[str, dict[str, str]]) -> Exception:
    known = _UNRESOLVED.search(message) or _UNKNOWN.search(message)
    if known is None:
        first_line = message.splitlines()[0] if message else "no detail"
        return NotDistributable(f"one task: sqlglot cannot qualify the query ({first_line})")
    groups = known.groupdict()
    name = groups["name"]
    if groups.get("table"):
        name = f"{groups['table']}.{name}"
    where = f" at line {groups['line']}, column {groups['col']}" if groups.get("line") else ""
    return UnknownColumnError(
        f"unknown column {name!r}{where}: no table in scope has it "
        f"(catalog tables: {', '.join(sorted(schema)) or 'none'})"
    )
