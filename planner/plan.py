"""The distributed plan: what the planner returns and the control plane stores.

A plan is a list of stages. Each stage holds tasks; a task is one DuckDB SQL
fragment plus what its names mean:

* ``tables``: inside the fragment, a catalog table name stands for these Parquet
  files (one split of a large table, or every file of a small one), or for a range
  of row groups of each (``ranges``);
* ``inputs``: a relation name (``__stage0``) stands for the concatenated results of
  these earlier tasks, fetched over Flight from the workers holding them — or, for
  an input with a ``bucket``, the concatenation of that one bucket of each;
* ``inline``: a relation name (``__system_queries``) stands for a table carried in
  the task itself, as Arrow IPC bytes: a snapshot of a ``system`` table, which the
  planner names and the front door fills in when it publishes the query.

Exchange (shuffle): a task with ``partition_by`` and ``buckets`` splits its result
by ``hash(partition_by) % buckets`` into that many buckets, each kept and served on
its own; a consumer names ``(producer tasks, bucket)`` and reads bucket b of every
producer. Rows with equal keys (of one type) land in the same bucket everywhere.

The tasks of the last stage are the result partitions, one FlightEndpoint each,
in order.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from enum import StrEnum

from duckfleet.ids import TaskId


class StageKind(StrEnum):
    SCAN = "scan"  # one task per split; each task's result is a final partition
    PARTIAL = "partial"  # one task per split; partial aggregates for a merge
    MERGE = "merge"  # one task over the partial results
    SINGLE = "single"  # one task over all the data
    # exchange: one task per split whose result is hash-partitioned into buckets
    SHUFFLE = "shuffle"


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
    # split-aligned joins: only the rows of these files that satisfy this SQL
    # predicate over the table's columns (a key range); "" for all rows
    filter: str = ""

    def to_list(self) -> list[object]:
        """[table, files, ranges, filter], the last two only when set."""
        out: list[object] = [self.table, list(self.files)]
        if self.ranges or self.filter:
            out.append([r.to_list() if r is not None else None for r in self.ranges])
        if self.filter:
            out.append(self.filter)
        return out

    @staticmethod
    def from_list(item: list[object]) -> TableBinding:
        table, files, *more = item
        assert isinstance(table, str) and isinstance(files, list)
        ranges = more[0] if more else []
        row_filter = more[1] if len(more) > 1 else ""
        assert isinstance(ranges, list) and isinstance(row_filter, str)
        return TableBinding(
            table,
            tuple(files),
            tuple(RowRange(*r) if r is not None else None for r in ranges),
            row_filter,
        )


@dataclass(frozen=True)
class InputBinding:
    relation: str
    tasks: tuple[TaskId, ...]
    # exchange: -1 reads each producer's whole result; b >= 0 reads bucket b of each
    # (the producers are partitioned tasks)
    bucket: int = -1


@dataclass(frozen=True)
class InlineInput:
    """A table the task carries: ``relation`` in the fragment stands for the Arrow IPC
    stream ``data``, a snapshot of system table ``table`` (``b""``: not filled in
    yet; the front door fills it before it publishes)."""

    relation: str
    table: str
    data: bytes = b""

    def to_list(self) -> list[str]:
        return [self.relation, self.table, base64.b64encode(self.data).decode("ascii")]

    @staticmethod
    def from_list(item: list[str]) -> InlineInput:
        relation, table, data = item
        return InlineInput(relation, table, base64.b64decode(data))


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
    # exchange: split the result by hash of these columns into `buckets` buckets
    partition_by: tuple[str, ...] = ()
    buckets: int = 0
    # tables carried in the task (system table snapshots)
    inline: tuple[InlineInput, ...] = ()

    @property
    def partitioned(self) -> bool:
        return self.buckets > 0

    @property
    def input_tasks(self) -> tuple[TaskId, ...]:
        return tuple(t for b in self.inputs for t in b.tasks)

    def to_json(self) -> str:
        d: dict[str, object] = {
            "id": self.id,
            "stage": self.stage,
            "sql": self.sql,
            "tables": [b.to_list() for b in self.tables],
            "inputs": [_input_json(b) for b in self.inputs],
        }
        if self.output_file:
            d["output_file"] = self.output_file
        if self.partitioned:  # exchange fields only when set: older readers ignore them
            d["partition_by"] = list(self.partition_by)
            d["buckets"] = self.buckets
        if self.inline:
            d["inline"] = [i.to_list() for i in self.inline]
        return json.dumps(d)

    @staticmethod
    def from_json(text: str | bytes) -> TaskPlan:
        d = json.loads(text)
        return TaskPlan(
            id=TaskId(d["id"]),
            stage=d["stage"],
            sql=d["sql"],
            tables=tuple(TableBinding.from_list(b) for b in d["tables"]),
            inputs=tuple(
                InputBinding(b[0], tuple(TaskId(t) for t in b[1]), b[2] if len(b) > 2 else -1)
                for b in d["inputs"]
            ),
            output_file=d.get("output_file", ""),
            partition_by=tuple(d.get("partition_by", ())),
            buckets=d.get("buckets", 0),
            inline=tuple(InlineInput.from_list(i) for i in d.get("inline", ())),
        )


def _input_json(b: InputBinding) -> list[object]:
    out: list[object] = [b.relation, list(b.tasks)]
    return out if b.bucket < 0 else [*out, b.bucket]


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
                binds = [
                    f"{b.table}={len(b.files)} file(s)" + (f" where {b.filter}" if b.filter else "")
                    for b in t.tables
                ]
                binds += [
                    f"{b.relation}<-{','.join(b.tasks)}"
                    + (f"[bucket {b.bucket}]" if b.bucket >= 0 else "")
                    for b in t.inputs
                ]
                binds += [f"{i.relation}=snapshot of {i.table}" for i in t.inline]
                if t.partitioned:
                    binds.append(f"-> {t.buckets} buckets by hash({', '.join(t.partition_by)})")
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
