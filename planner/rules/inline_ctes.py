"""Rule: a CTE read once becomes a derived table where it is read.

    WITH big AS (SELECT ...) SELECT ... FROM big

becomes `SELECT ... FROM (SELECT ...) AS big`, so the rules that follow see the
query as one tree of blocks. DuckDB computes a CTE read once exactly so. CTEs read
more than once are left to `share_ctes`; a WITH RECURSIVE is left whole.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.context import PlanContext


def inline_ctes(tree: exp.Expression, ctx: PlanContext) -> exp.Expression:
    return replace_ctes(tree, lambda cte, uses: uses <= 1)


def cte_references(tree: exp.Expression, cte: exp.CTE) -> list[exp.Table] | None:
    """The tables in `tree` that read `cte`: those named like it in the CTEs after it
    and in the query itself (in its own body and the CTEs before it the name means
    the catalog table it may shadow). None if a nested WITH defines the name again:
    which reference means which is then left to DuckDB."""
    name = cte.alias_or_name.lower()
    with_ = cte.parent
    assert isinstance(with_, exp.With)
    for other in tree.find_all(exp.CTE):
        if other.parent is not with_ and other.alias_or_name.lower() == name:
            return None
    before = with_.expressions[: with_.expressions.index(cte) + 1]
    hidden = {id(t) for c in before for t in c.find_all(exp.Table)}
    return [
        t
        for t in tree.find_all(exp.Table)
        if isinstance(t.this, exp.Identifier)
        and not t.db
        and t.name.lower() == name
        and id(t) not in hidden
    ]


def replace_ctes(tree: exp.Expression, wanted: object) -> exp.Expression:
    """Replace each CTE of the top WITH for which `wanted(cte, uses)` holds by a
    derived table at each of its references."""
    with_ = tree.args.get("with_")
    if not isinstance(with_, exp.With) or with_.args.get("recursive"):
        return tree
    assert callable(wanted)
    for cte in list(with_.expressions):
        references = cte_references(tree, cte)
        if references is None or not wanted(cte, len(references)):
            continue
        for table in references:
            table.replace(derived_table(cte, table))
        cte.pop()
    if not with_.expressions:
        tree.set("with_", None)
    return tree


def derived_table(cte: exp.CTE, reference: exp.Table) -> exp.Subquery:
    """`(<the CTE's query>) AS <the reference's alias>(<the CTE's column names>)`."""
    alias = exp.TableAlias(this=exp.to_identifier(reference.alias_or_name))
    columns = cte.args["alias"].columns if cte.args.get("alias") else []
    if columns:
        alias.set("columns", [c.copy() for c in columns])
    return exp.Subquery(this=cte.this.copy(), alias=alias)
