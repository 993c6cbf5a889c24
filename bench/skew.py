"""Skew: a table whose one file is eight times each of the others (seven small, one
large), against the same rows in equal files, on two workers of one core each.

Makespan is the query's wall time through ADBC; total work is the sum of its task
runs (claim to completion, from a watch on the claims in etcd); ideal is total work /
workers. Each worker's busy time is the sum of its task runs. Splits are whole
files today, so the large file is one task that the other worker cannot share;
with row-group splits (being built) it would spread: this experiment shows it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.datasets import lineitem_parts
from bench.fleet import fleet_setup, register, running_fleet
from bench.machine import environment
from bench.one_query import Traced, heavy_sql, reference, run_traced
from bench.progress import say
from bench.report import Table, median, publish, timelines
from bench.timeline import Timeline, busy_seconds

HELP = "skew: one file eight times the others; makespan against the ideal"
NAME = "skew"
CASES = {  # table -> (label, file weights)
    "lineitem_even": ("8 equal files", [1] * 8),
    "lineitem_skewed": ("7 equal files + 1 eight times larger", [1] * 7 + [8]),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, default=1.0, help="lineitem scale (default 1)")
    p.add_argument("--work", type=int, default=16, help="md5 calls per row (default 16)")
    p.add_argument("--workers", type=int, default=2, help="workers of 1 core (default 2)")
    p.add_argument("--runs", type=int, default=3, help="runs per table (median)")


def run_skew(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    folders = {
        t: lineitem_parts(args.data_dir, args.scale, t, weights)
        for t, (_, weights) in CASES.items()
    }
    traced: dict[str, list[Traced]] = {t: [] for t in CASES}
    with running_fleet(args.workers, args.log_dir, per_worker=1) as fleet:
        setup = fleet_setup(fleet)
        register(fleet, **folders)
        with Timeline(fleet) as tl:
            for t in CASES:
                sql = heavy_sql(t, args.work)
                say(f"{t}: computing the answer with DuckDB in-process")
                expected = reference(sql, {t: folders[t]})
                run_traced(fleet, tl, sql, expected)  # warm-up
                for i in range(args.runs):
                    traced[t].append(run_traced(fleet, tl, sql, expected))
                    say(f"{t}: run {i + 1}/{args.runs}: {traced[t][-1].seconds:.2f} s")

    numbers = ["makespan s", "total work s", "ideal s", "makespan / ideal", "largest task s"]
    table = Table(["table", *numbers, "tasks"], digits=dict.fromkeys(numbers, 2))
    busy = Table(
        ["table", "worker", "tasks", "busy s", "busy / makespan"],
        digits={"busy s": 2, "busy / makespan": 2},
    )
    shown: dict[str, Traced] = {}
    for t, (label, _) in CASES.items():
        runs = sorted(traced[t], key=lambda r: r.seconds)
        mid = shown[t] = runs[len(runs) // 2]
        makespan = median([r.seconds for r in runs])
        work = median([sum(x.seconds for x in r.runs) for r in runs])
        ideal = work / args.workers
        largest = median([max(x.seconds for x in r.runs) for r in runs])
        table.add(label, makespan, work, ideal, makespan / ideal, largest, mid.ntasks)
        for w, seconds in sorted(busy_seconds(mid.runs).items()):
            n = sum(1 for x in mid.runs if x.worker == w)
            busy.add(label, w, n, seconds, seconds / mid.seconds)
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup
    header["query"] = (
        f"a grouped aggregate with {args.work} md5 calls per row (bench/one_query.py "
        f"heavy_sql) over lineitem SF{args.scale:g} rewritten as each table's files; "
        "row groups of 122,880 rows"
    )
    header["method"] = (
        f"one uncounted warm-up run per table, then median of {args.runs}; answers "
        "checked against DuckDB in-process; busy time per worker from the median run"
    )

    def plot(path: Path) -> None:
        timelines(
            path,
            [
                (f"{CASES[t][0]}: makespan {shown[t].seconds:.1f} s", shown[t].spans(), [])
                for t in CASES
            ],
        )

    paths = publish(
        Path(args.out),
        NAME,
        f"Skew: one file eight times the others, on {args.workers} workers",
        header,
        table,
        plot,
        sections=[("Each worker's busy time (median run)", busy)],
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(args: argparse.Namespace) -> int:
    run_skew(args)
    return 0
