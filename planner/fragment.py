"""The one node the rules add to sqlglot's trees: a `Fragment`, a query run as a stage.

    Fragment(this=<query>, split="lineitem", alias=<TableAlias>)

stands, where a table would stand in FROM or JOIN, for the concatenated results of
one stage of tasks, each running <query>:

* `split` names a catalog table: one task per split of it (a file, or a range of a
  file's row groups), every other table read whole by every task; the query must be
  exact over a union of splits (the rules that build fragments make sure);
* no `split`: one task over all the data.

Fragments nest: a fragment's query may read other fragments. `stages.build_plan`
turns each distinct fragment (same query, same split) into one stage, inner ones
first, and each reference into the relation name `__stage<N>`; so a fragment built
twice from the same text (a CTE used twice) is computed once.

Exchange (planner/shuffle_aggregate.py), two more arguments:

* `partition_by` (column names, comma-separated) with `buckets`=N and a `split`:
  one producer task per split, its result split by hash of those columns into N
  buckets (worker/buckets.py);
* `buckets`=N without `partition_by`: one task per bucket b < N, reading bucket b
  of every partitioned fragment directly in its query (the producers above).

A rule that needs another kind of stage adds an argument here with a default of
None, and teaches `stages.build_plan` its tasks.
"""

from __future__ import annotations

from sqlglot import exp

STAGE_PREFIX = "__stage"


class Fragment(exp.Expression):
    # text: when set, the tasks run this text (the user's own, so that DuckDB names
    # the outputs as it would) instead of SQL written from `this`.
    arg_types = {
        "this": True,
        "split": False,
        "alias": False,
        "text": False,
        "partition_by": False,
        "buckets": False,
    }

    @property
    def query(self) -> exp.Query:
        query = self.this
        assert isinstance(query, exp.Query)
        return query

    @property
    def split(self) -> str | None:
        split = self.args.get("split")
        return split if isinstance(split, str) else None

    @property
    def user_text(self) -> str | None:
        text = self.args.get("text")
        return text if isinstance(text, str) else None

    @property
    def partition_by(self) -> tuple[str, ...]:
        """The columns a producer stage hashes its result by (empty: not one)."""
        names = self.args.get("partition_by")
        return tuple(names.split(",")) if isinstance(names, str) and names else ()

    @property
    def buckets(self) -> int:
        """Buckets of a producer stage, or tasks of a per-bucket stage; 0: neither."""
        buckets = self.args.get("buckets")
        return buckets if isinstance(buckets, int) else 0


def fragment(
    query: exp.Query,
    split: str | None = None,
    alias: str | exp.TableAlias | None = None,
    text: str | None = None,
    partition_by: tuple[str, ...] = (),
    buckets: int = 0,
) -> Fragment:
    """A fragment over `query` (not copied); `alias` names it in the FROM it stands in;
    `partition_by` and `buckets`: an exchange (see the module's docstring)."""
    node = Fragment(this=query, split=split, text=text)
    if partition_by:
        node.set("partition_by", ",".join(partition_by))
    if buckets:
        node.set("buckets", buckets)
    if isinstance(alias, str):
        node.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    elif alias is not None:
        node.set("alias", alias)
    return node


def has_fragments(tree: exp.Expression) -> bool:
    return isinstance(tree, Fragment) or tree.find(Fragment) is not None
