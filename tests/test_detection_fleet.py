"""Failure detection on real processes (control/detection.py, worker/prober.py): a
worker SIGKILLed or frozen mid-query is declared dead by a probe, in well under its
5 s lease. A frozen one (silent: it may have been alive) is forgiven its attempt; a
killed one (its port refuses: gone for certain) is not, as its lease's expiry would
not have forgiven it.

Each worker has more task slots than the query has tasks, so a freed task is
claimed again at once: what is timed is the detection. The fleet runs with
DUCKFLEET_MAX_ATTEMPTS=1: had the frozen worker's declared attempt counted, the
task's second claim would be refused and the query would fail; the killed worker's
attempt counts, so its query fails, saying so. Every answer is checked against
DuckDB in-process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest
from fleet_fixture import SLOW, first_claim, reference, run_in_thread, start_fleet

from duckfleet.control import QueryStore, Store
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.local_fleet import LocalFleet
from duckfleet.verify import assert_same_result

LEASE_TTL = 5  # the default: the gain must come from detection, not a shorter lease


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    f = start_fleet(
        etcd,
        str(tpch_dir),
        str(tmp_path_factory.mktemp("detect-logs")),
        workers=2,
        lease_ttl=LEASE_TTL,
        extra_env={
            "DUCKFLEET_MAX_ATTEMPTS": "1",
            "DUCKFLEET_SPECULATION": "off",
            # more slots than the query has tasks: the surviving worker has a free
            # slot, so a freed task is claimed again as soon as it is freed
            "DUCKFLEET_SLOTS": "8",
            "DUCKFLEET_FAST_PATH_BYTES": "0",
        },
    )
    try:
        yield f
    finally:
        f.stop()


def _two_workers(fleet: LocalFleet) -> None:
    """Start a worker if one was lost, and wait until two are members."""
    if len(fleet.members("worker")) < 2:
        fleet.start_worker()
    deadline = time.monotonic() + 30
    while len(fleet.members("worker")) < 2:
        assert time.monotonic() < deadline, "no second worker joined"
        time.sleep(0.05)


def _lease_left(store: Store, worker: MemberId) -> tuple[int, float]:
    """The worker's lease and the seconds it has left (its TTL remaining)."""
    _, meta = store.client.get(store.keys.member("worker", worker))
    assert meta is not None, f"{worker} is not a member"
    info = store.client.get_lease_info(meta.lease_id)
    return int(meta.lease_id), float(info.TTL)


def _lease_gone(store: Store, lease: int) -> bool:
    return int(store.client.get_lease_info(lease).TTL) <= 0


def _done(store: Store, q: QueryId, t: TaskId) -> dict[str, object]:
    value, _ = store.client.get(store.keys.done(q, t))
    assert value is not None, f"task {t} of {q} has no done record"
    return dict(json.loads(value))


def _attempts(store: Store, q: QueryId, t: TaskId) -> int:
    _, meta = store.client.get(store.keys.attempts(q, t))
    return 0 if meta is None else int(meta.version)


def _declared_dead(fleet: LocalFleet) -> float:
    """duckfleet_workers_declared_dead_total summed over the workers that answer."""
    total = 0.0
    for name, url in fleet.metrics_urls():
        if not name.startswith("worker"):
            continue
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            continue  # a killed worker
        found = re.search(r"^duckfleet_workers_declared_dead_total (\S+)$", text, re.M)
        total += float(found.group(1)) if found else 0.0
    return total


def _victim(fleet: LocalFleet, qs: QueryStore) -> tuple[QueryId, TaskId, MemberId, int]:
    """A task being run now, its worker and that worker's pid."""
    qid, held, claim = first_claim(qs)
    pid = fleet.pid_of(claim.worker)
    assert pid is not None
    return qid, held, claim.worker, pid


def test_a_sigkilled_worker_is_declared_dead_before_its_lease_ends_and_the_attempt_counts(
    fleet, tpch_dir
):
    """Its port refuses every probe: gone for certain, so its attempt counts (as its
    lease's expiry would have counted it). With DUCKFLEET_MAX_ATTEMPTS=1 the task's
    next claim is refused and the query fails, saying so, well before the dead
    worker's lease could have expired."""
    _two_workers(fleet)
    store = fleet.store()
    qs = QueryStore(store)
    t, out = run_in_thread(fleet.uri, SLOW)
    try:
        qid, held, victim, pid = _victim(fleet, qs)
        lease, left = _lease_left(store, victim)
        declared_before = _declared_dead(fleet)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        t.join(120)
        assert not t.is_alive()
        ended_after = time.monotonic() - killed_at
        if "error" not in out:  # it finished just before the kill: no test
            assert_same_result(out["table"], reference(tpch_dir, SLOW), ordered=False)
            pytest.skip("the killed worker had committed its task before the kill")
        assert "started 1 times" in str(out["error"]), out["error"]
        assert ended_after < left, (ended_after, left)  # detected, not expired
        assert _lease_gone(store, lease)  # revoked by the declaration
        assert victim not in {m.id for m in fleet.members("worker")}
        assert _declared_dead(fleet) == declared_before + 1  # once, by one worker
        assert _attempts(store, qid, held) == 1  # one claim, and it counted
    finally:
        t.join(5)
        store.close()


def test_a_frozen_worker_is_declared_dead_never_commits_its_stale_task_and_rejoins(fleet, tpch_dir):
    _two_workers(fleet)
    store = fleet.store()
    qs = QueryStore(store)
    t, out = run_in_thread(fleet.uri, SLOW)
    frozen_pid = None
    try:
        qid, held, frozen, frozen_pid = _victim(fleet, qs)
        lease, left = _lease_left(store, frozen)
        os.kill(frozen_pid, signal.SIGSTOP)  # alive, but silent: its port accepts, never answers
        frozen_at, frozen_wall = time.monotonic(), time.time()
        while frozen in {m.id for m in fleet.members("worker")}:
            assert time.monotonic() - frozen_at < left, "not declared dead before its lease ended"
            time.sleep(0.02)
        declared_after = time.monotonic() - frozen_at
        assert _lease_gone(store, lease)
        os.kill(frozen_pid, signal.SIGCONT)  # back: its running task must not commit
        t.join(120)
        assert not t.is_alive() and "error" not in out, out.get("error")
        assert_same_result(out["table"], reference(tpch_dir, SLOW), ordered=False)
        done = _done(store, qid, held)
        if _attempts(store, qid, held) == 1:  # it had committed before it froze: no test
            pytest.skip("the frozen worker had committed its task before it froze")
        # its stale completion was refused: the task was finished by a claim made
        # after the freeze (the other worker's, or its own once it had rejoined)
        assert float(done["started"]) > frozen_wall, done  # type: ignore[arg-type]
        assert _attempts(store, qid, held) == 2  # and the declared attempt did not count
        assert declared_after < left
        # it noticed its lease was gone and joined again, under a new lease
        deadline = time.monotonic() + 15
        while frozen not in {m.id for m in fleet.members("worker")}:
            assert time.monotonic() < deadline, "the frozen worker never rejoined"
            time.sleep(0.05)
        new_lease, _ = _lease_left(store, frozen)
        assert new_lease != lease
    finally:
        if frozen_pid is not None:
            os.kill(frozen_pid, signal.SIGCONT)
        t.join(5)
        store.close()
