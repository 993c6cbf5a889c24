"""Generated queries, each planned and run as the workers would, against DuckDB.

tests/query_generator.py writes queries over the TPC-H schema with a fixed seed:
aggregates, filters, GROUP BY/HAVING, grouping sets, DISTINCT, ORDER BY/LIMIT,
NULLs, CASE, joins, subqueries, CTEs, set operations, windows. Every one is planned
with lineitem, orders and partsupp large and split into row-group ranges (their
files rewritten in row groups of 4,096 rows), run stage by stage through the
worker's run_fragment (tests/tpch_data.py `execute_plan`), and must give DuckDB's
answer on the same files, column names and types included. 500 queries in CI;
`DUCKFLEET_GENERATED_QUERIES=N` for more.

Queries it found wrong, once fixed, stay in tests/fixtures/planner/regressions.sql.
DOUBLE results (AVG, STDDEV, ...) compare with a relative tolerance: merged from
parts they differ from DuckDB's in the last bits, as DuckDB's own do between thread
counts; the generator keeps such values out of exact tests (DISTINCT, joins, =).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from query_generator import QueryGenerator
from test_planner_rules import load_cases
from tpch_data import execute_plan, is_ordered

from duckfleet.catalog import Catalog
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.errors import PlanError
from duckfleet.planner.quoting import quote_ident, quote_literal
from duckfleet.table_files import describe_table
from duckfleet.verify import difference

SEED = 20261124
COUNT = int(os.environ.get("DUCKFLEET_GENERATED_QUERIES", "500"))
# lineitem, orders and partsupp large; every join split that keeps the answer right
# taken, whatever the costs say (at this scale they would keep joins whole)
SETTINGS = PlannerSettings(
    broadcast_max_bytes=200_000, split_bytes=300_000, max_cost_share=math.inf
)
ROW_GROUP_ROWS = 4096


@pytest.fixture(scope="module")
def catalog(tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """TPC-H at scale 0.01, the three large tables in row groups of 4,096 rows."""
    out = tmp_path_factory.mktemp("tpch-row-groups")
    tables = {}
    for sub in sorted(p for p in tpch_dir.iterdir() if p.is_dir()):
        target = out / sub.name
        target.mkdir()
        for f in sorted(sub.glob("*.parquet")):
            pq.write_table(pq.read_table(f), target / f.name, row_group_size=ROW_GROUP_ROWS)
        tables[sub.name] = describe_table(sub.name, str(target))
    return Catalog(tables=tables)


@pytest.fixture(scope="module")
def duck(catalog: Catalog) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as con:
        for table in catalog.tables.values():
            files = ", ".join(quote_literal(f.path) for f in table.files)
            con.execute(
                f"CREATE VIEW {quote_ident(table.name)} AS SELECT * FROM read_parquet([{files}])"
            )
        yield con


def test_the_large_tables_have_many_splits(catalog: Catalog) -> None:
    plan = plan_query("SELECT COUNT(*) AS n FROM lineitem", catalog, SETTINGS)
    assert len(plan.stages[0].tasks) > 8
    assert any(b.ranges for t in plan.stages[0].tasks for b in t.tables)


# Errors that depend on the rows a value meets (a string that is no number): a plan
# that reads the rows in another order or joins first may meet other rows.
DATA_ERRORS = (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException)


def check(sql: str, catalog: Catalog, duck: duckdb.DuckDBPyConnection) -> None:
    """The plan's answer is DuckDB's; where DuckDB refuses the query, so does the plan
    (but for errors about the values met, see DATA_ERRORS)."""
    try:
        expected = duck.sql(sql).to_arrow_table()
    except DATA_ERRORS:
        return
    except duckdb.Error:
        expected = None
    try:
        plan = plan_query(sql, catalog, SETTINGS)
    except PlanError:
        assert expected is None, f"the planner refused a query DuckDB answers:\n{sql}"
        return
    if expected is None:
        with pytest.raises(duckdb.Error):
            execute_plan(plan, duck)
        return
    diff = difference(execute_plan(plan, duck), expected, ordered=is_ordered(sql))
    assert diff is None, f"{diff}\n{sql}\n{plan.explain()}"


@pytest.mark.parametrize("n", range(COUNT))
def test_generated_query_gives_duckdbs_answer(
    n: int, catalog: Catalog, duck: duckdb.DuckDBPyConnection
) -> None:
    check(QueryGenerator(SEED + n).query(), catalog, duck)


@pytest.mark.parametrize("case", load_cases("regressions.sql"), ids=str)
def test_queries_the_generator_found_wrong_stay_right(
    case, catalog: Catalog, duck: duckdb.DuckDBPyConnection
) -> None:
    (sql,) = case.statements
    check(sql, catalog, duck)
