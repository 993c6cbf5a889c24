"""python -m bench tpch|planning|latency|all: see bench/__init__.py."""

from __future__ import annotations

import argparse
import logging
import sys

from bench import RESULTS_DIR
from bench.latency import run_latency
from bench.planning import run_planning
from bench.tpch import run_tpch


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
        sp.add_argument("--out", default=str(RESULTS_DIR), help="where results are written")
        sp.add_argument("--log-dir", help="fleet logs (default: a new /tmp/bench-logs-*)")

    def tpch(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor")
        sp.add_argument("--data-dir", default="/tmp/bench-tpch", help="TPC-H Parquet cache")
        sp.add_argument(
            "--queries", help="comma-separated query numbers (default: all 22)", default=None
        )

    t = sub.add_parser("tpch", help="TPC-H: duckfleet vs DuckDB in-process")
    common(t)
    tpch(t)
    t.add_argument("--runs", type=int, default=3, help="warm runs per query and engine")

    pl = sub.add_parser("planning", help="planning time per TPC-H query, cold and warm cache")
    pl.add_argument("--out", default=str(RESULTS_DIR), help="where results are written")
    tpch(pl)
    pl.add_argument("--runs", type=int, default=5, help="timed plans per query and cache")

    lat = sub.add_parser("latency", help="small-query latency and the Flight floor")
    common(lat)
    lat.add_argument("--runs", type=int, default=1000, help="requests per case")

    a = sub.add_parser("all", help="tpch, then latency")
    common(a)
    tpch(a)
    a.add_argument("--runs", type=int, default=3, help="warm runs per TPC-H query and engine")
    a.add_argument("--latency-runs", type=int, default=1000, help="requests per latency case")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    queries = [int(q) for q in args.queries.split(",")] if getattr(args, "queries", None) else None
    if args.command in ("tpch", "all"):
        run_tpch(
            scale=args.scale,
            workers=args.workers,
            runs=args.runs,
            data_dir=args.data_dir,
            out=args.out,
            log_dir=args.log_dir,
            queries=queries,
        )
    if args.command == "planning":
        run_planning(
            scale=args.scale,
            data_dir=args.data_dir,
            out=args.out,
            runs=args.runs,
            queries=queries,
        )
    if args.command in ("latency", "all"):
        run_latency(
            runs=args.runs if args.command == "latency" else args.latency_runs,
            workers=args.workers,
            out=args.out,
            log_dir=args.log_dir,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
