"""Holistic aggregates shuffled by their group keys (planner/shuffle_aggregate.py), pure.

Per case: the plan has an exchange (producers per split of the split table, each
result hashed into buckets by the group keys every grouping set shares), one task
per bucket running the whole aggregate, and a final task only for ORDER BY / LIMIT /
OFFSET / DISTINCT; run through the worker's run_fragment and bucket split, the
answer equals DuckDB's on the same files exactly (floats too: both sides run one
thread, so a group's rows meet the aggregate in file order). Without GROUP BY, or
with grouping sets that share no key, one task, and the reason says why.

Catalog and settings as tests/test_planner_rules.py: lineitem is large (4 splits);
`events` (3 files) has NULL keys.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from test_planner_rules import SETTINGS, catalog  # noqa: F401
from tpch_data import execute_plan, is_ordered

from duckfleet.catalog import Catalog
from duckfleet.planner import plan_query
from duckfleet.planner.plan import Plan, StageKind
from duckfleet.planner.quoting import quote_ident, quote_literal
from duckfleet.verify import difference

# (query, the group keys it is shuffled by, as the reason writes them)
SHUFFLED = [
    (
        "SELECT l_returnflag, l_linestatus, MEDIAN(l_quantity) AS m, "
        "QUANTILE_DISC(l_extendedprice, 0.9) AS q FROM lineitem GROUP BY ALL ORDER BY 1, 2",
        "lineitem.l_returnflag, lineitem.l_linestatus",
    ),
    (
        "SELECT l_partkey, MEDIAN(l_extendedprice) AS m, "
        "QUANTILE_CONT(l_quantity, [0.25, 0.5, 0.75]) AS qs FROM lineitem "
        "GROUP BY l_partkey ORDER BY m DESC, l_partkey LIMIT 20",
        "lineitem.l_partkey",
    ),
    (
        "SELECT l_shipmode, MODE(l_linenumber) AS mo FROM lineitem GROUP BY l_shipmode",
        "lineitem.l_shipmode",
    ),
    (
        "SELECT l_orderkey % 7 AS k, ARRAY_AGG(l_comment ORDER BY l_orderkey, l_linenumber) "
        "AS cs, STRING_AGG(l_shipmode, ',' ORDER BY l_orderkey, l_linenumber) AS sm "
        "FROM lineitem GROUP BY 1 ORDER BY k",
        "lineitem.l_orderkey % 7",
    ),
    (
        "SELECT l_orderkey, ARRAY_AGG(l_linenumber ORDER BY l_linenumber) AS ln, "
        "STRING_AGG(l_shipinstruct, '|' ORDER BY l_linenumber) AS si, "
        "list_sort(LIST(l_partkey)) AS parts FROM lineitem GROUP BY l_orderkey",
        "lineitem.l_orderkey",
    ),
    (
        "SELECT l_returnflag, COUNT(DISTINCT l_partkey) AS p, COUNT(DISTINCT l_suppkey) AS s, "
        "SUM(DISTINCT l_quantity) AS q FROM lineitem GROUP BY 1",
        "lineitem.l_returnflag",
    ),
    (
        "SELECT l_orderkey % 1000 AS b, COUNT(DISTINCT l_partkey) AS p, "
        "COUNT(DISTINCT l_suppkey) AS s FROM lineitem GROUP BY 1 ORDER BY b",
        "lineitem.l_orderkey % 1000",
    ),
    (
        "SELECT l_returnflag, l_linestatus, VAR_SAMP(l_quantity) AS v, "
        "STDDEV_POP(l_extendedprice) AS sd, GROUPING(l_linestatus) AS g FROM lineitem "
        "GROUP BY GROUPING SETS ((l_returnflag, l_linestatus), (l_returnflag)) "
        "ORDER BY 1, 2 NULLS FIRST",
        "lineitem.l_returnflag",
    ),
    (
        "SELECT l_returnflag, l_linestatus, MEDIAN(l_quantity) AS m FROM lineitem "
        "GROUP BY l_returnflag, ROLLUP (l_linestatus) ORDER BY 1, 2 NULLS LAST",
        "lineitem.l_returnflag",
    ),
    (
        "SELECT l_suppkey, SUM(l_quantity) AS s, MEDIAN(l_discount) AS md, COUNT(*) AS n "
        "FROM lineitem WHERE l_shipdate < DATE '1995-01-01' GROUP BY l_suppkey "
        "HAVING COUNT(*) > 50 ORDER BY s DESC, l_suppkey LIMIT 5 OFFSET 2",
        "lineitem.l_suppkey",
    ),
    (
        "SELECT k, MEDIAN(v) AS m, LIST(id ORDER BY id) AS ids, "
        "STRING_AGG(s, ',' ORDER BY id) AS ss, COUNT(DISTINCT s) AS ds, "
        "COUNT(DISTINCT dt) AS dd FROM events GROUP BY k ORDER BY k NULLS FIRST",
        "events.k",
    ),
    (
        "SELECT NULLIF(l_linenumber, 1) AS ln, MEDIAN(l_quantity) AS m FROM lineitem "
        "GROUP BY 1 ORDER BY 1 NULLS LAST",
        "NULLIF(lineitem.l_linenumber, 1)",
    ),
    (
        "SELECT n_name, MEDIAN(l_extendedprice) AS m FROM lineitem "
        "JOIN supplier ON l_suppkey = s_suppkey JOIN nation ON s_nationkey = n_nationkey "
        "GROUP BY n_name ORDER BY n_name",
        "nation.n_name",
    ),
    (
        "SELECT DISTINCT MEDIAN(l_linenumber) AS m FROM lineitem GROUP BY l_orderkey",
        "lineitem.l_orderkey",
    ),
    (
        "SELECT l_returnflag, MEDIAN(l_quantity) AS m FROM lineitem GROUP BY l_returnflag "
        "HAVING MEDIAN(l_quantity) > 10 ORDER BY m",
        "lineitem.l_returnflag",
    ),
    (  # outputs named as DuckDB names them
        "SELECT l_returnflag, median(l_quantity), MEDIAN(L_Tax), "
        "list_sort(array_agg(l_linenumber)) AS s FROM lineitem GROUP BY 1 ORDER BY 1",
        "lineitem.l_returnflag",
    ),
]


def one_thread_reference(catalog: Catalog, sql: str) -> pa.Table:  # noqa: F811
    """DuckDB's answer over the same files, on one thread (as a one-core worker)."""
    with duckdb.connect(config={"threads": 1}) as con:
        for table in catalog.tables.values():
            files = ", ".join(quote_literal(f.path) for f in table.files)
            con.execute(
                f"CREATE VIEW {quote_ident(table.name)} AS SELECT * FROM read_parquet([{files}])"
            )
        return con.sql(sql).to_arrow_table()


def distributed(plan: Plan) -> pa.Table:
    with duckdb.connect(config={"threads": 1}) as con:
        return execute_plan(plan, con)


def check_exchange(plan: Plan, sql: str) -> None:
    """Producers hashing into N buckets, then N bucket tasks each reading bucket b of
    every producer, then the final task exactly when the query needs one."""
    producers, buckets, *rest = plan.stages
    assert producers.kind is StageKind.SHUFFLE
    n = producers.tasks[0].buckets
    assert n >= 2 and all(t.partitioned and t.buckets == n for t in producers.tasks)
    assert len(buckets.tasks) == n
    ids = tuple(t.id for t in producers.tasks)
    for b, task in enumerate(buckets.tasks):
        assert [(i.tasks, i.bucket) for i in task.inputs] == [(ids, b)]
    if is_ordered(sql) or " LIMIT " in sql or sql.startswith("SELECT DISTINCT"):
        (final,) = rest
        assert final.kind is StageKind.MERGE and len(final.tasks) == 1
        assert buckets.kind is StageKind.PARTIAL
    else:
        assert rest == [] and buckets.kind is StageKind.SCAN


@pytest.mark.parametrize(("sql", "keys"), SHUFFLED, ids=[s for s, _ in SHUFFLED])
def test_shuffled_by_the_group_keys_and_exact(sql: str, keys: str, catalog: Catalog) -> None:  # noqa: F811
    plan = plan_query(sql, catalog, SETTINGS)
    assert plan.reason.startswith("aggregate: "), plan.reason
    assert f"shuffled by hash({keys}) into " in plan.reason, plan.reason
    check_exchange(plan, sql)
    diff = difference(
        distributed(plan),
        one_thread_reference(catalog, sql),
        ordered=is_ordered(sql),
        rel_tol=0,
        abs_tol=0,
    )
    assert diff is None, diff


def test_producers_push_filters_down_and_send_only_the_columns_used(
    catalog: Catalog,  # noqa: F811
) -> None:
    sql = (
        "SELECT year(l_shipdate) AS y, MEDIAN(l_quantity) AS m FROM lineitem "
        "WHERE l_discount > 0.05 GROUP BY y ORDER BY m DESC, y LIMIT 3"
    )
    plan = plan_query(sql, catalog, SETTINGS)
    assert [(s.kind, len(s.tasks)) for s in plan.stages] == [
        (StageKind.SHUFFLE, 4),
        (StageKind.PARTIAL, 4),
        (StageKind.MERGE, 1),
    ]
    assert {t.sql for t in plan.stages[0].tasks} == {
        "SELECT YEAR(lineitem.l_shipdate) AS _g0, lineitem.l_quantity AS _c0 "
        "FROM lineitem AS lineitem WHERE lineitem.l_discount > 0.05"
    }
    assert {t.partition_by for t in plan.stages[0].tasks} == {("_g0",)}
    assert {t.sql for t in plan.stages[1].tasks} == {
        "SELECT _g0 AS y, MEDIAN(_c0) AS m, MEDIAN(_c0) AS _s0, _g0 AS _s1 FROM __stage0 "
        "GROUP BY _g0 ORDER BY _s0 DESC, _s1 LIMIT 3"
    }
    assert plan.stages[2].tasks[0].sql == (
        "SELECT y, m FROM __stage1 ORDER BY _s0 DESC, _s1 LIMIT 3"
    )
    assert plan.reason == (
        "aggregate: MEDIAN cannot be merged exactly, so the rows of lineitem (4 producer "
        "tasks) are shuffled by hash(YEAR(lineitem.l_shipdate)) into 4 buckets, each group "
        "complete in one task; top rows per bucket, ORDER BY / LIMIT / DISTINCT in one final task"
    )
    assert "-> 4 buckets by hash(_g0)" in plan.explain()
    diff = difference(
        distributed(plan), one_thread_reference(catalog, sql), ordered=True, rel_tol=0, abs_tol=0
    )
    assert diff is None, diff


ONE_TASK = [
    (
        "SELECT MEDIAN(l_quantity) AS m FROM lineitem",
        "one task: MEDIAN cannot be merged exactly; it needs every row of a group in one task, "
        "and without GROUP BY all rows are one group",
    ),
    (
        "SELECT COUNT(DISTINCT l_orderkey) AS o, COUNT(DISTINCT l_partkey) AS p FROM lineitem",
        "one task: DISTINCT aggregates over different expressions; it needs every row of a "
        "group in one task, and without GROUP BY all rows are one group",
    ),
    (
        "SELECT l_returnflag, MEDIAN(l_quantity) AS m FROM lineitem GROUP BY ROLLUP (l_returnflag)",
        "one task: MEDIAN cannot be merged exactly; it needs every row of a group in one task, "
        "and the grouping sets share no key to shuffle by (ROLLUP, CUBE or a set with fewer "
        "keys groups rows of every key value together)",
    ),
    (
        "SELECT l_returnflag, l_linestatus, MEDIAN(l_quantity) AS m FROM lineitem "
        "GROUP BY GROUPING SETS ((l_returnflag), (l_linestatus))",
        "one task: MEDIAN cannot be merged exactly; it needs every row of a group in one task, "
        "and the grouping sets share no key to shuffle by (ROLLUP, CUBE or a set with fewer "
        "keys groups rows of every key value together)",
    ),
]


@pytest.mark.parametrize(("sql", "reason"), ONE_TASK, ids=[s for s, _ in ONE_TASK])
def test_without_a_shared_group_key_one_task_says_why(
    sql: str,
    reason: str,
    catalog: Catalog,  # noqa: F811
) -> None:
    plan = plan_query(sql, catalog, SETTINGS)
    assert [(s.kind, len(s.tasks)) for s in plan.stages] == [(StageKind.SINGLE, 1)]
    assert plan.reason == reason
    assert plan.explain().splitlines()[0] == f"plan: {reason}"


def test_mergeable_aggregates_keep_their_partial_plan(catalog: Catalog) -> None:  # noqa: F811
    """Only blocks whose aggregates do not merge take the shuffle."""
    plan = plan_query(
        "SELECT l_returnflag, SUM(l_quantity) AS q FROM lineitem GROUP BY 1", catalog, SETTINGS
    )
    assert [s.kind for s in plan.stages] == [StageKind.PARTIAL, StageKind.MERGE]


NESTED = [
    "SELECT * FROM (SELECT l_returnflag, median(l_quantity) AS m FROM lineitem GROUP BY 1) t "
    "WHERE m > 1 ORDER BY 1",
    "SELECT o_orderpriority, count(*) AS n FROM orders WHERE o_orderkey IN (SELECT l_orderkey "
    "FROM lineitem GROUP BY l_orderkey HAVING median(l_quantity) > 30) GROUP BY 1 ORDER BY 1",
    "WITH x AS (SELECT l_suppkey, median(l_quantity) AS m, COUNT(DISTINCT l_partkey) AS p, "
    "COUNT(DISTINCT l_orderkey) AS o FROM lineitem GROUP BY 1) "
    "SELECT max(m) AS mm, sum(p) AS sp, sum(o) AS so, count(*) AS c FROM x",
    "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_orderkey IN (SELECT l_orderkey "
    "FROM lineitem GROUP BY 1 ORDER BY median(l_extendedprice) DESC, 1 LIMIT 5) ORDER BY 1, 2",
    "WITH x AS (SELECT l_suppkey, median(l_quantity) AS m FROM lineitem GROUP BY 1) "
    "SELECT a.l_suppkey, a.m FROM x a JOIN x b ON a.l_suppkey = b.l_suppkey + 1 ORDER BY 1",
    "SELECT l_returnflag, median(l_quantity) AS m FROM lineitem GROUP BY 1 UNION ALL "
    "SELECT l_linestatus, median(l_tax) FROM lineitem GROUP BY 1 ORDER BY 1, 2",
]


@pytest.mark.parametrize("sql", NESTED)
def test_a_block_inside_the_statement_is_shuffled_too(sql: str, catalog: Catalog) -> None:  # noqa: F811
    plan = plan_query(sql, catalog, SETTINGS)
    assert any(
        n.startswith("subquery: aggregate: ") and "shuffled by hash(" in n for n in plan.notes
    )
    assert StageKind.SHUFFLE in [s.kind for s in plan.stages], plan.explain()
    diff = difference(
        distributed(plan), one_thread_reference(catalog, sql), ordered=True, rel_tol=0, abs_tol=0
    )
    assert diff is None, diff
