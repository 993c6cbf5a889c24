"""The distributed plan: what the planner returns and the control plane stores.

A plan is a list of stages. Each stage holds tasks; a task is one DuckDB SQL
fragment plus what its names mean:

* ``tables``: inside the fragment, a catalog table name stands for these Parquet
  files (one split of a large table, or every file of a small one), or for a range
  of row groups of each (``ranges``);
* ``inputs``: a relation name (``__stage0``) stands for the concatenated results of
  these earlier tasks, fetched over Flight from the workers holding them.

The tasks of the last stage are the result partitions, one FlightEndpoint each,
in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum

from duckfleet.ids import TaskId


class StageKind(StrEnum):
    SCAN = "scan"  # one task per split; each task's result is a final partition
    PARTIAL = "partial"  # one task per split; partial aggregates for a merge
    MERGE = "merge"  # one task over the partial results
    SINGLE = "single"  # one task over all the data


@dataclass(frozen=True)
class RowRange:
    """Row groups [first_group, end_group) of a file, which are its rows [first_row,
    end_row): the worker reads those rows (and DuckDB only those row groups)."""

    first_group: int
    end_group: int
    first_row: int
    end_row: int

    def to_list(self) -> list[int]:
        return [self.first_group, self.end_group, self.first_row, self.end_row]


@dataclass(frozen=True)
class TableBinding:
    table: str
    files: tuple[str, ...]
    # empty: every file whole; else one entry per file, None for a whole file
    ranges: tuple[RowRange | None, ...] = ()

    def to_list(self) -> list[object]:
        out: list[object] = [self.table, list(self.files)]
        if self.ranges:
            out.append([r.to_list() if r is not None else None for r in self.ranges])
        return out

    @staticmethod
    def from_list(item: list[object]) -> TableBinding:
        table, files, *more = item
        assert isinstance(table, str) and isinstance(files, list)
        ranges = more[0] if more else []
        assert isinstance(ranges, list)
        return TableBinding(
            table,
            tuple(files),
            tuple(RowRange(*r) if r is not None else None for r in ranges),
        )


@dataclass(frozen=True)
class InputBinding:
    relation: str
    tasks: tuple[TaskId, ...]


@dataclass(frozen=True)
class TaskPlan:
    id: TaskId
    stage: int
    sql: str
    tables: tuple[TableBinding, ...] = ()
    inputs: tuple[InputBinding, ...] = ()
    # Set on the output tasks of CREATE TABLE AS / INSERT: the worker writes the
    # fragment's result to this Parquet file and keeps only a one-row summary.
    output_file: str = ""

    @property
    def input_tasks(self) -> tuple[TaskId, ...]:
        return tuple(t for b in self.inputs for t in b.tasks)

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "stage": self.stage,
                "sql": self.sql,
                "tables": [b.to_list() for b in self.tables],
                "inputs": [[b.relation, list(b.tasks)] for b in self.inputs],
                **({"output_file": self.output_file} if self.output_file else {}),
            }
        )

    @staticmethod
    def from_json(text: str | bytes) -> TaskPlan:
        d = json.loads(text)
        return TaskPlan(
            id=TaskId(d["id"]),
            stage=d["stage"],
            sql=d["sql"],
            tables=tuple(TableBinding.from_list(b) for b in d["tables"]),
            inputs=tuple(InputBinding(r, tuple(TaskId(t) for t in ts)) for r, ts in d["inputs"]),
            output_file=d.get("output_file", ""),
        )


@dataclass(frozen=True)
class Stage:
    index: int
    kind: StageKind
    tasks: tuple[TaskPlan, ...]


@dataclass(frozen=True)
class Plan:
    sql: str  # the statement as the client sent it
    stages: tuple[Stage, ...]
    # One line on the strategy chosen and, for a single task, why nothing more was
    # possible. EXPLAIN prints it.
    reason: str
    tables: tuple[str, ...] = field(default=())  # catalog tables the query reads
    # How parts of the statement run (a subquery split, a CTE computed once, ...).
    notes: tuple[str, ...] = field(default=())

    @property
    def tasks(self) -> tuple[TaskPlan, ...]:
        return tuple(t for s in self.stages for t in s.tasks)

    @property
    def output_tasks(self) -> tuple[TaskPlan, ...]:
        return self.stages[-1].tasks

    @property
    def distributed(self) -> bool:
        return len(self.tasks) > 1

    def consumers(self) -> dict[TaskId, tuple[TaskId, ...]]:
        """For each task, the tasks that read its result."""
        out: dict[TaskId, list[TaskId]] = {t.id: [] for t in self.tasks}
        for t in self.tasks:
            for src in dict.fromkeys(t.input_tasks):
                out[src].append(t.id)
        return {k: tuple(v) for k, v in out.items()}

    def explain(self) -> str:
        lines = [f"plan: {self.reason}", *(f"note: {n}" for n in self.notes)]
        for s in self.stages:
            lines.append(f"stage {s.index} [{s.kind}] {len(s.tasks)} task(s)")
            for t in s.tasks:
                binds = [f"{b.table}={len(b.files)} file(s)" for b in t.tables]
                binds += [f"{b.relation}<-{','.join(b.tasks)}" for b in t.inputs]
                lines.append(f"  {t.id}: {' '.join(binds)}")
                lines.append(f"    {t.sql}")
        return "\n".join(lines)


def write_outputs(plan: Plan, files: list[str]) -> Plan:
    """``plan`` with its output tasks writing their results to ``files``, one each."""
    outputs = plan.output_tasks
    if len(files) != len(outputs):
        raise ValueError(f"{len(outputs)} output task(s) but {len(files)} file(s)")
    written = tuple(replace(t, output_file=f) for t, f in zip(outputs, files, strict=True))
    last = replace(plan.stages[-1], tasks=written)
    return replace(plan, stages=(*plan.stages[:-1], last))
