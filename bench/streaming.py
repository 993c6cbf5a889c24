"""Result streaming: `SELECT * FROM lineitem` through ADBC, in MB/s of Arrow data
received, against a raw pyarrow.flight DoGet of the same table from one process
(a Flight server holding lineitem in memory, in this process): the transport's
ceiling on this machine.

The fleet answers with one endpoint per result partition, located at the worker
that holds it; ADBC fetches them. MB are 10^6 bytes of Arrow buffers (Table.nbytes)
as received: the fleet sends DuckDB's Arrow types, the floor pyarrow's reading of
the Parquet files, so rows/s compares the two as well.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.parquet as pq

from bench.fleet import adbc_connect, fetch, fleet_setup, register, running_fleet, tasks_of
from bench.machine import environment
from bench.progress import say
from bench.report import Table, grouped_bars, median, publish
from duckfleet.local_fleet import generate_tpch
from duckfleet.table_files import expand_paths

HELP = "result streaming: SELECT * of lineitem through ADBC vs raw Flight DoGet, MB/s"
NAME = "streaming"
SQL = "SELECT * FROM lineitem"
MAX_MESSAGE_BYTES = 1 << 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, default=1.0, help="TPC-H scale (default 1)")
    p.add_argument("--workers", type=int, default=2, help="workers (default 2)")
    p.add_argument("--runs", type=int, default=2, help="timed runs after a warm-up (median)")


class TableServer(fl.FlightServerBase):
    """Answers every DoGet with the same table."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.table = table

    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.RecordBatchStream:
        return fl.RecordBatchStream(self.table)


@contextmanager
def table_server(table: pa.Table) -> Iterator[TableServer]:
    server = TableServer(table)
    thread = threading.Thread(target=server.serve, name="table-flight", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)


def timed_runs(runs: int, fetch_all: Callable[[], pa.Table], label: str) -> tuple[list[float], int]:
    """Seconds of each of `runs` fetches after one warm-up, and the bytes received."""
    fetch_all()
    times, size = [], 0
    for i in range(runs):
        started = time.perf_counter()
        table = fetch_all()
        times.append(time.perf_counter() - started)
        size = table.nbytes
        say(f"{label}: run {i + 1}/{runs}: {size / 1e6 / times[-1]:.0f} MB/s")
        del table
    return times, size


def run_streaming(args: argparse.Namespace) -> dict[str, Path]:
    header = environment()
    root = generate_tpch(args.data_dir, args.scale, parts=4)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in expand_paths(f"{root}/lineitem"))
    results: dict[str, tuple[list[float], int, int | None]] = {}
    notes: list[str] = []
    with running_fleet(args.workers, args.log_dir) as fleet:
        setup = fleet_setup(fleet)
        register(fleet, root)
        with adbc_connect(fleet.uri) as conn, conn.cursor() as cur:
            try:
                fetch(cur, SQL)
                limit = None
            except adbc_driver_manager.Error as exc:
                # workers send DuckDB's record batches whole; one may exceed the
                # driver's default 16 MiB gRPC message limit
                limit = MAX_MESSAGE_BYTES
                message = str(exc).strip().splitlines()[0][:300]
                notes.append(
                    f"With the ADBC driver's default settings the query FAILS: `{message}`. "
                    f"The timings use a client that accepts messages up to {limit >> 20} MiB "
                    "(`adbc.flight.sql.client_option.with_max_msg_size`)."
                )
                say(f"default ADBC client failed ({message}); measuring with a larger limit")
        with adbc_connect(fleet.uri, max_message_bytes=limit) as conn, conn.cursor() as cur:
            times, size = timed_runs(args.runs, lambda: fetch(cur, SQL), "duckfleet ADBC")
            results["duckfleet, ADBC Flight SQL"] = (times, size, tasks_of(fleet, SQL))
    table = pq.read_table(f"{root}/lineitem")
    with table_server(table) as server, fl.connect(f"grpc://127.0.0.1:{server.port}") as client:
        ticket = fl.Ticket(b"lineitem")
        times, size = timed_runs(
            args.runs, lambda: client.do_get(ticket).read_all(), "pyarrow.flight DoGet"
        )
        results["raw pyarrow.flight DoGet, one process (floor)"] = (times, size, 1)
    del table

    out = Table(
        ["case", "rows", "MB", "seconds", "MB/s", "M rows/s", "endpoints"],
        digits={"MB": 1, "seconds": 2, "MB/s": 0, "M rows/s": 2},
    )
    for case, (times, size, endpoints) in results.items():
        s = median(times)
        out.add(case, rows, size / 1e6, s, size / 1e6 / s, rows / 1e6 / s, endpoints)
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = (
        f"duckfleet: {setup}; client ADBC Flight SQL, one connection, "
        "fetch_arrow_table; floor: pyarrow.flight server and client in this process"
    )
    header["data"] = f"TPC-H SF{args.scale:g} lineitem, {rows:,} rows, 4 Parquet files"
    header["method"] = f"one uncounted warm-up, then median of {args.runs} runs per case"

    def plot(path: Path) -> None:
        grouped_bars(
            path,
            f"SELECT * FROM lineitem (SF{args.scale:g}): MB/s received",
            [c.split(",")[0] for c in results],
            {"MB/s": [r[4] for r in out.rows]},  # type: ignore[misc]
            "MB/s (10^6 bytes of Arrow data)",
        )

    paths = publish(
        Path(args.out),
        NAME,
        "Result streaming: SELECT * FROM lineitem",
        header,
        out,
        plot,
        notes=notes,
    )
    for note in notes:
        print(note)
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(args: argparse.Namespace) -> int:
    run_streaming(args)
    return 0
