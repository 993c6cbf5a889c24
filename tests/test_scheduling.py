"""Fair-share ordering of runnable tasks, as pure logic."""

from __future__ import annotations

from duckfleet.control.records import RunnableTask
from duckfleet.control.scheduling import order_runnable, spread_ties
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


def test_priority_then_age_then_task_number():
    tasks = [
        rt("b", 10, created=2.0),
        rt("b", 2, created=2.0),
        rt("a", 0, created=3.0),
        rt("c", 0, created=9.0, priority=1),
    ]
    assert names(order_runnable(tasks)) == ["c/t0", "b/t2", "b/t10", "a/t0"]


def test_a_higher_priority_goes_first_even_with_more_tasks_running():
    busy_urgent = [rt("urgent", i, created=9.0, running=6, priority=5) for i in range(2)]
    idle_normal = [rt("normal", 0, created=1.0, running=0)]
    assert names(order_runnable(busy_urgent + idle_normal)) == [
        "urgent/t0",
        "urgent/t1",
        "normal/t0",
    ]


def test_fifo_keeps_priorities_then_takes_the_oldest():
    tasks = [
        rt("old", 0, created=1.0),
        rt("new-urgent", 0, created=5.0, priority=2),
        rt("older", 0, created=0.5, running=3),
    ]
    assert names(order_runnable(tasks, fifo=True)) == ["new-urgent/t0", "older/t0", "old/t0"]


def test_a_negative_priority_waits_for_everything_else():
    tasks = [rt("batch", 0, created=0.0, priority=-1), rt("adhoc", 0, created=8.0, running=4)]
    assert names(order_runnable(tasks)) == ["adhoc/t0", "batch/t0"]
    assert names(order_runnable(tasks, fifo=True)) == ["adhoc/t0", "batch/t0"]


def test_equal_priorities_keep_fair_share():
    tasks = [rt("long", 0, created=1.0, running=2, priority=3), rt("short", 0, 2.0, 0, 3)]
    assert names(order_runnable(tasks)) == ["short/t0", "long/t0"]


def test_workers_spread_over_tasks_that_rank_equally_and_keep_the_rest_in_order():
    ordered = order_runnable(
        [rt("a", i, created=1.0) for i in range(3)] + [rt("b", 0, created=2.0)]
    )
    assert names(spread_ties(ordered, 0)) == ["a/t0", "a/t1", "a/t2", "b/t0"]
    assert names(spread_ties(ordered, 1)) == ["a/t1", "a/t2", "a/t0", "b/t0"]
    assert names(spread_ties(ordered, 5)) == ["a/t2", "a/t0", "a/t1", "b/t0"]
    # a busier query's tasks rank lower: they never move ahead of the first query's
    busy = order_runnable([rt("a", 0, created=1.0), rt("b", 0, created=0.5, running=2)])
    assert names(spread_ties(busy, 1)) == ["a/t0", "b/t0"]
    # a higher priority's task stays first, alone in its rank
    urgent = order_runnable([rt("a", 0, 1.0), rt("a", 1, 1.0), rt("u", 0, 9.0, priority=1)])
    assert names(spread_ties(urgent, 1)) == ["u/t0", "a/t0", "a/t1"]
