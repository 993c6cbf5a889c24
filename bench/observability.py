"""What metrics and tracing cost: TPC-H through duckfleet with both on and with both
off, against DuckDB in-process in the same run.

Each round starts two fleets one after the other, "off" (DUCKFLEET_METRICS_PORT=-1,
no OTLP endpoint) and "on" (every process serves /metrics and exports every span
over OTLP/HTTP to a sink in this process that counts what it receives), and runs
the 22 queries through each with DuckDB's time measured beside it (bench.tpch's
run_queries: a checked run, then warm runs). A round's figure is the total ratio to
DuckDB; the result is the median over the rounds of each mode, and on / off.
"""

from __future__ import annotations

import argparse
import http.server
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.engines import make_engine
from bench.fleet import fleet_setup, register, running_fleet
from bench.machine import cores, environment
from bench.progress import say
from bench.report import Table, grouped_bars, median, publish
from bench.tpch import run_queries, totals
from duckfleet.local_fleet import generate_tpch

NAME = "observability"
HELP = "metrics and tracing on vs off: TPC-H ratio to DuckDB, median of rounds"


class OtlpSink:
    """An OTLP/HTTP endpoint that accepts every export and counts requests and bytes
    (decoding is the trace test's job; here only the exporters' cost matters)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.requests += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @contextmanager
    def serving(self) -> Iterator[OtlpSink]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


MODES = ("off", "on")


def mode_env(mode: str, sink_url: str) -> dict[str, str]:
    if mode == "off":
        return {"DUCKFLEET_METRICS_PORT": "-1"}
    return {"DUCKFLEET_OTLP_ENDPOINT": sink_url}


def run_observability(
    scale: float = 1.0,
    workers: int = 2,
    rounds: int = 3,
    runs: int = 1,
    data_dir: str = "/tmp/bench-tpch",
    out: str | Path = "bench/results",
    log_dir: str | None = None,
) -> dict[str, Path]:
    header = environment()
    root = generate_tpch(data_dir, scale, parts=4)
    threads = cores()
    duckdb = make_engine("duckdb", root, threads)
    queries = list(range(1, 23))
    ratio: dict[str, list[float]] = {m: [] for m in MODES}
    fleet_ms: dict[str, list[float]] = {m: [] for m in MODES}
    duck_ms: dict[str, list[float]] = {m: [] for m in MODES}
    setups: dict[str, str] = {}
    exported = {"requests": 0, "bytes": 0}
    try:
        with OtlpSink().serving() as sink:
            for i in range(rounds):
                for mode in MODES:
                    say(f"round {i + 1}/{rounds}: metrics and tracing {mode}")
                    with running_fleet(workers, log_dir, env=mode_env(mode, sink.url)) as fleet:
                        register(fleet, root)
                        setups[mode] = fleet_setup(fleet)
                        engine = make_engine("duckfleet", root, threads, fleet.uri)
                        try:
                            before = sink.requests
                            results = run_queries(
                                {"duckdb": duckdb, "duckfleet": engine}, fleet, runs, queries
                            )
                        finally:
                            engine.close()
                    row = {r[0]: r for r in totals(results, ["duckdb", "duckfleet"]).rows}
                    ok = row["duckfleet"][1]
                    if ok != f"{len(queries)}/{len(queries)}":
                        raise SystemExit(f"duckfleet answered {ok} queries right ({mode})")
                    fleet_ms[mode].append(float(row["duckfleet"][2] or 0.0))
                    duck_ms[mode].append(float(row["duckfleet"][3] or 0.0))
                    ratio[mode].append(float(row["duckfleet"][4] or 0.0))
                    if mode == "on":
                        if sink.requests == before:
                            raise SystemExit("tracing on, yet no span reached the OTLP sink")
                    say(f"round {i + 1} {mode}: {ratio[mode][-1]:.3f}x DuckDB")
            exported = {"requests": sink.requests, "bytes": sink.bytes}
    finally:
        duckdb.close()

    table = Table(
        ["mode", "ratio per round", "median ratio", "duckfleet ms (median)", "duckdb ms (median)"],
        digits={"median ratio": 3},
    )
    for mode in MODES:
        table.add(
            mode,
            " ".join(f"{r:.3f}" for r in ratio[mode]),
            median(ratio[mode]),
            median(fleet_ms[mode]),
            median(duck_ms[mode]),
        )
    cost = median(ratio["on"]) / median(ratio["off"])
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["data"] = f"TPC-H SF{scale:g} from tpchgen-cli, Parquet, 4 files per table"
    header["fleet"] = setups.get("off", "")
    header["modes"] = (
        "off: DUCKFLEET_METRICS_PORT=-1 and no OTLP endpoint; on: every front door and "
        "worker serves /metrics and exports spans over OTLP/HTTP to a sink in the "
        f"benchmark process ({exported['requests']} exports, {exported['bytes']} bytes)"
    )
    header["method"] = (
        f"{rounds} rounds, each a fresh fleet per mode (off, then on); per fleet the 22 "
        f"queries: one checked run and {runs} warm run(s) per query, DuckDB in-process "
        "beside it; a round's figure is sum of duckfleet medians / sum of DuckDB's"
    )
    notes = [f"**on / off: {cost:.3f}** (median ratio with both on / with both off)"]

    def plot(path: Path) -> None:
        grouped_bars(
            path,
            f"TPC-H SF{scale:g} ratio to DuckDB, metrics and tracing off vs on",
            [f"round {i + 1}" for i in range(rounds)] + ["median"],
            {mode: ratio[mode] + [median(ratio[mode])] for mode in MODES},
            "duckfleet time / DuckDB time",
            hline=1.0,
        )

    paths = publish(
        Path(out),
        NAME,
        f"Metrics and tracing cost, TPC-H SF{scale:g}",
        header,
        table,
        plot,
        notes=notes,
    )
    say(f"on / off = {cost:.3f}; wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    p.add_argument("--workers", type=int, default=2, help="duckfleet workers (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of off then on (default 3)")
    p.add_argument("--runs", type=int, default=1, help="warm runs per query (default 1)")


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    run_observability(
        scale=args.scale,
        workers=args.workers,
        rounds=args.rounds,
        runs=args.runs,
        data_dir=args.data_dir,
        out=args.out,
        log_dir=args.log_dir,
    )
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0
