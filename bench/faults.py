"""Fault cost: a worker killed (SIGKILL) at half of a query of many tasks, against
the same query undisturbed.

The query's tasks held by the killed worker are claimed again by the other worker
once it is declared dead: its health port refuses the other worker's probes
(control/detection.py, DUCKFLEET_PROBE_INTERVAL x DUCKFLEET_PROBE_FAILURES), well
before its lease (DUCKFLEET_LEASE_TTL) would expire. The report shows that
detection time: from the SIGKILL to the moment the task it held is runnable again
(its claim deleted by the declaration), and, apart, to that task's next claim
(which also waits for a free slot). A replacement worker is started between runs
(not during: this measures the fleet shrinking).

The ideal a killed run is compared with is the one with instant detection: the
work done when the worker died, then the rest on the surviving worker:
`kill time + remaining task seconds on the one surviving slot + the undisturbed
runs' tail` (from the last task's end to the answer), where the remaining task seconds
are the killed run's own successful task runs after the kill (a task re-run on
the survivor takes as long as it took there).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from bench.fleet import fleet_setup, register, running_fleet, set_workers
from bench.machine import environment
from bench.one_query import Traced, add_heavy_query_arguments, heavy_query, run_traced
from bench.progress import say
from bench.report import Table, median, publish, timelines
from bench.timeline import Timeline
from duckfleet.local_fleet import LocalFleet

HELP = "fault cost: a worker killed during a query, against the ideal and an undisturbed run"
NAME = "faults"
TABLE = "lineitem_many"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_heavy_query_arguments(p)
    p.add_argument("--runs", type=int, default=3, help="runs of each case (median)")
    p.add_argument("--lease-ttl", type=int, default=5, help="DUCKFLEET_LEASE_TTL (default 5)")
    p.add_argument(
        "--at",
        default="0.5,0.85",
        help="when to kill, as fractions of the undisturbed median, comma-separated "
        "(default 0.5,0.85: at half, as the issue asks, and near the end, where the "
        "survivor runs out of queued work and detection shows in the query's time)",
    )


@dataclass
class Killed:
    run: Traced
    fraction: float
    at: float  # seconds from the query's start to the SIGKILL
    worker: str
    lost: int  # task runs of the victim that ended after the kill
    ideal: float  # seconds with instant detection
    freed: float | None  # seconds from the kill to the victim's claim being deleted
    again: float | None  # ... to that task's next claim


def run_faults(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    folder, sql, expected = heavy_query(args, TABLE)
    fractions = [float(f) for f in args.at.split(",") if f.strip()]
    calm: list[Traced] = []
    killed: list[Killed] = []
    with running_fleet(2, args.log_dir, per_worker=1, lease_ttl=args.lease_ttl) as fleet:
        setup = fleet_setup(fleet)
        register(fleet, **{TABLE: folder})
        with Timeline(fleet) as tl:
            run_traced(fleet, tl, sql, expected)  # warm-up
            for i in range(args.runs):
                calm.append(run_traced(fleet, tl, sql, expected))
                say(f"undisturbed run {i + 1}/{args.runs}: {calm[-1].seconds:.2f} s")
            t_calm = median([r.seconds for r in calm])
            tail_s = median([tail(r) for r in calm])
            for fraction in fractions:
                for i in range(args.runs):
                    set_workers(fleet, 2)
                    k = kill_run(fleet, tl, sql, expected, fraction, t_calm * fraction, tail_s)
                    killed.append(k)
                    seen = (
                        "its task not claimed again"
                        if k.again is None or k.freed is None
                        else f"freed {k.freed:.2f} s and claimed again {k.again:.2f} s later"
                    )
                    say(
                        f"killed at {fraction:g} run {i + 1}/{args.runs}: {k.run.seconds:.2f} s, "
                        f"ideal {k.ideal:.2f} s (kill at {k.at:.2f} s; {seen})"
                    )
            set_workers(fleet, 2)  # reap the last victim's member key before stopping

    table = Table(
        [
            "case",
            "seconds",
            "ideal s",
            "x ideal",
            "x undisturbed",
            "tasks",
            "task runs lost",
            "detection s",
            "claimed again s",
        ],
        digits={
            "seconds": 2,
            "ideal s": 2,
            "x ideal": 3,
            "x undisturbed": 2,
            "detection s": 2,
            "claimed again s": 2,
        },
    )
    table.add("undisturbed", t_calm, t_calm, 1.0, 1.0, calm[0].ntasks, 0, None, None)
    for fraction in fractions:
        ks = [k for k in killed if k.fraction == fraction]
        tk = median([k.run.seconds for k in ks])
        table.add(
            f"a worker SIGKILLed at {fraction:.0%} ({t_calm * fraction:.1f} s)",
            tk,
            median([k.ideal for k in ks]),
            median([k.run.seconds / k.ideal for k in ks]),
            tk / t_calm,
            ks[0].run.ntasks,
            median([float(k.lost) for k in ks]),
            median_or_none([k.freed for k in ks]),
            median_or_none([k.again for k in ks]),
        )
    each = Table(
        ["at", "killed at s", "seconds", "ideal s", "x ideal", "task runs lost", "detection s"],
        digits={"killed at s": 2, "seconds": 2, "ideal s": 2, "x ideal": 3, "detection s": 2},
    )
    for k in killed:
        each.add(
            f"{k.fraction:.0%}",
            k.at,
            k.run.seconds,
            k.ideal,
            k.run.seconds / k.ideal,
            k.lost,
            k.freed,
        )
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup
    header["query"] = (
        f"a grouped aggregate with {args.work} md5 calls per row (bench/one_query.py "
        f"heavy_sql) over lineitem SF{args.scale:g} in {args.files} equal files: "
        f"{calm[0].ntasks} tasks"
    )
    header["method"] = (
        f"one uncounted warm-up, {args.runs} undisturbed runs, then for each kill point "
        f"{args.runs} runs in which a worker holding a claim is sent SIGKILL at that "
        "fraction of the undisturbed median; a new worker is started between runs; every "
        "answer checked against DuckDB in-process; 'task runs lost': claims of the killed "
        "worker that ended (freed by a declaration or an expired lease) after the kill; "
        "'detection s': from the SIGKILL to the deletion of the killed worker's claim (the "
        "task runnable again); 'claimed again s': to that task's next claim, which also "
        "waits for a free slot; 'ideal s': instant detection, the kill time plus the "
        "killed run's successful task seconds after the kill on the surviving slot, plus "
        "the undisturbed runs' tail from the last task's end to the answer (medians over "
        "runs). At half, the survivor has several tasks queued for longer than a lease, so "
        "detection hides behind them; near the end it does not"
    )
    mid_calm = sorted(calm, key=lambda r: r.seconds)[len(calm) // 2]
    shown = [k for k in killed if k.fraction == fractions[-1]]
    mid = sorted(shown, key=lambda k: k.run.seconds)[len(shown) // 2]

    def plot(path: Path) -> None:
        timelines(
            path,
            [
                (f"undisturbed: {mid_calm.seconds:.1f} s", mid_calm.spans(), []),
                (
                    f"worker killed at {mid.at:.1f} s: {mid.run.seconds:.1f} s (red: lost)",
                    mid.run.spans({mid.worker: mid.at}),
                    [
                        (mid.at, "SIGKILL"),
                        *([(mid.at + mid.freed, "declared dead")] if mid.freed else []),
                        (mid.at + args.lease_ttl, "lease TTL later"),
                    ],
                ),
            ],
        )

    paths = publish(
        Path(args.out),
        NAME,
        "Fault cost: a worker killed during a query",
        header,
        table,
        plot,
        sections=[("Each killed run", each)],
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def kill_run(
    fleet: LocalFleet,
    tl: Timeline,
    sql: str,
    expected: pa.Table,
    fraction: float,
    after: float,
    tail_s: float,
) -> Killed:
    """One run of the query with a worker holding a claim SIGKILLed `after` seconds."""
    victim: dict[str, object] = {}

    def kill(started: float) -> None:
        time.sleep(max(0.0, started + after - time.monotonic()))
        give_up = time.monotonic() + 10.0
        while not (running := tl.running()):
            if time.monotonic() > give_up:  # the query's tasks all ended before
                return
            time.sleep(0.005)
        worker, task = running[0].worker, running[0].task
        pid = fleet.pid_of(worker)
        assert pid is not None, worker
        os.kill(pid, signal.SIGKILL)
        victim.update(worker=worker, task=task, at=time.monotonic() - started)

    run = run_traced(fleet, tl, sql, expected, during=kill)
    if "at" not in victim:
        raise SystemExit(
            f"no task was running at {fraction:.0%} of the query ({after:.2f} s): "
            "choose an earlier --at, or a query of more work (--work, --scale)"
        )
    at, worker, task = float(victim["at"]), str(victim["worker"]), str(victim["task"])  # type: ignore[arg-type]
    return Killed(
        run,
        fraction,
        at,
        worker,
        sum(1 for s in run.spans({worker: at}) if s.lost),
        ideal_seconds(run, worker, at, tail_s),
        claim_freed(run, task, worker, at),
        next_claim(run, task, worker, at),
    )


def median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def claim_freed(run: Traced, task: str, worker: str, at: float) -> float | None:
    """Seconds from the kill to the end of `worker`'s claim of `task` (deleted when
    it was declared dead, or when its lease expired); None if it ended before."""
    ends = [
        r.end - run.started - at
        for r in run.runs
        if r.task == task and r.worker == worker and r.end is not None
    ]
    return min((s for s in ends if s >= 0), default=None)


def tail(run: Traced) -> float:
    """Seconds from the last task's end to the answer."""
    last = max((r.end for r in run.runs if r.end is not None), default=run.started)
    return max(0.0, run.seconds - (last - run.started))


def ideal_seconds(run: Traced, victim: str, at: float, tail_s: float) -> float:
    """The killed run with instant detection: the kill time, then the task seconds
    the surviving worker's one slot still had to run (its runs' time after the
    kill), then the tail."""
    remaining = 0.0
    for r in run.runs:
        if r.worker == victim or r.end is None:
            continue
        start, end = r.start - run.started, r.end - run.started
        remaining += max(0.0, end - max(start, at))
    return at + remaining + tail_s


def next_claim(run: Traced, task: str, worker: str, at: float) -> float | None:
    """Seconds from the kill (`at`, from the query's start) to the next claim of the
    task `worker` held, by another worker; None if it was never claimed again."""
    later = [r.start - run.started - at for r in run.runs if r.task == task and r.worker != worker]
    return min((s for s in later if s >= 0), default=None)


def main(args: argparse.Namespace) -> int:
    run_faults(args)
    return 0
