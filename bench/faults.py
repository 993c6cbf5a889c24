"""Fault cost: a worker killed (SIGKILL) at half of a query of many tasks, against
the same query undisturbed.

The query's tasks held by the killed worker are claimed again by the other worker
once it is declared dead: its health port refuses the other worker's probes
(control/detection.py, DUCKFLEET_PROBE_INTERVAL x DUCKFLEET_PROBE_FAILURES), well
before its lease (DUCKFLEET_LEASE_TTL) would expire. The report shows that
detection time: from the SIGKILL to the next claim of the task it held. A
replacement worker is started between runs (not during: this measures the fleet
shrinking).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from bench.fleet import fleet_setup, register, running_fleet, set_workers
from bench.machine import environment
from bench.one_query import Traced, add_heavy_query_arguments, heavy_query, run_traced
from bench.progress import say
from bench.report import Table, median, publish, timelines
from bench.timeline import Timeline

HELP = "fault cost: a worker killed at half of a query, against an undisturbed run"
NAME = "faults"
TABLE = "lineitem_many"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_heavy_query_arguments(p)
    p.add_argument("--runs", type=int, default=3, help="runs of each case (median)")
    p.add_argument("--lease-ttl", type=int, default=5, help="DUCKFLEET_LEASE_TTL (default 5)")


def run_faults(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    folder, sql, expected = heavy_query(args, TABLE)
    calm: list[Traced] = []
    killed: list[tuple[Traced, float, str, int]] = []  # run, kill time, worker, lost runs
    detected: list[float] = []  # seconds from each SIGKILL to its task's next claim
    with running_fleet(2, args.log_dir, per_worker=1, lease_ttl=args.lease_ttl) as fleet:
        setup = fleet_setup(fleet)
        register(fleet, **{TABLE: folder})
        with Timeline(fleet) as tl:
            run_traced(fleet, tl, sql, expected)  # warm-up
            for i in range(args.runs):
                calm.append(run_traced(fleet, tl, sql, expected))
                say(f"undisturbed run {i + 1}/{args.runs}: {calm[-1].seconds:.2f} s")
            half = median([r.seconds for r in calm]) / 2
            for i in range(args.runs):
                set_workers(fleet, 2)
                victim: dict[str, object] = {}

                def kill(started: float, victim: dict[str, object] = victim) -> None:
                    time.sleep(max(0.0, started + half - time.monotonic()))
                    while not (running := tl.running()):
                        time.sleep(0.005)
                    worker, task = running[0].worker, running[0].task
                    pid = fleet.pid_of(worker)
                    assert pid is not None, worker
                    os.kill(pid, signal.SIGKILL)
                    victim.update(worker=worker, task=task, at=time.monotonic() - started)

                run = run_traced(fleet, tl, sql, expected, during=kill)
                at, worker = float(victim["at"]), str(victim["worker"])  # type: ignore[arg-type]
                lost = sum(1 for s in run.spans({worker: at}) if s.lost)
                killed.append((run, at, worker, lost))
                again = next_claim(run, str(victim["task"]), worker, at)
                if again is not None:
                    detected.append(again)
                seen = (
                    "its task not claimed again"
                    if again is None
                    else f"claimed again {again:.2f} s later"
                )
                say(
                    f"killed run {i + 1}/{args.runs}: {run.seconds:.2f} s "
                    f"(kill at {at:.2f} s; {seen})"
                )
            set_workers(fleet, 2)  # reap the last victim's member key before stopping

    t = median([r.seconds for r in calm])
    tk = median([r.seconds for r, *_ in killed])
    detection = median(detected) if detected else None
    table = Table(
        ["case", "seconds", "extra s", "x undisturbed", "tasks", "task runs lost", "detection s"],
        digits={"seconds": 2, "extra s": 2, "x undisturbed": 2, "detection s": 2},
    )
    table.add("undisturbed", t, 0.0, 1.0, calm[0].ntasks, 0, None)
    table.add(
        f"a worker SIGKILLed at half ({half:.1f} s)",
        tk,
        tk - t,
        tk / t,
        killed[0][0].ntasks,
        median([float(lost) for *_, lost in killed]),
        detection,
    )
    each = Table(
        ["run", "killed at s", "seconds", "extra s", "task runs lost"],
        digits={"killed at s": 2, "seconds": 2, "extra s": 2},
    )
    for i, (r, at, _, lost) in enumerate(killed):
        each.add(i + 1, at, r.seconds, r.seconds - t, lost)
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup
    header["query"] = (
        f"a grouped aggregate with {args.work} md5 calls per row (bench/one_query.py "
        f"heavy_sql) over lineitem SF{args.scale:g} in {args.files} equal files: "
        f"{calm[0].ntasks} tasks"
    )
    header["method"] = (
        f"one uncounted warm-up, {args.runs} undisturbed runs, then {args.runs} runs in "
        "which a worker holding a claim is sent SIGKILL at half the undisturbed median; a "
        "new worker is started between runs; every answer checked against DuckDB "
        "in-process; 'task runs lost': claims of the killed worker that ended (expired) "
        "after the kill; 'detection s': from the SIGKILL to the next claim of the task the "
        "killed worker held (median; a run whose task had finished before the kill has none)"
    )
    mid_calm = sorted(calm, key=lambda r: r.seconds)[len(calm) // 2]
    mid_run, mid_at, mid_worker, _ = sorted(killed, key=lambda k: k[0].seconds)[len(killed) // 2]

    def plot(path: Path) -> None:
        timelines(
            path,
            [
                (f"undisturbed: {mid_calm.seconds:.1f} s", mid_calm.spans(), []),
                (
                    f"worker killed at {mid_at:.1f} s: {mid_run.seconds:.1f} s (red: lost)",
                    mid_run.spans({mid_worker: mid_at}),
                    [
                        (mid_at, "SIGKILL"),
                        *([(mid_at + detection, "claimed again")] if detection else []),
                        (mid_at + args.lease_ttl, "lease TTL later"),
                    ],
                ),
            ],
        )

    paths = publish(
        Path(args.out),
        NAME,
        "Fault cost: a worker killed at half of a query",
        header,
        table,
        plot,
        sections=[("Each killed run", each)],
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def next_claim(run: Traced, task: str, worker: str, at: float) -> float | None:
    """Seconds from the kill (`at`, from the query's start) to the next claim of the
    task `worker` held, by another worker; None if it was never claimed again."""
    later = [r.start - run.started - at for r in run.runs if r.task == task and r.worker != worker]
    return min((s for s in later if s >= 0), default=None)


def main(args: argparse.Namespace) -> int:
    run_faults(args)
    return 0
