"""The query page's pure parts: records to HTML (ui/render.py), who sees what and
the login check (ui/access.py), the --listen flag, and its layering."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from duckfleet.auth import Unauthenticated
from duckfleet.auth.users import UserDirectory, add_user
from duckfleet.control.fleet_snapshot import (
    DONE,
    RUNNING_TASK,
    WAITING,
    QueryDetail,
    QueryView,
    WorkerView,
)
from duckfleet.control.fleet_snapshot import TaskView as T
from duckfleet.control.records import MemberInfo, QueryRecord, QueryState, QueryStatus
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.ui import render
from duckfleet.ui.access import NOBODY_CHECKS, CancelTokens, Logins, Viewer, basic_credentials
from duckfleet.ui.command import ListenError, parse_listen

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert('x')</script>&\""
ADMIN = Viewer("root", True)
ANA = Viewer("ana", False)


def record(q: str = "q1", user: str = "ana", sql: str = "SELECT 1", created: float = 100.0):
    return QueryRecord(
        id=QueryId(q),
        sql=sql,
        created=created,
        lease=1,
        outputs=(TaskId("t2"),),
        ntasks=3,
        frontdoor=MemberId("fd-1"),
        user=user,
    )


def view(state=QueryState.RUNNING, done=1, at=0.0, **kw) -> QueryView:
    return QueryView(record(**kw), QueryStatus(state, at=at), done=done, running=1)


def detail(state=QueryState.RUNNING, **kw) -> QueryDetail:
    tasks = (
        T(TaskId("t0"), 0, DONE, "SELECT a FROM x", (), "w-a", 10, 2048, 1.5, 101.0),
        T(TaskId("t1"), 0, RUNNING_TASK, "SELECT b FROM x", (), "w-b", started=102.0),
        T(TaskId("t2"), 1, WAITING, "SELECT * FROM t0, t1", (TaskId("t0"), TaskId("t1"))),
    )
    return QueryDetail(view(state, **kw), tasks)


class Tags(HTMLParser):
    """Every start tag, and the text, of a page: proves it parses as HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parsed(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    return t


def test_list_page_shows_user_state_elapsed_progress_and_escapes_sql():
    html = render.queries_page(
        [view(sql=EVIL, user="ana"), view(QueryState.FINISHED, done=3, at=103.0, q="q2")],
        ADMIN,
        now=112.5,
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;" in html
    tags = parsed(html)
    assert [a["href"] for t, a in tags.tags if t == "a" and a["href"].startswith("/query/")] == [
        "/query/q1",
        "/query/q2",
    ]
    text = " ".join(tags.text)
    assert "12.5 s" in text  # running: now - created
    assert "3.0 s" in text  # finished: at - created
    assert "1 / 3" in text and "3 / 3" in text
    assert "Running (1)" in text and "Recent (1)" in text
    assert not any(t == "script" for t, _ in tags.tags)


def test_query_page_has_stages_tasks_timeline_and_a_cancel_form_for_admins_only():
    html = render.query_page(detail(sql=EVIL), ADMIN, now=104.0, cancel_token="tok")
    assert "<script>" not in html
    tags = parsed(html)
    forms = [a for t, a in tags.tags if t == "form"]
    assert forms == [{"method": "post", "action": "/query/q1/cancel"}]
    assert ("input", {"type": "hidden", "name": "token", "value": "tok"}) in tags.tags
    rows = [a["data-task"] for t, a in tags.tags if t == "tr" and "data-task" in a]
    assert rows == ["t0", "t1", "t2"]
    text = " ".join(tags.text)
    assert "Stage 0 (2 tasks)" in text and "Stage 1 (1 task)" in text
    assert "w-a" in text and "2.0 KiB" in text and "1.5 s" in text
    rects = [a for t, a in tags.tags if t == "rect"]
    assert len(rects) == 2  # the waiting task has not started: no bar
    # t0 started 1 s after the query on a 4 s axis (now - created) of 740 px
    assert float(rects[0]["x"]) == pytest.approx(150 + 740 / 4, abs=0.1)
    assert float(rects[0]["width"]) == pytest.approx(740 * 1.5 / 4, abs=0.1)
    assert float(rects[1]["width"]) == pytest.approx(740 * 2 / 4, abs=0.1)  # running: to now

    as_user = render.query_page(detail(), ANA, now=104.0, cancel_token="tok")
    assert "<form" not in as_user and "Cancel" not in as_user
    ended = render.query_page(detail(QueryState.CANCELLED, at=105.0), ADMIN, now=200.0)
    assert "<form" not in ended and "http-equiv" not in ended  # no refresh once ended


def test_workers_page_shows_slots_busy_and_free():
    w = WorkerView(
        MemberInfo(MemberId("w-" + EVIL), "worker", "grpc://h:1", slots=3, started=50.0),
        ((QueryId("q1"), TaskId("t1")),),
    )
    html = render.workers_page([w], ADMIN, now=60.0)
    assert "<script>" not in html
    tags = parsed(html)
    slots = [a["class"] for t, a in tags.tags if t == "span" and "slot" in (a.get("class") or "")]
    assert slots == ["slot busy", "slot free", "slot free"]
    assert "1 / 3" in " ".join(tags.text)
    assert "/query/q1" in html
    assert "/query/q1" not in render.workers_page([w], ANA, now=60.0)  # no links for users


def test_pages_load_nothing_from_elsewhere():
    for html in (
        render.queries_page([view()], ADMIN, 101.0),
        render.query_page(detail(), ADMIN, 104.0, "t"),
        render.error_page(500, "the query page failed"),
    ):
        assert not re.search(r"(src|href)=\"(https?:)?//", html)
        assert "<script" not in html and "<link" not in html


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.0123, "12 ms"), (3.21, "3.2 s"), (125, "2 min 05 s"), (7300, "2 h 01 min")],
)
def test_seconds(seconds, text):
    assert render.fmt_seconds(seconds) == text


def test_bytes():
    assert [render.fmt_bytes(n) for n in (None, 12, 2048, 5 * 1024**3)] == [
        "—",
        "12 B",
        "2.0 KiB",
        "5.0 GiB",
    ]


def test_visibility_admins_see_all_users_their_own_and_auth_off_everyone():
    mine, theirs, anonymous = record(user="ana"), record(user="bob"), record(user="")
    assert ADMIN.sees(mine) and ADMIN.sees(theirs) and ADMIN.sees(anonymous)
    assert ANA.sees(mine) and not ANA.sees(theirs) and not ANA.sees(anonymous)
    assert NOBODY_CHECKS.sees(theirs) and NOBODY_CHECKS.may_cancel
    assert ADMIN.may_cancel and not ANA.may_cancel


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_logins_check_the_front_doors_users(tmp_path):
    users_file = tmp_path / "users"
    add_user(str(users_file), "ana", "user", "ana-pw")
    logins = Logins(UserDirectory("root", "root-pw", str(users_file)))
    assert logins.viewer(basic("root", "root-pw")) == Viewer("root", True)
    assert logins.viewer(basic("ana", "ana-pw")) == Viewer("ana", False)
    assert logins.viewer(basic("ana", "ana-pw")) == Viewer("ana", False)  # remembered
    for bad in (None, "", basic("ana", "wrong"), basic("nobody", "x"), "Bearer abc", "Basic !!"):
        with pytest.raises(Unauthenticated):
            logins.viewer(bad)
    assert Logins(None).viewer(None) == NOBODY_CHECKS


def test_basic_credentials_parsing():
    assert basic_credentials(basic("a", "p:q")) == ("a", "p:q")
    assert basic_credentials("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert basic_credentials("Digest x") is None


def test_cancel_tokens_are_bound_to_viewer_and_query():
    tokens = CancelTokens(b"k" * 32)
    t = tokens.token(ADMIN, "q1")
    assert tokens.valid(ADMIN, "q1", t)
    assert not tokens.valid(ADMIN, "q2", t)
    assert not tokens.valid(Viewer("other", True), "q1", t)
    assert not CancelTokens().valid(ADMIN, "q1", t)  # another process's key


def test_listen_flag():
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    for bad in ("8080", "host:", "h:99999", "h:x"):
        with pytest.raises(ListenError):
            parse_listen(bad)


def test_ui_imports_no_front_door_or_worker_code():
    imports = re.compile(r"^\s*(?:from|import)\s+duckfleet\.(\w+)", re.MULTILINE)
    found = set()
    for path in (ROOT / "ui").rglob("*.py"):
        found |= set(imports.findall(path.read_text()))
    assert found & {"flight", "worker", "planner"} == set(), found
    render_imports = set(imports.findall((ROOT / "ui" / "render.py").read_text()))
    assert render_imports <= {"control", "ui"}  # pure: records in, HTML out
