"""EXPLAIN and EXPLAIN ANALYZE answered as result tables, by any front door.

EXPLAIN plans the query and returns the plan's rows (planner/explain.py): stages,
tasks, splits, inputs, each fragment's SQL, and why the plan is what it is; for a
query sent in another dialect, the DuckDB SQL it was transpiled to. EXPLAIN
ANALYZE runs the query first and adds, per task, what its task record says: the
worker that ran it, its result's rows and bytes, and the worker's time on it in ms.

The answer is one endpoint whose ticket carries the statement (and, for ANALYZE,
the query id), so any front door can produce it again (wire/tickets.py).
"""

from __future__ import annotations

import pyarrow as pa

from duckfleet.control.queries import TaskRecord
from duckfleet.planner.explain import ExplainRow, explain_rows
from duckfleet.planner.plan import Plan

SCHEMA = pa.schema(
    [
        ("stage", pa.int32()),
        ("kind", pa.string()),
        ("task", pa.string()),
        ("detail", pa.string()),
        ("reads", pa.string()),
        ("inputs", pa.string()),
        ("sql", pa.string()),
    ]
)
ANALYZE_SCHEMA = pa.schema(
    [
        *SCHEMA,
        ("worker", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("ms", pa.float64()),
    ]
)


def explain_table(
    plan: Plan, records: list[TaskRecord] | None = None, path: str = "", dialect: str | None = None
) -> pa.Table:
    """The plan as rows; with `records` (EXPLAIN ANALYZE), each task's run as well;
    `path`: how the query runs, the fast path or the queue (planner/fast_path.py);
    `dialect`: the one the client wrote the query in, when it was transpiled (a
    "dialect" row then shows the DuckDB SQL it became)."""
    rows = explain_rows(plan)
    if path:
        rows.insert(1, ExplainRow(None, "path", None, path, "", "", ""))
    if dialect is not None:
        detail = f"{dialect} SQL transpiled to DuckDB by sqlglot"
        rows.insert(1, ExplainRow(None, "dialect", None, detail, "", "", plan.sql.strip()))
    columns: dict[str, list[object]] = {
        "stage": [r.stage for r in rows],
        "kind": [r.kind for r in rows],
        "task": [r.task for r in rows],
        "detail": [r.detail for r in rows],
        "reads": [r.reads for r in rows],
        "inputs": [r.inputs for r in rows],
        "sql": [r.sql for r in rows],
    }
    if records is None:
        return pa.table(columns, schema=SCHEMA)
    ran = {r.id: r for r in records}
    outputs = {t.id for t in plan.output_tasks}
    found = [ran.get(r.task) if r.task is not None else None for r in rows]
    columns["worker"] = [f.done_by if f else None for f in found]
    columns["rows"] = [f.rows if f else None for f in found]
    columns["bytes"] = [f.bytes if f else None for f in found]
    columns["ms"] = [f.ms if f else None for f in found]
    total = [ran[t].rows for t in outputs if t in ran and ran[t].rows is not None]
    columns["rows"][0] = sum(total) if len(total) == len(outputs) else None  # the answer's
    return pa.table(columns, schema=ANALYZE_SCHEMA)
