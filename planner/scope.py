"""Walking one query block: its own expressions, not those of nested queries.

A block is one SELECT. Its scope stops at nested queries (subqueries, derived
tables, set operations, CTE bodies) and at Fragments: an aggregate inside a
subquery belongs to the subquery, not to the block around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlglot import exp

from duckfleet.planner.fragment import Fragment


def walk_scope(block: exp.Expression) -> Iterator[exp.Expression]:
    """Every node of `block`'s own scope, `block` first."""
    stack = [block]
    while stack:
        node = stack.pop()
        yield node
        for child in node.iter_expressions():
            if not isinstance(child, exp.Query | Fragment):
                stack.append(child)


def nested_queries(block: exp.Expression) -> list[exp.Expression]:
    """The queries and Fragments directly nested in `block`'s scope."""
    out = []
    for node in walk_scope(block):
        for child in node.iter_expressions():
            if isinstance(child, exp.Query | Fragment):
                out.append(child)
    return out


def transform_scope(
    block: exp.Expression, fun: Callable[[exp.Expression], exp.Expression]
) -> exp.Expression:
    """A copy of `block` with `fun` applied to each node of its own scope, top down;
    a node `fun` replaces is not visited further, nor is any nested query."""
    root: list[exp.Expression] = []

    def visit(node: exp.Expression) -> exp.Expression:
        if not root:
            root.append(node)
        elif isinstance(node, exp.Query | Fragment):
            return node.copy()  # a new node: transform does not descend into it
        return fun(node)

    return block.transform(visit)


def blocks_bottom_up(tree: exp.Expression) -> list[exp.Select]:
    """Every SELECT in `tree`, inner ones before the ones around them."""
    return [n for n in reversed(list(tree.find_all(exp.Select, bfs=False)))]


def catalog_reads(node: exp.Expression, names: set[str]) -> list[str]:
    """Names in `names` (lower case) that `node` reads as tables, outside Fragments."""
    found = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, exp.Table) and current.name.lower() in names:
            found.append(current.name.lower())
        for child in current.iter_expressions():
            if not isinstance(child, Fragment):
                stack.append(child)
    return found


def correlated(query: exp.Expression) -> bool:
    """Whether `query` names a table it does not itself bring into scope."""
    defined = {
        source.alias_or_name.lower()
        for source in query.find_all(exp.Table, exp.Subquery, Fragment)
        if source.alias_or_name
    }
    defined |= {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    return any(c.table and c.table.lower() not in defined for c in query.find_all(exp.Column))
