"""Which runnable task a worker should claim first. Pure: no etcd here.

Priority first: a query's priority (set when it is run; higher first) always wins,
so an urgent query's tasks are claimed before anything queued at a lower one.
Among queries of equal priority, fair share: the query with the fewest tasks
running now comes first, so a short query that arrives while a long one fills the
fleet gets a slot at the next free one; then the older query, then the lower task
number (earlier stages first). FIFO (for comparison in benchmarks): among queries
of equal priority, the oldest first, whatever is running.

Workers that wake together (a query was published, a stage finished) would all
try the same first task, and all but one lose a claim transaction: each starts
instead at its own place among the tasks that rank first equally (same priority,
same query, same count running), which stay first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def _rank(r: RunnableTask, fifo: bool) -> tuple[object, ...]:
    return (
        (-r.priority, r.created, r.query) if fifo else (-r.priority, r.running, r.created, r.query)
    )


def spread_ties(
    ordered: Sequence[RunnableTask], start: int, fifo: bool = False
) -> list[RunnableTask]:
    """`ordered` (as `order_runnable` returns it) with its leading run of tasks that
    rank equally rotated to begin at `start` (modulo their number)."""
    ties = 0
    while ties < len(ordered) and _rank(ordered[ties], fifo) == _rank(ordered[0], fifo):
        ties += 1
    if ties <= 1:
        return list(ordered)
    k = start % ties
    return [*ordered[k:ties], *ordered[:k], *ordered[ties:]]
