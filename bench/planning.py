"""Planning time per TPC-H query, with a cold and a warm plan cache; and the plans.

Cold: `plan_query` on the catalog (what a front door pays the first time it sees a
statement, or after the catalog changed). Warm: the same statement answered by the
front door's PlanCache. Both in-process, the catalog described from the same files
the fleet would read, the front door's default settings; medians of `runs`.
Alongside, what the plan is: its stages and tasks, and whether the query reads its
tables in more than one task.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bench.machine import environment
from bench.progress import say
from bench.report import Table, median, write_markdown
from bench.tpch import query_text
from duckfleet.catalog import Catalog
from duckfleet.flight.plan_cache import PlanCache
from duckfleet.local_fleet import TPCH_TABLES, generate_tpch
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.plan import Plan
from duckfleet.table_files import describe_table


def spreads_scans(plan: Plan) -> bool:
    """Whether some stage reads catalog tables in more than one task."""
    return any(len(s.tasks) > 1 and any(t.tables for t in s.tasks) for s in plan.stages)


def run_planning(
    scale: float = 1.0,
    data_dir: str = "/tmp/bench-tpch",
    out: str | Path = "bench/results",
    runs: int = 5,
    queries: list[int] | None = None,
) -> Path:
    queries = queries or list(range(1, 23))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = generate_tpch(data_dir, scale, parts=4)
    catalog = Catalog(tables={t: describe_table(t, str(Path(root) / t)) for t in TPCH_TABLES})
    settings = PlannerSettings()
    table = Table(
        ["query", "cold ms", "warm ms", "stages", "tasks", "split", "plan"],
        digits={"cold ms": 1, "warm ms": 3},
    )
    split = 0
    for n in queries:
        sql = query_text(n)
        cold, warm = [], []
        plan = plan_query(sql, catalog, settings)  # once before timing: imports, caches
        for _ in range(runs):
            started = time.perf_counter()
            plan = plan_query(sql, catalog, settings)
            cold.append((time.perf_counter() - started) * 1000)
        cache = PlanCache(8)
        cache.plan(sql, catalog, settings, plan_query)
        for _ in range(runs):
            started = time.perf_counter()
            cache.plan(sql, catalog, settings, plan_query)
            warm.append((time.perf_counter() - started) * 1000)
        spread = spreads_scans(plan)
        split += spread
        table.add(
            f"q{n:02d}",
            median(cold),
            median(warm),
            ", ".join(f"{s.kind} x{len(s.tasks)}" for s in plan.stages),
            len(plan.tasks),
            "yes" if spread else "no",
            plan.reason,
        )
        say(f"q{n:02d}: cold {median(cold):.1f} ms, warm {median(warm):.3f} ms, {plan.reason}")
    totals = [sum(float(r[i] or 0) for r in table.rows) for i in (1, 2)]
    table.add("total", totals[0], totals[1], "", None, f"{split}/{len(queries)}", "")
    print(table.text())
    path = out / f"planning_sf{scale:g}.md"
    header = environment()
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["method"] = (
        f"TPC-H SF{scale:g} (tpchgen-cli, 4 files per table) described as the catalog; "
        f"front door default settings; median of {runs} runs per query; cold = plan_query, "
        "warm = the front door's PlanCache; split = reads its tables in more than one task"
    )
    write_markdown(path, f"Planning TPC-H SF{scale:g}: cold and warm plan cache", header, table)
    table.write_csv(path.with_suffix(".csv"))
    say(f"wrote {path}")
    return path


HELP = "planning time per TPC-H query, cold and with a warm plan cache"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    p.add_argument("--runs", type=int, default=5, help="timed plans per query and cache")
    p.add_argument("--queries", help="comma-separated query numbers (default: all 22)")


def main(args: argparse.Namespace) -> int:
    queries = [int(q) for q in args.queries.split(",")] if args.queries else None
    run_planning(args.scale, args.data_dir, args.out, args.runs, queries)
    return 0
