"""EXPLAIN and EXPLAIN ANALYZE: recognise them, and lay a plan out as rows.

    EXPLAIN [ANALYZE] <query>

`explain_statement` says whether the text is one, and gives the query. `explain_rows`
lays the plan out as a result table: one row for the plan (its strategy, or why it
runs as one task), one per note (a subquery split, a CTE computed once, ...), then
one per task: its stage and kind, what it reads (files, row-group ranges, a
split-aligned join's key range, earlier results or one bucket of each shuffle
producer, and the buckets a producer writes) and its SQL. EXPLAIN ANALYZE adds each
task's worker, rows, bytes and time, which the front door reads from the task
records (flight/explain.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError

from duckfleet.planner.parse import DIALECT
from duckfleet.planner.plan import Plan, TableBinding, TaskPlan

# after EXPLAIN (which sqlglot reads as a command with the rest as text): ANALYZE,
# behind any white space and comments
_ANALYZE = re.compile(r"(?:\s+|/\*.*?\*/|--[^\n]*\n)*ANALY[SZ]E\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Explain:
    sql: str  # the query explained
    analyze: bool


@dataclass(frozen=True)
class ExplainRow:
    stage: int | None
    kind: str  # "plan", "note", or the stage's kind
    task: str | None
    detail: str
    reads: str
    inputs: str
    sql: str


def explain_statement(sql: str) -> Explain | None:
    """The query of `EXPLAIN [ANALYZE] <query>`, or None if `sql` is no EXPLAIN."""
    try:
        tokens = Dialect.get_or_raise(DIALECT).tokenize(sql)
    except TokenError:
        return None
    if not tokens or tokens[0].text.upper() != "EXPLAIN":
        return None
    rest = sql[tokens[0].end + 1 :]
    analyze = _ANALYZE.match(rest)
    if analyze is not None:
        rest = rest[analyze.end() :]
    return Explain(sql=rest.strip(), analyze=analyze is not None)


def explain_rows(plan: Plan) -> list[ExplainRow]:
    rows = [ExplainRow(None, "plan", None, plan.reason, "", "", plan.sql.strip())]
    rows += [ExplainRow(None, "note", None, note, "", "", "") for note in plan.notes]
    for stage in plan.stages:
        for n, task in enumerate(stage.tasks, 1):
            detail = f"task {n} of {len(stage.tasks)}"
            row = ExplainRow(
                stage.index, str(stage.kind), task.id, detail, reads(task), inputs(task), task.sql
            )
            rows.append(row)
    return rows


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def reads(task: TaskPlan) -> str:
    parts = [binding_text(b) for b in task.tables]
    parts += [f"{i.relation}: snapshot of {i.table} (inline)" for i in task.inline]
    out = "; ".join(parts)
    if task.partitioned:  # a shuffle's producer
        keys = ", ".join(task.partition_by)
        out += f" -> {task.buckets} buckets by hash({keys})"
    return out


def binding_text(binding: TableBinding) -> str:
    """`lineitem: lineitem.1.parquet row groups 4-6 (rows 428332-750571)`, or the files;
    a split-aligned join's key range after them: `where "l_orderkey" <= 1500000`."""
    text = _files_text(binding)
    return f"{text} where {binding.filter}" if binding.filter else text


def _files_text(binding: TableBinding) -> str:
    if not binding.ranges:
        if len(binding.files) == 1:
            return f"{binding.table}: {_basename(binding.files[0])}"
        return f"{binding.table}: {len(binding.files)} files"
    parts = []
    for path, rows in zip(binding.files, binding.ranges, strict=True):
        name = _basename(path)
        if rows is None:
            parts.append(name)
        elif rows.end_group == rows.first_group:
            parts.append(f"{name} nothing (every row group pruned)")
        else:
            parts.append(
                f"{name} row groups {rows.first_group}-{rows.end_group - 1} "
                f"(rows {rows.first_row}-{rows.end_row - 1})"
            )
    return f"{binding.table}: {', '.join(parts)}"


def inputs(task: TaskPlan) -> str:
    """`__stage0 <- t0, t1`; a shuffle's consumer: `lineitem <- bucket 2 of t0, t1`."""
    return "; ".join(
        f"{b.relation} <- {'' if b.bucket < 0 else f'bucket {b.bucket} of '}{', '.join(b.tasks)}"
        for b in task.inputs
    )
