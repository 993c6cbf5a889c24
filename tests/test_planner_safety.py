"""What keeps the planner from ever giving a wrong answer, checked against DuckDB itself.

* Every aggregate function DuckDB has is either merged correctly or runs as one
  task: none is mistaken for a scalar function and split as a SCAN.
* Output columns without aliases keep DuckDB's names after the rewrite.
* The planner is pure (no I/O module imported) and its plans are well formed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import duckdb
import pytest
from tpch_data import execute_plan, reference, tpch_catalog

from duckfleet.catalog import Catalog
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.aggregates import DUCKDB_AGGREGATES
from duckfleet.planner.errors import SqlSyntaxError
from duckfleet.planner.plan import StageKind, TaskPlan
from duckfleet.verify import assert_same_result

PLANNER = Path(__file__).parent.parent / "planner"
SETTINGS = PlannerSettings(broadcast_max_bytes=200_000)  # lineitem is large
MERGED = {
    *("sum", "count", "min", "max", "avg", "any_value", "count_if", "countif"),
    *("bit_and", "bit_or", "bit_xor", "bool_and", "bool_or"),
    *("stddev", "stddev_pop", "stddev_samp", "var_pop", "var_samp", "variance"),
}


@pytest.fixture(scope="module")
def catalog(tpch_dir: Path) -> Catalog:
    return tpch_catalog(tpch_dir)


def duckdb_aggregates() -> list[str]:
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_type = 'aggregate' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_the_planner_knows_every_duckdb_aggregate() -> None:
    """A function sqlglot does not know is scalar unless this list says otherwise."""
    assert set(duckdb_aggregates()) <= DUCKDB_AGGREGATES


def test_no_duckdb_aggregate_is_split_unless_it_is_merged(catalog: Catalog) -> None:
    split = set()
    for name in duckdb_aggregates():
        try:
            plan = plan_query(f"SELECT {name}(l_quantity) AS x FROM lineitem", catalog, SETTINGS)
        except SqlSyntaxError:  # sqlglot knows it takes two arguments
            two = f"SELECT {name}(l_quantity, l_tax) AS x FROM lineitem"
            plan = plan_query(two, catalog, SETTINGS)
        assert plan.stages[0].kind in (StageKind.SINGLE, StageKind.PARTIAL), name
        if plan.distributed:
            split.add(name)
    assert split == MERGED


@pytest.mark.parametrize(
    ("output", "distributed"),
    [
        ("count(*)", True),
        ("COUNT()", True),
        ("count(l_tax)", True),
        ("Sum(L_Quantity)", True),
        ("sum(lineitem.l_quantity)", True),
        ('sum("l_quantity")', True),
        ("avg(l_tax)", True),
        ("min(l_shipdate)", True),
        ("max(l_comment)", True),
        ("sum(l_tax) / 2", True),
        ("sum(l_tax) // 2", True),
        ("-sum(l_tax)", True),
        ("- 5", True),
        ("1.50 * sum(l_tax) + 1", True),
        ("1 + 2 * count(*)", True),
        ("(1 + 2) * count(*)", True),
        ("sum(l_tax) > 1 AND count(*) < 5000", True),
        ("NOT (count(*) > 1)", True),
        ("sum(l_tax) <> 0", True),
        ("'x' || l_returnflag", True),
        ("l_returnflag", True),
        ("L_RETURNFLAG", True),
        ("sum(l_quantity + 1.0)", True),
        ("count(*) IS NULL", False),
        ("sum(l_tax)::DOUBLE", False),
        ("round(sum(l_tax), 1)", False),
        ("sum(l_tax) > 1 AND count(*) < 5000 AND min(l_tax) = 0", False),
    ],
)
def test_outputs_without_alias_keep_duckdbs_names(
    output: str, distributed: bool, catalog: Catalog
) -> None:
    sql = f"SELECT {output} FROM lineitem GROUP BY l_returnflag ORDER BY ALL"
    plan = plan_query(sql, catalog, SETTINGS)
    assert plan.distributed == distributed, plan.reason
    assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=True)


def test_scan_binds_one_file_of_the_large_table_and_all_of_the_small(catalog: Catalog) -> None:
    sql = "SELECT l_orderkey, n_name FROM lineitem, supplier, nation WHERE l_suppkey = s_suppkey"
    plan = plan_query(sql + " AND s_nationkey = n_nationkey", catalog, SETTINGS)
    (stage,) = plan.stages
    assert stage.kind is StageKind.SCAN
    assert plan.tables == ("lineitem", "supplier", "nation")
    lineitem = tuple(f.path for f in catalog.tables["lineitem"].files)
    supplier = tuple(f.path for f in catalog.tables["supplier"].files)
    for n, task in enumerate(stage.tasks):
        assert (task.id, task.stage) == (f"t{n}", 0)
        bound = {b.table: b.files for b in task.tables}
        assert bound["lineitem"] == (lineitem[n],)
        assert bound["supplier"] == supplier
        assert len(bound["nation"]) == 1
    assert plan.output_tasks == stage.tasks


def test_single_binds_every_table_whole_and_runs_the_text_as_sent(catalog: Catalog) -> None:
    sql = (  # MEDIAN does not merge, and nothing groups it by a key: one task
        "WITH lineitem AS (SELECT * FROM lineitem WHERE l_quantity > 45) "
        "SELECT MEDIAN(l_quantity) FROM lineitem;"
    )
    plan = plan_query(sql, catalog, SETTINGS)
    (task,) = plan.tasks
    assert (task.id, task.sql, plan.sql) == ("t0", sql.rstrip(";"), sql)
    assert [(b.table, len(b.files)) for b in task.tables] == [("lineitem", 4)]
    assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=False)


def test_a_cte_named_like_the_table_it_reads_splits_over_that_table(catalog: Catalog) -> None:
    sql = (
        "WITH lineitem AS (SELECT * FROM lineitem WHERE l_quantity > 45) "
        "SELECT COUNT(*) AS n, SUM(l_tax) AS t FROM lineitem"
    )
    plan = plan_query(sql, catalog, SETTINGS)
    assert plan.stages[0].kind is StageKind.PARTIAL, plan.reason
    assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=False)


def test_plans_survive_json(catalog: Catalog) -> None:
    plan = plan_query("SELECT SUM(l_tax) AS t FROM lineitem", catalog, SETTINGS)
    assert [TaskPlan.from_json(t.to_json()) for t in plan.tasks] == list(plan.tasks)


IO_MODULES = {"duckdb", "pyarrow", "os", "pathlib", "io", "socket", "subprocess", "shutil"}


@pytest.mark.parametrize(
    "module", sorted(str(p.relative_to(PLANNER)) for p in PLANNER.rglob("*.py"))
)
def test_planner_modules_do_no_io(module: str) -> None:
    tree = ast.parse((PLANNER / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", module
        assert not {n.split(".")[0] for n in names} & IO_MODULES, (module, names)
