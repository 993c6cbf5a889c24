"""Joins, subqueries, CTEs and windows split over the fleet by key.

One rule, `plan_joins` (plan_joins.py), tried when a query is not a plain scan or
aggregate over one large table. Its parts, one module each:

    keys.py            columns the query equates; classes of catalog columns to key on
    choose.py          candidate splits, cheapest first
    join_broadcast.py  one table split by files, the others read whole (broadcast)
    join_aligned.py    tables split by key ranges their Parquet statistics line up
    join_shuffle.py    tables repartitioned by hash of the key through an exchange
    layout.py          whether the answer stays right with those tables split
    subqueries.py      uncorrelated subqueries over split tables, computed first
    fragments.py       the bucket tasks' SQL and the merge's
"""

from duckfleet.planner.joins.plan_joins import plan_joins

__all__ = ["plan_joins"]
