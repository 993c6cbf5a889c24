"""planner/dialects.py: SQL of other engines read in their dialect and written as
DuckDB's. Pure: no fleet. The transpiled text is planned and run as the workers run
it (tests/tpch_data.py's execute_plan) and compared with DuckDB in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from dialect_cases import CASES, Case
from tpch_data import execute_plan, is_ordered, reference, tpch_catalog

from duckfleet.catalog import Catalog
from duckfleet.flight.plan_cache import PlanCache
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.dialects import (
    DEFAULT_DIALECT,
    DialectError,
    DialectSyntaxError,
    check_dialect,
    dialect_names,
    to_duckdb,
)
from duckfleet.planner.errors import SqlSyntaxError, UnsupportedStatementError
from duckfleet.planner.parse import parse_statement
from duckfleet.verify import assert_same_result
from duckfleet.wire import tickets


@pytest.fixture(scope="module")
def catalog(tpch_dir: Path) -> Catalog:
    return tpch_catalog(tpch_dir)


def test_known_names_are_sqlglots_in_any_case() -> None:
    names = dialect_names()
    for name in ("duckdb", "trino", "snowflake", "spark", "bigquery", "postgres", "mysql", "tsql"):
        assert name in names
        assert check_dialect(f" {name.upper()} ") == name
    assert "" not in names and list(names) == sorted(names)


@pytest.mark.parametrize("bad", ["oracle9", "", "mysql, normalization_strategy=lowercase"])
def test_an_unknown_dialect_names_the_valid_ones(bad: str) -> None:
    with pytest.raises(DialectError) as e:
        check_dialect(bad)
    message = str(e.value)
    assert repr(bad) in message
    assert "trino, tsql" in message and "snowflake" in message and "default is duckdb" in message


def test_duckdb_text_is_returned_as_it_is() -> None:
    sql = "SELECT  1 -- as sent\n"
    assert to_duckdb(sql, DEFAULT_DIALECT) is sql
    with pytest.raises(DialectError):
        to_duckdb(sql, "nope")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_case_transpiles_plans_and_equals_its_duckdb_form(
    case: Case, catalog: Catalog
) -> None:
    text = to_duckdb(case.sql, case.dialect, lambda: catalog)
    assert text != case.sql  # every case uses something DuckDB writes differently
    parse_statement(text)  # DuckDB SQL the planner reads
    plan = plan_query(text, catalog, PlannerSettings())
    got = execute_plan(plan)
    assert_same_result(got, reference(catalog, case.duckdb), ordered=is_ordered(case.duckdb))


def test_there_are_cases_for_every_dialect_named() -> None:
    dialects = {c.dialect for c in CASES}
    assert {"trino", "snowflake", "spark", "bigquery", "postgres", "mysql", "tsql"} <= dialects
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("dialect", "sql", "marks"),
    [
        (
            "trino",
            "SELECT n_name FROM nation WHERE n_nationkey = ? AND n_regionkey = ?",
            ["?", "?"],
        ),
        ("spark", "SELECT `n_name` FROM nation WHERE n_nationkey = ?", ["?"]),
        ("snowflake", "SELECT IFF(n_nationkey = ?, 1, 0) AS x FROM nation", ["?"]),
        ("bigquery", "SELECT SAFE_CAST(? AS INT64) AS x", ["?"]),
        ("mysql", "SELECT IFNULL(?, 1) AS x", ["?"]),
        ("tsql", "SELECT TOP 1 n_name FROM nation WHERE n_nationkey = ?", ["?"]),
        (
            "postgres",
            "SELECT n_name FROM nation WHERE n_nationkey = $1 OR n_regionkey = $2",
            ["$1", "$2"],
        ),
    ],
)
def test_placeholders_pass_through(dialect: str, sql: str, marks: list[str]) -> None:
    text = to_duckdb(sql, dialect)
    for mark in marks:
        assert mark in text
    assert text.count("?") == marks.count("?")


def test_explain_keeps_its_prefix_and_transpiles_the_query() -> None:
    assert to_duckdb("EXPLAIN SELECT IFF(1 > 0, 'a', 'b')", "snowflake") == (
        "EXPLAIN SELECT CASE WHEN 1 > 0 THEN 'a' ELSE 'b' END"
    )
    assert to_duckdb("explain /* why */ analyze SELECT `x` FROM t", "spark") == (
        'EXPLAIN ANALYZE SELECT "x" FROM t'
    )


@pytest.mark.parametrize(
    ("dialect", "sql", "construct"),
    [
        ("bigquery", "SELECT ARRAY_AGG(n_name LIMIT 2) AS a FROM nation", "LIMIT inside ARRAY_AGG"),
        ("mysql", "SELECT n_name FROM nation FOR UPDATE", "FOR UPDATE"),
        ("tsql", "SELECT FORMAT(n_nationkey, 'N2') AS f FROM nation", "NumberToStr"),
    ],
)
def test_a_construct_duckdb_has_no_form_for_names_dialect_and_construct(
    dialect: str, sql: str, construct: str
) -> None:
    with pytest.raises(DialectError) as e:
        to_duckdb(sql, dialect)
    message = str(e.value)
    assert f"this {dialect} SQL has no DuckDB form" in message
    assert construct in message and "Traceback" not in message


def test_a_syntax_error_names_the_dialect_line_and_column() -> None:
    with pytest.raises(DialectSyntaxError) as e:
        to_duckdb("SELECT n_name\nFROM nation WHERE", "trino")
    assert isinstance(e.value, SqlSyntaxError)
    assert str(e.value).startswith("trino SQL syntax error at line 2")
    assert "read as trino SQL" in str(e.value)
    with pytest.raises(DialectSyntaxError, match=r"snowflake SQL syntax error.*unterminated"):
        to_duckdb("SELECT 'open", "snowflake")


def test_what_is_not_a_query_is_still_refused_after_transpiling() -> None:
    for dialect, sql in [("trino", "SHOW TABLES"), ("spark", "SELECT 1; SELECT 2")]:
        with pytest.raises(UnsupportedStatementError):
            parse_statement(to_duckdb(sql, dialect))


def test_file_reads_written_in_a_dialect_are_refused_by_the_planner(catalog: Catalog) -> None:
    for dialect, sql in [
        ("spark", "SELECT * FROM csv.`/etc/passwd`"),
        ("bigquery", "SELECT * FROM read_csv('/etc/passwd')"),
    ]:
        with pytest.raises(Exception) as e:
            plan_query(to_duckdb(sql, dialect), catalog)
        assert type(e.value).__module__.startswith("duckfleet.planner")


SAME_TEXT = 'SELECT "n_name" AS v FROM nation WHERE n_nationkey = 3'


def test_the_same_text_in_two_dialects_is_two_plans_with_two_answers(catalog: Catalog) -> None:
    """Spark reads "n_name" as a string, DuckDB as a column: the plan cache is keyed on
    the DuckDB text the planner reads, so each dialect gets its own plan."""
    cache, planned = PlanCache(8), []

    def planner(sql: str, cat: Catalog, settings: PlannerSettings):
        planned.append(sql)
        return plan_query(sql, cat, settings)

    answers = {}
    for dialect in ("duckdb", "spark", "duckdb", "spark"):
        plan = cache.plan(to_duckdb(SAME_TEXT, dialect), catalog, PlannerSettings(), planner)
        answers[dialect] = execute_plan(plan).column("v").to_pylist()
    assert answers == {"duckdb": ["CANADA"], "spark": ["n_name"]}
    assert len(planned) == 2 and (cache.hits, cache.misses) == (2, 2)


def test_prepared_handles_and_explain_tickets_carry_the_dialect() -> None:
    handle = tickets.prepared_statement_handle("SELECT 1", None, "trino")
    assert tickets.parse_handle(handle) == tickets.PreparedHandle("SELECT 1", None, "trino")
    assert tickets.parse_handle(tickets.prepared_statement_handle("SELECT 1")).dialect is None
    ticket = tickets.parse_ticket(tickets.explain_ticket("EXPLAIN SELECT 1", None, "spark"))
    assert isinstance(ticket, tickets.ExplainTicket) and ticket.dialect == "spark"
    assert tickets.parse_ticket(tickets.explain_ticket("EXPLAIN SELECT 1")).dialect is None  # type: ignore[union-attr]


def test_integer_division_keeps_its_dialects_meaning(catalog: Catalog) -> None:
    def answer(sql: str, dialect: str) -> list[object]:
        text = to_duckdb(sql, dialect, lambda: catalog)
        return reference(catalog, text).column(0).to_pylist()

    sql = "SELECT max(p_size) / 4 AS q FROM part"
    biggest = reference(catalog, "SELECT max(p_size) AS m FROM part").column(0)[0].as_py()
    for dialect in ("trino", "postgres", "tsql"):  # integer / integer is an integer
        assert answer(sql, dialect) == [biggest // 4]
    for dialect in ("snowflake", "bigquery", "duckdb"):  # ... is not
        assert answer(sql, dialect) == [biggest / 4]
    assert answer("SELECT -7 / 2 AS x", "trino") == [-3]  # truncated, not floored
    assert to_duckdb("SELECT p_retailprice / 2 AS x FROM part", "trino", lambda: catalog) == (
        "SELECT p_retailprice / 2 AS x FROM part"  # DECIMAL: DuckDB's division
    )
    # a table the catalog does not know: untyped, DuckDB's division (the planner refuses it)
    assert to_duckdb("SELECT a / b FROM nope", "trino", lambda: catalog) == (
        "SELECT a / b FROM nope"
    )
