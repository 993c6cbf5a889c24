"""Build the plan from the rewritten tree: each Fragment becomes a stage of tasks.

    SELECT _g0 AS g, SUM(_a0) AS s FROM Fragment(SELECT ... FROM t GROUP BY ..., split=t)

becomes stage 0, one task per split of `t` running the fragment's query, and a
final stage of one task running the rest with `Fragment(...)` written as
`__stage0`, bound to the results of stage 0's tasks. A tree that is itself a
Fragment is the last stage: its tasks are the result partitions. A tree with no
Fragment at all runs as one task over all the data, as the statement's own text.

Fragments are built inner first; two with the same query and split are one stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlglot import exp

from duckfleet.ids import task_id
from duckfleet.planner.context import PlanContext
from duckfleet.planner.fragment import STAGE_PREFIX, Fragment, has_fragments
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.plan import (
    InlineInput,
    InputBinding,
    Plan,
    Stage,
    StageKind,
    TableBinding,
    TaskPlan,
)
from duckfleet.planner.prune import row_group_filter
from duckfleet.planner.splits import splits_of


def build_plan(tree: exp.Expression, ctx: PlanContext) -> Plan:
    if not has_fragments(tree):
        return single_plan(ctx, ctx.reason)
    written = not (isinstance(tree, Fragment) and tree.user_text is not None)
    if written and ctx.unnamed:
        return single_plan(ctx, ctx.unnamed)
    builder = _Builder(ctx)
    if isinstance(tree, Fragment):
        builder.stage_of(tree, output=True)
    else:
        sql, inputs = builder.render(tree)
        builder.add_stage(StageKind.MERGE, [(sql, _tables_in(tree, ctx), inputs, None)])
    reason = ctx.reason
    if not isinstance(tree, Fragment) and reason.startswith(_ONE_TASK):
        reason = "final task: " + reason.removeprefix(_ONE_TASK)
    return Plan(
        sql=ctx.sql,
        stages=tuple(builder.stages),
        reason=reason,
        tables=ctx.tables,
        notes=tuple(ctx.notes),
    )


_ONE_TASK = "one task: "


def single_plan(ctx: PlanContext, reason: str, inline: tuple[InlineInput, ...] = ()) -> Plan:
    """One task over all the data, running the statement's own text; ``inline``:
    tables it carries (system table snapshots)."""
    bindings = tuple(_whole(name, ctx) for name in ctx.tables)
    task = TaskPlan(id=task_id(0), stage=0, sql=ctx.text, tables=bindings, inline=inline)
    stage = Stage(0, StageKind.SINGLE, (task,))
    return Plan(sql=ctx.sql, stages=(stage,), reason=reason, tables=ctx.tables)


# One task to be: its SQL, the catalog tables it reads, its inputs, and the split
# table's binding (None: every table whole).
_TaskSpec = tuple[str, tuple[str, ...], tuple[InputBinding, ...], TableBinding | None]


@dataclass
class _Builder:
    ctx: PlanContext
    stages: list[Stage] = field(default_factory=list)
    _built: dict[tuple[str, str | None], Stage] = field(default_factory=dict)

    def stage_of(self, node: Fragment, output: bool = False) -> Stage:
        """The stage computing `node`, built (with the stages it reads) if new."""
        sql, inputs = self.render(node.query) if node.user_text is None else (node.user_text, ())
        key = (sql, node.split, node.partition_by, node.buckets)
        if key in self._built and not output:
            return self._built[key]
        tables = _tables_in(node.query, self.ctx)
        buckets = 0
        if node.split is None and node.buckets:  # one task per bucket of its producers
            specs: list[_TaskSpec] = [
                (sql, tables, self._bucket(inputs, b), None) for b in range(node.buckets)
            ]
            kind = StageKind.SCAN if output else StageKind.PARTIAL
        elif node.split is None:
            specs = [(sql, tables, inputs, None)]
            kind = StageKind.MERGE if inputs else StageKind.SINGLE
        else:
            table = self.ctx.catalog.get(node.split)
            assert table is not None, node.split
            keep = row_group_filter(node.query, table)
            splits = splits_of(table, self.ctx.settings, keep)
            specs = [(sql, tables, inputs, binding) for binding in splits]
            kind = StageKind.SCAN if output else StageKind.PARTIAL
            if node.partition_by:  # producers of an exchange
                kind, buckets = StageKind.SHUFFLE, node.buckets
        stage = self.add_stage(kind, specs, node.partition_by if buckets else (), buckets)
        self._built[key] = stage
        return stage

    def render(self, tree: exp.Expression) -> tuple[str, tuple[InputBinding, ...]]:
        """`tree` as SQL, each outermost Fragment in it written as its stage's relation."""
        inputs: dict[str, InputBinding] = {}

        def replace(node: exp.Expression) -> exp.Expression:
            if not isinstance(node, Fragment):
                return node
            stage = self.stage_of(node)
            relation = f"{STAGE_PREFIX}{stage.index}"
            inputs[relation] = InputBinding(relation, tuple(t.id for t in stage.tasks))
            table = exp.to_table(relation)
            alias = node.args.get("alias")
            if alias is not None:
                table.set("alias", alias.copy())
            return table

        written = tree.transform(replace)
        return written.sql(dialect=DIALECT), tuple(inputs.values())

    def _bucket(self, inputs: tuple[InputBinding, ...], b: int) -> tuple[InputBinding, ...]:
        """`inputs` with each partitioned producer stage read at its bucket `b`."""
        out = []
        for binding in inputs:
            stage = self.stages[int(binding.relation.removeprefix(STAGE_PREFIX))]
            partitioned = stage.tasks[0].partitioned
            out.append(dataclasses.replace(binding, bucket=b) if partitioned else binding)
        return tuple(out)

    def add_stage(
        self,
        kind: StageKind,
        specs: list[_TaskSpec],
        partition_by: tuple[str, ...] = (),
        buckets: int = 0,
    ) -> Stage:
        index = len(self.stages)
        first = sum(len(s.tasks) for s in self.stages)
        tasks = []
        for n, (sql, tables, inputs, split) in enumerate(specs):
            bindings = tuple(
                split if split is not None and split.table == name else _whole(name, self.ctx)
                for name in tables
            )
            tasks.append(
                TaskPlan(
                    id=task_id(first + n),
                    stage=index,
                    sql=sql,
                    tables=bindings,
                    inputs=inputs,
                    partition_by=partition_by,
                    buckets=buckets,
                )
            )
        stage = Stage(index, kind, tuple(tasks))
        self.stages.append(stage)
        return stage


def _tables_in(tree: exp.Expression, ctx: PlanContext) -> tuple[str, ...]:
    """The catalog tables `tree` reads outside its fragments, in the statement's order."""
    found: set[str] = set()
    for node in tree.find_all(exp.Table):
        if any(isinstance(a, Fragment) for a in _ancestors(node, tree)):
            continue
        if ctx.catalog.get(node.name) is not None:
            found.add(node.name.lower())
    return tuple(t for t in ctx.tables if t in found)


def _ancestors(node: exp.Expression, root: exp.Expression) -> list[exp.Expression]:
    out = []
    parent = node.parent
    while parent is not None and parent is not root:
        out.append(parent)
        parent = parent.parent
    return out


def _whole(name: str, ctx: PlanContext) -> TableBinding:
    table = ctx.catalog.get(name)
    assert table is not None
    return TableBinding(table.name, tuple(f.path for f in table.files))
