"""Bad input: every mistake is a PlanError that says what to fix.

These need no data: the catalog's files do not exist, which also shows that the
planner never opens them.
"""

from __future__ import annotations

import pytest

from duckfleet.catalog import Catalog, Column, DataFile, Table
from duckfleet.planner import plan_query
from duckfleet.planner.errors import (
    PlanError,
    SqlSyntaxError,
    UnknownColumnError,
    UnknownTableError,
    UnsupportedStatementError,
)


def table(name: str, columns: dict[str, str], files: int) -> Table:
    return Table(
        name=name,
        columns=tuple(Column(n, t) for n, t in columns.items()),
        files=tuple(DataFile(f"/nowhere/{name}.{i}.parquet", 10, 100) for i in range(files)),
    )


CATALOG = Catalog(
    tables={
        "lineitem": table("lineitem", {"l_orderkey": "BIGINT", "l_quantity": "DECIMAL(15,2)"}, 4),
        "nation": table("nation", {"n_nationkey": "INTEGER", "n_name": "VARCHAR"}, 1),
    }
)


@pytest.mark.parametrize(
    ("sql", "line", "column"),
    [
        ("SELECT l_orderkey FROM lineitem WHERE", 1, 37),
        ("SELECT *\nFROM lineitem\nWHERE l_quantity = = 2", 3, 20),
        ("SELECT 1,\n  'unterminated", 2, 3),
        ("SELEC 1", 1, 7),
    ],
)
def test_syntax_error_has_line_and_column(sql: str, line: int, column: int) -> None:
    with pytest.raises(SqlSyntaxError) as caught:
        plan_query(sql, CATALOG)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert f"line {line}, column {column}" in str(caught.value)


@pytest.mark.parametrize("sql", ["", "  ;  ", "-- nothing but a comment"])
def test_empty_statement_is_a_syntax_error(sql: str) -> None:
    with pytest.raises(SqlSyntaxError, match="empty statement"):
        plan_query(sql, CATALOG)


def test_unknown_table_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTableError, match=r"'nosuch'.*lineitem, nation"):
        plan_query("SELECT * FROM lineitem JOIN nosuch ON true", CATALOG)


def test_cte_names_are_not_unknown_tables() -> None:
    plan = plan_query("WITH c AS (SELECT 1 AS a) SELECT a FROM c", CATALOG)
    assert plan.tables == ()


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT l_nope FROM lineitem", "l_nope"),
        ("SELECT SUM(l_nope) FROM lineitem GROUP BY 1", "l_nope"),
        ("SELECT l_orderkey FROM lineitem WHERE n_name = 'x'", "n_name"),
        ("SELECT lineitem.l_nope FROM lineitem", "l_nope"),
        ("SELECT x.l_orderkey FROM lineitem", "x.l_orderkey"),
        ("SELECT 1 FROM lineitem WHERE l_orderkey IN (SELECT zz FROM nation)", "zz"),
    ],
)
def test_unknown_column_is_named(sql: str, name: str) -> None:
    with pytest.raises(UnknownColumnError, match=f"unknown column '{name}'"):
        plan_query(sql, CATALOG)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("CREATE TABLE t AS SELECT * FROM lineitem", "CREATE TABLE"),
        ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'x')", "CREATE SECRET"),
        ("DROP TABLE lineitem", "DROP TABLE"),
        ("INSERT INTO lineitem SELECT * FROM lineitem", "INSERT"),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "INSERT"),
        ("UPDATE lineitem SET l_quantity = 0", "UPDATE"),
        ("DELETE FROM lineitem", "DELETE"),
        ("COPY lineitem TO '/tmp/out.csv'", "COPY"),
        ("COPY (SELECT 1) TO '/tmp/out.parquet' (FORMAT parquet)", "COPY"),
        ("SET threads = 1", "SET"),
        ("RESET threads", "RESET"),
        ("ATTACH 'other.db' AS other", "ATTACH"),
        ("DETACH other", "DETACH"),
        ("PRAGMA version", "PRAGMA"),
        ("INSTALL httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
        ("CALL pragma_version()", "CALL"),
        ("DESCRIBE lineitem", "DESCRIBE"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("USE other", "USE"),
    ],
)
def test_statements_that_are_not_queries_are_refused(sql: str, kind: str) -> None:
    with pytest.raises(UnsupportedStatementError, match=f"only queries are supported: got {kind}"):
        plan_query(sql, CATALOG)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM '/tmp/data.parquet'",
        "SELECT * FROM lineitem WHERE l_orderkey IN (SELECT * FROM read_csv('/tmp/x.csv'))",
        "SELECT * FROM other.lineitem",
        "SELECT * FROM other.main.lineitem",
        "SELECT * FROM memory.main.lineitem",
    ],
)
def test_user_sql_reaches_catalog_tables_only(sql: str) -> None:
    with pytest.raises(UnsupportedStatementError, match="user SQL reaches catalog tables only"):
        plan_query(sql, CATALOG)


def test_the_default_schema_main_is_the_catalog() -> None:
    plan = plan_query("SELECT n_name FROM main.nation", CATALOG)
    assert plan.tables == ("nation",)


@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "SELECT 1; DROP TABLE lineitem"])
def test_two_statements_are_refused(sql: str) -> None:
    with pytest.raises(UnsupportedStatementError, match="one statement at a time"):
        plan_query(sql, CATALOG)


def test_a_trailing_semicolon_is_not_a_second_statement() -> None:
    plan = plan_query("SELECT n_name FROM nation; -- done\n", CATALOG)
    assert plan.tasks[0].sql == "SELECT n_name FROM nation"


def test_every_error_is_a_plan_error() -> None:
    for error in (SqlSyntaxError, UnknownTableError, UnknownColumnError, UnsupportedStatementError):
        assert issubclass(error, PlanError)
