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
from duckfleet.planner.rules.qualify_columns import qualify_columns
from duckfleet.planner.rules.split_aggregates import split_aggregates
from duckfleet.planner.rules.split_scans import split_scans
from duckfleet.planner.rules.unqualify_tables import unqualify_tables

Rule = Callable[[exp.Expression, PlanContext], exp.Expression]

RULES: tuple[Rule, ...] = (
    unqualify_tables,  # duckfleet.main.t -> t, as BI tools write it
    catalog_tables,  # only catalog tables; ctx.tables
    qualify_columns,  # columns resolved against the catalog (sqlglot's qualify)
    split_scans,  # row-by-row queries: one task per split, each a result partition
    split_aggregates,  # partial aggregates per split + one merge
)

__all__ = ["RULES", "Rule"]
