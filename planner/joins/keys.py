"""Columns a query equates, and the classes of catalog columns a split can key on.

Inside one scope a column is an `Ident`: (source alias, column name), as sqlglot's
qualify leaves every column. `equalities` reads the top-level `a = b` conjuncts of
a WHERE or ON clause. `trace` follows an ident through derived tables and CTEs to
the catalog column it copies, if it is one.

`key_classes` groups catalog columns (`BaseColumn`: table, column) that the query
equates anywhere — joins, correlations, `x IN (SELECT y ...)`, the branches of a
set operation — and adds each GROUP BY column, window PARTITION BY column and
COUNT(DISTINCT ...) argument on its own: each class is a key by which some
catalog tables might be split so that rows that meet, or group, meet in one task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from duckfleet.catalog import Catalog

Ident = tuple[str, str]  # (source alias, column) inside one scope
BaseColumn = tuple[str, str]  # (catalog table, column)


class UnionFind:
    """Disjoint sets of hashable items; an item never added is alone in its set."""

    def __init__(self) -> None:
        self._parent: dict[object, object] = {}

    def find(self, item: object) -> object:
        parent = self._parent.get(item, item)
        if parent == item:
            return item
        root = self.find(parent)
        self._parent[item] = root
        return root

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        self._parent.setdefault(rb, rb)
        if ra != rb:
            self._parent[ra] = rb

    def groups(self) -> list[frozenset[object]]:
        out: dict[object, set[object]] = {}
        for item in self._parent:
            out.setdefault(self.find(item), set()).add(item)
        return [frozenset(g) for g in out.values()]


def conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    """The top-level AND terms of a condition (a WHERE, ON or HAVING node or its body)."""
    if condition is None:
        return []
    if isinstance(condition, exp.Where | exp.Having):
        condition = condition.this
    node = condition.unnest()
    if isinstance(node, exp.And):
        return [*conjuncts(node.left), *conjuncts(node.right)]
    return [node]


def ident(column: exp.Column) -> Ident:
    return (column.table, column.name)


def equalities(condition: exp.Expression | None) -> list[tuple[Ident, Ident]]:
    """`a.x = b.y` conjuncts of `condition`, as ident pairs."""
    out = []
    for term in conjuncts(condition):
        if isinstance(term, exp.EQ):
            left, right = term.left.unnest(), term.right.unnest()
            if isinstance(left, exp.Column) and isinstance(right, exp.Column):
                out.append((ident(left), ident(right)))
    return out


def in_subquery(node: exp.In) -> exp.Query | None:
    """The query of `x IN (SELECT ...)`, if that is what `node` is."""
    query = node.args.get("query")
    if query is None:
        return None
    inner = query.this if isinstance(query, exp.Subquery) else query
    return inner if isinstance(inner, exp.Query) else None


def output_names(query: exp.Expression) -> list[str]:
    """A query's output column names (a set operation's are its left branch's)."""
    while isinstance(query, exp.SetOperation):
        query = query.left
    return list(query.named_selects) if isinstance(query, exp.Select) else []


def source_of(scope: Scope, alias: str) -> tuple[Scope, exp.Table | Scope] | None:
    """The scope that defines `alias` (this one or an outer one) and its source."""
    current: Scope | None = scope
    while current is not None:
        source = current.sources.get(alias)
        if source is not None:
            return current, source
        current = current.parent
    return None


def trace(scope: Scope, item: Ident, catalog: Catalog) -> BaseColumn | None:
    """The catalog column `item` copies unchanged, through derived tables and CTEs."""
    found = source_of(scope, item[0])
    if found is None:
        return None
    _, source = found
    if isinstance(source, exp.Table):
        table = catalog.get(source.name)
        return (table.name, item[1]) if table is not None else None
    if not isinstance(source, Scope):
        return None
    return _trace_output(source, item[1], catalog)


def _trace_output(scope: Scope, name: str, catalog: Catalog) -> BaseColumn | None:
    found = _projection(scope, name)
    return trace(scope, found, catalog) if found is not None else None


def local_nodes(query: exp.Expression, *types: type[exp.Expression]) -> Iterator[exp.Expression]:
    """Nodes of `types` in `query` itself, not inside its subqueries or derived tables."""
    for node in query.walk(prune=lambda n: n is not query and isinstance(n, exp.Query)):
        if isinstance(node, types) and node is not query:
            yield node


def key_classes(root: Scope, catalog: Catalog) -> list[frozenset[BaseColumn]]:
    """Classes of catalog columns the query equates, then single grouping columns."""
    uf = UnionFind()
    singles: dict[BaseColumn, None] = {}

    def equate(scope_a: Scope, a: Ident, scope_b: Scope, b: Ident) -> None:
        ta, tb = trace(scope_a, a, catalog), trace(scope_b, b, catalog)
        if ta is not None and tb is not None:
            uf.union(ta, tb)

    for scope in root.traverse():
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            _union_branches(scope, equate)
        if not isinstance(query, exp.Select):
            continue
        for a, b in select_equalities(query):
            equate(scope, a, scope, b)
        for child in scope.subquery_scopes:
            pair = in_pair(child)
            if pair is not None:
                equate(scope, pair[0], child, pair[1])
        for column in _grouping_columns(query):
            traced = trace(scope, ident(column), catalog)
            if traced is not None:
                singles[traced] = None
    classes = [frozenset(g) for g in uf.groups()]  # type: ignore[arg-type]
    grouped = {c for g in classes for c in g}
    classes += [frozenset({c}) for c in singles if c not in grouped]
    return classes


def select_equalities(query: exp.Select) -> list[tuple[Ident, Ident]]:
    """Equalities of a SELECT's WHERE and of every ON clause of its joins."""
    out = equalities(query.args.get("where"))
    for join in query.args.get("joins") or ():
        out += equalities(join.args.get("on"))
    return out


def in_pair(child: Scope) -> tuple[Ident, Ident] | None:
    """For a subquery scope used as `x IN (SELECT y ...)`: (x in the outer scope, y in
    the subquery's), when both are plain columns."""
    query = child.expression
    holder = query.parent
    if isinstance(holder, exp.Subquery):
        holder = holder.parent
    if not isinstance(holder, exp.In) or not isinstance(query, exp.Select):
        return None
    left = holder.this.unnest()
    first = query.expressions[0].unalias() if len(query.expressions) == 1 else None
    if isinstance(left, exp.Column) and isinstance(first, exp.Column):
        return ident(left), ident(first)
    return None


def _grouping_columns(query: exp.Select) -> Iterable[exp.Column]:
    group = query.args.get("group")
    for expression in group.expressions if group is not None else ():
        if isinstance(expression, exp.Column):
            yield expression
    for window in local_nodes(query, exp.Window):
        for expression in window.args.get("partition_by") or ():
            if isinstance(expression, exp.Column):
                yield expression
    for count in local_nodes(query, exp.Count):
        if isinstance(count.this, exp.Distinct):
            for expression in count.this.expressions:
                if isinstance(expression, exp.Column):
                    yield expression


def set_operation_branches(scope: Scope) -> list[Scope]:
    return list(getattr(scope, "set_operation_scopes", None) or [])


def _union_branches(scope: Scope, equate: Callable[[Scope, Ident, Scope, Ident], None]) -> None:
    """Columns at the same position of a set operation's branches are one column."""
    branches = set_operation_branches(scope)
    if len(branches) != 2:
        return
    left, right = branches
    pairs = zip(output_names(left.expression), output_names(right.expression), strict=False)
    for name_l, name_r in pairs:
        a, b = _projection(left, name_l), _projection(right, name_r)
        if a is not None and b is not None:
            equate(left, a, right, b)


def _projection(scope: Scope, name: str) -> Ident | None:
    query = scope.expression
    if not isinstance(query, exp.Select):
        return None
    for projection in query.expressions:
        if projection.alias_or_name == name and isinstance(projection.unalias(), exp.Column):
            return ident(projection.unalias())
    return None
