"""The type of each statement parameter, read from where it stands.

A placeholder takes the type its context expects, found by walking up from it:

    context                                   the parameter's type
    CAST(? AS T), TRY_CAST(? AS T)            T
    col = ?, ? < expr, col <> ? ...           the other side's type
    col BETWEEN ? AND ?, ? BETWEEN a AND b    the other operands' type
    col IN (?, ?), ? IN (a, b)                the other side's type
    x LIKE ?, ? ILIKE x, SIMILAR TO, GLOB     VARCHAR
    ? + 1, col - ?, ? * 2 ...                 what the whole expression is expected to be
                                              (n_nationkey = ? + 1: INTEGER), else the
                                              other operand's numeric type; a factor
                                              (*, /, %) of a DECIMAL is a DOUBLE;
                                              ? + ?: DOUBLE
    ? + INTERVAL '1' YEAR                     what the whole is expected to be (a DATE
                                              where it is compared with a DATE column)
    date_col + ?, date_col - ?                BIGINT (days)
    INTERVAL (?) DAY                          BIGINT
    LIMIT ?, OFFSET ?                         BIGINT
    upper(?), substring(?, ?, ?), ...         the function's argument type (a small table
                                              of string functions; positions and lengths
                                              BIGINT)
    abs(?), sqrt(?), sum(?), avg(?), ...      DOUBLE
    EXTRACT(part FROM ?), date_trunc(p, ?)    TIMESTAMP
    coalesce(?, x), nullif, greatest, least,  the other arguments' type, else what the
    CASE ... THEN ? ELSE x END                whole is expected to be
    CASE x WHEN ? THEN ...                    x's type
    WHERE ?, NOT ?, ? AND x, WHEN ? THEN      BOOLEAN
    WITH p AS (SELECT ? AS d) ... x < p.d     what the first use of the column expects
    SELECT n_name ... UNION SELECT ?          the other branch's column type
    INSERT INTO t VALUES (?, ...)             the target column's type
    INSERT INTO t SELECT ?, ...               the target column's type

Column and expression types come from sqlglot's type annotation over the qualified
tree. Anything else has no type (None): the front door then declares a string and
lets DuckDB cast the bound text where it stands.

Pure: sqlglot only.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from duckfleet.planner.parse import DIALECT

Type = exp.DataType.Type

_BIGINT = exp.DataType.build("BIGINT")
_VARCHAR = exp.DataType.build("VARCHAR")
_BOOLEAN = exp.DataType.build("BOOLEAN")
_TIMESTAMP = exp.DataType.build("TIMESTAMP")
_DOUBLE = exp.DataType.build("DOUBLE")

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)
_PATTERNS = (exp.Like, exp.ILike, exp.SimilarTo, exp.RegexpLike, exp.RegexpILike, exp.Glob)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Pow)
_SAME_AS_SIBLINGS = (exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least)
_TEMPORAL = {
    Type.DATE,
    Type.DATE32,
    Type.DATETIME,
    Type.TIMESTAMP,
    Type.TIMESTAMPTZ,
    Type.TIMESTAMPLTZ,
    Type.TIMESTAMP_S,
    Type.TIMESTAMP_MS,
    Type.TIMESTAMP_NS,
}

# (function, argument) -> type; "this" is the first argument
_ARGUMENTS: dict[tuple[type[exp.Expression], str], exp.DataType] = {
    **{
        (f, "this"): _VARCHAR
        for f in (
            exp.Upper,
            exp.Lower,
            exp.Length,
            exp.Trim,
            exp.Initcap,
            exp.Substring,
            exp.Left,
            exp.Right,
            exp.StrPosition,
            exp.StartsWith,
            exp.Pad,
            exp.Repeat,
            exp.MD5,
            exp.Reverse,
            exp.Unicode,
            exp.Levenshtein,
            exp.RegexpExtract,
            exp.RegexpReplace,
        )
    },
    (exp.Substring, "start"): _BIGINT,
    (exp.Substring, "length"): _BIGINT,
    (exp.Left, "expression"): _BIGINT,
    (exp.Right, "expression"): _BIGINT,
    (exp.Pad, "expression"): _BIGINT,
    (exp.Pad, "fill_pattern"): _VARCHAR,
    (exp.Repeat, "times"): _BIGINT,
    (exp.StrPosition, "substr"): _VARCHAR,
    (exp.StartsWith, "expression"): _VARCHAR,
    (exp.Trim, "expression"): _VARCHAR,
    (exp.Levenshtein, "expression"): _VARCHAR,
    (exp.RegexpExtract, "expression"): _VARCHAR,
    (exp.RegexpReplace, "expression"): _VARCHAR,
    (exp.RegexpReplace, "replacement"): _VARCHAR,
    (exp.Round, "decimals"): _BIGINT,
    (exp.Extract, "expression"): _TIMESTAMP,
    (exp.DateTrunc, "this"): _TIMESTAMP,
    (exp.TimestampTrunc, "this"): _TIMESTAMP,
}

# functions of a number, whatever its type: abs(?), sum(?) ... take a DOUBLE
_NUMBERS = (
    exp.Abs,
    exp.Sqrt,
    exp.Ln,
    exp.Log,
    exp.Exp,
    exp.Floor,
    exp.Ceil,
    exp.Sign,
    exp.Round,
    exp.Sum,
    exp.Avg,
    exp.Stddev,
    exp.StddevPop,
    exp.StddevSamp,
    exp.Variance,
    exp.VariancePop,
)

MAX_DEPTH = 64  # how far up a placeholder's context is looked for


def infer_parameter_types(
    tree: exp.Expression, count: int, schema: Mapping[str, Mapping[str, str]]
) -> list[str | None]:
    """The DuckDB type of each of the ``count`` parameters of a numbered tree, or None
    where nothing says. The first placeholder of a number that has a type gives it."""
    types: list[str | None] = [None] * count
    if count == 0:
        return types
    insert_types = _insert_value_types(tree, schema)
    for n, type_ in insert_types.items():
        if 0 <= n < count:
            types[n] = type_
    annotated = _annotated(tree, schema)
    for placeholder in annotated.find_all(exp.Placeholder):
        n = int(placeholder.this) - 1
        if 0 <= n < count and types[n] is None:
            types[n] = _name(_expected(placeholder, 0))
    return types


def _annotated(tree: exp.Expression, schema: Mapping[str, Mapping[str, str]]) -> exp.Expression:
    try:
        return annotate_types(
            qualify(tree.copy(), dialect=DIALECT, schema=dict(schema), identify=False),
            schema=dict(schema),
            dialect=DIALECT,
        )
    except (SqlglotError, ValueError, KeyError, TypeError, AttributeError):
        try:  # an unknown table or column: types of what can be typed without the catalog
            return annotate_types(tree.copy(), dialect=DIALECT)
        except (SqlglotError, ValueError, KeyError, TypeError, AttributeError):
            return tree


def _name(type_: exp.DataType | None) -> str | None:
    return type_.sql(dialect=DIALECT) if _known(type_) else None


def _known(type_: exp.DataType | None) -> bool:
    return type_ is not None and type_.this not in (Type.UNKNOWN, Type.NULL)


def _type(node: exp.Expression | None) -> exp.DataType | None:
    """The annotated type of an operand, if it is one (a placeholder never is)."""
    if node is None or isinstance(node, exp.Placeholder):
        return None
    while isinstance(node, exp.Paren):
        node = node.this
        if isinstance(node, exp.Placeholder):
            return None
    if isinstance(node, exp.Interval):
        return exp.DataType.build("INTERVAL")
    if isinstance(node, exp.Subquery | exp.Select) and isinstance(node.unnest(), exp.Select):
        selects = node.unnest().selects
        return _type(selects[0]) if len(selects) == 1 else None
    if isinstance(node, exp.Alias):
        return _type(node.this)
    type_ = node.type
    return type_ if _known(type_) else None


def _is_numeric(type_: exp.DataType | None) -> bool:
    return type_ is not None and type_.this in exp.DataType.NUMERIC_TYPES


def _is_temporal(type_: exp.DataType | None) -> bool:
    return type_ is not None and type_.this in _TEMPORAL


def _first_known(nodes: list[exp.Expression]) -> exp.DataType | None:
    for node in nodes:
        type_ = _type(node)
        if type_ is not None:
            return type_
    return None


def _expected(node: exp.Expression, depth: int) -> exp.DataType | None:
    """The type ``node``'s context expects it to have, if any."""
    parent = node.parent
    if parent is None or depth > MAX_DEPTH:
        return None
    key = node.arg_key
    if isinstance(parent, exp.Paren):
        return _expected(parent, depth + 1)
    if isinstance(parent, exp.Neg):
        return _expected(parent, depth + 1) or _DOUBLE
    if isinstance(parent, exp.Cast) and key == "this":  # TryCast is a Cast
        return parent.to
    if isinstance(parent, exp.Limit | exp.Offset | exp.Fetch):
        return _BIGINT
    if isinstance(parent, _COMPARISONS):
        return _type(parent.right if key == "this" else parent.left)
    if isinstance(parent, _PATTERNS):
        return _VARCHAR
    if isinstance(parent, exp.Between):
        if key == "this":
            return _first_known([parent.args.get("low"), parent.args.get("high")])
        return _type(parent.this)
    if isinstance(parent, exp.In):
        if key == "this":
            query = parent.args.get("query")
            return _first_known([*parent.expressions, *([query] if query else [])])
        return _type(parent.this)
    if isinstance(parent, _ARITHMETIC):
        return _arithmetic(parent, key, depth)
    if isinstance(parent, exp.Interval) and key == "this":
        return _BIGINT if parent.args.get("unit") else exp.DataType.build("INTERVAL")
    if isinstance(parent, exp.And | exp.Or | exp.Not | exp.Where | exp.Having):
        return _BOOLEAN
    if isinstance(parent, exp.If) and key == "this":
        case = parent.parent
        if isinstance(case, exp.Case) and case.this is not None:  # CASE x WHEN ? THEN
            return _type(case.this)
        return _BOOLEAN
    if isinstance(parent, exp.If):  # a WHEN ... THEN ... of a CASE, or IF(c, a, b)
        return _result(parent.parent if isinstance(parent.parent, exp.Case) else parent, depth)
    if isinstance(parent, exp.Case):
        if key == "this":  # CASE ? WHEN a THEN ...
            return _first_known([i.this for i in parent.args.get("ifs") or []])
        return _result(parent, depth)
    if isinstance(parent, _SAME_AS_SIBLINGS):
        siblings = [parent.this, *parent.expressions]
        if isinstance(parent, exp.Nullif):
            siblings = [parent.this, parent.expression]
        return _first_known([s for s in siblings if s is not node]) or _expected(parent, depth + 1)
    if isinstance(parent, exp.Alias) and key == "this":
        return _output(parent, depth)
    argument = _ARGUMENTS.get((type(parent), key))
    if argument is not None:
        return argument
    if isinstance(parent, _NUMBERS) and key == "this":
        return _DOUBLE
    if isinstance(parent, exp.Concat | exp.ConcatWs | exp.DPipe):
        return _VARCHAR
    return None


def _output(alias: exp.Alias, depth: int) -> exp.DataType | None:
    """``WITH p AS (SELECT ? AS d) ... WHERE x < p.d``, ``FROM (SELECT ? AS d) AS p``: a
    parameter that is an output column of a CTE or subquery takes the type the first
    use of that column expects."""
    select = alias.parent
    source = select.parent if isinstance(select, exp.Select) else None
    if isinstance(source, exp.SetOperation) and isinstance(select, exp.Select):
        return _branch(source, select, select.selects.index(alias))
    if not isinstance(source, exp.CTE | exp.Subquery) or not source.alias:
        return None
    for column in alias.root().find_all(exp.Column):
        if column.table == source.alias and column.name == alias.alias:
            type_ = _expected(column, depth + 1)
            if type_ is not None:
                return type_
    return None


def _branch(union: exp.SetOperation, select: exp.Select, index: int) -> exp.DataType | None:
    """``SELECT n_name ... UNION SELECT ?``: the other branch's column at that place."""
    for branch in (union.this, union.expression):
        if branch is select or branch is None:
            continue
        selects = branch.unnest().selects
        if index < len(selects):
            type_ = _type(selects[index])
            if type_ is not None:
                return type_
    return None


def _result(case: exp.Expression, depth: int) -> exp.DataType | None:
    """A CASE or IF result: the other results' type, else what the whole must be."""
    if isinstance(case, exp.Case):
        results = [i.args.get("true") for i in case.args.get("ifs") or []]
        results.append(case.args.get("default"))
    else:
        results = [case.args.get("true"), case.args.get("false")]
    return _first_known([r for r in results if r is not None]) or _expected(case, depth + 1)


def _arithmetic(parent: exp.Binary, key: str, depth: int) -> exp.DataType | None:
    other = parent.expression if key == "this" else parent.this
    other_type = _type(other)
    if isinstance(parent, exp.Add | exp.Sub):
        if other_type is not None and other_type.this == Type.INTERVAL:
            if isinstance(parent, exp.Sub) and key != "this":
                return other_type  # date - ?: an interval
            whole = _expected(parent, depth + 1)  # ? + INTERVAL ...: a date or timestamp
            return whole if _is_temporal(whole) else None
        if _is_temporal(other_type):
            if isinstance(parent, exp.Sub) and key == "this":
                return other_type  # ? - date_col: a date
            return _BIGINT  # date_col + ?, date_col - ?: days
    whole = _expected(parent, depth + 1)
    type_ = whole if _is_numeric(whole) else other_type if _is_numeric(other_type) else None
    if type_ is None:
        return _DOUBLE if other_type is None else None  # ? + ?: some number
    if type_.this == Type.DECIMAL and not isinstance(parent, exp.Add | exp.Sub):
        return _DOUBLE  # a factor of a decimal need not have its scale: sum(x) * 0.0001
    return type_


def _insert_value_types(
    tree: exp.Expression, schema: Mapping[str, Mapping[str, str]]
) -> dict[int, str]:
    """``INSERT INTO t [(cols)] VALUES (?, ...)`` or ``SELECT ?, ...``: each placeholder's
    target column type."""
    if not isinstance(tree, exp.Insert) or not isinstance(tree.expression, exp.Values | exp.Select):
        return {}
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    columns = schema.get(target.name.lower()) if isinstance(target, exp.Table) else None
    if not columns:
        return {}
    if isinstance(tree.this, exp.Schema):
        by_name = {k.lower(): v for k, v in columns.items()}
        names = [c.name.lower() for c in tree.this.expressions]
        targets = [by_name.get(n) for n in names]
    else:
        targets = list(columns.values())
    if isinstance(tree.expression, exp.Select):
        rows = [[s.unalias() for s in tree.expression.selects]]
    else:
        rows = [row.expressions for row in tree.expression.expressions]
    out: dict[int, str] = {}
    for row in rows:
        for value, type_ in zip(row, targets, strict=False):
            if isinstance(value, exp.Placeholder) and type_:
                out.setdefault(int(value.this) - 1, type_)
    return out
