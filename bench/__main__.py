"""python -m bench <experiment>|all: see bench/__init__.py."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from bench import EXPERIMENTS, RESULTS_DIR
from bench.progress import say


def module(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{EXPERIMENTS[name]}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", default=str(RESULTS_DIR), help="where results are written")
        sp.add_argument("--log-dir", help="fleet logs (default: a new /tmp/bench-logs-*)")
        sp.add_argument(
            "--data-dir", default="/tmp/bench-tpch", help="TPC-H Parquet and derived tables"
        )

    for name in EXPERIMENTS:
        m = module(name)
        sp = sub.add_parser(name, help=m.HELP, description=m.HELP)
        common(sp)
        m.add_arguments(sp)
    a = sub.add_parser("all", help="every experiment with its defaults, one after another")
    common(a)
    a.add_argument("--scale", type=float, default=1.0, help="TPC-H scale of `tpch` (default 1)")
    a.add_argument("--skip", default="", help="comma-separated experiments not to run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.command != "all":
        return int(module(args.command).main(args))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    status = 0
    for name in EXPERIMENTS:
        if name in skip:
            continue
        say(f"=== {name}")
        common = ["--out", args.out, "--data-dir", args.data_dir]
        common += ["--log-dir", args.log_dir] if args.log_dir else []
        common += ["--scale", str(args.scale)] if name == "tpch" else []
        try:
            status |= int(module(name).main(parser().parse_args([name, *common])))
        except Exception:  # the other experiments still run; the exit status says so
            logging.exception("experiment %s failed", name)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
