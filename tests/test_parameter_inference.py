"""A parameter's type from where it stands (planner/parameter_inference.py), pure:
no network, no DuckDB; then, in-process, how bound values meet those types at the
front door (flight/parameter_values.py) and the plan cache over bound statements."""

from __future__ import annotations

import pytest
from sqlglot import exp

from duckfleet.catalog import Catalog, Column, Table
from duckfleet.flight.parameter_values import bound_rows, coerce, declared_types
from duckfleet.flight.plan_cache import PlanCache
from duckfleet.flight.statements import executions, parse_statement_text
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.errors import UnsupportedStatementError
from duckfleet.planner.parameters import ParameterValue, parameter_types
from duckfleet.planner.parse import DIALECT
from duckfleet.wire.commands import MalformedRequest

SCHEMA = {
    "nation": {
        "n_nationkey": "INTEGER",
        "n_name": "VARCHAR",
        "n_regionkey": "INTEGER",
        "n_comment": "VARCHAR",
    },
    "lineitem": {
        "l_orderkey": "BIGINT",
        "l_quantity": "DECIMAL(15,2)",
        "l_discount": "DECIMAL(15,2)",
        "l_shipdate": "DATE",
        "l_comment": "VARCHAR",
    },
    "events": {"id": "BIGINT", "at": "TIMESTAMP", "ok": "BOOLEAN", "score": "DOUBLE"},
}


def types_of(sql: str) -> list[str | None]:
    statement = parse_statement_text(sql)  # as the front door numbers a statement's ?
    assert statement.tree is not None
    types = parameter_types(statement.tree, statement.parameters, SCHEMA)
    return [canonical(t) for t in types]


def canonical(type_: str | None) -> str | None:
    """One spelling per type (sqlglot writes INTEGER as INT, VARCHAR as TEXT)."""
    if type_ is None:
        return None
    built = exp.DataType.build(type_, dialect=DIALECT)
    if built.this in exp.DataType.TEXT_TYPES:
        return "VARCHAR"
    return {"INT": "INTEGER", "DECIMAL(15, 2)": "DECIMAL(15,2)"}.get(
        built.sql(dialect=DIALECT), built.sql(dialect=DIALECT)
    )


CASES = [
    # comparisons, either side, and with arithmetic
    ("SELECT * FROM nation WHERE n_nationkey = ?", ["INTEGER"]),
    ("SELECT * FROM nation WHERE ? < n_regionkey", ["INTEGER"]),
    ("SELECT * FROM nation WHERE n_nationkey = ? + 1", ["INTEGER"]),
    ("SELECT * FROM nation WHERE n_nationkey = 2 * (? - 1)", ["INTEGER"]),
    ("SELECT * FROM nation WHERE n_nationkey <> -?", ["INTEGER"]),
    ("SELECT n_nationkey + ? AS k FROM nation", ["INTEGER"]),
    (
        "SELECT * FROM lineitem WHERE l_discount BETWEEN ? - 0.01 AND ? + 0.01",
        ["DECIMAL(15,2)"] * 2,
    ),
    ("SELECT sum(l_quantity) * ? AS q FROM lineitem", ["DOUBLE"]),  # a factor: no scale
    ("SELECT ? + ? AS s", ["DOUBLE", "DOUBLE"]),
    ("SELECT -? AS s", ["DOUBLE"]),
    ("SELECT abs(?) AS a, sum(?) AS s FROM nation", ["DOUBLE", "DOUBLE"]),
    # IN, BETWEEN, LIKE
    ("SELECT * FROM nation WHERE n_name IN (?, ?)", ["VARCHAR", "VARCHAR"]),
    ("SELECT * FROM nation WHERE ? IN (n_nationkey, n_regionkey)", ["INTEGER"]),
    ("SELECT * FROM nation WHERE ? IN (SELECT l_orderkey FROM lineitem)", ["BIGINT"]),
    ("SELECT * FROM lineitem WHERE l_shipdate BETWEEN ? AND ?", ["DATE", "DATE"]),
    ("SELECT * FROM nation WHERE upper(n_name) LIKE ?", ["VARCHAR"]),
    ("SELECT * FROM nation WHERE n_comment NOT ILIKE ?", ["VARCHAR"]),
    # LIMIT, OFFSET, CAST
    ("SELECT * FROM nation LIMIT ?", ["BIGINT"]),
    (
        "SELECT * FROM nation WHERE n_regionkey = ? LIMIT ? OFFSET ?",
        ["INTEGER", "BIGINT", "BIGINT"],
    ),
    ("SELECT CAST(? AS DATE) AS d", ["DATE"]),
    ("SELECT TRY_CAST(? AS DECIMAL(10, 3)) AS d", ["DECIMAL(10, 3)"]),
    # dates and intervals
    ("SELECT * FROM lineitem WHERE l_shipdate <= ?", ["DATE"]),
    ("SELECT * FROM lineitem WHERE l_shipdate < ? + INTERVAL '1' YEAR", ["DATE"]),
    ("SELECT * FROM lineitem WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL ? DAY", ["BIGINT"]),
    ("SELECT * FROM lineitem WHERE l_shipdate + ? > DATE '1998-01-01'", ["BIGINT"]),
    ("SELECT * FROM events WHERE at >= ?", ["TIMESTAMP"]),
    ("SELECT extract(year FROM ?) AS y", ["TIMESTAMP"]),
    # function arguments
    ("SELECT substring(n_name, ?, ?) AS s FROM nation", ["BIGINT", "BIGINT"]),
    ("SELECT * FROM nation WHERE n_name = lower(?)", ["VARCHAR"]),
    ("SELECT upper(?) AS u", ["VARCHAR"]),
    ("SELECT n_name || ? AS s FROM nation", ["VARCHAR"]),
    ("SELECT concat(n_name, ?) AS s FROM nation", ["VARCHAR"]),
    ("SELECT round(score, ?) AS r FROM events", ["BIGINT"]),
    ("SELECT coalesce(n_name, ?) AS n FROM nation", ["VARCHAR"]),
    ("SELECT * FROM nation WHERE n_nationkey = coalesce(?, 0)", ["INTEGER"]),
    ("SELECT greatest(l_shipdate, ?) AS d FROM lineitem", ["DATE"]),
    # CASE, booleans
    ("SELECT CASE WHEN n_nationkey > 3 THEN n_name ELSE ? END AS x FROM nation", ["VARCHAR"]),
    ("SELECT CASE n_regionkey WHEN ? THEN 'a' END AS x FROM nation", ["INTEGER"]),
    ("SELECT * FROM events WHERE ok = ? AND ?", ["BOOLEAN", "BOOLEAN"]),
    ("SELECT * FROM events WHERE NOT ?", ["BOOLEAN"]),
    # the output of a CTE or a subquery: where it is used
    (
        "WITH p AS (SELECT ? AS d, ? AS k) SELECT count(*) FROM lineitem, p "
        "WHERE l_shipdate < p.d AND l_orderkey > k",
        ["DATE", "BIGINT"],
    ),
    ("SELECT n_name FROM nation, (SELECT ? AS r) AS p WHERE n_regionkey = p.r", ["INTEGER"]),
    ("SELECT x FROM (SELECT ? AS x) AS t", [None]),
    ("SELECT n_name FROM nation UNION ALL SELECT ?", ["VARCHAR"]),
    ("SELECT ?, ? UNION SELECT n_regionkey, n_name FROM nation", ["INTEGER", "VARCHAR"]),
    # numbered parameters: the first place that says gives the type
    ("SELECT $1 AS a, n_name FROM nation WHERE n_nationkey = $1", ["INTEGER"]),
    # INSERT ... VALUES: the target columns
    ("INSERT INTO nation VALUES (?, ?, ?, ?)", ["INTEGER", "VARCHAR", "INTEGER", "VARCHAR"]),
    ("INSERT INTO events (score, id) VALUES (?, ?)", ["DOUBLE", "BIGINT"]),
    ("INSERT INTO events (id, ok) SELECT ?, ? AS b", ["BIGINT", "BOOLEAN"]),
    # nothing says: a string is declared on the wire
    ("SELECT ? AS x", [None]),
    ("SELECT * FROM nation WHERE ? IS NULL", [None]),
]


@pytest.mark.parametrize(("sql", "expected"), CASES)
def test_a_parameter_takes_the_type_of_where_it_stands(sql: str, expected: list[str | None]):
    assert types_of(sql) == expected


@pytest.mark.parametrize(
    ("sql", "numbered"),
    [
        (
            "SELECT ? AS a FROM nation WHERE n_name = ? ORDER BY n_name LIMIT ? OFFSET ?",
            "SELECT $1 AS a FROM nation WHERE n_name = $2 ORDER BY n_name LIMIT $3 OFFSET $4",
        ),
        (
            "WITH a AS (SELECT ? AS x) SELECT x, ? FROM a WHERE x = ?",
            "WITH a AS (SELECT $1 AS x) SELECT x, $2 FROM a WHERE x = $3",
        ),
        ("SELECT * FROM nation OFFSET ? LIMIT ?", "SELECT * FROM nation LIMIT $2 OFFSET $1"),
        (  # a ? in a string, a quoted name or a comment is no placeholder
            "SELECT '?' AS \"?\", ? AS b /* ? */ FROM nation -- ?\nWHERE n_name = ?",
            "SELECT '?' AS \"?\", $1 AS b /* ? */ FROM nation /* ? */ WHERE n_name = $2",
        ),
    ],
)
def test_question_marks_are_numbered_in_the_order_of_the_text(sql: str, numbered: str):
    statement = parse_statement_text(sql)
    assert statement.tree is not None
    assert statement.tree.sql(dialect=DIALECT) == numbered


def test_question_marks_and_numbers_do_not_mix():
    with pytest.raises(UnsupportedStatementError, match="not both"):
        parse_statement_text("SELECT ? + $1 AS x")
    with pytest.raises(UnsupportedStatementError, match="not both"):
        parse_statement_text("SELECT $1 + ? AS x")


def test_an_unknown_table_leaves_types_to_what_the_statement_itself_says():
    assert types_of("SELECT * FROM nope WHERE x = ? LIMIT ?") == [None, "BIGINT"]


# --- bound values at the front door (in-process DuckDB for the casts) -----------------------


def V(text: str | None, type_: str) -> ParameterValue:
    return ParameterValue(text, type_)


def test_values_are_made_their_declared_type():
    declared = ["INTEGER", "DATE", "DECIMAL(15,2)", "DATE", None, "VARCHAR", "INTEGER"]
    row = [
        V("42", "VARCHAR"),  # a string: cast
        V("1995-01-01", "VARCHAR"),
        V("5", "BIGINT"),  # a number for a number: kept as bound
        V(None, ""),  # NULL: of the declared type
        V("x", "VARCHAR"),  # nothing declared: kept
        V("true", "BOOLEAN"),  # cast to the declared string
        V("7", "INTEGER"),  # the declared type already
    ]
    assert coerce([row], declared) == [
        [
            V("42", "INTEGER"),
            V("1995-01-01", "DATE"),
            V("5", "BIGINT"),
            V(None, "DATE"),
            V("x", "VARCHAR"),
            V("true", "VARCHAR"),
            V("7", "INTEGER"),
        ]
    ]


@pytest.mark.parametrize(
    ("value", "declared", "said"),
    [
        (V("abc", "VARCHAR"), "INTEGER", "parameter 2: cannot use 'abc' (VARCHAR) as INTEGER"),
        (
            V("1995-01-01", "DATE"),
            "BIGINT",
            "parameter 2: cannot use '1995-01-01' (DATE) as BIGINT",
        ),
        (V("7", "BIGINT"), "DATE", "parameter 2: cannot use '7' (BIGINT) as DATE"),
        (V("x" * 500, "VARCHAR"), "DATE", "parameter 2: cannot use 'xxx"),
    ],
)
def test_a_value_that_does_not_cast_names_its_parameter(value, declared, said):
    with pytest.raises(MalformedRequest) as raised:  # INVALID_ARGUMENT at the edge
        coerce([[V("1", "BIGINT"), value]], [None, declared])
    message = str(raised.value)
    assert message.startswith(said)
    assert len(message) < 400 and "Traceback" not in message


def nation_catalog(key_type: str = "INTEGER", version: int = 1) -> Catalog:
    columns = (Column("n_nationkey", key_type), Column("n_name", "VARCHAR"))
    return Catalog(tables={"nation": Table("nation", columns, ())}, version=version)


def test_declared_types_follow_the_catalog_version():
    statement = parse_statement_text("SELECT n_name FROM nation WHERE n_nationkey = ?")
    assert declared_types(statement, nation_catalog("INTEGER", 1)) == ["INT"]
    assert declared_types(statement, nation_catalog("VARCHAR", 2)) == ["TEXT"]


def test_the_same_bound_values_plan_once():
    catalog = nation_catalog()
    statement = parse_statement_text("SELECT n_name FROM nation WHERE n_nationkey = ?")
    cache, calls = PlanCache(8), []

    def planner(sql, catalog, settings):
        calls.append(sql)
        return plan_query(sql, catalog, settings)

    for _ in range(3):  # JDBC binds a string, ADBC an int64: both the declared INTEGER
        for value in (V("3", "VARCHAR"), V("3", "INTEGER")):
            rows = bound_rows(statement, [[value]], lambda: catalog)
            (run,) = executions(statement, rows)
            cache.plan(run, catalog, PlannerSettings(), planner)
    assert calls == ["SELECT n_name FROM nation WHERE n_nationkey = CAST('3' AS INT)"]
    assert (cache.hits, cache.misses) == (5, 1)
