"""Observing the fleet on real processes, one fleet for the module.

Traces: TPC-H Q9 through a front door and two workers, the spans exported over
OTLP/HTTP to a tiny collector running in this test, which decodes them with
opentelemetry-proto's ExportTraceServiceRequest.

CLI progress (duckfleet/progress.py): the task counts read from etcd while a query
runs, the bar and the step log on a terminal and off one."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import adbc_driver_flightsql.dbapi as flightsql
import pytest
from fleet_fixture import SLOW, reference, run_in_thread, start_fleet
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tpch_data import is_ordered, tpch_query

from duckfleet import tracing
from duckfleet.control import QueryStore
from duckfleet.control.records import QueryRecord
from duckfleet.local_fleet import TPCH_TABLES
from duckfleet.progress import EtcdQueryProgress, QueryProgress, Steps, TaskCount, describe
from duckfleet.verify import assert_same_result


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    pid: int
    attributes: dict[str, object]


class Collector:
    """POST /v1/traces on 127.0.0.1: every span received, decoded."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.add(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, request: ExportTraceServiceRequest) -> None:
        out = []
        for rs in request.resource_spans:
            res = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append(
                        ExportedSpan(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            str(res.get("service.name", "")),
                            int(res.get("process.pid", 0)),  # type: ignore[call-overload]
                            {a.key: _value(a.value) for a in s.attributes},
                        )
                    )
        with self.lock:
            self.spans.extend(out)

    def wait_for(self, ok, timeout: float = 30.0) -> list[ExportedSpan]:
        """Poll until ``ok(spans)`` holds (exports come in batches, every 100 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                spans = list(self.spans)
            if ok(spans):
                return spans
            assert time.monotonic() < deadline, (
                f"spans never arrived: {sorted({s.name for s in spans})}"
            )
            time.sleep(0.1)


def _value(v) -> object:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()


@pytest.fixture(scope="module")
def traced_fleet(etcd, tpch_dir, tmp_path_factory, collector):
    env = {
        "DUCKFLEET_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # Q9 split into several tasks, through the queue: spans on both workers
        "DUCKFLEET_SPLIT_JOINS": "always",
    }
    f = start_fleet(etcd, str(tpch_dir), str(tmp_path_factory.mktemp("traced-logs")), extra_env=env)
    try:
        yield f
    finally:
        f.stop()


def _run(uri: str, sql: str, traceparent: str | None = None):
    kwargs = {}
    if traceparent:
        kwargs["adbc.flight.sql.rpc.call_header.traceparent"] = traceparent
    with flightsql.connect(uri, db_kwargs=kwargs) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _query_span(spans: list[ExportedSpan], trace_id: str) -> ExportedSpan | None:
    found = [s for s in spans if s.trace_id == trace_id and s.name == "query"]
    return found[0] if found else None


def test_q9_is_one_trace_from_the_client_through_every_worker(traced_fleet, tpch_dir, collector):
    sql = tpch_query(9)
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    table = _run(traced_fleet.uri, sql, f"00-{trace_id}-{client_span}-01")
    assert_same_result(table, reference(tpch_dir, sql), ordered=is_ordered(sql))

    def complete(spans: list[ExportedSpan]) -> bool:
        query = _query_span(spans, trace_id)
        if query is None:
            return False
        q = query.attributes.get("duckfleet.query_id")
        ours = [s for s in spans if s.attributes.get("duckfleet.query_id") == q]
        commits = [s for s in ours if s.name == "commit"]
        tasks = [s for s in ours if s.name == "task"]
        doget = [s for s in ours if s.name == "DoGet" and s.service == "duckfleet-worker"]
        return bool(tasks) and len(commits) >= len(tasks) and bool(doget)

    spans = collector.wait_for(complete)
    query = _query_span(spans, trace_id)
    assert query is not None and query.service == "duckfleet-frontdoor"
    q = query.attributes["duckfleet.query_id"]
    ours = [s for s in spans if s.attributes.get("duckfleet.query_id") == q]

    # every span of the query is in the client's trace
    assert {s.trace_id for s in ours} == {trace_id}
    by_id = {s.span_id: s for s in spans if s.trace_id == trace_id}
    # the front door's call span continues the client's span; the query is its child
    call = by_id[query.parent_id]
    assert call.name == "GetFlightInfo" and call.parent_id == client_span
    for name in ("plan", "publish", "wait"):
        (step,) = [s for s in spans if s.trace_id == trace_id and s.name == name]
        assert step.parent_id == query.span_id, name
        assert step.service == "duckfleet-frontdoor"

    # tasks ran in the worker processes, as children of the query's span
    tasks = [s for s in ours if s.name == "task"]
    assert len(tasks) >= 2
    assert {t.parent_id for t in tasks} == {query.span_id}
    assert {t.service for t in tasks} == {"duckfleet-worker"}
    assert query.pid not in {t.pid for t in tasks}
    assert len({t.pid for t in tasks}) == 2, "both workers ran tasks of Q9"
    task_ids = {t.span_id for t in tasks}
    for step in ("fetch inputs", "run", "commit"):
        steps = [s for s in ours if s.name == step]
        assert len(steps) == len(tasks), step
        assert {s.parent_id for s in steps} <= task_ids, step
    # the client's DoGet of the results at the workers carries its header; a worker
    # fetching another's result as its input (on a fetch thread) joins the query's span
    gets = [s for s in ours if s.name == "DoGet"]
    assert {g.service for g in gets} == {"duckfleet-worker"}
    assert client_span in {g.parent_id for g in gets}
    fetches = {s.span_id for s in ours if s.name == "fetch inputs"}
    assert {g.parent_id for g in gets} <= {client_span, query.span_id} | fetches


def test_without_a_client_header_the_workers_doget_joins_the_querys_trace(
    traced_fleet, tpch_dir, collector
):
    sql = "SELECT l_returnflag, count(*) AS n FROM lineitem GROUP BY 1 ORDER BY 1"
    table = _run(traced_fleet.uri, sql)
    assert_same_result(table, reference(tpch_dir, sql), ordered=True)

    def complete(spans: list[ExportedSpan]) -> bool:
        queries = [
            s for s in spans if s.name == "query" and s.attributes.get("db.statement") == sql
        ]
        if not queries:
            return False
        q = queries[0].attributes["duckfleet.query_id"]
        return any(s.name == "DoGet" and s.attributes.get("duckfleet.query_id") == q for s in spans)

    spans = collector.wait_for(complete)
    (query,) = [s for s in spans if s.name == "query" and s.attributes.get("db.statement") == sql]
    q = query.attributes["duckfleet.query_id"]
    ours = [s for s in spans if s.attributes.get("duckfleet.query_id") == q]
    assert {s.trace_id for s in ours} == {query.trace_id}
    by_id = {s.span_id: s for s in spans}
    root = by_id[query.parent_id]
    assert root.name == "GetFlightInfo" and root.parent_id == ""  # a new trace
    # the client's DoGet, made when it ended, a child of the query's span; input
    # fetches between workers (if the query ran as several tasks) of their task's
    gets = [s for s in ours if s.name == "DoGet"]
    assert gets and {g.service for g in gets} == {"duckfleet-worker"}
    assert query.span_id in {g.parent_id for g in gets}
    fetches = {s.span_id for s in ours if s.name == "fetch inputs"}
    assert {g.parent_id for g in gets} <= {query.span_id} | fetches


def test_a_fast_path_query_is_one_trace_through_the_offer(traced_fleet, tpch_dir, collector):
    sql = "SELECT n_regionkey, count(*) AS n FROM nation GROUP BY 1 ORDER BY 1"
    trace_id = secrets.token_hex(16)
    table = _run(traced_fleet.uri, sql, f"00-{trace_id}-{secrets.token_hex(8)}-01")
    assert_same_result(table, reference(tpch_dir, sql), ordered=True)

    def complete(spans: list[ExportedSpan]) -> bool:
        names = {s.name for s in spans if s.trace_id == trace_id}
        return {"fast path offer", "DoAction offer", "run", "commit", "DoGet"} <= names

    spans = [s for s in collector.wait_for(complete) if s.trace_id == trace_id]
    (query,) = [s for s in spans if s.name == "query"]
    (offer,) = [s for s in spans if s.name == "fast path offer"]
    (taken,) = [s for s in spans if s.name == "DoAction offer"]
    (ran,) = [s for s in spans if s.name == "run"]
    (commit,) = [s for s in spans if s.name == "commit"]
    assert offer.parent_id == query.span_id and offer.service == "duckfleet-frontdoor"
    # the offer call carried the front door's span; the worker ran it inside the call
    assert taken.parent_id == offer.span_id and taken.service == "duckfleet-worker"
    assert ran.parent_id == taken.span_id
    # committed after the answer, on another thread: a child of the query's span
    assert commit.parent_id == query.span_id and commit.service == "duckfleet-worker"
    assert not [s for s in spans if s.name == "publish"]


def test_the_query_record_carries_the_traceparent_only_when_traced():
    base = {
        "id": "q1",
        "sql": "SELECT 1",
        "created": 1.0,
        "lease": 7,
        "outputs": ("t0",),
        "ntasks": 1,
        "frontdoor": "frontdoor-1",
    }
    plain = QueryRecord(**base)  # type: ignore[arg-type]
    assert "traceparent" not in plain.to_json()  # as before tracing: old readers read it
    tp = f"00-{'ab' * 16}-{'cd' * 8}-01"
    traced = QueryRecord(**base, traceparent=tp)  # type: ignore[arg-type]
    assert QueryRecord.from_json(traced.to_json()) == traced
    assert QueryRecord.from_json(plain.to_json()).traceparent == ""


def test_off_by_default_and_endpoints_from_the_environment():
    assert not tracing.enabled()  # this test process configured nothing
    assert tracing.current_traceparent() == ""
    with tracing.span("nothing") as s:
        assert s is None
    assert tracing.endpoint_from_env({}) == ""
    assert tracing.endpoint_from_env({"DUCKFLEET_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert tracing.endpoint_from_env(env) == "http://c:4318/v1/traces"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://t:1/x"
    assert tracing.endpoint_from_env(env) == "http://t:1/x"
    env["DUCKFLEET_OTLP_ENDPOINT"] = "http://d:2"
    assert tracing.endpoint_from_env(env) == "http://d:2/v1/traces"
    assert tracing.parse_traceparent("garbage") is None
    assert tracing.parse_traceparent(f"00-{'ab' * 16}-{'cd' * 8}-01") is not None


# --- CLI progress ---------------------------------------------------------------------


def test_task_counts_of_a_running_query_come_from_etcd(traced_fleet, tpch_dir):
    since = time.time()
    thread, out = run_in_thread(traced_fleet.uri, SLOW)
    progress = EtcdQueryProgress(traced_fleet.store(), SLOW, since)
    seen: list[TaskCount] = []
    try:
        deadline = time.monotonic() + 60
        while thread.is_alive() or not seen or seen[-1].done < seen[-1].total:
            count = progress.poll()
            if count is not None:
                seen.append(count)
            assert time.monotonic() < deadline, seen[-3:]
            time.sleep(0.02)
        thread.join()
        assert "error" not in out, out
        # what the bar showed is what etcd says the query was
        record = QueryStore(progress.store).record(progress.query_id)
        assert record.sql.strip() == SLOW.strip()
        assert {c.total for c in seen} == {record.ntasks} and record.ntasks >= 2
        dones = [c.done for c in seen]
        assert dones == sorted(dones) and dones[-1] == record.ntasks
        assert seen[-1].fraction == 1.0
        # a query sent before the client started is not taken for its own
        assert EtcdQueryProgress(traced_fleet.store(), SLOW, time.time() + 5).poll() is None
    finally:
        progress.close()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Counting:
    def __init__(self) -> None:
        self.polls = 0
        self.closed = False

    def poll(self) -> TaskCount | None:
        self.polls += 1
        return TaskCount(min(self.polls, 4), 4)

    def close(self) -> None:
        self.closed = True


def test_query_progress_shows_a_bar_on_a_terminal_only_after_the_delay():
    source = _Counting()
    term = _Terminal()
    with QueryProgress(lambda: source, stream=term, delay=0.05, interval=0.01) as shown:
        time.sleep(0.3)
    assert shown.shown and source.polls >= 2 and source.closed
    assert "tasks" in term.getvalue()

    opened: list[int] = []  # a query that answers within the delay: nothing at all
    term = _Terminal()
    with QueryProgress(lambda: opened.append(1), stream=term, delay=5) as quick:
        pass
    assert not quick.shown and not opened and term.getvalue() == ""

    plain = io.StringIO()  # not a terminal: nothing, whatever the query takes
    with QueryProgress(lambda: opened.append(1), stream=plain, delay=0) as piped:
        time.sleep(0.1)
    assert not piped.shown and not opened and plain.getvalue() == ""

    term = _Terminal()  # no etcd: an elapsed-time spinner that says so
    with QueryProgress(lambda: None, stream=term, delay=0, interval=0.01):
        time.sleep(0.2)
    assert "etcd is not reachable" in term.getvalue()


def test_describe_and_fraction():
    assert describe(None, 2.04) == "running, 2.0s"
    assert "etcd is not reachable" in describe(None, 2.0, reachable=False)
    assert describe(TaskCount(3, 8), 1.0) == "3/8 tasks, 1.0s"
    assert TaskCount(3, 8).fraction == 3 / 8
    assert TaskCount(0, 0).fraction == 0.0
    assert TaskCount(9, 8).fraction == 1.0


def test_steps_log_one_line_each_off_a_terminal_and_draw_a_bar_on_one():
    plain = io.StringIO()
    with Steps("TPC-H scale 1", 2, stream=plain) as steps:
        steps.step("generating lineitem")
        steps.step("registering lineitem")
    assert plain.getvalue().splitlines() == [
        "TPC-H scale 1: step 1/2: generating lineitem",
        "TPC-H scale 1: step 2/2: registering lineitem",
    ]
    term = _Terminal()
    with Steps("TPC-H scale 1", 2, stream=term) as steps:
        steps.step("generating lineitem")
        steps.step("registering lineitem")
    assert "2/2" in term.getvalue() and "step 1/2" not in term.getvalue()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duckfleet.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_cli_query_on_a_terminal_shows_its_tasks(traced_fleet, tpch_dir):
    """`duckfleet query` with stderr on a pseudo-terminal: the bar, with the task
    counts of the query read from etcd, then the result on stdout."""
    import pty

    env = {"DUCKFLEET_ETCD": traced_fleet.etcd_url, "DUCKFLEET_NAMESPACE": traced_fleet.namespace}
    master, slave = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "duckfleet.cli", "query", SLOW, "--uri", traced_fleet.uri],
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, **env, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(slave)
    screen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed its end
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=120)
    took = time.monotonic() - started
    reader.join(5)
    os.close(master)
    assert proc.returncode == 0
    assert "rows)" in stdout.decode()
    text = screen.decode(errors="replace")
    if took < 2.5:  # it answered before the bar could show any count
        pytest.skip(f"the query took {took:.1f}s here, too short to see the bar")
    counts = re.findall(r"(\d+)/(\d+) tasks", text)
    assert counts, text[-500:]
    assert len({total for _, total in counts}) == 1 and int(counts[0][1]) >= 2


def test_cli_query_and_demo_data_off_a_terminal(traced_fleet, tmp_path):
    env = {"DUCKFLEET_ETCD": traced_fleet.etcd_url, "DUCKFLEET_NAMESPACE": traced_fleet.namespace}
    # a query of a few seconds (SLOW with one cross join less)
    medium = SLOW.replace(", region r2", "")
    done = _cli("query", medium, "--uri", traced_fleet.uri, env=env)
    assert done.returncode == 0, done.stderr
    assert "rows)" in done.stdout
    assert done.stderr == ""  # stderr is a pipe: no bar, no spinner, nothing

    data = tmp_path / "demo"
    env["DUCKFLEET_NAMESPACE"] = traced_fleet.namespace + "-demo"
    done = _cli("demo-data", "--scale", "0.01", "--data-dir", str(data), env=env)
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stderr.splitlines() if ": step " in line]
    total = 2 * len(TPCH_TABLES)
    assert [s.split(": ")[1] for s in steps] == [f"step {i}/{total}" for i in range(1, total + 1)]
    generated = [s.split(": ")[2] for s in steps[: len(TPCH_TABLES)]]  # as they were written
    assert sorted(generated) == sorted(f"generated {t}" for t in TPCH_TABLES)
    registered = [s.split(": ")[2] for s in steps[len(TPCH_TABLES) :]]
    assert registered == [f"registering {t}" for t in TPCH_TABLES]
    assert all((data / "sf0.01" / t).is_dir() for t in TPCH_TABLES)
