"""Resource groups without a fleet: the configuration's rules and selection, the
admission decisions (pure), and the etcd queue behind them (a real etcd, two
Admission objects standing for two front doors).

The end-to-end behaviour (ADBC clients, two front doors, workers) is in
tests/test_resource_groups_fleet.py.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from duckfleet.config import FrontDoorConfig
from duckfleet.control import Store
from duckfleet.control.errors import QueryCancelled, QueueFull
from duckfleet.control.records import EndReason, QueryState, QueryStatus
from duckfleet.control.resource_groups import GroupStore, QueuedTicket, Ticket, waiting
from duckfleet.flight.admission import Admission, explained
from duckfleet.resource_groups import (
    DEFAULT_GLOBAL,
    DEFAULT_RUN_TIME,
    GLOBAL,
    Admit,
    ResourceGroup,
    ResourceGroupError,
    ResourceGroups,
    decide,
    limits_for,
    parse_bytes,
    parse_groups,
)

pytestmark = pytest.mark.timeout(60)

CONFIG = {
    "groups": [
        {"name": "etl", "users": ["loader"], "max_running": 2, "max_queued": 3},
        {"name": "adhoc", "roles": ["user"], "max_running": 1, "max_run_time": 30},
        {"name": "global", "max_run_time": 100, "max_memory": "512MiB"},
    ]
}


# --- the configuration ---------------------------------------------------------------


def test_out_of_the_box_one_global_group_stops_runaway_queries_well_before_ten_minutes():
    groups = ResourceGroups()
    assert [g.name for g in groups.groups] == [GLOBAL]
    g = groups.select("anyone", "user")
    assert g == DEFAULT_GLOBAL and g.max_running is None
    assert g.max_run_time == DEFAULT_RUN_TIME < 600
    limits = limits_for(g, 600.0)
    assert limits.timeout == DEFAULT_RUN_TIME and limits.timeout_by_group
    assert "max_run_time of resource group 'global' (300s)" in limits.timeout_message()
    # a front door timeout below the group's applies, and names itself
    short = limits_for(g, 5.0)
    assert short.timeout == 5.0 and "DUCKFLEET_QUERY_TIMEOUT=5s" in short.timeout_message()


def test_the_first_matching_group_in_order_by_user_then_role():
    groups = parse_groups(json.dumps(CONFIG))
    assert groups.select("loader", "user").name == "etl"  # first match wins over the role
    assert groups.select("ana", "user").name == "adhoc"
    assert groups.select("ana", "admin").name == "global"
    assert groups.select("", "admin").name == "global"  # auth off: no user, admin role


def test_a_config_without_a_catch_all_gets_the_default_global_group_last():
    groups = parse_groups(json.dumps({"groups": [{"name": "a", "users": ["x"]}]}))
    assert [g.name for g in groups.groups] == ["a", GLOBAL]
    assert groups.groups[-1] == DEFAULT_GLOBAL
    assert groups.select("y", "user").name == GLOBAL


def test_the_json_form_reads_back_the_same():
    groups = parse_groups(json.dumps(CONFIG))
    assert parse_groups(groups.to_json()).groups == groups.groups


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("{", "not valid JSON"),
        ('{"groups": 3}', "a list of groups"),
        ('{"groups": [], "x": 1}', "unknown top-level field"),
        ('{"groups": [{"name": "a b"}]}', "needs a name"),
        ('{"groups": [{"name": "a", "max_runing": 1}]}', "unknown field(s) ['max_runing']"),
        ('{"groups": [{"name": "a", "max_running": 0}]}', "max_running is a whole number >= 1"),
        ('{"groups": [{"name": "a", "max_running": 1.5}]}', "max_running is a whole number"),
        ('{"groups": [{"name": "a", "max_queued": 3}]}', "max_queued needs max_running"),
        ('{"groups": [{"name": "a", "max_run_time": -1}]}', "max_run_time is seconds > 0"),
        ('{"groups": [{"name": "a", "max_memory": "lots"}]}', "max_memory is bytes"),
        ('{"groups": [{"name": "a", "users": "x y"}]}', "users is a list of names"),
        ('{"groups": [{"name": "a"}, {"name": "a", "users": ["x"]}]}', "defined twice"),
        ('{"groups": [{"name": "all"}, {"name": "b", "users": ["x"]}]}', "comes after 'all'"),
        ('{"groups": [{"name": "global", "roles": ["user"]}]}', "'global' matches everyone"),
    ],
)
def test_a_bad_config_is_refused_with_what_to_fix(config: str, says: str):
    with pytest.raises(ResourceGroupError) as err:
        parse_groups(config)
    assert says in str(err.value)


def test_memory_sizes_and_the_smaller_limit_applies():
    assert parse_bytes(1024) == 1024
    assert parse_bytes("512MB") == 512 * 1000**2
    assert parse_bytes("2GiB") == 2 * 1024**3
    assert parse_bytes("1.5 kb") == 1500
    group = ResourceGroup("g", max_memory=parse_bytes("1GiB"))
    assert limits_for(group, 600, "").memory_limit == f"{1024**3}B"
    assert limits_for(group, 600, "512MB").memory_limit == "512MB"  # the front door's is smaller
    assert limits_for(group, 600, "4GB").memory_limit == f"{1024**3}B"
    assert limits_for(group, 600, "50%").memory_limit == f"{1024**3}B"  # not comparable
    assert limits_for(ResourceGroup("h"), 600, "4GB").memory_limit == "4GB"


def test_a_config_in_etcd_that_does_not_parse_means_the_default(store: Store):
    store.client.put(store.keys.resource_groups(), "not json")
    assert GroupStore(store).read() == ResourceGroups()
    _set(store, CONFIG)
    assert [g.name for g in GroupStore(store).read().groups] == ["etl", "adhoc", "global"]
    GroupStore(store).reset()
    assert GroupStore(store).read() == ResourceGroups()


# --- decisions -------------------------------------------------------------------------


def test_decisions_run_queue_refuse():
    g = ResourceGroup("adhoc", max_running=4, max_queued=10)
    assert decide(g, 0, new=True).admit == Admit.RUN
    assert decide(g, 3, new=True).admit == Admit.RUN
    assert decide(g, 4, new=True).admit == Admit.QUEUE
    assert decide(g, 13, new=True).admit == Admit.QUEUE
    full = decide(g, 14, new=True)
    assert full.admit == Admit.REFUSE and (full.running, full.queued) == (4, 10)
    assert full.refusal(g).startswith(
        "resource group 'adhoc' is full: 4 queries running, 10 queued (limit 10)"
    )
    # one already waiting keeps its place even when the queue grew behind... or shrank
    assert decide(g, 14, new=False).admit == Admit.QUEUE
    assert decide(ResourceGroup("free"), 1000, new=True).admit == Admit.RUN
    no_queue = ResourceGroup("q0", max_running=1, max_queued=0)
    assert decide(no_queue, 1, new=True).admit == Admit.REFUSE


def test_a_worker_timeout_is_explained_as_the_groups_run_time_limit():
    worker_says = QueryStatus(
        QueryState.CANCELLED, "ran longer than DUCKFLEET_QUERY_TIMEOUT=2s", reason=EndReason.TIMEOUT
    )
    by_group = limits_for(ResourceGroup("adhoc", max_run_time=2), 600)
    assert "resource group 'adhoc'" in explained(worker_says, by_group).error
    by_setting = limits_for(ResourceGroup("adhoc"), 600)
    assert explained(worker_says, by_setting) == worker_says


def test_the_waiting_tickets_are_those_past_the_running_limit_in_queue_order():
    groups = parse_groups(json.dumps(CONFIG))
    now = time.time()

    def ticket(i: int, group: str, until: float = now + 60) -> QueuedTicket:
        return QueuedTicket(Ticket(f"t{i}", group, "u", "fd", now, until), revision=100 - i)

    tickets = [ticket(i, "etl") for i in range(5)] + [ticket(9, "adhoc", until=now - 1)]
    tickets += [ticket(7, "adhoc"), ticket(8, "adhoc"), ticket(6, "global")]
    # etl runs 2: by revision t4, t3 run; adhoc runs 1 (t9 expired): t8 runs, t7 waits
    assert [t.id for t in waiting(groups, tickets, now)] == ["t2", "t1", "t0", "t7"]


# --- the etcd queue, two front doors -----------------------------------------------------


def _admission(store: Store, name: str) -> Admission:
    cfg = FrontDoorConfig()
    cfg.query_timeout = 20
    cfg.lease_ttl = 2
    return Admission(Store(store.endpoints, namespace=store.keys.namespace), cfg, name)


def _set(store: Store, groups: dict) -> None:
    GroupStore(store).write(parse_groups(json.dumps(groups)))


def test_two_front_doors_never_admit_past_the_limit_and_serve_the_queue_in_order(store: Store):
    _set(store, {"groups": [{"name": "g", "max_running": 2, "max_queued": 50}]})
    a, b = _admission(store, "fd-a"), _admission(store, "fd-b")
    done = {f"u{i}": threading.Event() for i in range(8)}  # the test ends each query
    try:
        lock = threading.Lock()
        running, most, order = 0, 0, []

        def query(i: int) -> None:
            nonlocal running, most
            with (a if i % 2 else b).admitted(f"u{i}", "user"):
                with lock:
                    running += 1
                    most = max(most, running)
                    order.append(f"u{i}")
                done[f"u{i}"].wait(20)
                with lock:
                    running -= 1

        threads = [threading.Thread(target=query, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        _wait_for(lambda: len(GroupStore(store).queue("g")) == 8)
        arrived = [q.ticket.user for q in GroupStore(store).queue("g")]  # etcd's order
        _wait_for(lambda: len(order) == 2)
        assert set(order) == set(arrived[:2])  # the first two run at once
        for n, user in enumerate(arrived[:6], start=3):  # end them one by one
            done[user].set()
            _wait_for(lambda n=n: len(order) == n)
            assert order[-1] == arrived[n - 1]  # the first queued is the first admitted
            assert most == 2
        for ev in done.values():
            ev.set()
        for t in threads:
            t.join(30)
        assert most == 2, most
        _wait_for(lambda: GroupStore(store).queue("g") == [])  # every ticket released
    finally:
        for ev in done.values():
            ev.set()
        a.close()
        b.close()


def test_over_the_queue_limit_a_refusal_names_the_group_and_the_limit(store: Store):
    _set(store, {"groups": [{"name": "tiny", "max_running": 1, "max_queued": 1}]})
    a, b = _admission(store, "fd-a"), _admission(store, "fd-b")
    release = threading.Event()
    try:

        def hold(adm: Admission) -> None:
            with adm.admitted("x", "user"):
                release.wait(20)

        t1 = threading.Thread(target=hold, args=(a,))
        t1.start()
        _wait_for(lambda: len(GroupStore(store).queue("tiny")) == 1)
        t2 = threading.Thread(target=hold, args=(b,))  # queued, on the other front door
        t2.start()
        _wait_for(lambda: len(GroupStore(store).queue("tiny")) == 2)
        with pytest.raises(QueueFull) as err:
            with a.admitted("y", "user"):
                pytest.fail("admitted past the queue limit")
        assert "resource group 'tiny' is full: 1 queries running, 1 queued (limit 1)" in str(
            err.value
        )
        assert len(GroupStore(store).queue("tiny")) == 2  # the refused one left no ticket
        release.set()
        t1.join(10)
        t2.join(10)
    finally:
        release.set()
        a.close()
        b.close()


def test_a_cancelled_wait_leaves_the_queue_and_a_config_change_lets_waiters_in(store: Store):
    _set(store, {"groups": [{"name": "g", "max_running": 1}]})
    a = _admission(store, "fd-a")
    release = threading.Event()
    try:
        holder = threading.Thread(target=lambda: _hold(a, release))
        holder.start()
        _wait_for(lambda: len(GroupStore(store).queue("g")) == 1)
        gone = threading.Event()
        with pytest.raises(QueryCancelled):
            timer = threading.Timer(0.3, gone.set)
            timer.start()
            with a.admitted("x", "user", cancelled=gone.is_set):
                pytest.fail("admitted while the slot was taken")
        _wait_for(lambda: len(GroupStore(store).queue("g")) == 1)  # its ticket is gone
        admitted = threading.Event()

        def waiter() -> None:
            with a.admitted("x", "user"):
                admitted.set()

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.3)
        assert not admitted.is_set()
        _set(store, {"groups": [{"name": "g", "max_running": 2}]})  # raised: in at once
        assert admitted.wait(1.5), "a raised limit did not let the waiting query in"
        t.join(5)
    finally:
        release.set()
        a.close()


def test_a_killed_front_doors_queued_queries_leave_the_queue_with_its_lease(store: Store):
    _set(store, {"groups": [{"name": "g", "max_running": 1}]})
    a, b = _admission(store, "fd-a"), _admission(store, "fd-b")
    release = threading.Event()
    try:
        holder = threading.Thread(target=lambda: _hold(a, release))
        holder.start()
        _wait_for(lambda: len(GroupStore(store).queue("g")) == 1)
        # front door a "dies": its lease stops being kept alive, then expires
        a.lease._stop.set()
        admitted = threading.Event()

        def waiter() -> None:
            with b.admitted("x", "user"):
                admitted.set()

        threading.Thread(target=waiter, daemon=True).start()
        assert admitted.wait(10), "the dead front door's ticket kept its slot"
    finally:
        release.set()
        a.close()
        b.close()


def _hold(adm: Admission, release: threading.Event) -> None:
    with adm.admitted("holder", "user"):
        release.wait(20)


def _wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
