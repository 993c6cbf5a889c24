"""plan_joins: the rule that splits joins, subqueries, CTEs and windows by key.

    candidates   which tables split, by which key, how (choose.py), cheapest first
    analyze      does the answer stay right with them split? (layout.py)
    hoist        uncorrelated subqueries over split tables: planned on their own
    fragments    the bucket task's SQL and the merge's (fragments.py)
    stages       [subquery stages] [shuffle producers] bucket tasks [merge]

Returns None when no candidate gives the right answer: the query runs as one task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, build_scope

from duckfleet.catalog import Catalog
from duckfleet.ids import TaskId, task_id
from duckfleet.planner.context import PlanContext
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.joins.choose import Candidate, Workload, candidates
from duckfleet.planner.joins.fragments import Fragments, root_fragments
from duckfleet.planner.joins.join_aligned import range_filter
from duckfleet.planner.joins.join_broadcast import file_binding, whole_binding
from duckfleet.planner.joins.join_shuffle import (
    arrow_width,
    needed_columns,
    select_one_in_exists,
    shuffle_stage,
)
from duckfleet.planner.joins.keys import key_classes
from duckfleet.planner.joins.layout import Analysis, analyze
from duckfleet.planner.joins.subqueries import (
    hoisted_sql,
    read_outside_subqueries,
    replace_hoisted,
)
from duckfleet.planner.parse import DIALECT, Statement
from duckfleet.planner.plan import InputBinding, Plan, Stage, StageKind, TableBinding, TaskPlan

PlanSubquery = Callable[[str], Plan]  # the whole planner, for hoisted subqueries


def plan_joins(
    ctx: PlanContext, qualified: exp.Expression, plan_subquery: PlanSubquery
) -> Plan | None:
    """A plan that splits the statement by key, or None (then it runs as one task).
    `qualified`: the statement (`ctx.original`) qualified against the catalog."""
    tables, catalog, settings = ctx.tables, ctx.catalog, ctx.settings
    if not settings.split_joins or not tables:
        return None
    try:
        root = build_scope(qualified)
    except SqlglotError:
        return None
    if root is None:
        return None
    classes = key_classes(root, catalog)
    for candidate in candidates(_workload(root, tables, catalog), classes, catalog, settings):
        try:
            analyze(root, candidate.layout)
            return _plan(ctx, qualified, candidate, plan_subquery)
        except NotDistributable:
            continue
    return None


def _plan(
    ctx: PlanContext, qualified: exp.Expression, candidate: Candidate, plan_subquery: PlanSubquery
) -> Plan:
    sql, catalog = ctx.sql, ctx.catalog
    statement = Statement(ctx.original, ctx.text)
    tree = qualified.copy()
    root = build_scope(tree)
    assert root is not None
    analysis = analyze(root, candidate.layout)
    columns = needed_columns(root, candidate.split, analysis.hoisted)
    subplans = [plan_subquery(hoisted_sql(h, tree)) for h in analysis.hoisted]
    relations = replace_hoisted(analysis.hoisted)
    select_one_in_exists(tree)  # for fragments generated from the tree
    fragments = root_fragments(statement, tree, analysis.merge, sql, ctx, bool(relations))
    builder = _Builder(catalog, candidate)
    subquery_inputs = {
        name: builder.add_plan(sub) for name, sub in zip(relations, subplans, strict=True)
    }
    producers: dict[str, tuple[TaskId, ...]] = {}
    if candidate.strategy == "shuffle":
        stage, producers = shuffle_stage(
            builder.next_stage,
            builder.next_task,
            candidate.split,
            catalog,
            columns,
            analysis.refs,
            candidate.buckets,
        )
        builder.add_stage(stage)
    bucket_kind = StageKind.SCAN if fragments.merge is None else StageKind.PARTIAL
    index = builder.next_stage
    tasks = []
    for b in range(candidate.buckets):
        tables_b, inputs_b = builder.bindings(fragments.bucket, b, producers, subquery_inputs)
        tasks.append(
            TaskPlan(task_id(builder.next_task + b), index, fragments.bucket, tables_b, inputs_b)
        )
    builder.add_stage(Stage(index, bucket_kind, tuple(tasks)))
    if fragments.merge is not None:
        merge_tables, merge_inputs = builder.bindings(fragments.merge, -1, {}, subquery_inputs)
        merge_inputs = (*merge_inputs, InputBinding(fragments.relation, tuple(t.id for t in tasks)))
        merge_task = TaskPlan(
            task_id(builder.next_task),
            builder.next_stage,
            fragments.merge,
            merge_tables,
            merge_inputs,
        )
        builder.add_stage(Stage(builder.next_stage, StageKind.MERGE, (merge_task,)))
    return Plan(
        sql=sql,
        stages=tuple(builder.stages),
        reason=_reason(candidate, fragments, analysis),
        tables=ctx.tables,
    )


def _workload(root: Scope, tables: tuple[str, ...], catalog: Catalog) -> Workload:
    """The tables the query reads, each weighed by the share of its columns it uses."""
    main = read_outside_subqueries(root, catalog)
    used = needed_columns(root, tables, [])
    size: dict[str, float] = {}
    moved: dict[str, float] = {}
    for name in tables:
        table = catalog.get(name)
        assert table is not None
        names = used.get(name, set())
        columns = [c for c in table.columns if "*" in names or c.name in names]
        size[name] = table.bytes * max(len(columns), 1) / max(len(table.columns), 1)
        moved[name] = table.rows * sum(arrow_width(c.type) for c in columns or table.columns[:1])
    return Workload(
        read=tuple(t for t in tables if t in main),
        aside=tuple(t for t in tables if t not in main),
        size=size,
        moved=moved,
    )


def _reason(candidate: Candidate, fragments: Fragments, analysis: Analysis) -> str:
    hoisted = len(analysis.hoisted)
    subqueries = (
        f"; {hoisted} subquer{'y' if hoisted == 1 else 'ies'} computed first" if hoisted else ""
    )
    return f"join: {candidate.describe()}{subqueries}{fragments.what}"


class _Builder:
    """Stages and task ids of the plan under construction."""

    def __init__(self, catalog: Catalog, candidate: Candidate) -> None:
        self.catalog = catalog
        self.candidate = candidate
        self.stages: list[Stage] = []
        self._read: dict[str, set[str]] = {}  # fragment -> the relations it reads

    @property
    def next_stage(self) -> int:
        return len(self.stages)

    @property
    def next_task(self) -> int:
        return sum(len(s.tasks) for s in self.stages)

    def add_stage(self, stage: Stage) -> None:
        self.stages.append(stage)

    def add_plan(self, plan: Plan) -> tuple[TaskId, ...]:
        """Another plan's stages, renumbered after ours; its output task ids."""
        renamed = {t.id: task_id(self.next_task + n) for n, t in enumerate(plan.tasks)}
        offset = self.next_stage
        for stage in plan.stages:
            tasks = tuple(
                replace(
                    t,
                    id=renamed[t.id],
                    stage=t.stage + offset,
                    inputs=tuple(
                        replace(b, tasks=tuple(renamed[x] for x in b.tasks)) for b in t.inputs
                    ),
                )
                for t in stage.tasks
            )
            self.stages.append(Stage(stage.index + offset, stage.kind, tasks))
        return tuple(renamed[t.id] for t in plan.output_tasks)

    def bindings(
        self,
        fragment: str,
        bucket: int,
        producers: dict[str, tuple[TaskId, ...]],
        subqueries: dict[str, tuple[TaskId, ...]],
    ) -> tuple[tuple[TableBinding, ...], tuple[InputBinding, ...]]:
        """What `fragment` reads in bucket `bucket` (-1: a merge, tables whole)."""
        names = self._read.get(fragment)
        if names is None:
            names = self._read[fragment] = _relations(fragment)
        tables: list[TableBinding] = []
        inputs: list[InputBinding] = []
        candidate = self.candidate
        for name in sorted(names):
            table = self.catalog.get(name)
            if name in subqueries:
                inputs.append(InputBinding(name, subqueries[name]))
            elif table is None:
                continue  # a CTE, or the merge's input
            elif bucket < 0 or table.name not in candidate.split:
                tables.append(whole_binding(table.name, self.catalog))
            elif candidate.strategy == "shuffle":
                inputs.append(InputBinding(table.name, producers[table.name], bucket))
            elif candidate.strategy == "files":
                tables.append(file_binding(table.name, self.catalog, bucket))
            else:
                assert candidate.ranges is not None
                key = candidate.split[table.name]
                column_type = next(c.type for c in table.columns if c.name == key)
                tables.append(
                    TableBinding(
                        table.name,
                        candidate.ranges.files[table.name][bucket],
                        filter=range_filter(key, column_type, candidate.ranges, bucket),
                    )
                )
        return tuple(tables), tuple(inputs)


def _relations(fragment: str) -> set[str]:
    """Lower-case names of the tables a fragment reads (catalog tables, CTEs, inputs)."""
    tree = exp.maybe_parse(fragment, dialect=DIALECT)
    return {t.name.lower() for t in tree.find_all(exp.Table) if isinstance(t.this, exp.Identifier)}
