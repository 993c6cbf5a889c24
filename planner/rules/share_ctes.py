"""Rule: a CTE read more than once, over a large table, is computed once.

    WITH revenue AS (SELECT ... FROM lineitem ... GROUP BY ...)
    SELECT ... FROM supplier, revenue WHERE ... = (SELECT MAX(...) FROM revenue)

Each reference becomes a Fragment of the CTE's query: the same query, so one stage,
whose result every reader fetches. The Fragment splits like a scan when the query
reads each row of its large table alone (one task per split), and is one task
otherwise; `split_aggregates` then splits the query inside it if it aggregates.
A CTE that reads only small tables is inlined at each reference instead: cheaper
to compute twice than to fetch.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext
from duckfleet.planner.fragment import fragment
from duckfleet.planner.rules.inline_ctes import cte_references, derived_table
from duckfleet.planner.scope import catalog_reads
from duckfleet.planner.shape import Strategy, shape


def share_ctes(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    with_ = tree.args.get("with_")
    if not isinstance(with_, exp.With) or with_.args.get("recursive"):
        return tree
    for cte in list(with_.expressions):
        name = cte.alias_or_name
        references = cte_references(tree, cte)
        if references is None:
            continue
        if not _reads_large_table(cte.this, ctx):
            for table in references:
                table.replace(derived_table(cte, table))
            cte.pop()
            continue
        decision = shape(cte.this, ctx, root=False)
        split = decision.split_table if decision.strategy is Strategy.SCAN else None
        for table in references:
            alias = derived_table(cte, table).args["alias"]
            table.replace(fragment(cte.this.copy(), split=split, alias=alias))
        cte.pop()
        ctx.note(f"CTE {name}: read {len(references)} times, computed once")
    if not with_.expressions:
        tree.set("with_", None)
    return tree


def _reads_large_table(query: exp.Expression, ctx: PlanContext) -> bool:
    for name in catalog_reads(query, set(ctx.catalog.tables)):
        table = ctx.catalog.get(name)
        if table is not None and table.bytes > ctx.settings.broadcast_max_bytes:
            return True
    return False
