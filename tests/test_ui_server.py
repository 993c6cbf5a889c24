"""The query page's HTTP server without a browser: on a real etcd, auth off; what
an error looks like (a plain message, never a traceback or a server path)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

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
