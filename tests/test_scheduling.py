"""Fair-share ordering of runnable tasks, as pure logic."""

from __future__ import annotations

from duckfleet.control.records import RunnableTask
from duckfleet.control.scheduling import order_runnable
from duckfleet.ids import QueryId, TaskId


def rt(q: str, t: int, created: float, running: int = 0, priority: int = 0) -> RunnableTask:
    return RunnableTask(QueryId(q), TaskId(f"t{t}"), created, priority, running)


def names(tasks: list[RunnableTask]) -> list[str]:
    return [f"{r.query}/{r.task}" for r in tasks]


def test_the_query_with_fewest_running_tasks_goes_first():
    long_q = [rt("long", i, created=1.0, running=8) for i in range(3)]
    short_q = [rt("short", 0, created=5.0, running=0)]
    assert names(order_runnable(long_q + short_q)) == [
        "short/t0",
        "long/t0",
        "long/t1",
        "long/t2",
    ]


def test_fifo_takes_the_oldest_query_whatever_runs():
    long_q = [rt("long", i, created=1.0, running=8) for i in range(2)]
    short_q = [rt("short", 0, created=5.0, running=0)]
    assert names(order_runnable(long_q + short_q, fifo=True)) == ["long/t0", "long/t1", "short/t0"]


def test_ties_break_on_priority_then_age_then_task_number():
    tasks = [
        rt("b", 10, created=2.0),
        rt("b", 2, created=2.0),
        rt("a", 0, created=3.0),
        rt("c", 0, created=9.0, priority=1),
    ]
    assert names(order_runnable(tasks)) == ["c/t0", "b/t2", "b/t10", "a/t0"]
