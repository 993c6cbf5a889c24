"""plan_query: SQL text + catalog -> distributed plan. Pure: no I/O of any kind.

    parse_statement   one query, or a PlanError
    unqualify_tables  duckfleet.main.t -> t, as BI tools write it
    catalog_tables    the catalog tables it reads (nothing else)
    qualify           columns resolved against the catalog
    shape             SCAN, AGGREGATE or SINGLE, and why
    name_outputs      output names as DuckDB gives them        (AGGREGATE)
    split_aggregates  partial per split + merge                 (AGGREGATE)
    plan_joins        split by a join key: broadcast, aligned, shuffle (SINGLE)

Whatever cannot be split runs as one task over all the data: slower, never wrong.
"""

from __future__ import annotations

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.ids import task_id
from duckfleet.planner.fallback import NotDistributable
from duckfleet.planner.joins import plan_joins
from duckfleet.planner.output_names import name_outputs
from duckfleet.planner.parse import DIALECT, Statement, parse_statement
from duckfleet.planner.plan import InputBinding, Plan, Stage, StageKind, TableBinding, TaskPlan
from duckfleet.planner.qualify import qualify
from duckfleet.planner.settings import PlannerSettings
from duckfleet.planner.shape import Shape, Strategy, shape
from duckfleet.planner.split_aggregates import PARTIAL_RELATION, split_aggregates
from duckfleet.planner.tables import catalog_tables
from duckfleet.planner.unqualify_tables import unqualify_tables


def plan_query(sql: str, catalog: Catalog, settings: PlannerSettings | None = None) -> Plan:
    """Plan `sql` over `catalog`; raises a PlanError when the SQL must be fixed."""
    settings = settings or PlannerSettings()
    statement = parse_statement(sql)
    tree, unqualified = unqualify_tables(statement.tree)
    if unqualified:  # the fragment text must name tables as workers bind them
        statement = Statement(tree, tree.sql(dialect=DIALECT))
    tables = catalog_tables(statement.tree, catalog)
    schema = catalog.schema_mapping()
    try:
        qualified = qualify(statement.tree, schema)
    except NotDistributable as e:
        return _single(sql, statement.text, tables, catalog, e.reason)
    decision = shape(qualified, tables, catalog, settings)
    if decision.strategy is Strategy.SINGLE:
        # joins of split tables, subqueries, CTEs, windows: split by a key where the
        # answer allows (planner/joins); hoisted subqueries are planned by this function
        joined = plan_joins(
            sql,
            statement,
            qualified,
            tables,
            catalog,
            settings,
            lambda sub: plan_query(sub, catalog, settings),
        )
        if joined is not None:
            return joined
        return _single(sql, statement.text, tables, catalog, decision.reason)
    if decision.strategy is Strategy.SCAN:
        stage = _split_stage(StageKind.SCAN, statement.text, tables, catalog, decision)
        return Plan(sql=sql, stages=(stage,), reason=decision.reason, tables=tables)
    assert isinstance(statement.tree, exp.Select) and isinstance(qualified, exp.Select)
    try:
        named = name_outputs(statement.tree, qualified, sql)
        partial, merge = split_aggregates(named, schema)
    except NotDistributable as e:
        return _single(sql, statement.text, tables, catalog, e.reason)
    partials = _split_stage(StageKind.PARTIAL, _sql(partial), tables, catalog, decision)
    merge_task = TaskPlan(
        id=task_id(len(partials.tasks)),
        stage=1,
        sql=_sql(merge),
        inputs=(InputBinding(PARTIAL_RELATION, tuple(t.id for t in partials.tasks)),),
    )
    return Plan(
        sql=sql,
        stages=(partials, Stage(1, StageKind.MERGE, (merge_task,))),
        reason=decision.reason,
        tables=tables,
    )


def _sql(tree: exp.Expression) -> str:
    return tree.sql(dialect=DIALECT)


def _single(sql: str, text: str, tables: tuple[str, ...], catalog: Catalog, reason: str) -> Plan:
    bindings = tuple(_whole(name, catalog) for name in tables)
    task = TaskPlan(id=task_id(0), stage=0, sql=text, tables=bindings)
    return Plan(
        sql=sql, stages=(Stage(0, StageKind.SINGLE, (task,)),), reason=reason, tables=tables
    )


def _split_stage(
    kind: StageKind,
    fragment: str,
    tables: tuple[str, ...],
    catalog: Catalog,
    decision: Shape,
) -> Stage:
    """Stage 0: one task per file of the split table; every other table read whole."""
    split = catalog.get(decision.split_table or "")
    assert split is not None and decision.split_table in tables
    small = {name: _whole(name, catalog) for name in tables if name != decision.split_table}
    tasks = []
    for n, file in enumerate(split.files):
        bindings = tuple(
            TableBinding(split.name, (file.path,)) if name == decision.split_table else small[name]
            for name in tables
        )
        tasks.append(TaskPlan(id=task_id(n), stage=0, sql=fragment, tables=bindings))
    return Stage(0, kind, tuple(tasks))


def _whole(name: str, catalog: Catalog) -> TableBinding:
    table = catalog.get(name)
    assert table is not None
    return TableBinding(table.name, tuple(f.path for f in table.files))
