"""Name a query's output columns as DuckDB does, so that a rewrite keeps the names.

DuckDB names an output column after its alias as written (`AS Total` is `Total`),
after the column for a bare column, and otherwise after the expression as it parsed
it: `count(*)` is `count_star()`, `SUM(L_Qty)` is `sum(L_Qty)`, operators get
parentheses: `(sum(a) / 2)`. sqlglot's qualify lower-cases aliases and names the
other expressions `_col_N`. `name_outputs` restores DuckDB's names for the
expressions whose DuckDB name `duckdb_name` knows how to write (columns, literals,
arithmetic, comparisons, the mergeable aggregates, MEDIAN and ARRAY_AGG/LIST); for others it raises
NotDistributable: the original text, run as one task, keeps DuckDB's names.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from duckfleet.planner.aggregates import MERGEABLE
from duckfleet.planner.fallback import NotDistributable

_OPERATORS: dict[type[exp.Expression], str] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.IntDiv: "//",
    exp.Mod: "%",
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.DPipe: "||",
    exp.And: "AND",
    exp.Or: "OR",
}
_NUMBER = re.compile(r"\d+(\.\d+)?")
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = frozenset(DuckDB.Tokenizer.KEYWORDS)
# aggregates that do not merge but whose one-argument names DuckDB writes the same way
# (not MODE: DuckDB quotes it, `"mode"(x)`)
_NAMED_HOLISTIC = (exp.Median, exp.ArrayAgg)


def name_outputs(original: exp.Select, qualified: exp.Select, sql: str) -> exp.Select:
    """A copy of `qualified` whose output columns carry DuckDB's names for `original`.

    `sql` is the text `original` was parsed from (function names are read from it).
    ORDER BY references to a renamed output follow the new name.
    """
    if original.is_star:
        names = [e.alias_or_name for e in qualified.expressions]
        if len(set(names)) != len(names):
            raise NotDistributable("one task: SELECT * with columns of the same name")
        return qualified.copy()
    if len(original.expressions) != len(qualified.expressions):
        raise NotDistributable("one task: cannot match output columns to the query's")
    named = qualified.copy()
    renamed: dict[str, str] = {}
    for source, target in zip(original.expressions, named.expressions, strict=True):
        if isinstance(source, exp.Alias):
            name: str | None = source.alias
        elif isinstance(source, exp.Column):
            name = target.alias
        else:
            name = duckdb_name(source, sql)
        if name is None:
            raise NotDistributable(
                f"one task: cannot name output column {source.sql(dialect='duckdb')} "
                "as DuckDB does; give it an alias"
            )
        if name != target.alias:
            renamed[target.alias] = name
            target.set("alias", exp.to_identifier(name))
    order = named.args.get("order")
    if renamed and order is not None:
        for column in order.find_all(exp.Column):
            if not column.table and column.name in renamed:
                column.set("this", exp.to_identifier(renamed[column.name]))
    return named


def duckdb_name(node: exp.Expression, sql: str) -> str | None:
    """The name DuckDB gives `node` as an output column, or None if unsure."""
    if isinstance(node, exp.Paren):
        return duckdb_name(node.this, sql)
    if isinstance(node, exp.Column):
        parts = [_identifier(part) for part in node.parts]
        return None if None in parts else ".".join(p for p in parts if p is not None)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return "'" + node.this.replace("'", "''") + "'"
        return node.this if _NUMBER.fullmatch(node.this) else None
    if isinstance(node, exp.Null):
        return "NULL"
    if isinstance(node, exp.Boolean):
        return "true" if node.this else "false"
    if isinstance(node, exp.Neg | exp.Not):
        inner = duckdb_name(node.this, sql)
        if inner is None:
            return None
        if isinstance(node, exp.Not):
            return f"(NOT {inner})"
        if isinstance(node.this, exp.Literal):
            return f"-{inner}"
        return f"(-({inner}))"
    operator = _OPERATORS.get(type(node))
    if operator is not None:
        return _binary(node, operator, sql)
    if isinstance(node, exp.Count) and (node.this is None or isinstance(node.this, exp.Star)):
        return "count_star()"
    if isinstance(node, (*MERGEABLE, *_NAMED_HOLISTIC)):
        return _aggregate(node, sql)
    return None


def _binary(node: exp.Expression, operator: str, sql: str) -> str | None:
    left, right = node.this, node.expression
    if isinstance(node, exp.And | exp.Or):
        # DuckDB flattens chains of AND / OR into one list; not written here.
        if any(isinstance(_unparen(side), type(node)) for side in (left, right)):
            return None
    names = [duckdb_name(side, sql) for side in (left, right)]
    if None in names:
        return None
    return f"({names[0]} {operator} {names[1]})"


def _aggregate(node: exp.Expression, sql: str) -> str | None:
    """`sum(x)`: the function name as the user spelled it, lower-cased."""
    start, end = node.meta.get("start"), node.meta.get("end")
    if start is not None and end is not None:
        spelled = sql[start : end + 1].lower()
    else:  # sqlglot kept no position: fine if the function has one spelling only
        spellings = _SPELLINGS.get(type(node), [])
        spelled = spellings[0] if len(spellings) == 1 else ""
    argument = duckdb_name(node.this, sql)
    if not _PLAIN_IDENTIFIER.fullmatch(spelled) or argument is None:
        return None
    return f"{spelled}({argument})"


def _spellings() -> dict[type, list[str]]:
    """For each function class, the names sqlglot's DuckDB parser reads as it."""
    found: dict[type, list[str]] = {}
    for name, build in DuckDB.Parser.FUNCTIONS.items():
        cls = getattr(build, "__self__", None)
        if isinstance(cls, type):
            found.setdefault(cls, []).append(name.lower())
    return found


_SPELLINGS = _spellings()


def _identifier(part: exp.Expression) -> str | None:
    if not isinstance(part, exp.Identifier):
        return None
    text = part.this
    if part.quoted and not re.fullmatch(r"[a-z_][a-z0-9_]*", text):
        return None  # DuckDB would quote it; when exactly is not written here
    if text.upper() in _KEYWORDS or not _PLAIN_IDENTIFIER.fullmatch(text):
        return None
    return text


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node
