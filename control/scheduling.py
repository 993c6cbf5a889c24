"""Which runnable task a worker should claim first. Pure: no etcd here.

Priority first: a query's priority (set when it is run; higher first) always wins,
so an urgent query's tasks are claimed before anything queued at a lower one.
Among queries of equal priority, fair share: the query with the fewest tasks
running now comes first, so a short query that arrives while a long one fills the
fleet gets a slot at the next free one; then the older query, then the lower task
number (earlier stages first). FIFO (for comparison in benchmarks): among queries
of equal priority, the oldest first, whatever is running.
"""

from __future__ import annotations

from collections.abc import Iterable

from duckfleet.control.records import RunnableTask


def _task_number(r: RunnableTask) -> int:
    digits = r.task[1:]
    return int(digits) if digits.isdigit() else 0


def order_runnable(tasks: Iterable[RunnableTask], fifo: bool = False) -> list[RunnableTask]:
    if fifo:
        return sorted(tasks, key=lambda r: (-r.priority, r.created, r.query, _task_number(r)))
    return sorted(
        tasks, key=lambda r: (-r.priority, r.running, r.created, r.query, _task_number(r))
    )
