"""Table names as BI tools write them: qualified by the catalog and schema that the
front door's metadata reports."""

from __future__ import annotations

import pytest
from tpch_data import execute_plan, reference, tpch_catalog

from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.errors import UnsupportedStatementError
from duckfleet.verify import assert_same_result


@pytest.fixture(scope="module")
def catalog(tpch_dir):
    return tpch_catalog(tpch_dir)


@pytest.mark.parametrize(
    ("sql", "kinds"),
    [
        ('SELECT count(*) AS n FROM "duckfleet"."main"."lineitem"', ["partial", "merge"]),
        ("SELECT n_name FROM duckfleet.main.nation WHERE n_nationkey < 5", ["single"]),
        ("SELECT r_name FROM main.region ORDER BY 1", ["single"]),
        (
            "SELECT c.c_name, count(*) AS n FROM duckfleet.main.customer c "
            "JOIN duckfleet.main.nation ON c_nationkey = n_nationkey "
            "WHERE n_name = 'FRANCE' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3",
            ["partial", "merge"],
        ),
    ],
)
def test_qualified_names_plan_and_run_like_bare_ones(catalog, sql, kinds):
    plan = plan_query(sql, catalog, PlannerSettings(broadcast_max_bytes=200_000))
    assert [str(s.kind) for s in plan.stages] == kinds
    assert all("duckfleet" not in t.sql.lower() for t in plan.tasks)
    bare = sql.replace('"duckfleet"."main".', "").replace("duckfleet.main.", "")
    bare = bare.replace("main.", "")
    assert_same_result(execute_plan(plan), reference(catalog, bare), ordered="ORDER" in sql)


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM other.main.nation", "SELECT * FROM duckfleet.information_schema.tables"],
)
def test_other_catalogs_and_schemas_are_still_refused(catalog, sql):
    with pytest.raises(UnsupportedStatementError, match="catalog tables only"):
        plan_query(sql, catalog)
