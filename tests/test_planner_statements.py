"""The pure pieces behind parameters, writes and views: placeholders numbered and
typed, values bound as typed literals (and run in DuckDB to prove it), write
statements parsed, views expanded by the planner. No fleet: a function of SQL and
catalog."""

from __future__ import annotations

import re

import duckdb
import pytest
import sqlglot

from duckfleet.catalog import Catalog, Column, DataFile, Table, View
from duckfleet.planner import plan_query
from duckfleet.planner.errors import UnknownTableError, UnsupportedStatementError
from duckfleet.planner.parameters import (
    ParameterValue,
    bind,
    bind_rows,
    number_placeholders,
    parameter_types,
)
from duckfleet.planner.write_statements import (
    CreateTableAs,
    CreateView,
    Drop,
    InsertInto,
    insert_query,
    parse_write,
)

SCHEMA = {"t": {"a": "INTEGER", "b": "VARCHAR", "d": "DECIMAL(15,2)", "dt": "DATE"}}


def tree(sql: str):
    return sqlglot.parse_one(sql, dialect="duckdb")


@pytest.mark.parametrize(
    ("sql", "count", "types"),
    [
        ("SELECT 1", 0, []),
        ("SELECT a FROM t WHERE a = ? AND b = ?", 2, ["INT", "TEXT"]),
        ("SELECT a FROM t WHERE $2 < d AND dt BETWEEN $1 AND $1", 2, ["DATE", "DECIMAL(15, 2)"]),
        (
            "SELECT ?, CAST(? AS BIGINT) FROM t WHERE b IN (?, ?)",
            4,
            [None, "BIGINT", "TEXT", "TEXT"],
        ),
        ("INSERT INTO t (dt, a) VALUES (?, ?)", 2, ["DATE", "INTEGER"]),
    ],
)
def test_placeholders_are_numbered_and_typed(sql, count, types):
    numbered, n = number_placeholders(tree(sql))
    assert n == count
    assert parameter_types(numbered, n, SCHEMA) == types


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        ("SELECT ?, $1", "either ? or $1"),
        ("SELECT $2", "parameter $1 is never used"),
        ("SELECT $name", "named parameter"),
    ],
)
def test_placeholder_mistakes(sql, text):
    with pytest.raises(UnsupportedStatementError, match=re.escape(text)):
        number_placeholders(tree(sql))


VALUES = [
    (ParameterValue("42", "BIGINT"), 42),
    (ParameterValue("it's; DROP TABLE t; --", "VARCHAR"), "it's; DROP TABLE t; --"),
    (ParameterValue("true", "BOOLEAN"), True),
    (ParameterValue(None, "DATE"), None),
    (ParameterValue(None, ""), None),
    (ParameterValue("2024-02-29", "DATE"), "2024-02-29"),
    (ParameterValue("-12.50", "DECIMAL(9,2)"), "-12.50"),
    (ParameterValue("nan", "DOUBLE"), "nan"),
    (ParameterValue("\\x00\\xFF'", "BLOB"), b"\x00\xff'"),
]


@pytest.mark.parametrize(("value", "expected"), VALUES, ids=lambda v: repr(v)[:30])
def test_bound_values_are_typed_literals_duckdb_reads_back(value, expected):
    numbered, _ = number_placeholders(tree("SELECT ? AS v"))
    sql = bind(numbered, [value]).sql(dialect="duckdb")
    got = duckdb.sql(sql).fetchall()[0][0]
    if isinstance(expected, str) and not isinstance(got, str):
        got = str(got)
    assert got == expected
    if value.type and value.text is not None:
        assert (
            duckdb.sql(f"SELECT typeof(v) FROM ({sql})")
            .fetchall()[0][0]
            .startswith(value.type.split("(")[0])
        )


def test_insert_values_binds_many_rows_into_one_statement():
    numbered, _ = number_placeholders(tree("INSERT INTO t (a, b) VALUES (?, ?)"))
    rows = [
        [ParameterValue("1", "BIGINT"), ParameterValue("x", "VARCHAR")],
        [ParameterValue(None, "BIGINT"), ParameterValue("y", "VARCHAR")],
    ]
    assert bind_rows(numbered, rows).sql(dialect="duckdb") == (
        "INSERT INTO t (a, b) VALUES (CAST('1' AS BIGINT), 'x'), (CAST(NULL AS BIGINT), 'y')"
    )


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE TABLE x AS SELECT 1", CreateTableAs("x", tree("SELECT 1"))),
        (
            "CREATE OR REPLACE TABLE duckfleet.main.X AS SELECT 1",
            CreateTableAs("x", tree("SELECT 1"), replace=True),
        ),
        (
            "CREATE VIEW IF NOT EXISTS v (c) AS SELECT 1",
            CreateView("v", tree("SELECT 1"), ("c",), if_not_exists=True),
        ),
        ("DROP TABLE IF EXISTS main.x", Drop("TABLE", "x", if_exists=True)),
        ("DROP VIEW v", Drop("VIEW", "v")),
        ("INSERT INTO x (b, a) VALUES (1, 2)", InsertInto("x", ("b", "a"), tree("VALUES (1, 2)"))),
        ("SELECT 1", None),
        ("CREATE SCHEMA s", None),
    ],
)
def test_write_statements_parse(sql, expected):
    assert parse_write(tree(sql)) == expected


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        ("CREATE TABLE x (a INT)", "needs AS <query>"),
        ("CREATE TABLE other.x AS SELECT 1", "schema 'other' does not exist"),
        ('CREATE TABLE "../x" AS SELECT 1', "is not allowed"),
        ("DROP TABLE a, b", "one name at a time"),
        ("CREATE TEMP TABLE x AS SELECT 1", "with options"),
    ],
)
def test_write_statement_refusals(sql, text):
    with pytest.raises(UnsupportedStatementError, match=text):
        parse_write(tree(sql))


def test_insert_casts_to_the_table_columns_by_position():
    columns = (Column("a", "INTEGER"), Column("b", "VARCHAR"), Column("c", "DATE"))
    query = insert_query(tree("VALUES ('x', 1)"), ("b", "a"), columns)
    assert duckdb.sql(query.sql(dialect="duckdb")).fetchall() == [(1, "x", None)]
    with pytest.raises(UnsupportedStatementError, match="does not have"):
        insert_query(tree("VALUES (1)"), ("z",), columns)


CATALOG = Catalog(
    tables={
        "t": Table(
            "t",
            (Column("a", "INTEGER"), Column("b", "VARCHAR")),
            (DataFile("/data/t/0.parquet", 10, 100), DataFile("/data/t/1.parquet", 10, 100)),
        )
    },
    views={
        "v": View(
            "v", "SELECT a, b FROM t WHERE a > 1", (Column("a", "INTEGER"), Column("b", "VARCHAR"))
        ),
        "w": View("w", "SELECT a AS x FROM v", (Column("x", "INTEGER"),), column_names=()),
        "named": View("named", "SELECT a FROM t", (Column("k", "INTEGER"),), ("k",)),
    },
)


def test_views_expand_into_the_tables_they_read():
    plan = plan_query("SELECT b, count(*) AS n FROM v GROUP BY b", CATALOG)
    assert plan.tables == ("t",)
    # the view's query merges into the statement, which then splits like any other
    partial = plan.stages[0].tasks[0].sql
    assert "FROM t AS t WHERE t.a > 1 GROUP BY t.b" in partial, partial
    plan = plan_query("SELECT x FROM w", CATALOG)  # a view over a view
    assert plan.tables == ("t",)
    assert (
        "FROM (SELECT a AS x FROM (SELECT a, b FROM t WHERE a > 1) AS v) AS w" in plan.tasks[0].sql
    )


def test_view_column_names_and_ctes_that_hide_views():
    plan = plan_query("SELECT k FROM named", CATALOG)
    assert "AS named(k)" in plan.tasks[0].sql.replace('"', "")
    with pytest.raises(UnknownTableError, match="unknown table 'nope'"):
        plan_query("WITH v AS (SELECT * FROM nope) SELECT * FROM v", CATALOG)
    plan = plan_query("WITH v AS (SELECT 1 AS one) SELECT one FROM v", CATALOG)
    assert plan.tables == ()
