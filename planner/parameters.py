"""Statement parameters: find the placeholders, guess their types, bind values.

A statement's placeholders are either all ``?`` (numbered 1, 2, ... in the order they
appear in the text) or all ``$1``, ``$2``, ... (a number may repeat).
``number_question_marks`` writes the ``?`` of a statement's text as ``$n`` before it is
parsed, in the text's order; ``number_placeholders`` checks the numbers of a tree (and
numbers, in tree order, any ``?`` of a tree that was not parsed that way), so the rest
works on numbers only.

Binding replaces each placeholder in the tree by a typed literal, built as a tree
(``CAST('2024-01-31' AS DATE)``, ``'text'``, ``TRUE``, ``CAST(NULL AS BIGINT)``), never
by splicing text: the bound tree plans and distributes like any other statement.

A parameter's type is read from where it stands, against the catalog's columns
(planner/parameter_inference.py: comparisons, arithmetic, IN, BETWEEN, LIKE, LIMIT,
CAST, function arguments, INSERT ... VALUES). Where nothing says it is ``None``: the
front door declares a string there and DuckDB casts the bound text where it stands.

Pure: sqlglot only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from duckfleet.planner.errors import UnsupportedStatementError
from duckfleet.planner.parameter_inference import infer_parameter_types
from duckfleet.planner.parse import DIALECT

MAX_PARAMETERS = 10_000


@dataclass(frozen=True)
class ParameterValue:
    """One bound value: its text (None: SQL NULL) and its DuckDB type name.

    ``VARCHAR`` values become string literals and ``BOOLEAN`` values TRUE/FALSE;
    everything else becomes ``CAST('<text>' AS <type>)``. A NULL of unknown type has
    type ``""``.
    """

    text: str | None
    type: str


def number_placeholders(tree: exp.Expression) -> tuple[exp.Expression, int]:
    """A copy of ``tree`` whose placeholders are all numbered, and how many
    parameters it takes (the highest number)."""
    tree = tree.copy()
    found = [p for p in tree.find_all(exp.Placeholder, bfs=False) if _is_positional(p)]
    named = [p for p in tree.find_all(exp.Placeholder) if not _is_positional(p)]
    if named:
        raise UnsupportedStatementError(
            f"named parameter :{named[0].name} is not supported; use ? or $1, $2, ..."
        )
    anonymous = [p for p in found if p.this is None]
    if anonymous and len(anonymous) != len(found):
        raise UnsupportedStatementError(
            "a statement uses either ? or $1, $2, ... for its parameters, not both"
        )
    if anonymous:
        for n, placeholder in enumerate(anonymous, start=1):  # tree order: see above
            placeholder.set("this", str(n))
        return tree, len(anonymous)
    numbers = [int(p.this) for p in found]
    count = max(numbers, default=0)
    if count > MAX_PARAMETERS:
        raise UnsupportedStatementError(f"${count}: at most {MAX_PARAMETERS} parameters")
    missing = sorted(set(range(1, count + 1)) - set(numbers))
    if missing:
        raise UnsupportedStatementError(
            f"parameter ${missing[0]} is never used although ${count} is; number them 1, 2, ..."
        )
    return tree, count


def number_question_marks(sql: str) -> str:
    """``sql`` with each ``?`` written ``$1``, ``$2``, ... in the order they stand in
    the text, before it is parsed: the tree's own order is not the text's (a SELECT's
    LIMIT comes before its WHERE among its arguments, a WITH after its body).

    Placeholders are found as tokens, so a ``?`` in a string, a quoted name or a
    comment is left alone. Text with no ``?``, or that does not tokenize, is returned
    as it is (the parser then says what is wrong)."""
    if "?" not in sql:
        return sql
    try:
        tokens = Dialect.get_or_raise(DIALECT).tokenize(sql)
    except SqlglotError:
        return sql
    marks = []
    for token, after in zip(tokens, [*tokens[1:], None], strict=True):
        numbered = (
            after is not None
            and after.token_type == TokenType.NUMBER
            and after.start == token.end + 1
        )
        if token.token_type == TokenType.PLACEHOLDER and token.text == "?" and not numbered:
            marks.append(token)
        if token.token_type == TokenType.PARAMETER and after is not None and numbered:
            raise UnsupportedStatementError(
                "a statement uses either ? or $1, $2, ... for its parameters, not both"
            )
    if not marks:
        return sql
    pieces, at = [], 0
    for n, token in enumerate(marks, start=1):
        pieces += [sql[at : token.start], f"${n}"]
        at = token.end + 1
    return "".join([*pieces, sql[at:]])


def _is_positional(placeholder: exp.Placeholder) -> bool:
    value = placeholder.this
    return value is None or str(value).isdigit()


def _number(placeholder: exp.Placeholder) -> int:
    return int(placeholder.this)


def parameter_types(
    tree: exp.Expression, count: int, schema: Mapping[str, Mapping[str, str]]
) -> list[str | None]:
    """The DuckDB type each of the ``count`` parameters of a numbered tree takes from
    where it stands (planner/parameter_inference.py), or None where nothing says."""
    return infer_parameter_types(tree, count, schema)


def literal(value: ParameterValue) -> exp.Expression:
    """The typed literal a parameter value stands for."""
    if value.text is None:
        if not value.type:
            return exp.Null()
        return exp.Cast(this=exp.Null(), to=_data_type(value.type))
    if value.type == "VARCHAR":
        return exp.Literal.string(value.text)
    if value.type == "BOOLEAN":
        return exp.Boolean(this=value.text.lower() == "true")
    return exp.Cast(this=exp.Literal.string(value.text), to=_data_type(value.type))


def _data_type(name: str) -> exp.DataType:
    try:
        return exp.DataType.build(name, dialect=DIALECT)
    except (SqlglotError, ValueError) as exc:
        raise UnsupportedStatementError(f"parameter type {name} is not supported ({exc})") from None


def bind(tree: exp.Expression, values: Sequence[ParameterValue]) -> exp.Expression:
    """A copy of a numbered ``tree`` with every placeholder replaced by its value."""
    needed = max((_number(p) for p in tree.find_all(exp.Placeholder)), default=0)
    if len(values) != needed:
        raise UnsupportedStatementError(
            f"the statement takes {needed} parameter(s) but {len(values)} were bound"
        )
    literals = [literal(v) for v in values]

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            return literals[_number(node) - 1].copy()
        return node

    return tree.copy().transform(swap)


def bind_rows(tree: exp.Expression, rows: Sequence[Sequence[ParameterValue]]) -> exp.Expression:
    """``INSERT INTO t VALUES (<one row of placeholders>)`` bound to many rows at once:
    one INSERT whose VALUES holds every row. Any other statement: ValueError."""
    if not is_single_row_insert(tree):
        raise ValueError("bind_rows takes INSERT ... VALUES with one row")
    template = tree.expression.expressions[0]
    bound_rows = [bind(template, row) for row in rows]
    out = tree.copy()
    out.expression.set("expressions", bound_rows)
    return out


def is_single_row_insert(tree: exp.Expression) -> bool:
    return (
        isinstance(tree, exp.Insert)
        and isinstance(tree.expression, exp.Values)
        and len(tree.expression.expressions) == 1
    )
