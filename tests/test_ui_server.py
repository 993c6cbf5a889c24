"""The query page's HTTP server without a browser: on a real etcd, auth off; what
an error looks like (a plain message, never a traceback or a server path)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pyarrow as pa
import pytest

from duckfleet.control import QueryStore
from duckfleet.control.errors import StoreUnavailable
from duckfleet.control.records import MemberInfo, QueryState
from duckfleet.ids import MemberId, QueryId
from duckfleet.planner.plan import Plan, Stage, StageKind, TaskPlan
from duckfleet.ui.access import Logins
from duckfleet.ui.server import QueryPages, UiServer


def fetch(url: str, data: bytes | None = None, method: str | None = None):
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@pytest.fixture
def served(store) -> Iterator[tuple[str, QueryPages]]:
    pages = QueryPages(store, Logins(None))
    server = UiServer(pages, "127.0.0.1", 0).start()
    try:
        yield server.url, pages
    finally:
        server.stop()


def one_task_plan(sql: str) -> Plan:
    task = TaskPlan(id="t0", stage=0, sql=sql)
    return Plan(sql=sql, stages=(Stage(0, StageKind.SINGLE, (task,)),), reason="test")


def test_auth_off_shows_every_query_and_anyone_cancels(served, store):
    url, pages = served
    q = QueryId("q" + str(int(time.time() * 1000)))
    QueryStore(store).publish(q, one_task_plan("SELECT 42"), frontdoor=MemberId("fd"), ttl=60)
    store.client.put(
        store.keys.member("worker", "w1"),
        MemberInfo(MemberId("w1"), "worker", "grpc://h:1", slots=2).to_json(),
    )
    code, headers, body = fetch(url)
    assert code == 200 and "text/html" in headers["Content-Type"]
    assert q in body and "auth off" in body
    code, _, body = fetch(url + "workers")
    assert code == 200 and "w1" in body and "0 / 2" in body
    code, _, body = fetch(f"{url}query/{q}")
    assert code == 200 and 'id="cancel"' in body
    token = pages.tokens.token(pages.logins.viewer(None), q)
    code, _, _ = fetch(f"{url}query/{q}/cancel", f"token={token}".encode())
    assert code == 200  # urllib followed the 303 to the query's page
    status = QueryStore(store).status(q)
    assert status is not None and status.state == QueryState.CANCELLED
    assert status.error == "cancelled on the query page" and status.at > 0


def test_missing_pages_and_queries_are_404(served):
    url, _ = served
    for path in ("nope", "query/none-such", "query/a/b/c"):
        code, _, body = fetch(url + path)
        assert code == 404, path
        assert "Traceback" not in body
    code, _, _ = fetch(url + "query/none-such/cancel", b"token=x")
    assert code == 404
    code, _, body = fetch(url + "query/x/cancel", b"x" * 10_000)
    assert code == 400 and "too large" in body


def test_a_failure_is_a_plain_500_and_etcd_down_a_503(served, monkeypatch):
    url, pages = served

    def broken() -> None:
        raise RuntimeError("/srv/secret/path/module.py exploded")

    monkeypatch.setattr(pages.reader, "queries", broken)
    code, _, body = fetch(url)
    assert code == 500
    assert "the query page failed to answer" in body
    assert "/srv/secret" not in body and "Traceback" not in body and "exploded" not in body

    def down() -> None:
        raise StoreUnavailable("etcd at 127.0.0.1:1 refused the connection")

    monkeypatch.setattr(pages.reader, "queries", down)
    code, headers, body = fetch(url)
    assert code == 503 and headers.get("Retry-After") == "2" and "etcd cannot be reached" in body


def test_pages_forbid_scripts_and_framing(served):
    url, _ = served
    code, headers, _ = fetch(url, method="HEAD")
    assert code == 200
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


def test_the_snapshot_counts_progress_and_says_who_ran_each_task_when(store):
    """control/fleet_snapshot.py on real etcd: done and running tasks of a query,
    each with its worker, rows, bytes and start; the worker's busy slot."""
    from duckfleet.control import Membership, TaskQueue
    from duckfleet.control.fleet_snapshot import DONE, RUNNING_TASK, WAITING, FleetReader
    from duckfleet.control.records import ResultInfo, RunnableTask
    from duckfleet.ids import new_query_id
    from duckfleet.planner.plan import InputBinding

    parts = tuple(TaskPlan(f"t{i}", 0, f"select {i} as x") for i in range(2))
    merge = TaskPlan("t2", 1, "select sum(x) from s0", inputs=(InputBinding("s0", ("t0", "t1")),))
    plan = Plan(
        "SELECT 1", (Stage(0, StageKind.PARTIAL, parts), Stage(1, StageKind.MERGE, (merge,))), "t"
    )
    q = new_query_id()
    qs = QueryStore(store)
    record = qs.publish(q, plan, frontdoor=MemberId("fd"), ttl=60, user="ana")
    member = Membership(
        store, MemberInfo(MemberId("w9"), "worker", "grpc://127.0.0.1:1", slots=2), ttl=5
    ).start()
    try:
        queue = TaskQueue(store)
        rt = lambda t: RunnableTask(q, t, record.created, 0, 0, record.lease, 3)  # noqa: E731
        before = time.time()
        first = queue.claim(rt("t0"), member.info.id, "loc", member.lease_id)
        second = queue.claim(rt("t1"), member.info.id, "loc", member.lease_id)
        assert first is not None and second is not None
        schema = pa.schema([("x", pa.int64())])
        info = ResultInfo(MemberId("w9"), "grpc://127.0.0.1:1", 7, 64, schema)
        assert queue.complete(first, info, member.lease_id, seconds=0.25)

        reader = FleetReader(store)
        (view,) = [v for v in reader.queries() if v.record.id == q]
        assert (view.done, view.running, view.total, view.record.user) == (1, 1, 3, "ana")
        detail = reader.query(q)
        t0, t1, t2 = detail.tasks
        assert (t0.state, t0.worker, t0.rows, t0.bytes, t0.seconds) == (DONE, "w9", 7, 64, 0.25)
        assert t0.started is not None and before <= t0.started <= time.time()
        assert (t1.state, t1.worker, t1.rows) == (RUNNING_TASK, "w9", None)
        assert (t2.state, t2.stage, t2.inputs) == (WAITING, 1, ("t0", "t1"))
        (worker,) = [w for w in reader.workers() if w.info.id == "w9"]
        assert worker.running == ((q, "t1"),)
    finally:
        member.stop()
