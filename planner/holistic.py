"""Holistic aggregates: which blocks can run them exactly over a shuffle, and why not.

MEDIAN, QUANTILE_CONT/DISC, MODE, ARRAY_AGG/LIST, STRING_AGG with ORDER BY, several
DISTINCT arguments, variances with GROUPING SETS: none of them merges from partial
results (planner/aggregates.py). They are exact when every row of a group is in one
task, so a grouped block over a split table runs as a shuffle
(planner/shuffle_aggregate.py): producers split the rows by hash of the group keys
every grouping set shares, and each bucket task runs the whole aggregate.

That needs such a key. Without GROUP BY all rows are one group; with ROLLUP, CUBE or
grouping sets that share no key (one of them groups by fewer keys, down to the grand
total `()`), some group spans every bucket. Those blocks run as one task, and the
reason says so in words (`holistic_reason`).
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.planner.fallback import NotDistributable

GROUPING_SETS = (exp.GroupingSets, exp.Rollup, exp.Cube)
_ONE_TASK = "one task: "


def common_keys(select: exp.Select) -> list[exp.Expression]:
    """The group keys every grouping set of `select` contains (its GROUP BY keys
    when there are no grouping sets); empty for GROUP BY ALL, which the caller
    resolves to outputs."""
    group = select.args.get("group")
    if group is None or any(group.args.get(k) for k in ("rollup", "cube", "totals")):
        return []  # WITH ROLLUP / WITH CUBE / WITH TOTALS: the grand total is a set
    found: list[exp.Expression] = []
    for item in group.expressions:
        if isinstance(item, exp.GroupingSets):
            sets = [_leaves(s) for s in item.expressions]
            shared = [k for k in sets[0] if all(k in s for s in sets[1:])] if sets else []
            found += shared
        elif isinstance(item, exp.Rollup | exp.Cube):
            continue  # both include the set without any of their keys
        else:
            found += _leaves(item)
    return list(dict.fromkeys(found))


def _leaves(item: exp.Expression) -> list[exp.Expression]:
    if isinstance(item, exp.Tuple):
        return [leaf for e in item.expressions for leaf in _leaves(e)]
    if isinstance(item, exp.Paren):
        return _leaves(item.this)
    return [item]


def holistic_reason(select: exp.Select, refused: str, keys: list[exp.Expression]) -> None:
    """Raise NotDistributable, in words a user understands, unless a block whose
    aggregates do not merge (`refused`: why not) can run shuffled by `keys`, the
    group keys every grouping set shares."""
    what = refused.removeprefix(_ONE_TASK)
    if select.args.get("group") is None:
        raise NotDistributable(
            f"one task: {what}; it needs every row of a group in one task, and without "
            "GROUP BY all rows are one group"
        )
    if not keys:
        raise NotDistributable(
            f"one task: {what}; it needs every row of a group in one task, and the "
            "grouping sets share no key to shuffle by (ROLLUP, CUBE or a set with fewer "
            "keys groups rows of every key value together)"
        )
    for clause, name in (
        ("expressions", "SELECT list"),
        ("having", "HAVING"),
        ("order", "ORDER BY"),
    ):
        value = select.args.get(clause)
        for node in value if isinstance(value, list) else [value]:
            if isinstance(node, exp.Expression) and node.find(exp.Query) is not None:
                raise NotDistributable(
                    f"one task: {what}; a block with a subquery in its {name} is not "
                    "shuffled by its group keys yet"
                )
