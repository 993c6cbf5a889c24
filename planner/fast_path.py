"""Whether a plan may take the fast path (DESIGN.md, "The fast path"): pure.

A plan qualifies when it is one task that reads no earlier result, writes nothing
(no CREATE TABLE AS / INSERT output file), and reads at most `limit` bytes of table
files by the catalog's statistics (DUCKFLEET_FAST_PATH_BYTES; 0 turns the fast path
off). The front door then offers it straight to a worker with a free slot instead of
publishing it to the queue. Which path a query takes is the first line of EXPLAIN.
"""

from __future__ import annotations

from dataclasses import dataclass

from duckfleet.catalog import Catalog
from duckfleet.planner.plan import Plan, TableBinding

SETTING = "DUCKFLEET_FAST_PATH_BYTES"


@dataclass(frozen=True)
class PathChoice:
    fast: bool
    reason: str  # one line for EXPLAIN
    bytes: int = 0  # of table files the plan reads, when it was counted


def choose_path(plan: Plan, catalog: Catalog, limit: int) -> PathChoice:
    """The fast path or the queue for `plan`, and why."""
    if limit <= 0:
        return PathChoice(False, f"queue: the fast path is off ({SETTING}=0)")
    if len(plan.tasks) != 1:
        return PathChoice(False, f"queue: {len(plan.tasks)} tasks")
    (task,) = plan.tasks
    if task.output_file:
        return PathChoice(False, "queue: the statement writes a table")
    if task.input_tasks or task.partitioned:
        return PathChoice(False, "queue: the task exchanges results with others")
    size = sum(binding_bytes(b, catalog) for b in task.tables)
    if size > limit:
        return PathChoice(False, f"queue: one task over {size:,} bytes, over {SETTING}={limit:,}")
    return PathChoice(True, f"fast path: one task over {size:,} bytes", size)


def binding_bytes(binding: TableBinding, catalog: Catalog) -> int:
    """Bytes on storage of what a binding reads: whole files, or the share of each
    file's bytes its row range covers. A file the catalog does not list counts as
    infinitely large (it cannot be judged small)."""
    table = catalog.get(binding.table)
    files = {f.path: f for f in table.files} if table is not None else {}
    total = 0
    for i, path in enumerate(binding.files):
        f = files.get(path)
        if f is None:
            return 1 << 62
        rows = binding.ranges[i] if binding.ranges else None
        if rows is None or not f.rows:
            total += f.bytes
        else:
            total += f.bytes * (rows.end_row - rows.first_row) // f.rows
    return total
