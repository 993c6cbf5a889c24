"""The planner's rewrite rules, in the order they run: THE list (`RULES`).

Each rule is a function `rule(tree, ctx) -> tree` in a module of its own name, in
the manner of sqlglot's optimizer: it takes the statement's tree and returns a
tree, rewriting the tree (never SQL text) on a copy. `ctx` (planner/context.py)
holds the catalog, the settings and the statement; a rule writes in it only why a
block runs as it does (`ctx.decide`). A rule that finds the whole statement must
run as one task raises `NotDistributable(reason)`.

Distribution shows in the tree as `Fragment` nodes (planner/fragment.py): a query
run as a stage of tasks, standing where a table would. `stages.build_plan` turns
the final tree into stages of tasks.

To add a rule: write `planner/rules/<name>.py` with `def <name>(tree, ctx)`, and
put it below where what it needs has already happened (qualified columns, say).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.rules.catalog_tables import catalog_tables
from duckfleet.planner.rules.decorrelate import decorrelate
from duckfleet.planner.rules.expand_views import expand_views
from duckfleet.planner.rules.inline_ctes import inline_ctes
from duckfleet.planner.rules.merge_derived_tables import merge_derived_tables
from duckfleet.planner.rules.name_outputs import name_outputs
from duckfleet.planner.rules.qualify_columns import qualify_columns
from duckfleet.planner.rules.share_ctes import share_ctes
from duckfleet.planner.rules.split_aggregates import split_aggregates
from duckfleet.planner.rules.split_scans import split_scans
from duckfleet.planner.rules.top_n import top_n
from duckfleet.planner.rules.unqualify_tables import unqualify_tables

Rule = Callable[[exp.Expression, PlanContext], exp.Expression]

RULES: tuple[Rule, ...] = (
    unqualify_tables,  # duckfleet.main.t -> t, as BI tools write it
    expand_views,  # each view read -> its query, as a subquery
    catalog_tables,  # only catalog tables; ctx.tables
    qualify_columns,  # columns resolved against the catalog (sqlglot's qualify), types
    name_outputs,  # output columns named as DuckDB names them
    inline_ctes,  # a CTE read once -> a derived table
    merge_derived_tables,  # simple derived tables merged into their query (sqlglot)
    decorrelate,  # correlated subqueries -> joins (sqlglot's unnest_subqueries)
    share_ctes,  # a CTE read twice over a large table -> one stage, read by both
    split_aggregates,  # every aggregate block: partial aggregates per split + a merge
    top_n,  # ORDER BY / LIMIT over a scan: the first rows per split + a final merge
    split_scans,  # a row-by-row statement: one task per split, each a result partition
)

__all__ = ["RULES", "Rule"]
