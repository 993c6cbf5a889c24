"""Elasticity: a query of many tasks on one worker, with a second worker started at
25% of it, against one worker throughout and two workers throughout.

Every worker has one core and one task slot, so two workers are twice the fleet.
The second worker is a new process (`LocalFleet.start_worker`): its start-up
(Python, imports, joining etcd) is part of what it costs to grow the fleet, and the
report shows when it was started, when it joined and when it claimed its first
task, and the time from its process start to its first claim (the worker logs it
once: worker/worker.py). Ideal for the joining case: T1 * f + T1 * (1 - f) / 2, as if it had started
working the moment it was asked to.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

from bench.fleet import fleet_setup, register, running_fleet, set_workers
from bench.machine import environment
from bench.one_query import Traced, add_heavy_query_arguments, heavy_query, heavy_sql, run_traced
from bench.progress import say
from bench.report import Table, median, publish, timelines
from bench.timeline import Timeline

HELP = "elasticity: a second worker joining at 25%% of a query of many tasks"
NAME = "elasticity"
TABLE = "lineitem_many"
FIRST_CLAIM = re.compile(r"first claim (\d+) ms after process start \((\d+) ms after joining\)")


def first_claim_ms(log: str | None) -> tuple[float, float] | None:
    """(process start to first claim, joining to first claim), in ms, from a
    worker's log line; None if it has not claimed (or has no log)."""
    if not log:
        return None
    try:
        with open(log, errors="replace") as f:
            found = FIRST_CLAIM.search(f.read())
    except OSError:
        return None
    return (float(found.group(1)), float(found.group(2))) if found else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_heavy_query_arguments(p)
    p.add_argument("--runs", type=int, default=3, help="rounds of the three cases (median)")
    p.add_argument("--join-at", type=float, default=0.25, help="fraction (default 0.25)")


def run_elasticity(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    folder, sql, expected = heavy_query(args, TABLE)
    one: list[Traced] = []
    two: list[Traced] = []
    joined: list[tuple[Traced, float, float, float | None]] = []  # started, member, claim
    startup: list[tuple[float, float]] = []  # the new worker's own: start / join to claim, ms
    with running_fleet(1, args.log_dir, per_worker=1) as fleet:
        setup = fleet_setup(fleet)
        register(fleet, **{TABLE: folder})
        with Timeline(fleet) as tl:
            say("warm-up run (not counted)")
            run_traced(fleet, tl, sql, expected)
            for i in range(args.runs):
                set_workers(fleet, 1)
                one.append(run_traced(fleet, tl, sql, expected))
                say(f"run {i + 1}: one worker {one[-1].seconds:.2f} s")
                t1 = median([r.seconds for r in one])
                marks: dict[str, float] = {}

                def grow(started: float, t1: float = t1, marks: dict[str, float] = marks) -> None:
                    time.sleep(max(0.0, started + args.join_at * t1 - time.monotonic()))
                    marks["started"] = time.monotonic() - started
                    marks["pid"] = fleet.start_worker().pid
                    while len(fleet.members("worker")) < 2:
                        time.sleep(0.02)
                    marks["member"] = time.monotonic() - started

                run = run_traced(fleet, tl, sql, expected, during=grow)
                first = {r.worker for r in one[-1].runs}
                new = [r.start - run.started for r in run.runs if r.worker not in first]
                joined.append((run, marks["started"], marks["member"], min(new, default=None)))
                logged = first_claim_ms(fleet.log_of(int(marks["pid"])))
                if logged is not None:
                    startup.append(logged)
                say(f"run {i + 1}: second worker joining {run.seconds:.2f} s")
                two.append(run_traced(fleet, tl, sql, expected))
                say(f"run {i + 1}: two workers {two[-1].seconds:.2f} s")

    t1 = median([r.seconds for r in one])
    t2 = median([r.seconds for r in two])
    tj = median([r.seconds for r, *_ in joined])
    run, started, member, claim = sorted(joined, key=lambda j: j[0].seconds)[len(joined) // 2]
    ideal = t1 * args.join_at + t1 * (1 - args.join_at) / 2
    one = [sorted(one, key=lambda r: r.seconds)[len(one) // 2]]  # the median runs
    two = [sorted(two, key=lambda r: r.seconds)[len(two) // 2]]
    table = Table(
        ["case", "seconds", "x one worker", "ideal s", "tasks", "tasks on the 2nd worker"],
        digits={"seconds": 2, "x one worker": 2, "ideal s": 2},
    )

    def second_tasks(r: Traced) -> int:
        counts: dict[str, int] = {}
        for x in r.runs:
            counts[x.worker] = counts.get(x.worker, 0) + 1
        return sorted(counts.values())[0] if len(counts) > 1 else 0

    table.add("one worker throughout", t1, 1.0, t1, one[0].ntasks, 0)
    table.add(
        f"second worker started at {args.join_at:.0%}",
        tj,
        tj / t1,
        ideal,
        run.ntasks,
        second_tasks(run),
    )
    table.add("two workers throughout", t2, t2 / t1, t1 / 2, two[0].ntasks, second_tasks(two[0]))
    join = Table(["event", "s after the query was sent"], digits={"s after the query was sent": 2})
    join.add("second worker process started", started)
    join.add("second worker joined the fleet (member key in etcd)", member)
    join.add("second worker claimed its first task", claim)
    join.add("query finished", run.seconds)
    own = Table(["from the new worker's log (median)", "ms"], digits={"ms": 0})
    own.add("process start to first claim", median([s for s, _ in startup]) if startup else None)
    own.add(
        "joining the fleet to first claim", median([j for _, j in startup]) if startup else None
    )
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup + "; the second worker started with the same settings"
    header["query"] = (
        f"`{heavy_sql(TABLE, 1).replace('md5(l_comment)', 'md5(...md5(l_comment))')}` with "
        f"{args.work} md5 calls per row, over lineitem SF{args.scale:g} in {args.files} "
        f"equal files: {one[0].ntasks} tasks"
    )
    header["method"] = (
        f"one uncounted warm-up run, then {args.runs} round(s) of: one worker, second "
        "worker joining, two workers (median of each); every answer checked against DuckDB "
        "in-process; task times from a watch on the claims in etcd"
    )

    def plot(path: Path) -> None:
        timelines(
            path,
            [
                (f"one worker: {one[0].seconds:.1f} s", one[0].spans(), []),
                (
                    f"second worker started at {args.join_at:.0%}: {run.seconds:.1f} s",
                    run.spans(),
                    [(started, "started"), (member, "joined")],
                ),
                (f"two workers: {two[0].seconds:.1f} s", two[0].spans(), []),
            ],
        )

    paths = publish(
        Path(args.out),
        NAME,
        f"Elasticity: a second worker joining a query of {one[0].ntasks} tasks",
        header,
        table,
        plot,
        sections=[
            ("When the second worker came in (median run)", join),
            ("The second worker's start-up, as it logs it", own),
        ],
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(args: argparse.Namespace) -> int:
    run_elasticity(args)
    return 0
