"""The join rules (planner/joins) as golden files, one per rule:

    joins_broadcast.sql   one table split by files, the others read whole
    joins_aligned.sql     tables split by key ranges from Parquet statistics
    joins_shuffle.sql     tables hash-partitioned by key through an exchange stage
    joins_subqueries.sql  uncorrelated subqueries over split tables computed first
    joins_windows.sql     windows per key partition, or one task

Per case: the input query, the stages and the reason, the key-range filters of the
first task (`# filters`, aligned splits), then every stage's distinct fragments in
plan order, checked exactly. Then it runs: the fragments plus the merge, through
the worker's run_fragment and bucket split, must give what DuckDB gives for the
original query. Catalog and settings as tests/test_planner_rules.py (lineitem,
orders and partsupp are large: never broadcast), taking every split that keeps
the answer right, whatever it costs: at scale 0.01 the costs would keep most of
them one task (tests/test_planner_tpch.py tests the costs).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from golden import filters_line, fragments, stages_line
from test_planner_rules import SETTINGS, Case, catalog, load_cases  # noqa: F401
from tpch_data import execute_plan, is_ordered, reference

from duckfleet.catalog import Catalog
from duckfleet.planner import plan_query
from duckfleet.planner.explain import explain_rows
from duckfleet.verify import assert_same_result

ALWAYS = replace(SETTINGS, max_cost_share=math.inf)

RULES = ("broadcast", "aligned", "shuffle", "subqueries", "windows")
CASES = [
    pytest.param(case, id=f"{rule}: {case}")
    for rule in RULES
    for case in load_cases(f"joins_{rule}.sql")
]


@pytest.mark.parametrize("case", CASES)
def test_join_rule(case: Case, catalog: Catalog) -> None:  # noqa: F811
    sql, *expected = case.statements
    plan = plan_query(sql, catalog, ALWAYS)
    assert (stages_line(plan), plan.reason) == (case.meta["stages"], case.meta["reason"])
    assert filters_line(plan) == case.meta.get("filters", "")
    assert fragments(plan) == expected
    assert_same_result(execute_plan(plan), reference(catalog, sql), ordered=is_ordered(sql))


def test_every_rule_has_cases_that_split_and_the_planner_used_it() -> None:
    """Each golden file exercises its own strategy at least twice."""
    words = {
        "broadcast": "broadcast: ",  # the rules broadcast small tables to lineitem splits first
        "aligned": "join: split-aligned",
        "shuffle": "join: shuffle",
        "subqueries": "computed first",
        "windows": "join:",
    }
    for rule in RULES:
        reasons = [c.meta["reason"] for c in load_cases(f"joins_{rule}.sql")]
        assert sum(words[rule] in r for r in reasons) >= 2, rule


def test_explain_shows_key_ranges_buckets_and_bucket_inputs(catalog: Catalog) -> None:  # noqa: F811
    """EXPLAIN's rows name what each task of a join plan reads: a split-aligned
    task's key range, a shuffle producer's buckets, a bucket task's bucket."""
    aligned = explain_rows(
        plan_query(
            "SELECT o_orderpriority, count(*) AS n FROM orders JOIN lineitem "
            "ON l_orderkey = o_orderkey GROUP BY o_orderpriority",
            catalog,
            ALWAYS,
        )
    )
    first = next(r for r in aligned if r.task == "t0")
    assert '"l_orderkey" <=' in first.reads and '"o_orderkey" <=' in first.reads, first.reads
    shuffled = plan_query(
        "SELECT l_suppkey, median(l_quantity) AS m FROM lineitem GROUP BY l_suppkey",
        catalog,
        ALWAYS,
    )
    rows = {r.task: r for r in explain_rows(shuffled)}
    producer, consumer = shuffled.stages[0].tasks[0], shuffled.stages[1].tasks[1]
    assert rows[producer.id].reads.endswith("-> 4 buckets by hash(l_suppkey)")
    assert rows[consumer.id].inputs.startswith("lineitem <- bucket 1 of ")
