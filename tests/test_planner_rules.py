"""The planner's rules as golden files, in the spirit of sqlglot's optimizer fixtures.

tests/fixtures/planner/split_aggregates.sql, aggregates.sql and top_n.sql: per case, the input
query, the expected partial fragment (one task per split: 4, or `# splits: n`) and
the expected merge, checked exactly.
tests/fixtures/planner/strategies.sql and subqueries.sql: per case, the input query,
the stages and the reason (SCAN, AGGREGATE, or why one task).

Every case then runs: the plan through the worker's run_fragment must give what
DuckDB gives for the original query, types included (`# execute: false` for
queries whose answer is not deterministic, `# execute: error` when DuckDB refuses
the query too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from tpch_data import execute_plan, is_ordered, reference, tpch_catalog

from duckfleet.catalog import Catalog
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.plan import StageKind
from duckfleet.table_files import describe_table
from duckfleet.verify import assert_same_result

FIXTURES = Path(__file__).parent / "fixtures" / "planner"

# At scale 0.01 lineitem (~2.1 MB), orders (~660 KB) and partsupp (~470 KB) are above
# this threshold, so large; customer (~155 KB), part (~100 KB), supplier, nation,
# region and events are below it: small, read whole by every task. The test below
# keeps that true.
SETTINGS = PlannerSettings(broadcast_max_bytes=200_000)
LARGE = {"lineitem", "orders", "partsupp"}

# `events`: NULL-heavy columns over three files: mixed NULLs, all NULLs, no rows.
EVENTS = (
    "SELECT i::BIGINT AS id, CASE WHEN i % 3 = 0 THEN NULL ELSE (i % 5)::INTEGER END AS k, "
    "CASE WHEN i % 4 = 0 THEN i::INTEGER END AS v, CASE WHEN i % 7 <> 0 THEN i / 7.0 END AS d, "
    "CASE WHEN i % 2 = 0 THEN 's' || (i % 11) END AS s, "
    "DATE '2024-01-01' + (i % 30)::INTEGER AS dt, "
    "CASE WHEN i % 5 <> 0 THEN (i * 1.25)::DECIMAL(10,2) END AS amount FROM range(200) t(i)",
    "SELECT (1000 + i)::BIGINT AS id, (i % 2)::INTEGER AS k, NULL::INTEGER AS v, "
    "NULL::DOUBLE AS d, NULL::VARCHAR AS s, NULL::DATE AS dt, NULL::DECIMAL(10,2) AS amount "
    "FROM range(50) t(i)",
    "SELECT 0::BIGINT AS id, 0::INTEGER AS k, 0::INTEGER AS v, 0::DOUBLE AS d, ''::VARCHAR AS s, "
    "DATE '2024-01-01' AS dt, 0::DECIMAL(10,2) AS amount WHERE false",
)


@dataclass(frozen=True)
class Case:
    title: str
    meta: dict[str, str]
    statements: tuple[str, ...]

    def __str__(self) -> str:
        return self.title


def load_cases(name: str) -> list[Case]:
    """Cases separated by blank lines: `# key: value` lines, then statements ending in `;`."""
    cases = []
    for block in (FIXTURES / name).read_text().strip().split("\n\n"):
        lines = block.strip().splitlines()
        meta = dict(line[1:].strip().split(": ", 1) for line in lines if line.startswith("#"))
        body = "\n".join(line for line in lines if not line.startswith("#"))
        statements = tuple(s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip())
        cases.append(Case(meta.pop("title"), meta, statements))
    return cases


@pytest.fixture(scope="module")
def catalog(tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    out = tmp_path_factory.mktemp("events")
    with duckdb.connect() as con:
        for n, query in enumerate(EVENTS, 1):
            con.execute(f"COPY ({query}) TO '{out}/events.{n}.parquet' (FORMAT parquet)")
    events = describe_table("events", str(out))
    return Catalog(tables={**tpch_catalog(tpch_dir).tables, "events": events})


def test_the_threshold_makes_the_intended_tables_large(catalog: Catalog) -> None:
    large = {n for n, t in catalog.tables.items() if t.bytes > SETTINGS.broadcast_max_bytes}
    assert large == LARGE
    assert all(len(catalog.tables[n].files) == 4 for n in LARGE)


def check_answer(case: Case, catalog: Catalog, sql: str) -> None:
    plan = plan_query(sql, catalog, SETTINGS)
    execute = case.meta.get("execute", "true")
    if execute == "error":
        with pytest.raises(duckdb.Error):
            reference(catalog, sql)
        with pytest.raises(duckdb.Error):
            execute_plan(plan)
    elif execute == "true":
        assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=is_ordered(sql))


SPLIT_CASES = [
    *load_cases("split_aggregates.sql"),
    *load_cases("aggregates.sql"),
    *load_cases("top_n.sql"),
]
STRATEGY_CASES = load_cases("strategies.sql") + load_cases("subqueries.sql")


@pytest.mark.parametrize("case", SPLIT_CASES, ids=str)
def test_split_aggregates(case: Case, catalog: Catalog) -> None:
    sql, partial, merge = case.statements
    plan = plan_query(sql, catalog, SETTINGS)
    splits = int(case.meta.get("splits", "4"))
    assert [(s.kind, len(s.tasks)) for s in plan.stages] == [
        (StageKind.PARTIAL, splits),
        (StageKind.MERGE, 1),
    ], plan.reason
    assert {t.sql for t in plan.stages[0].tasks} == {partial}
    assert plan.stages[1].tasks[0].sql == merge
    check_answer(case, catalog, sql)


@pytest.mark.parametrize("case", STRATEGY_CASES, ids=str)
def test_strategies(case: Case, catalog: Catalog) -> None:
    (sql,) = case.statements
    plan = plan_query(sql, catalog, SETTINGS)
    stages = ", ".join(f"{s.kind} x{len(s.tasks)}" for s in plan.stages)
    assert (stages, plan.reason) == (case.meta["stages"], case.meta["reason"])
    if len(plan.stages) == 1 and plan.stages[0].kind in (StageKind.SINGLE, StageKind.SCAN):
        assert {t.sql for t in plan.tasks} == {sql}
    check_answer(case, catalog, sql)
