"""A shuffle join built by hand, for the exchange tests (no planner involved).

    stage 0  one task per lineitem file: (l_orderkey, l_extendedprice)  -> B buckets
             one task per orders file:   (o_orderkey, o_orderpriority)  -> B buckets
    stage 1  one task per bucket b: lineitem JOIN orders over bucket b of every producer
             (partial aggregate per priority)
    stage 2  merge of the partials

Its answer must be SQL's `SHUFFLE_JOIN_SQL` over the whole tables.
"""

from __future__ import annotations

from duckfleet.catalog import Catalog
from duckfleet.ids import TaskId, task_id
from duckfleet.planner.plan import InputBinding, Plan, Stage, StageKind, TableBinding, TaskPlan

SHUFFLE_JOIN_SQL = (
    "SELECT o_orderpriority, count(*) AS n, sum(l_extendedprice) AS revenue "
    "FROM lineitem JOIN orders ON l_orderkey = o_orderkey GROUP BY o_orderpriority"
)


def shuffle_join_plan(catalog: Catalog, buckets: int) -> Plan:
    """The hand-built plan."""
    ids = iter(range(1000))
    producers: dict[str, list[TaskPlan]] = {}
    for table, columns, key in (
        ("lineitem", "l_orderkey, l_extendedprice", "l_orderkey"),
        ("orders", "o_orderkey, o_orderpriority", "o_orderkey"),
    ):
        producers[table] = [
            TaskPlan(
                task_id(next(ids)),
                0,
                f"SELECT {columns} FROM {table}",
                tables=(TableBinding(table, (f.path,)),),
                partition_by=(key,),
                buckets=buckets,
            )
            for f in catalog.tables[table].files
        ]
    joins = tuple(
        TaskPlan(
            task_id(next(ids)),
            1,
            "SELECT o_orderpriority, count(*) AS n, sum(l_extendedprice) AS revenue "
            "FROM lineitem JOIN orders ON l_orderkey = o_orderkey GROUP BY o_orderpriority",
            inputs=tuple(
                InputBinding(table, tuple(p.id for p in tasks), bucket=b)
                for table, tasks in producers.items()
            ),
        )
        for b in range(buckets)
    )
    merge = TaskPlan(
        task_id(next(ids)),
        2,
        "SELECT o_orderpriority, sum(n)::BIGINT AS n, sum(revenue) AS revenue "
        "FROM __stage1 GROUP BY o_orderpriority",
        inputs=(InputBinding("__stage1", tuple(TaskId(t.id) for t in joins)),),
    )
    shuffle = tuple(t for tasks in producers.values() for t in tasks)
    return Plan(
        sql=SHUFFLE_JOIN_SQL,
        stages=(
            Stage(0, StageKind.SHUFFLE, shuffle),
            Stage(1, StageKind.PARTIAL, joins),
            Stage(2, StageKind.MERGE, (merge,)),
        ),
        reason="test: a shuffle join built by hand",
        tables=("lineitem", "orders"),
    )
