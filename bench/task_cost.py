"""The per-task fixed cost, measured, and what it is worth in bytes read: the planner's
`task_cost` (planner/settings.py).

1. CPU per task: clients run a grouped count over many 10-row files (one task per
   file plus a merge; the tasks do almost nothing, so the CPU goes to claiming,
   fetching inputs, running a fragment and completing) against a fleet of W workers
   for a fixed time. The CPU time of every worker, the front door and etcd is read
   from /proc before and after; per task = CPU / tasks answered.
2. DuckDB's scan rate: TPC-H Q1 and Q6 over lineitem's Parquet files, DuckDB in this
   process with one thread, CPU seconds from time.process_time: Parquet bytes of the
   table per CPU second (the planner weighs work as the bytes of the tables read).
3. task_cost = a worker's CPU per task x that rate: the bytes of scanning that cost
   the same CPU as one task's fixed overhead on its worker.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from bench import QUERIES_DIR
from bench.datasets import tiny_parts
from bench.fleet import adbc_connect, fetch, fleet_setup, register, running_fleet, tasks_of
from bench.machine import environment
from bench.one_query import reference
from bench.progress import say
from bench.report import Table, grouped_bars, median, publish
from duckfleet.local_fleet import LocalFleet, generate_tpch
from duckfleet.planner.quoting import quote_literal
from duckfleet.planner.settings import PlannerSettings
from duckfleet.table_files import expand_paths
from duckfleet.verify import difference

HELP = "the per-task fixed cost: CPU per trivial task by role, and its worth in bytes read"
NAME = "task_cost"
TABLE = "tiny_parts"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def roles(fleet: LocalFleet) -> dict[str, list[int]]:
    assert fleet.etcd is not None and fleet.etcd.proc is not None
    return {
        "worker": [p.pid for p in fleet.worker_procs if p.poll() is None],
        "front door": [p.pid for p in fleet.frontdoor_procs if p.poll() is None],
        "etcd": [fleet.etcd.proc.pid],
    }


def cpu_by_role(pids: dict[str, list[int]]) -> dict[str, float]:
    return {role: sum(cpu_seconds(p) for p in ps) for role, ps in pids.items()}


def load(
    fleet: LocalFleet, sql: str, expected: pa.Table, clients: int, seconds: float
) -> tuple[int, int]:
    """`clients` threads running `sql` back to back for `seconds`: (right, wrong)."""
    counts = [0, 0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:
            while time.monotonic() < deadline:
                table = fetch(cur, sql)
                with lock:
                    ok = difference(table, expected, ordered=False) is None
                    counts[0 if ok else 1] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts[0], counts[1]


def scan_rate(root: str) -> tuple[Table, float]:
    """Parquet bytes of lineitem per CPU second of a one-thread DuckDB, over Q1 and Q6."""
    files = expand_paths(str(Path(root) / "lineitem"))
    size = sum(os.path.getsize(f) for f in files)
    table = Table(
        ["query", "CPU s (median of 3)", "MB/s per core"],
        digits={"CPU s (median of 3)": 3, "MB/s per core": 1},
    )
    rates = []
    with duckdb.connect(config={"threads": 1}) as con:
        listed = ", ".join(quote_literal(f) for f in files)
        con.execute(f"CREATE VIEW lineitem AS SELECT * FROM read_parquet([{listed}])")
        for n in (1, 6):
            sql = (QUERIES_DIR / f"q{n:02d}.sql").read_text()
            con.sql(sql).fetchall()  # warm: footers and the OS cache
            cpu = []
            for _ in range(3):
                started = time.process_time()
                con.sql(sql).fetchall()
                cpu.append(time.process_time() - started)
            rate = size / median(cpu)
            rates.append(rate)
            table.add(f"q{n:02d}", median(cpu), rate / 1e6)
    return table, median(rates)


def run_task_cost(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    folder = tiny_parts(args.data_dir, args.files)
    sql = f"select part, count(*) as n, sum(id) as s from {TABLE} group by part"
    expected = reference(sql, {TABLE: folder})
    root = generate_tpch(args.data_dir, args.scale, parts=4)
    pack = {"DUCKFLEET_PACK_BYTES": "0"}  # one task per file
    with running_fleet(args.workers, args.log_dir, per_worker=1, env=pack) as fleet:
        setup = fleet_setup(fleet)
        register(fleet, **{TABLE: folder})
        load(fleet, sql, expected, args.clients, 2.0)  # warm-up
        ntasks = tasks_of(fleet, sql) or 0
        pids = roles(fleet)
        before, started = cpu_by_role(pids), time.monotonic()
        answered, wrong = load(fleet, sql, expected, args.clients, args.seconds)
        elapsed = time.monotonic() - started
        spent = {k: v - before[k] for k, v in cpu_by_role(pids).items()}
    if wrong:
        raise SystemExit(f"{wrong} wrong answers")
    tasks = answered * ntasks
    per_task = {k: v / tasks * 1000 for k, v in spent.items()}
    say(", ".join(f"{k} {v:.2f} ms CPU/task" for k, v in per_task.items()))
    rates, rate = scan_rate(root)
    worth = per_task["worker"] / 1000 * rate
    current = PlannerSettings().task_cost
    table = Table(["role", "CPU s", "CPU ms per task", "cores busy"], digits={"CPU ms per task": 2})
    for k, v in spent.items():
        table.add(k, v, per_task[k], v / elapsed)
    table.add("all", sum(spent.values()), sum(per_task.values()), sum(spent.values()) / elapsed)
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup
    header["load"] = (
        f"{args.clients} clients back to back for {args.seconds:g} s: `{sql}` over "
        f"{args.files} 10-row files, {ntasks} tasks per query; {answered} queries "
        f"({tasks} tasks, {tasks / elapsed:.0f} tasks/s), every answer checked"
    )
    header["scan rate"] = (
        f"DuckDB in this process, 1 thread, TPC-H SF{args.scale:g} lineitem Parquet bytes "
        f"per CPU second: median {rate / 1e6:.1f} MB/s"
    )
    notes = [
        f"**task_cost = worker CPU per task x scan rate = {per_task['worker']:.2f} ms x "
        f"{rate / 1e6:.1f} MB/s = {worth / 2**20:.1f} MiB** (planner/settings.py had "
        f"{current / 2**20:.1f} MiB)"
    ]

    def plot(path: Path) -> None:
        grouped_bars(
            path,
            "CPU per trivial task, by process role",
            list(per_task),
            {"CPU ms per task": list(per_task.values())},
            "ms",
        )

    paths = publish(
        Path(args.out),
        NAME,
        "The per-task fixed cost",
        header,
        table,
        plot,
        sections=[("DuckDB's scan rate (one thread)", rates)],
        notes=notes,
    )
    say(notes[0])
    return paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", type=int, default=64, help="10-row files (default 64)")
    p.add_argument("--workers", type=int, default=2, help="workers, 1 slot each (default 2)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--seconds", type=float, default=15.0, help="seconds of load (default 15)")
    p.add_argument("--scale", type=float, default=1.0, help="TPC-H scale of the scan rate")


def main(args: argparse.Namespace) -> int:
    run_task_cost(args)
    return 0
