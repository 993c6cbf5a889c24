"""All 22 TPC-H queries: planned, run through the worker's run_fragment, and equal
to DuckDB's answer on the same files (in order when the query has ORDER BY).

Three settings: the default (64 MiB; at scale 0.01 no table is that large, so the
statement's largest table with several files, lineitem, splits, and nothing nested
does; broadcasting orders and customer to each task would read more than the task's
own lineitem file, so Q3, Q5, Q10 and Q12 run as one task); "broadcast" (the same
with no limit on what is broadcast, so those exercise broadcast joins of the larger
tables too); and 200 kB, which makes lineitem, orders and partsupp large, so
subqueries, derived tables and CTEs over them split too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tpch_data import execute_plan, is_ordered, reference, tpch_catalog, tpch_query

from duckfleet.catalog import Catalog
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.plan import StageKind
from duckfleet.verify import assert_same_result

SETTINGS = {
    "default": PlannerSettings(),
    "broadcast": PlannerSettings(broadcast_max_share=1e9),
    "200kB": PlannerSettings(broadcast_max_bytes=200_000),
}
# Queries that must read some table in more than one task.
DISTRIBUTED = {
    "default": {1, 6, 11, 14, 17, 19},
    "broadcast": set(range(1, 23)) - {13},
    "200kB": {1, 2, 4, 6, 11, 14, 15, 17, 18, 19, 20, 22},
}
QUERIES = [pytest.param(n, id=f"q{n:02d}") for n in range(1, 23)]


@pytest.fixture(scope="module")
def catalog(tpch_dir: Path) -> Catalog:
    return tpch_catalog(tpch_dir)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("n", QUERIES)
def test_tpch_query_gives_duckdbs_answer(n: int, settings: str, catalog: Catalog) -> None:
    sql = tpch_query(n)
    plan = plan_query(sql, catalog, SETTINGS[settings])
    shape = [(s.kind, len(s.tasks)) for s in plan.stages]
    if n in DISTRIBUTED[settings]:
        assert any(len(s.tasks) > 1 for s in plan.stages), plan.explain()
        assert not plan.reason.startswith("one task: "), plan.reason
    else:
        assert shape == [(StageKind.SINGLE, 1)], plan.reason
        assert plan.reason.startswith("one task: ")
    assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=is_ordered(sql))


@pytest.mark.parametrize("n", [1, 6])
def test_q1_and_q6_split_one_task_per_lineitem_file(n: int, catalog: Catalog) -> None:
    plan = plan_query(tpch_query(n), catalog)
    partial, merge = plan.stages
    lineitem = [f.path for f in catalog.tables["lineitem"].files]
    assert partial.kind is StageKind.PARTIAL and merge.kind is StageKind.MERGE
    assert [[(b.table, b.files) for b in t.tables] for t in partial.tasks] == [
        [("lineitem", (path,))] for path in lineitem
    ]
    assert [t.id for t in plan.tasks] == ["t0", "t1", "t2", "t3", "t4"]
    assert merge.tasks[0].input_tasks == ("t0", "t1", "t2", "t3")
    assert plan.tables == ("lineitem",)
