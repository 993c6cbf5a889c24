"""Resource groups end to end: real etcd, two front doors, two workers, ADBC
clients logged in as different users; the groups set with the CLI while the front
doors run (none restarts).

* A group with max_running=1, max_queued=1: a long query runs, a second (on the
  other front door) waits in etcd and then runs, a third is refused with a message
  naming the group and the limit; both answers equal DuckDB's. A user of another
  group is served meanwhile.
* A group's max_run_time stops a runaway query with DEADLINE_EXCEEDED naming it.
* Out of the box every query is in the `global` group with a 300 s run time.
* A changed configuration holds at the next query.
* A client whose deadline passes while its query waits leaves the queue.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest
from fleet_fixture import SLOW, reference
from prometheus_client.parser import text_string_to_metric_families
from secure_fleet import add_user

from duckfleet.auth.local import FleetSecurity
from duckfleet.control.queries import QueryStore
from duckfleet.control.resource_groups import GroupStore
from duckfleet.etcd_server import EtcdServer
from duckfleet.local_fleet import LocalFleet, register_tables
from duckfleet.resource_groups import DEFAULT_RUN_TIME
from duckfleet.verify import assert_same_result

pytestmark = pytest.mark.timeout(180)

ADMIN_PASSWORD = "admin-" + uuid.uuid4().hex[:8]
PASSWORD = "pw-" + uuid.uuid4().hex[:8]  # ana's, bob's and carl's
LONG = SLOW.replace(", region r2", "")  # a few seconds on the test fleet
RUNAWAY = SLOW.replace("region r2", "region r2, nation n3")  # minutes: a cross join more
SHORT = "SELECT l_returnflag, count(*) AS n, sum(l_quantity) AS q FROM lineitem GROUP BY 1"
OTHER = "SELECT n_regionkey, count(*) AS n FROM nation GROUP BY 1"

GROUPS = {
    "groups": [
        {"name": "adhoc", "users": ["ana"], "max_running": 1, "max_queued": 1},
        {"name": "runaway", "users": ["carl"], "max_run_time": 2, "max_memory": "1GiB"},
    ]
}


@pytest.fixture(scope="module")
def groups_fleet(tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    base = tmp_path_factory.mktemp("groups-fleet")
    users = base / "users"
    for name in ("ana", "bob", "carl"):
        add_user(users, name, "user", PASSWORD)
    etcd = EtcdServer(data_dir=str(base / "etcd"), log_path=str(base / "etcd.log")).start()
    (base / "logs").mkdir()
    fleet = LocalFleet(
        etcd_url=etcd.url,
        frontdoors=2,
        port=0,
        cores_per_worker=1,
        lease_ttl=2,
        namespace=f"/groups-{uuid.uuid4().hex[:8]}",
        log_dir=str(base / "logs"),
        security=FleetSecurity.basic(admin_password=ADMIN_PASSWORD, users_file=str(users)),
    )
    try:
        fleet.start()
        store = fleet.store()
        try:
            register_tables(store, str(tpch_dir))
        finally:
            store.close()
        yield fleet
    finally:
        fleet.stop()
        etcd.close()


def _run(uri: str, user: str, sql: str, **options: str) -> pa.Table:
    password = ADMIN_PASSWORD if user == "admin" else PASSWORD
    login = {"username": user, "password": password, **options}
    with flightsql.connect(uri, db_kwargs=login) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _in_thread(
    uri: str, user: str, sql: str, **options: str
) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def client() -> None:
        try:
            out["table"] = _run(uri, user, sql, **options)
        except Exception as exc:  # reported by the test
            out["error"] = exc

    t = threading.Thread(target=client, daemon=True)
    t.start()
    return t, out


def _cli(fleet: LocalFleet, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    assert fleet.etcd_url is not None
    where = ("--etcd", fleet.etcd_url, "--namespace", fleet.namespace)
    return subprocess.run(
        [sys.executable, "-m", "duckfleet", "resource-groups", *args, *where],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _set_groups(fleet: LocalFleet, groups: dict, tmp_path: Path) -> None:
    path = tmp_path / f"groups-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(groups))
    done = _cli(fleet, "set", str(path))
    assert done.returncode == 0, done.stderr


def _tickets(fleet: LocalFleet, group: str) -> int:
    store = fleet.store()
    try:
        return len(GroupStore(store).queue(group))
    finally:
        store.close()


def _records(fleet: LocalFleet, sql: str) -> list:
    store = fleet.store()
    try:
        return [r for r in QueryStore(store).all_records() if r.sql.strip() == sql.strip()]
    finally:
        store.close()


def _status(fleet: LocalFleet, q):
    store = fleet.store()
    try:
        return QueryStore(store).status(q)
    finally:
        store.close()


def _wait_for(cond, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        time.sleep(0.02)


def test_out_of_the_box_every_query_is_in_global_with_a_300s_run_time(groups_fleet):
    got = _run(groups_fleet.frontdoor_uri(0), "bob", OTHER)
    (record,) = _records(groups_fleet, OTHER)
    assert record.resource_group == "global"
    assert record.timeout == DEFAULT_RUN_TIME
    assert got.num_rows == 5


def test_the_cli_refuses_a_bad_file_with_one_clear_line(groups_fleet, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"groups": [{"name": "adhoc", "max_running": 0}]}')
    done = _cli(groups_fleet, "set", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"duckfleet: error: {bad}: resource group 'adhoc': max_running is a whole number "
        ">= 1, not 0"
    )
    assert "Traceback" not in done.stderr


def test_over_the_running_limit_a_query_waits_in_etcd_then_runs_and_past_the_queue_it_is_refused(
    groups_fleet, tpch_dir, tmp_path
):
    _set_groups(groups_fleet, GROUPS, tmp_path)  # the front doors run: no restart
    fd0, fd1 = groups_fleet.frontdoor_uri(0), groups_fleet.frontdoor_uri(1)
    before = _admission_metrics(groups_fleet)
    long_t, long_out = _in_thread(fd0, "ana", SLOW)
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 1, what="the long query running")
    short_t, short_out = _in_thread(fd1, "ana", SHORT)  # the other front door
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 2, what="the second query queued")
    assert long_t.is_alive(), "the long query was not long enough for this test"
    assert _records(groups_fleet, SHORT) == []  # queued: not published yet

    with pytest.raises(Exception) as refused:  # the third: over max_queued
        _run(fd0, "ana", OTHER)
    message = str(refused.value)
    assert "resource group 'adhoc' is full: 1 queries running, 1 queued (limit 1)" in message
    assert "UNAVAILABLE" in message.upper()
    assert "Traceback" not in message

    # system.queries shows it waiting, in its group (to an admin: ana's group is full)
    waiting = "SELECT \"user\", resource_group, sql FROM system.queries WHERE state = 'queued'"
    queued = _run(fd0, "admin", waiting).to_pylist()
    assert queued == [{"user": "ana", "resource_group": "adhoc", "sql": " ".join(SHORT.split())}]

    # another group's user is served meanwhile
    started = time.monotonic()
    assert_same_result(_run(fd1, "bob", OTHER), reference(tpch_dir, OTHER), ordered=False)
    assert time.monotonic() - started < 10

    long_t.join(120)
    short_t.join(60)
    assert "error" not in long_out, long_out.get("error")
    assert "error" not in short_out, short_out.get("error")
    assert_same_result(long_out["table"], reference(tpch_dir, SLOW), ordered=False)
    assert_same_result(short_out["table"], reference(tpch_dir, SHORT), ordered=False)
    (short_record,) = _records(groups_fleet, SHORT)
    (long_record,) = _records(groups_fleet, SLOW)
    assert short_record.resource_group == long_record.resource_group == "adhoc"
    long_ended = _status(groups_fleet, long_record.id).at
    assert short_record.created >= long_ended  # it waited until the long one ended
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 0, what="the tickets released")
    after = _admission_metrics(groups_fleet)
    moved = {k: after[k] - before[k] for k in after}
    assert moved == {
        ("front door 0", "duckfleet_admission_refused_total"): 1,
        ("front door 0", "duckfleet_admission_queued_total"): 0,
        ("front door 0", "duckfleet_admission_wait_seconds_count"): 0,
        ("front door 1", "duckfleet_admission_refused_total"): 0,
        ("front door 1", "duckfleet_admission_queued_total"): 1,
        ("front door 1", "duckfleet_admission_wait_seconds_count"): 1,
    }


def _admission_metrics(fleet: LocalFleet) -> dict[tuple[str, str], float]:
    names = (
        "duckfleet_admission_refused_total",
        "duckfleet_admission_queued_total",
        "duckfleet_admission_wait_seconds_count",
    )
    out = {}
    for door, url in fleet.metrics_urls():
        if door.startswith("front door"):
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            samples = {
                s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            }
            out.update({(door, n): samples.get(n, 0.0) for n in names})
    return out


def test_a_groups_run_time_limit_stops_a_runaway_query_naming_the_limit(groups_fleet, tmp_path):
    _set_groups(groups_fleet, GROUPS, tmp_path)
    started = time.monotonic()
    with pytest.raises(Exception) as stopped:
        _run(groups_fleet.frontdoor_uri(1), "carl", RUNAWAY)
    took = time.monotonic() - started
    message = str(stopped.value)
    assert "max_run_time of resource group 'runaway' (2s)" in message, message
    assert "deadlineexceeded" in message.lower().replace("_", ""), message  # the status
    assert took < 15, took
    (record,) = _records(groups_fleet, RUNAWAY)
    assert record.timeout == 2 and record.resource_group == "runaway"
    assert record.memory_limit == f"{1024**3}B"  # max_memory, down to its tasks' DuckDB


def test_a_changed_configuration_holds_at_the_next_query_on_running_front_doors(
    groups_fleet, tmp_path
):
    no_queue = {"groups": [{"name": "adhoc", "users": ["ana"], "max_running": 1, "max_queued": 0}]}
    _set_groups(groups_fleet, GROUPS, tmp_path)
    _run(groups_fleet.frontdoor_uri(0), "ana", OTHER)  # both front doors have read GROUPS
    _run(groups_fleet.frontdoor_uri(1), "ana", OTHER)
    _set_groups(groups_fleet, no_queue, tmp_path)
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 0, what="the tickets released")
    long_t, long_out = _in_thread(groups_fleet.frontdoor_uri(0), "ana", LONG)
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 1, what="the long query running")
    with pytest.raises(Exception) as refused:
        _run(groups_fleet.frontdoor_uri(1), "ana", OTHER)
    assert "resource group 'adhoc' is full: 1 queries running, 0 queued (limit 0)" in str(
        refused.value
    )
    shown = _cli(groups_fleet, "show")
    assert shown.returncode == 0, shown.stderr
    assert "# adhoc: 1 running (limit 1), 0 queued (limit 0)" in shown.stdout
    long_t.join(120)
    assert "error" not in long_out, long_out.get("error")
    reset = _cli(groups_fleet, "reset")
    assert reset.returncode == 0 and '"name": "global"' in reset.stdout


def test_a_client_that_gives_up_while_queued_leaves_the_queue(groups_fleet, tmp_path):
    waits = {"groups": [{"name": "adhoc", "users": ["ana"], "max_running": 1, "max_queued": 5}]}
    _set_groups(groups_fleet, waits, tmp_path)
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 0, what="the tickets released")
    long_t, long_out = _in_thread(groups_fleet.frontdoor_uri(0), "ana", SLOW)
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 1, what="the long query running")
    deadline = {"adbc.flight.sql.rpc.timeout_seconds.query": "1"}  # the client's gRPC deadline
    client, out = _in_thread(groups_fleet.frontdoor_uri(1), "ana", OTHER, **deadline)
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 2, what="the impatient query queued")
    client.join(30)
    error = str(out.get("error", "")).lower()
    assert "deadline" in error or "timeout" in error, out
    assert long_t.is_alive(), "the long query was not long enough for this test"
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 1, timeout=5, what="the ticket gone")
    long_t.join(120)
    assert "error" not in long_out, long_out.get("error")
    _cli(groups_fleet, "reset")


def test_a_killed_front_doors_tickets_leave_the_queue_and_the_next_in_line_runs(
    groups_fleet, tpch_dir, tmp_path
):
    """Last in this file: it kills front door 1 (and starts it again)."""
    waits = {"groups": [{"name": "adhoc", "users": ["ana"], "max_running": 1, "max_queued": 5}]}
    _set_groups(groups_fleet, waits, tmp_path)
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 0, what="the tickets released")
    fd0, fd1 = groups_fleet.frontdoor_uri(0), groups_fleet.frontdoor_uri(1)
    running_t, _ = _in_thread(fd1, "ana", SLOW)  # its ticket is front door 1's
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 1, what="the long query running")
    queued_t, queued_out = _in_thread(fd1, "ana", OTHER)  # waits on front door 1
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 2, what="a query queued on door 1")
    next_t, next_out = _in_thread(fd0, "ana", SHORT)  # waits on front door 0, after it
    _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 3, what="a query queued on door 0")
    assert running_t.is_alive(), "the long query was not long enough for this test"

    groups_fleet.frontdoor_procs[1].send_signal(signal.SIGKILL)
    groups_fleet.frontdoor_procs[1].wait(10)
    try:
        next_t.join(30)  # door 1's two tickets went with its lease: the next in line runs
        assert "error" not in next_out, next_out.get("error")
        assert_same_result(next_out["table"], reference(tpch_dir, SHORT), ordered=False)
        queued_t.join(30)
        assert "error" in queued_out  # its front door died under it
        _wait_for(lambda: _tickets(groups_fleet, "adhoc") == 0, what="the tickets released")
    finally:
        groups_fleet.restart_frontdoor(1)
        _cli(groups_fleet, "reset")
