"""Faults done to real processes: a worker frozen past its lease, etcd going away.

Every answer is checked against DuckDB in-process.
"""

from __future__ import annotations

import os
import signal
import time

import adbc_driver_manager
import pytest
from fleet_fixture import SLOW, first_claim, records_for, reference, run, run_in_thread, start_fleet

from duckfleet.control import QueryStore
from duckfleet.etcd_server import EtcdServer, start_cluster
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.verify import assert_same_result


def test_a_worker_frozen_past_its_lease_is_fenced_and_rejoins(etcd, tpch_dir, tmp_path):
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=2)
    store = fleet.store()
    qs = QueryStore(store)
    t, out = run_in_thread(fleet.uri, SLOW)
    frozen_pid = None
    try:
        qid, held, claim = first_claim(qs)
        frozen = claim.worker
        frozen_pid = fleet.pid_of(frozen)
        assert frozen_pid is not None
        os.kill(frozen_pid, signal.SIGSTOP)  # cut off: alive, but silent
        # until its 2 s lease has expired (on a loaded machine etcd may take longer to
        # revoke it) and the other worker has taken over the task it held. Woken
        # before that, it would rejoin and could claim that task again legitimately.
        deadline = time.monotonic() + 120
        while not _taken_over(qs, qid, held, frozen):
            assert time.monotonic() < deadline, "the held task was never taken over"
            time.sleep(0.1)
        assert frozen not in {m.id for m in fleet.members("worker")}
        os.kill(frozen_pid, signal.SIGCONT)
        t.join(120)
        assert not t.is_alive() and "error" not in out, out.get("error")
        assert_same_result(out["table"], reference(tpch_dir, SLOW), ordered=False)
        (record,) = records_for(fleet, SLOW)
        # the task it held when frozen was not accepted from it (it may take later
        # tasks legitimately once it has rejoined)
        tasks = {r.id: r for r in qs.task_records(record.id)}
        assert tasks[held].done_by not in (None, frozen), tasks[held]
        # it noticed, rejoined with a new lease, and works again
        deadline = time.monotonic() + 15
        while frozen not in {m.id for m in fleet.members("worker")}:
            assert time.monotonic() < deadline, "the frozen worker never rejoined"
            time.sleep(0.1)
        assert run(fleet.uri, "select count(*) as n from region").to_pylist() == [{"n": 5}]
    finally:
        if frozen_pid is not None:
            os.kill(frozen_pid, signal.SIGCONT)
        t.join(5)
        store.close()
        fleet.stop()


def _taken_over(qs: QueryStore, qid: QueryId, task: TaskId, frozen: MemberId) -> bool:
    """Another worker holds `task` now, or has finished it."""
    if any(q == qid and t == task and c.worker != frozen for q, t, c in qs.claims()):
        return True
    done = {r.id: r.done_by for r in qs.task_records(qid)}
    return done.get(task) not in (None, frozen)


def test_etcd_outage_answers_unavailable_and_the_fleet_resumes_by_itself(tpch_dir, tmp_path):
    server = EtcdServer(data_dir=str(tmp_path / "etcd"), log_path=str(tmp_path / "etcd.log"))
    server.start()
    fleet = start_fleet(server, str(tpch_dir), str(tmp_path), workers=2)
    try:
        sql = "select l_returnflag, count(*) as n from lineitem group by 1"
        expected = reference(tpch_dir, sql)
        assert_same_result(run(fleet.uri, sql), expected, ordered=False)
        server.stop()  # etcd goes away; ports and data stay for its return
        started = time.monotonic()
        with pytest.raises(adbc_driver_manager.Error) as info:
            run(fleet.uri, sql)
        assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.IO
        assert "etcd" in str(info.value) and "retry" in str(info.value)
        assert time.monotonic() - started < 15
        time.sleep(3)  # longer than the lease TTL: nobody may exit meanwhile
        assert all(p.poll() is None for p in fleet.frontdoor_procs + fleet.worker_procs)
        server.start()
        deadline = time.monotonic() + 30
        while True:  # the fleet resumes by itself: no process is restarted
            try:
                assert_same_result(run(fleet.uri, sql), expected, ordered=False)
                break
            except adbc_driver_manager.Error:
                assert time.monotonic() < deadline, "the fleet did not resume"
                time.sleep(0.2)
        assert all(p.poll() is None for p in fleet.frontdoor_procs + fleet.worker_procs)
    finally:
        fleet.stop()
        server.close()


def test_a_worker_that_joins_mid_query_takes_its_remaining_tasks(etcd, tpch_dir, tmp_path):
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=1)
    store = fleet.store()
    qs = QueryStore(store)
    t, out = run_in_thread(fleet.uri, SLOW)
    try:
        first_claim(qs)
        (first,) = fleet.members("worker")
        fleet.start_worker()  # joins while the first worker works through 4 partials
        t.join(120)
        assert not t.is_alive() and "error" not in out, out.get("error")
        assert_same_result(out["table"], reference(tpch_dir, SLOW), ordered=False)
        (record,) = records_for(fleet, SLOW)
        done_by = {r.done_by for r in qs.task_records(record.id)}
        newcomers = done_by - {first.id}
        assert newcomers, f"the joining worker took no task: {done_by}"
    finally:
        t.join(5)
        store.close()
        fleet.stop()


def test_sigterm_drains_a_worker_it_finishes_its_task_then_exits(etcd, tpch_dir, tmp_path):
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=2)
    store = fleet.store()
    qs = QueryStore(store)
    t, out = run_in_thread(fleet.uri, SLOW)
    try:
        _, held, leaving = first_claim(qs)
        proc = next(p for p in fleet.worker_procs if p.pid == fleet.pid_of(leaving.worker))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # it exits by itself once drained
        t.join(120)
        assert not t.is_alive() and "error" not in out, out.get("error")
        assert_same_result(out["table"], reference(tpch_dir, SLOW), ordered=False)
        (record,) = records_for(fleet, SLOW)
        tasks = {r.id: r for r in qs.task_records(record.id)}
        # the task it held when told to stop, it finished itself: nothing was redone
        assert tasks[held].done_by == leaving.worker, tasks[held]
    finally:
        t.join(5)
        store.close()
        fleet.stop()


def start_etcd_cluster(tmp_path, n: int = 3) -> list[EtcdServer]:
    return start_cluster(str(tmp_path), n)


def test_losing_one_member_of_a_three_member_etcd_cluster_is_invisible(tpch_dir, tmp_path):
    members = start_etcd_cluster(tmp_path)
    urls = ",".join(m.url for m in members)
    fleet = None
    try:
        fleet = start_fleet(members[0], str(tpch_dir), str(tmp_path), workers=2, etcd_urls=urls)
        sql = "select l_returnflag, count(*) as n from lineitem group by 1"
        expected = reference(tpch_dir, sql)
        assert_same_result(run(fleet.uri, sql), expected, ordered=False)
        store = fleet.store()
        try:
            leader = store.client.status().leader.name
        finally:
            store.close()
        # the harshest case: the leader dies, and the others must elect a new one
        next(m for m in members if m.name == leader).stop(signal.SIGKILL)
        for _ in range(20):  # no client-visible error, query after query
            assert_same_result(run(fleet.uri, sql), expected, ordered=False)
    finally:
        if fleet is not None:
            fleet.stop()
        for m in members:
            m.close()
