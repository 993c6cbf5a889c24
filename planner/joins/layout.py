"""Is a query's answer the union of its answers per bucket?

Some catalog tables are *split*: each task (bucket) reads a disjoint part of them,
either by a key column (rows with equal keys in the same bucket) or by files (no
key). Every other table is *whole*: each task reads all of it (broadcast). This
module walks the qualified query, scope by scope, and says whether running the
query in every bucket and concatenating gives the answer — and what the root
still needs after that — or raises NotDistributable with the reason.

A relation is *replicated* (every bucket sees all its rows) or *partitioned* (each
row in exactly one bucket), and then its *key* columns are those whose value
decides the row's bucket. The rules, per SELECT:

* FROM and inner joins: every partitioned source must be equated with the others
  on its key (through WHERE and ON equalities); whole tables join freely, on any
  condition (broadcast, equi or not).
* LEFT JOIN (RIGHT mirrored): a partitioned right side needs a partitioned left
  side equated with it in ON, so that every row's matches are in its bucket; a
  whole right side is fine; a partitioned right side under a whole left side is
  not (each bucket would null-extend the same rows). FULL: both sides partitioned
  and equated, or both whole. SEMI / ANTI as LEFT.
* Subqueries: a correlated one over partitioned data must be correlated on the
  key (`inner.key = outer.key`): then each outer row sees all its inner rows in
  its own bucket. `x IN (SELECT y ...)` with both x and y keys is a co-partitioned
  semi join. Any other uncorrelated subquery over partitioned data is *hoisted*:
  computed first, in stages of its own, and read whole by every task.
* GROUP BY a key: each group is whole in one bucket. Any other aggregate, a
  window not partitioned by a key, DISTINCT without a key column, LIMIT: wrong
  inside the query; at the root, the plan merges (partial aggregates and a final
  merge, or ORDER BY / LIMIT / DISTINCT over the concatenation).
* Set operations: both branches partitioned (UNION ALL), also on the same key
  position for UNION, INTERSECT and EXCEPT; or both whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.joins.keys import (
    Ident,
    UnionFind,
    conjuncts,
    equalities,
    ident,
    in_pair,
    local_nodes,
    output_names,
    set_operation_branches,
)

FILES = ""  # the key of a table split by its files: no column decides the bucket

_REFUSED: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.TableSample, "sampling"),
    (exp.Pivot, "PIVOT"),
    (exp.Lateral, "LATERAL"),
    (exp.Unnest, "UNNEST"),
    (exp.Columns, "COLUMNS(...)"),
    (exp.Anonymous, "a function unknown to the planner"),
    (exp.AnonymousAggFunc, "a function unknown to the planner"),
)


class Merge(StrEnum):
    """What the root needs once every bucket has run it."""

    NONE = "none"  # the buckets' results are the answer's partitions
    CONCAT = "concat"  # ORDER BY / LIMIT / DISTINCT over the concatenation
    AGGREGATE = "aggregate"  # partial aggregates per bucket, then a final merge


@dataclass(frozen=True)
class Output:
    partitioned: bool
    keys: frozenset[str] = frozenset()  # output column names that are keys


@dataclass(frozen=True)
class TableRef:
    """One reference to a split table, for the shuffle's filter pushdown."""

    table: str
    select: exp.Select
    alias: str
    own_conditions: tuple[exp.Expression, ...]  # conjuncts that filter this reference


@dataclass
class Analysis:
    merge: Merge
    hoisted: list[Scope] = field(default_factory=list)  # computed first, read whole
    refs: list[TableRef] = field(default_factory=list)


@dataclass
class _Body:
    """The FROM/WHERE of one SELECT: partitioned or not, and which idents are keys."""

    partitioned: bool
    uf: UnionFind
    root: object | None  # the union-find class of the partition value; None: no key
    null_supplying: frozenset[str]

    def is_key(self, item: Ident) -> bool:
        return (
            self.partitioned
            and self.root is not None
            and item[0] not in self.null_supplying
            and self.uf.find(item) == self.root
        )


def analyze(root: Scope, split: Mapping[str, str]) -> Analysis:
    """Check `root` with catalog tables `split` (table -> key column, or FILES) split
    and every other table whole. Raises NotDistributable with the reason."""
    analyzer = _Analyzer(split)
    out, merge = analyzer.output(root, is_root=True)
    if not out.partitioned:
        raise NotDistributable("one task: the query reads no split table")
    return Analysis(merge, analyzer.hoisted, analyzer.refs)


class _Analyzer:
    def __init__(self, split: Mapping[str, str]) -> None:
        self.split = split
        self.hoisted: list[Scope] = []
        self.refs: list[TableRef] = []
        self._outputs: dict[int, Output] = {}

    # -- a query's output ------------------------------------------------------------

    def output(self, scope: Scope, is_root: bool = False) -> tuple[Output, Merge]:
        cached = self._outputs.get(id(scope))
        if cached is not None and not is_root:
            return cached, Merge.NONE  # a CTE read twice
        query = scope.expression
        if isinstance(query, exp.SetOperation):
            out, merge = self._set_operation(scope, query, is_root)
        elif isinstance(query, exp.Select):
            _refuse(query)
            body = self._body(scope, query)
            self._subqueries(scope, query, body)
            out, merge = _select_output(query, body, is_root)
        else:
            raise NotDistributable(f"one task: {query.key.upper()} over split tables")
        if not is_root:
            self._outputs[id(scope)] = out
        return out, merge

    def _set_operation(
        self, scope: Scope, query: exp.SetOperation, is_root: bool
    ) -> tuple[Output, Merge]:
        branches = set_operation_branches(scope)
        if len(branches) != 2:
            raise NotDistributable("one task: set operation sqlglot did not scope")
        (left, _), (right, _) = (self.output(b) for b in branches)
        merge = Merge.NONE
        if left.partitioned != right.partitioned:
            raise NotDistributable(f"one task: {query.key.upper()} of split and whole tables")
        if not left.partitioned:
            return Output(False), merge
        names_l = output_names(branches[0].expression)
        names_r = output_names(branches[1].expression)
        keys = frozenset(
            a for a, b in zip(names_l, names_r, strict=False) if a in left.keys and b in right.keys
        )
        distinct = not isinstance(query, exp.Union) or query.args.get("distinct")
        if distinct and not keys:
            if not (is_root and isinstance(query, exp.Union)):
                raise NotDistributable(
                    f"one task: {query.key.upper()} of split tables on no common key"
                )
            merge = Merge.CONCAT  # DISTINCT again over the buckets' results
        if any(query.args.get(k) for k in ("order", "limit", "offset")):
            if not is_root:
                raise NotDistributable("one task: ORDER BY / LIMIT on a set operation inside")
            merge = Merge.CONCAT
        return Output(True, keys), merge

    # -- FROM, joins, WHERE ---------------------------------------------------------

    def _source(self, scope: Scope, node: exp.Expression, uf: UnionFind) -> tuple[bool, set[Ident]]:
        """(partitioned, key idents) of one FROM/JOIN source; its keys joined in `uf`."""
        alias = node.alias_or_name
        source = scope.sources.get(alias)
        keys: set[Ident]
        if isinstance(source, Scope):  # a derived table or a CTE
            out, _ = self.output(source)
            partitioned, keys = out.partitioned, {(alias, n) for n in out.keys}
        elif isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            table = source.name.lower()
            if table not in self.split:
                return False, set()
            key = self.split[table]
            partitioned, keys = True, ({(alias, key)} if key != FILES else set())
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
            return False, set()  # range(), generate_series(): reads no table
        else:
            raise NotDistributable(f"one task: {node.key.upper()} in FROM with split tables")
        first = next(iter(keys), None)
        for k in keys:
            uf.union(k, first)
        return partitioned, keys

    def _body(self, scope: Scope, select: exp.Select) -> _Body:
        from_ = select.args.get("from_")
        uf = UnionFind()
        if from_ is None:
            return _Body(False, uf, None, frozenset())
        joins = list(select.args.get("joins") or ())
        nodes = [from_.this, *(j.this for j in joins)]
        null_supplying = _null_supplying(nodes, joins)
        # equalities that hold in every row they leave (NULL never equals): WHERE's,
        # and inner joins' ON (a row whose side was null-extended fails it); a column
        # of a null-supplying side is still no key (layout of its NULL rows)
        for a, b in equalities(select.args.get("where")):
            uf.union(a, b)
        for join in joins:
            if _is_inner(join):
                for a, b in equalities(join.args.get("on")):
                    uf.union(a, b)

        def connected(parts: list[set[Ident]]) -> object | None:
            """The class all these split sources are equated in, if there is one."""
            roots = [{uf.find(k) for k in ks} for ks in parts]
            common = set.intersection(*roots) if roots else set()
            if len(parts) > 1 and not common:
                raise NotDistributable("one task: joins split tables on no common key")
            return next(iter(common), None)

        partitioned, acc_keys = self._source(scope, nodes[0], uf)
        self._record(scope, select, nodes[0], None, null_supplying)
        inner_parts = [set(acc_keys)] if partitioned else []
        for join, node in zip(joins, nodes[1:], strict=True):
            part, keys = self._source(scope, node, uf)
            self._record(scope, select, node, join, null_supplying)
            side, kind = join.side.upper(), join.kind.upper()
            if join.method and (part or partitioned):
                raise NotDistributable(f"one task: {join.method.upper()} JOIN of split tables")
            acc_roots = {uf.find(k) for k in acc_keys}
            equated = bool(acc_roots) and any(
                (a in keys and uf.find(b) in acc_roots) or (b in keys and uf.find(a) in acc_roots)
                for a, b in equalities(join.args.get("on"))
            )
            if kind in ("SEMI", "ANTI") or side == "LEFT":
                if part and not (partitioned and equated):
                    words = " ".join(w for w in (side, kind) if w)
                    raise NotDistributable(
                        f"one task: {words} JOIN of split table {node.alias_or_name} on no "
                        "split key of its left side"
                    )
            elif side == "RIGHT":
                connected(inner_parts)  # the left side, before its rows are null-extended
                if partitioned and not (part and equated):
                    raise NotDistributable(
                        "one task: RIGHT JOIN of a split left side on no split key of the right"
                    )
                partitioned, acc_keys = part, set(keys)
                inner_parts = [set(keys)] if part else []
            elif side == "FULL":
                connected(inner_parts)
                if part != partitioned or (part and not equated):
                    raise NotDistributable("one task: FULL JOIN not split on one key on both sides")
                acc_keys, inner_parts = set(), []  # each row once, but no key column
            elif part:  # inner, cross, comma
                if partitioned and not (keys and acc_keys):
                    raise NotDistributable(
                        f"one task: joins split table {node.alias_or_name} to another split "
                        "table on no common key"
                    )
                partitioned = True
                inner_parts.append(set(keys))
                acc_keys |= keys
        root = connected(inner_parts) if partitioned and acc_keys else None
        return _Body(partitioned, uf, root, frozenset(null_supplying))

    def _record(
        self,
        scope: Scope,
        select: exp.Select,
        node: exp.Expression,
        join: exp.Join | None,
        null_supplying: set[str],
    ) -> None:
        """Remember a reference to a split catalog table and the conjuncts that
        filter it alone (the shuffle's producers apply them before the exchange)."""
        alias = node.alias_or_name
        source = scope.sources.get(alias)
        if not isinstance(source, exp.Table) or source.name.lower() not in self.split:
            return
        own: list[exp.Expression] = []
        if alias not in null_supplying:
            own += conjuncts(select.args.get("where"))
        if join is not None and join.side.upper() not in ("RIGHT", "FULL"):
            # ON filters the joined side of an inner, LEFT, SEMI or ANTI join; the
            # preserved side of a RIGHT or FULL join keeps its rows whatever ON says
            own += conjuncts(join.args.get("on"))
        mine = tuple(c for c in own if _only(c, alias))
        self.refs.append(TableRef(source.name.lower(), select, alias, mine))

    # -- subqueries -----------------------------------------------------------------

    def _subqueries(self, scope: Scope, select: exp.Select, body: _Body) -> None:
        for child in scope.subquery_scopes:
            if child.external_columns:
                self._correlated(child, body)
                continue
            refs, hoisted = len(self.refs), len(self.hoisted)
            try:
                out: Output | None = self.output(child)[0]
            except NotDistributable:
                out = None
            if out is not None and not out.partitioned:
                continue  # over whole tables only: every task computes it
            if out is not None and self._co_partitioned_in(child, out, body, select):
                continue
            # planned on its own, whole: nothing inside it stays in the fragments
            del self.refs[refs:]
            del self.hoisted[hoisted:]
            self.hoisted.append(child)

    def _correlated(self, child: Scope, outer: _Body) -> None:
        query = child.expression
        if not isinstance(query, exp.Select):
            out, _ = self.output(child)
            if out.partitioned:
                raise NotDistributable("one task: correlated set operation over split tables")
            return
        _refuse(query)
        inner = self._body(child, query)
        self._subqueries(child, query, inner)
        if not inner.partitioned:
            return
        if not outer.partitioned:
            raise NotDistributable(
                "one task: a correlated subquery reads split tables, its outer query none"
            )
        if not any(
            inner.uf.find(ident(c)) == inner.root and outer.is_key(ident(c))
            for c in child.external_columns
        ):
            raise NotDistributable(
                "one task: a correlated subquery over split tables is not correlated on "
                "the split key"
            )

    def _co_partitioned_in(
        self, child: Scope, out: Output, body: _Body, select: exp.Select
    ) -> bool:
        """`x IN (SELECT y ...)` as a WHERE conjunct, x and y both keys."""
        pair = in_pair(child)
        if pair is None:
            return False
        names = output_names(child.expression)
        if not names or names[0] not in out.keys or not body.is_key(pair[0]):
            return False
        holder = child.expression.parent
        while holder is not None and not isinstance(holder, exp.In):
            holder = holder.parent
        return holder is not None and any(
            term is holder for term in conjuncts(select.args.get("where"))
        )


def _select_output(select: exp.Select, body: _Body, is_root: bool) -> tuple[Output, Merge]:
    if not body.partitioned:
        return Output(False), Merge.NONE
    names = select.named_selects
    keyed_names = frozenset(
        names[i]
        for i, e in enumerate(select.expressions)
        if isinstance(e.unalias(), exp.Column) and body.is_key(ident(e.unalias()))
    )
    aggregates = [a for a in local_nodes(select, exp.AggFunc) if not _windowed(a)]
    group = select.args.get("group")
    merge = Merge.NONE
    keys = keyed_names
    if group is not None or aggregates:
        plain = group is not None and not any(
            group.args.get(k) for k in ("grouping_sets", "cube", "rollup")
        )
        grouped_by_key = plain and (
            any(isinstance(e, exp.Column) and body.is_key(ident(e)) for e in group.expressions)
            or (group.args.get("all") and keyed_names)
        )
        if not grouped_by_key:
            if not is_root:
                raise NotDistributable(
                    "one task: an aggregate inside the query is not grouped by the split key"
                )
            merge, keys = Merge.AGGREGATE, frozenset()
    for window in local_nodes(select, exp.Window):
        by = window.args.get("partition_by") or []
        if merge is Merge.AGGREGATE or not any(
            isinstance(e, exp.Column) and body.is_key(ident(e)) for e in by
        ):
            what = "without PARTITION BY" if not by else "not partitioned by the split key"
            raise NotDistributable(f"one task: window function {what}")
    distinct = select.args.get("distinct")
    if distinct is not None and merge is not Merge.AGGREGATE:
        if distinct.args.get("on"):
            raise NotDistributable("one task: DISTINCT ON over split tables")
        if not keys:
            if not is_root:
                raise NotDistributable("one task: DISTINCT inside the query, not on a split key")
            merge = Merge.CONCAT
    if select.args.get("limit") or select.args.get("offset"):
        if not is_root:
            raise NotDistributable("one task: LIMIT inside the query over split tables")
        merge = merge if merge is Merge.AGGREGATE else Merge.CONCAT
    if is_root and select.args.get("order") and merge is Merge.NONE:
        merge = Merge.CONCAT
    return Output(True, keys), merge


def _windowed(node: exp.Expression) -> bool:
    """Whether an aggregate function is a window function (under OVER)."""
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Query):
        if isinstance(parent, exp.Window):
            return True
        parent = parent.parent
    return False


def _refuse(select: exp.Select) -> None:
    for kind, what in _REFUSED:
        if next(local_nodes(select, kind), None) is not None:
            raise NotDistributable(f"one task: {what}")


def _is_inner(join: exp.Join) -> bool:
    return not join.side and join.kind.upper() in ("", "INNER", "CROSS")


def _null_supplying(nodes: list[exp.Expression], joins: list[exp.Join]) -> set[str]:
    out: set[str] = set()
    seen = [nodes[0].alias_or_name]
    for join, node in zip(joins, nodes[1:], strict=True):
        side, alias = join.side.upper(), node.alias_or_name
        if side in ("RIGHT", "FULL"):
            out.update(seen)
        if side in ("LEFT", "FULL"):
            out.add(alias)
        seen.append(alias)
    return out


def _only(condition: exp.Expression, alias: str) -> bool:
    """Whether `condition` reads columns of `alias` alone, deterministically."""
    columns = list(condition.find_all(exp.Column))
    if not columns or any(c.table != alias for c in columns):
        return False
    banned = (exp.Query, exp.Subquery, exp.AggFunc, exp.Window, exp.Anonymous, exp.Rand)
    return condition.find(*banned) is None
