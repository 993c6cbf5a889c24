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

A rule that needs another kind of stage (a repartition by hash of a key, ...) adds
an argument here with a default of None, and teaches `stages.build_plan` its tasks.
"""

from __future__ import annotations

from sqlglot import exp

STAGE_PREFIX = "__stage"


class Fragment(exp.Expression):
    # text: when set, the tasks run this text (the user's own, so that DuckDB names
    # the outputs as it would) instead of SQL written from `this`.
    arg_types = {"this": True, "split": False, "alias": False, "text": False}

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


def fragment(
    query: exp.Query,
    split: str | None = None,
    alias: str | exp.TableAlias | None = None,
    text: str | None = None,
) -> Fragment:
    """A fragment over `query` (not copied); `alias` names it in the FROM it stands in."""
    node = Fragment(this=query, split=split, text=text)
    if isinstance(alias, str):
        node.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    elif alias is not None:
        node.set("alias", alias)
    return node


def has_fragments(tree: exp.Expression) -> bool:
    return isinstance(tree, Fragment) or tree.find(Fragment) is not None
