"""All 22 TPC-H queries: planned, run through the worker's run_fragment (exchange
buckets split as workers split them), and equal to DuckDB's answer on the same
files (in order when the query has ORDER BY).

Settings: the default, where at scale 0.01 a task's fixed cost outweighs what any
join split saves, so only the aggregates over one large table split
(test_costs_at_sf1 below shows the default's choices at SF1 sizes); "always", every
split that keeps the answer right (the cheapest first); "broadcast", the same with
no limit on what each task reads whole, so the rules split the aggregates over
lineitem with orders and customer broadcast; and "200kB", which makes lineitem,
orders and partsupp large: never broadcast.

Each query's plan is one of: `aggregate` (partial aggregates per split and a merge),
`sort` (top-N or a final sort over splits), `aligned` (tables split by key ranges
from Parquet statistics), `shuffle` (tables hash-partitioned by key through an
exchange stage), `files` (one table split by files, the rest broadcast), `one task`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from tpch_data import execute_plan, is_ordered, reference, tpch_catalog, tpch_query

from duckfleet.catalog import Catalog
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.plan import Plan, StageKind
from duckfleet.verify import assert_same_result

ALWAYS = PlannerSettings(max_cost_share=math.inf)
SETTINGS = {
    "default": PlannerSettings(),
    "always": ALWAYS,
    "broadcast": replace(ALWAYS, broadcast_max_share=1e9),
    "200kB": replace(ALWAYS, broadcast_max_bytes=200_000),
}
_AGGREGATES = dict.fromkeys((1, 6, 11, 14, 17, 19), "aggregate")
_ALWAYS = {
    **_AGGREGATES,
    **dict.fromkeys((2, 3, 4, 5, 7, 8, 9, 10, 12, 16, 18, 21), "aligned"),
    **dict.fromkeys((13, 15, 20, 22), "shuffle"),
}
STRATEGY = {
    "default": {n: _AGGREGATES.get(n, "one task") for n in range(1, 23)},
    "always": _ALWAYS,
    # the rules split lineitem (or partsupp, customer) with the rest broadcast;
    # Q13's outer join splits customer by key ranges, orders broadcast
    "broadcast": {
        **dict.fromkeys(range(1, 23), "aggregate"),
        **dict.fromkeys((2, 15, 20), "sort"),
        13: "aligned",
    },
    # Q9: lineitem, orders and partsupp are large and share no key; Q17: part is
    # large too, so lineitem and part are shuffled by part key
    "200kB": {**_ALWAYS, 9: "one task", 17: "shuffle"},
}
QUERIES = [pytest.param(n, id=f"q{n:02d}") for n in range(1, 23)]


@pytest.fixture(scope="module")
def catalog(tpch_dir: Path) -> Catalog:
    return tpch_catalog(tpch_dir)


def strategy(plan: Plan) -> str:
    reason = plan.reason
    for prefix, name in (
        ("aggregate:", "aggregate"),
        ("scan:", "scan"),
        ("sort:", "sort"),
        ("join: split-aligned", "aligned"),
        ("join: shuffle", "shuffle"),
        ("join: split by files", "files"),
        ("one task:", "one task"),
        ("final task:", "final task"),  # nested queries split, the block around them not
    ):
        if reason.startswith(prefix):
            return name
    raise AssertionError(f"unknown strategy: {reason}")


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("n", QUERIES)
def test_tpch_query_gives_duckdbs_answer(n: int, settings: str, catalog: Catalog) -> None:
    sql = tpch_query(n)
    plan = plan_query(sql, catalog, SETTINGS[settings])
    assert strategy(plan) == STRATEGY[settings][n], plan.reason
    if strategy(plan) == "one task":
        assert [(s.kind, len(s.tasks)) for s in plan.stages] == [(StageKind.SINGLE, 1)]
    assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=is_ordered(sql))


def test_every_query_can_scan_in_more_than_one_task(catalog: Catalog) -> None:
    multi = {
        n
        for n in range(1, 23)
        if any(len(s.tasks) > 1 for s in plan_query(tpch_query(n), catalog, ALWAYS).stages)
    }
    assert multi == set(range(1, 23))


def scaled(catalog: Catalog, k: int) -> Catalog:
    """The catalog of data `k` times larger in the same files: rows, bytes, keys."""

    def grow(v: int | str | None) -> int | str | None:
        return v * k if isinstance(v, int) else v

    return Catalog(
        tables={
            name: replace(
                t,
                files=tuple(
                    replace(
                        f,
                        rows=f.rows * k,
                        bytes=f.bytes * k,
                        ranges=tuple(
                            replace(r, min=grow(r.min), max=grow(r.max)) for r in f.ranges
                        ),
                    )
                    for f in t.files
                ),
            )
            for name, t in catalog.tables.items()
        }
    )


@pytest.mark.parametrize(
    ("parallelism", "split"),
    [
        # two one-slot workers: the splits that pay when only two tasks run at once
        (2, set(range(1, 23)) - {9, 10, 13, 16}),
        # eight: also those whose broadcast work only pays spread wider; no shuffle
        # of 4 files pays, the producers being 4 tasks
        (8, set(range(1, 23)) - {13}),
    ],
)
def test_costs_at_sf1(parallelism: int, split: set[int], catalog: Catalog) -> None:
    """The default's choices for data 100 times larger (about SF1): a split only
    where the planner's costs say it pays, for the fleet's parallelism."""
    sf1 = scaled(catalog, 100)
    settings = PlannerSettings(parallelism=parallelism)
    plans = {n: plan_query(tpch_query(n), sf1, settings) for n in range(1, 23)}
    assert {n for n, p in plans.items() if len(p.tasks) > 1} == split
    assert not any(strategy(p) == "shuffle" for p in plans.values())


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


def test_q3_splits_lineitem_and_orders_by_aligned_order_key_ranges(catalog: Catalog) -> None:
    """Task i reads the lineitem and orders files that overlap key range i, and only
    the rows in it; customer whole."""
    plan = plan_query(tpch_query(3), catalog, ALWAYS)
    tasks = plan.stages[0].tasks
    assert [s.kind for s in plan.stages] == [StageKind.PARTIAL, StageKind.MERGE]
    lineitem = sorted(catalog.tables["lineitem"].files, key=lambda f: f.range_of("l_orderkey").min)
    for i, task in enumerate(tasks):
        binds = {b.table: b for b in task.tables}
        assert binds["lineitem"].files == (lineitem[i].path,)  # the cut: one file each
        assert "l_orderkey" in binds["lineitem"].filter
        assert "o_orderkey" in binds["orders"].filter
        assert len(binds["customer"].files) == 4 and not binds["customer"].filter
    first = {b.table: b for b in tasks[0].tables}
    assert first["lineitem"].filter.endswith("IS NULL")  # NULL keys: the first range


def test_q17_shuffles_lineitem_and_part_by_part_key_when_part_is_large(catalog: Catalog) -> None:
    plan = plan_query(tpch_query(17), catalog, SETTINGS["200kB"])
    shuffle, buckets, merge = plan.stages
    assert (shuffle.kind, buckets.kind, merge.kind) == (
        StageKind.SHUFFLE,
        StageKind.PARTIAL,
        StageKind.MERGE,
    )
    assert {t.partition_by for t in shuffle.tasks} == {("l_partkey",), ("p_partkey",)}
    assert all(t.buckets == len(buckets.tasks) == 4 for t in shuffle.tasks)
    for b, task in enumerate(buckets.tasks):
        assert {i.relation for i in task.inputs} == {"lineitem", "part"}
        assert all(i.bucket == b and len(i.tasks) == 4 for i in task.inputs)
    # the producers read only the columns the query uses
    lineitem_sql = next(t.sql for t in shuffle.tasks if t.partition_by == ("l_partkey",))
    assert lineitem_sql == 'SELECT "l_partkey", "l_quantity", "l_extendedprice" FROM lineitem'
