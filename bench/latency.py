"""Small-query latency through the fleet, and the transport floor beneath it.

Cases, each `runs` times after a few uncounted warm-up runs:
* SELECT 1 through ADBC Flight SQL (one connection, execute + fetch each time);
* SELECT * from a 10-row Parquet table registered in the fleet's catalog;
* both again on a fleet with the fast path off (DUCKFLEET_FAST_PATH_BYTES=0), so
  the queue's cost is measured in the same run;
* with ``--frontdoor-server grpc`` (or ``both``), all of that with the grpcio front
  door (DUCKFLEET_FRONTDOOR_SERVER=grpc: flight/grpc_service.py), to see what serving
  PollFlightInfo costs on the latency floor;
* a bare pyarrow.flight DoGet of a one-row table from a tiny in-process Flight
  server: the round trip no Flight service can beat on this machine;
* SELECT 1 through ADBC to a one-row Flight SQL server in this process (GetFlightInfo
  and DoGet, nothing planned or recorded): the floor of any Python Flight SQL
  service under the ADBC client.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.parquet as pq

from bench.fleet import (
    adbc_connect,
    cores_per_worker,
    fetch,
    register,
    running_fleet,
    tasks_of,
)
from bench.machine import environment
from bench.progress import say
from bench.queue import delta, etcd_calls
from bench.report import Table, latency_cdf, percentile, write_markdown
from duckfleet.local_fleet import LocalFleet

SELECT_1 = "SELECT 1"
TINY_TABLE = "bench_tiny"
TINY_SQL = f"SELECT * FROM {TINY_TABLE}"
WARMUP = 10
NAME = "latency"


class OneRowServer(fl.FlightServerBase):
    """Answers every DoGet with the same one-row table."""

    def __init__(self) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.table = pa.table({"x": pa.array([1], pa.int64())})

    def do_get(self, context: fl.ServerCallContext, ticket: fl.Ticket) -> fl.RecordBatchStream:
        return fl.RecordBatchStream(self.table)


class OneRowSqlServer(OneRowServer):
    """A Flight SQL server in its least: every statement's FlightInfo is one endpoint
    on this server whose DoGet is the same one-row table; nothing else is served
    (the ADBC driver's probes at connect are refused). No planning, no etcd: the
    round trips ADBC makes for a query (GetFlightInfo, DoGet), and nothing more."""

    def get_flight_info(
        self, context: fl.ServerCallContext, descriptor: fl.FlightDescriptor
    ) -> fl.FlightInfo:
        if b"CommandStatementQuery" not in (descriptor.command or b""):
            raise fl.FlightServerError("only statements are served here")
        endpoint = fl.FlightEndpoint(b"one-row", [])
        return fl.FlightInfo(self.table.schema, descriptor, [endpoint], 1, -1)


@contextmanager
def one_row_server(kind: type[OneRowServer] = OneRowServer) -> Iterator[OneRowServer]:
    server = kind()
    thread = threading.Thread(target=server.serve, name="one-row-flight", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)


def measure(name: str, runs: int, call: Callable[[], object]) -> list[float]:
    """Milliseconds of each of `runs` calls, after WARMUP uncounted ones."""
    for _ in range(min(WARMUP, runs)):
        call()
    times = []
    every = max(1, runs // 10)
    for i in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
        if (i + 1) % every == 0 or i + 1 == runs:
            say(f"{name}: run {i + 1}/{runs}, p50 so far {percentile(times, 50):.2f} ms")
    return times


def write_tiny_table(directory: Path) -> Path:
    path = directory / TINY_TABLE
    path.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {"id": pa.array(range(10), pa.int64()), "name": [f"row {i}" for i in range(10)]}
    )
    pq.write_table(table, path / "part-0.parquet")
    return path


def run_latency(
    runs: int = 1000,
    workers: int = 2,
    out: str | Path = "bench/results",
    log_dir: str | None = None,
    auth: bool = True,
    servers: tuple[str, ...] = ("arrow",),
) -> dict[str, Path]:
    """Run the latency cases; write latency.md, .csv and .png under `out`. `auth`:
    logins on (the default of `duckfleet up`), the client logged in once. `servers`:
    the front door's Flight server for each round of the fleet cases
    (DUCKFLEET_FRONTDOOR_SERVER: arrow, grpc); a case on a grpc front door says so."""
    header = environment()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[float]] = {}
    tasks: dict[str, int | None] = {}
    calls: dict[str, float | None] = {}
    paths_taken: dict[str, str] = {}
    scratch = Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    try:
        tiny = write_tiny_table(scratch)
        # the same fleet twice: as it runs by default, and with the fast path off, so
        # the queue's cost is measured in the same run
        rounds = [
            (f"{mode}{'' if server == 'arrow' else f', {server} front door'}", server, env)
            for server in servers
            for mode, env in (("", {}), (", queue only", {"DUCKFLEET_FAST_PATH_BYTES": "0"}))
        ]
        for mode, server, env in rounds:
            env = {**env, "DUCKFLEET_FRONTDOOR_SERVER": server}
            with running_fleet(workers, log_dir, auth=auth, env=env) as fleet:
                register(fleet, **{TINY_TABLE: str(tiny)})
                with adbc_connect(fleet.uri, login=fleet) as conn, conn.cursor() as cur:
                    for case, sql in (
                        (f"SELECT 1, ADBC{mode}", SELECT_1),
                        (f"10-row table, ADBC{mode}", TINY_SQL),
                    ):

                        def query(sql: str = sql) -> pa.Table:
                            cur.execute(sql)
                            return cur.fetch_arrow_table()

                        rows = query().num_rows
                        assert rows == (1 if sql == SELECT_1 else 10), (sql, rows)
                        samples[case] = measure(case, runs, query)
                        tasks[case] = tasks_of(fleet, sql)
                        calls[case] = etcd_calls_per_query(fleet, query)
                        explained = fetch(cur, f"EXPLAIN {sql}").to_pylist()
                        paths_taken[case] = next(
                            (r["detail"].split(":")[0] for r in explained if r["kind"] == "path"),
                            "",
                        )
        with one_row_server() as server, fl.connect(f"grpc://127.0.0.1:{server.port}") as client:
            ticket = fl.Ticket(b"one-row")
            case = "1-row DoGet, pyarrow.flight (floor)"
            samples[case] = measure(case, runs, lambda: client.do_get(ticket).read_all())
            tasks[case] = None
            calls[case] = None
            paths_taken[case] = ""
        with (
            one_row_server(OneRowSqlServer) as server,
            adbc_connect(f"grpc://127.0.0.1:{server.port}") as conn,
        ):
            with conn.cursor() as cur:
                case = "SELECT 1, ADBC to a one-row Flight SQL server (floor)"
                samples[case] = measure(case, runs, lambda: fetch(cur, SELECT_1))
                tasks[case] = None
                calls[case] = None
                paths_taken[case] = ""
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    table = Table(
        [
            "case",
            "runs",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "mean ms",
            "max ms",
            "tasks",
            "path",
            "etcd calls / query",
        ],
        digits={
            **{c: 3 for c in ("p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms")},
            "etcd calls / query": 1,
        },
    )
    for case, times in samples.items():
        table.add(
            case,
            len(times),
            percentile(times, 50),
            percentile(times, 95),
            percentile(times, 99),
            sum(times) / len(times),
            max(times),
            tasks[case],
            paths_taken[case],
            calls[case],
        )
    print(table.text())
    paths = {"md": out / f"{NAME}.md", "csv": out / f"{NAME}.csv", "png": out / f"{NAME}.png"}
    table.write_csv(paths["csv"])
    latency_cdf(paths["png"], f"Small-query latency, {runs} runs each", samples)
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = (
        f"duckfleet: 1 front door, {workers} worker(s) x {cores_per_worker(workers)} core(s), "
        f"etcd, all on this machine over loopback; front door server "
        f"{' and '.join(servers)} (DUCKFLEET_FRONTDOOR_SERVER); auth {'on' if auth else 'off'}"
        f"{' (the client logged in once, a bearer token on every call)' if auth else ''}; "
        "ADBC Flight SQL client, one connection, "
        "one cursor, execute + fetch_arrow_table per request; floor: pyarrow.flight client "
        "and server in this process"
    )
    header["method"] = (
        f"{WARMUP} uncounted warm-up requests, then {runs} timed ones per case, one at a "
        "time; percentiles interpolated between closest ranks"
    )
    write_markdown(
        paths["md"],
        "Small-query latency: duckfleet through ADBC, and the Flight floor",
        header,
        table,
        image=paths["png"].name,
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


HELP = "small-query latency through ADBC, and the Flight and ADBC floors"


def etcd_calls_per_query(fleet: LocalFleet, query: Callable[[], object], n: int = 50) -> float:
    """etcd gRPC calls per run of `query`, from etcd's /metrics over `n` runs, less
    the fleet's background calls over an idle stretch as long."""
    assert fleet.etcd is not None
    url = fleet.etcd.url
    started, before = time.monotonic(), etcd_calls(url)
    for _ in range(n):
        query()
    busy = delta(etcd_calls(url), before)
    idle_before = etcd_calls(url)
    time.sleep(time.monotonic() - started)
    idle = delta(etcd_calls(url), idle_before)
    return max(0.0, sum(busy.values()) - sum(idle.values())) / n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--runs", type=int, default=1000, help="requests per case (default 1000)")
    p.add_argument("--no-auth", action="store_true", help="logins off (default: on)")
    p.add_argument(
        "--frontdoor-server",
        choices=("arrow", "grpc", "both"),
        default="arrow",
        help="the front door's Flight server: pyarrow's (arrow, the default), grpcio's "
        "(grpc, which serves PollFlightInfo), or both, one after the other",
    )


def main(args: argparse.Namespace) -> int:
    run_latency(
        runs=args.runs,
        workers=args.workers,
        out=args.out,
        log_dir=args.log_dir,
        auth=not args.no_auth,
        servers=("arrow", "grpc") if args.frontdoor_server == "both" else (args.frontdoor_server,),
    )
    return 0
