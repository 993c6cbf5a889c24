"""The query page in a real browser: headless Chromium (selenium) against a real
`duckfleet ui` process started through the CLI, reading a real fleet in real etcd,
queries run through the ADBC driver.

- the query list shows a query run through ADBC, with its user, state and progress;
- an admin cancels a long-running query by clicking Cancel on its page: its status
  in etcd becomes cancelled and the ADBC client gets an error saying so;
- a user sees their own queries only, has no Cancel button, and cannot cancel by
  posting the form either;
- with a wrong password the page answers 401 and shows no query.
"""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_fixture import reference, start_fleet
from secure_fleet import add_user, connect
from ui_browser import chromium, log_in, missing_browser, ui_process, wait_for

from duckfleet.auth.local import FleetSecurity
from duckfleet.control import QueryStore
from duckfleet.control.records import QueryRecord, QueryState
from duckfleet.local_fleet import LocalFleet

ADMIN, ADMIN_PW = "admin", "admin-" + uuid.uuid4().hex[:8]
ANA, ANA_PW = "ana", "ana-" + uuid.uuid4().hex[:8]

# minutes of work for two one-core workers; the test cancels it within seconds
HEAVY = """
select count(*) as n from lineitem a, lineitem b, lineitem c
where a.l_quantity + b.l_quantity + c.l_quantity < 0
"""

pytestmark = pytest.mark.skipif(bool(missing_browser()), reason=missing_browser() or "-")


@pytest.fixture(scope="module")
def secured(etcd, tpch_dir, tmp_path_factory) -> Iterator[tuple[LocalFleet, FleetSecurity, Path]]:
    base = tmp_path_factory.mktemp("ui-fleet")
    users_file = base / "users"
    add_user(users_file, ANA, "user", ANA_PW)
    security = FleetSecurity.basic(
        admin_password=ADMIN_PW, admin_user=ADMIN, users_file=str(users_file)
    )
    fleet = start_fleet(
        etcd,
        str(tpch_dir),
        str(base),
        security=security,
        extra_env={"DUCKFLEET_QUERY_TIMEOUT": "120"},  # nothing outlives the module long
    )
    try:
        yield fleet, security, base
    finally:
        fleet.stop()


@pytest.fixture(scope="module")
def ui(secured) -> Iterator[str]:
    fleet, security, base = secured
    env = {
        "DUCKFLEET_ETCD": fleet.etcd_url or "",
        "DUCKFLEET_NAMESPACE": fleet.namespace,
        **security.env(),
    }
    with ui_process(env, str(base / "ui.log")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


def records(fleet: LocalFleet, sql: str, user: str) -> list[QueryRecord]:
    store = fleet.store()
    try:
        return [
            r
            for r in QueryStore(store).all_records()
            if r.sql.strip() == sql.strip() and r.user == user
        ]
    finally:
        store.close()


def status_of(fleet: LocalFleet, q: str):
    store = fleet.store()
    try:
        return QueryStore(store).status(q)
    finally:
        store.close()


def run_in_thread(uri: str, sql: str, user: str, password: str):
    out: dict[str, object] = {}

    def client() -> None:
        try:
            with connect(uri, user, password) as conn, conn.cursor() as cur:
                cur.execute(sql)
                out["table"] = cur.fetch_arrow_table()
        except Exception as exc:  # the test reads it
            out["error"] = exc

    t = threading.Thread(target=client, daemon=True)
    t.start()
    return t, out


def started(fleet: LocalFleet, sql: str, user: str) -> QueryRecord:
    """The record of `sql` by `user` once one of its tasks runs on a worker."""
    store = fleet.store()
    try:
        qs = QueryStore(store)

        def running() -> QueryRecord | None:
            mine = records(fleet, sql, user)
            claimed = {q for q, _, _ in qs.claims()}
            return next((r for r in mine if r.id in claimed), None)

        return wait_for(f"{user}'s query to run", running)
    finally:
        store.close()


def rows_text(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [tr.text for tr in driver.find_elements(By.CSS_SELECTOR, "table.queries tr")]


def test_the_list_shows_a_query_run_through_adbc(secured, ui, browser, tpch_dir):
    fleet, _, _ = secured
    sql = "SELECT l_returnflag, count(*) AS n FROM lineitem GROUP BY 1 ORDER BY 1"
    with connect(fleet.uri, ADMIN, ADMIN_PW) as conn, conn.cursor() as cur:
        cur.execute(sql)
        got = cur.fetch_arrow_table()
    assert got.equals(reference(tpch_dir, sql))
    (record,) = records(fleet, sql, ADMIN)

    log_in(browser, ADMIN, ADMIN_PW)
    browser.get(ui)
    (row,) = [t for t in rows_text(browser) if t.startswith(record.id)]
    assert f" {ADMIN} " in f" {row} " and "finished" in row
    assert f"{record.ntasks} / {record.ntasks}" in row
    assert "SELECT l_returnflag" in row

    from selenium.webdriver.common.by import By

    browser.find_element(By.LINK_TEXT, record.id).click()
    assert browser.current_url.endswith(f"/query/{record.id}")
    tasks = browser.find_elements(By.CSS_SELECTOR, "table.tasks tr.task")
    assert len(tasks) == record.ntasks
    workers = {m.id for m in fleet.members("worker")}
    assert all(any(w in t.text for w in workers) for t in tasks)  # each says who ran it
    assert browser.find_elements(By.CSS_SELECTOR, "svg.timeline rect")
    assert not browser.find_elements(By.ID, "cancel")  # finished: nothing to cancel

    browser.get(ui + "workers")
    shown = browser.find_elements(By.CSS_SELECTOR, "table.workers tr.worker")
    assert sorted(w.text.split()[0] for w in shown) == sorted(workers)


def test_an_admin_cancels_a_running_query_from_its_page(secured, ui, browser):
    from selenium.webdriver.common.by import By

    fleet, _, _ = secured
    thread, out = run_in_thread(fleet.uri, HEAVY, ADMIN, ADMIN_PW)
    record = started(fleet, HEAVY, ADMIN)

    log_in(browser, ADMIN, ADMIN_PW)
    browser.get(ui)
    assert any(t.startswith(record.id) and "running" in t for t in rows_text(browser))
    browser.get(f"{ui}query/{record.id}")
    browser.find_element(By.ID, "cancel").click()

    status = wait_for(
        "the cancel in etcd",
        lambda: status_of(fleet, record.id).terminal and status_of(fleet, record.id),
    )
    assert status.state == QueryState.CANCELLED
    assert f"by {ADMIN} on the query page" in status.error
    thread.join(60)
    assert not thread.is_alive(), "the ADBC client kept waiting after the cancel"
    assert "table" not in out
    assert "cancelled" in str(out["error"]).lower()
    # the form led back to the query's page, which says so
    assert browser.current_url.endswith(f"/query/{record.id}")
    assert "cancelled" in browser.find_element(By.CSS_SELECTOR, "table.facts").text
    assert not browser.find_elements(By.ID, "cancel")


def test_a_user_sees_only_their_own_queries_and_cannot_cancel(secured, ui, browser):
    from selenium.webdriver.common.by import By

    fleet, _, _ = secured
    theirs = records(fleet, HEAVY, ADMIN)  # the admin's query of the test before
    with connect(fleet.uri, ADMIN, ADMIN_PW) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM nation")
        cur.fetchall()
    theirs += records(fleet, "SELECT count(*) FROM nation", ADMIN)
    thread, out = run_in_thread(fleet.uri, HEAVY, ANA, ANA_PW)
    mine = started(fleet, HEAVY, ANA)
    try:
        log_in(browser, ANA, ANA_PW)
        browser.get(ui)
        text = "\n".join(rows_text(browser))
        assert mine.id in text
        assert theirs and not any(r.id in text for r in theirs)
        browser.get(f"{ui}query/{mine.id}")
        assert "running" in browser.find_element(By.CSS_SELECTOR, "table.facts").text
        assert not browser.find_elements(By.ID, "cancel")
        browser.get(f"{ui}query/{theirs[0].id}")
        assert "unknown or not yours" in browser.find_element(By.TAG_NAME, "body").text

        # posting the form anyway is refused, and the query runs on
        code, body = post(f"{ui}query/{mine.id}/cancel", ANA, ANA_PW, "token=x")
        assert code == 403 and "only admins may cancel" in body
        assert status_of(fleet, mine.id).state == QueryState.RUNNING
        # an admin's form token is not the user's: a forged post is refused too
        code, body = post(f"{ui}query/{mine.id}/cancel", ADMIN, ADMIN_PW, "token=forged")
        assert code == 403 and "stale" in body
        assert status_of(fleet, mine.id).state == QueryState.RUNNING

        code, body = get(ui, ANA, "wrong")
        assert code == 401 and mine.id not in body
    finally:  # as an admin, so the workers are free again
        log_in(browser, ADMIN, ADMIN_PW)
        browser.get(f"{ui}query/{mine.id}")
        browser.find_element(By.ID, "cancel").click()
        thread.join(60)
    assert "cancelled" in str(out.get("error", "")).lower()


def _request(url: str, user: str, password: str, data: bytes | None) -> tuple[int, str]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get(url: str, user: str, password: str) -> tuple[int, str]:
    return _request(url, user, password, None)


def post(url: str, user: str, password: str, form: str) -> tuple[int, str]:
    return _request(url, user, password, form.encode())
