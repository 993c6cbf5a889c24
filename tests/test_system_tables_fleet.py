"""System tables on real processes: one etcd, TWO front doors (each asked directly),
two workers, auth on with an admin and the users ana, bob and carl, the ADBC driver
as the client. Queries run (and fail) through front door 0; front door 1 answers
for them from etcd. Every query this module runs goes through ``Ledger.run``, which
notes the state it must end in, so counts are checked against what was run.
The pure parts: tests/test_system_tables.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from adbc_driver_manager import Error as AdbcError
from fleet_fixture import SLOW, reference
from secure_fleet import ADMIN, ADMIN_PASSWORD, add_user, connect

from duckfleet.auth.local import FleetSecurity
from duckfleet.etcd_server import EtcdServer
from duckfleet.local_fleet import LocalFleet, register_tables

pytestmark = pytest.mark.timeout(120)

ANA, BOB, CARL = "ana", "bob", "carl"
PASSWORDS = {ADMIN: ADMIN_PASSWORD} | {
    u: f"{u}-pw-{uuid.uuid4().hex[:8]}" for u in (ANA, BOB, CARL)
}

GOOD = [
    "SELECT count(*) AS n FROM nation",  # one task: the fast path
    "SELECT r_name FROM region ORDER BY 1",
    "SELECT l_returnflag, count(*) AS n FROM lineitem GROUP BY 1 ORDER BY 1",  # 4 splits + merge
]
BAD = [  # plan fine, fail in the worker
    "SELECT CAST(n_name AS INTEGER) AS x FROM nation",
    "SELECT CAST(l_shipmode AS INTEGER) AS x FROM lineitem",
]
BY_STATE = "SELECT state, count(*) AS n FROM system.queries GROUP BY 1 ORDER BY 1"


@dataclass
class Ledger:
    """Every query this module ran, and the state it ends in."""

    fleet: LocalFleet
    data_root: Path
    ran: list[tuple[str, str]] = field(default_factory=list)  # (user, final state)

    def door(self, index: int) -> str:
        return self.fleet.frontdoor_uri(index)

    def run(self, door: int, user: str, text: str):
        """The answer to ``text`` as ``user`` through front door ``door``; a query that
        fails in a worker raises AdbcError, noted as failed."""
        with connect(self.door(door), user, PASSWORDS[user]) as conn, conn.cursor() as cur:
            try:
                cur.execute(text)
                table = cur.fetch_arrow_table()
            except AdbcError:
                self.ran.append((user, "failed"))
                raise
        self.ran.append((user, "finished"))
        return table

    def expected(self, user: str | None = None) -> dict[str, int]:
        return dict(Counter(s for u, s in self.ran if user is None or u == user))

    def states(self, door: int, user: str, where: str = "") -> dict[str, int]:
        text = BY_STATE.replace("GROUP BY", f"{where} GROUP BY") if where else BY_STATE
        return {r["state"]: r["n"] for r in self.run(door, user, text).to_pylist()}

    def counts_settle(self, door: int, user: str, want_user: str | None, where: str = "") -> None:
        """system.queries counts what was run: a fast-path query commits just after its
        answer, so poll (each poll is a query, noted before the next one reads)."""
        deadline = time.monotonic() + 15
        while True:
            want = self.expected(want_user)
            got = self.states(door, user, where)
            if got == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"system.queries says {got}, ran {want}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def ledger(
    etcd: EtcdServer, tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ledger]:
    base = tmp_path_factory.mktemp("system-fleet")
    (base / "logs").mkdir()
    users_file = base / "users"
    for user in (ANA, BOB, CARL):
        add_user(users_file, user, "user", PASSWORDS[user])
    security = FleetSecurity.basic(
        admin_password=ADMIN_PASSWORD, admin_user=ADMIN, users_file=str(users_file)
    )
    fleet = LocalFleet(
        etcd_url=etcd.url,
        port=0,
        frontdoors=2,
        cores_per_worker=1,
        lease_ttl=2,
        namespace=f"/system-{uuid.uuid4().hex[:8]}",
        log_dir=str(base / "logs"),
        security=security,
        extra_env={  # one split per file: queries of many tasks
            "DUCKFLEET_PACK_BYTES": "0",
            "DUCKFLEET_DATA_DIR": str(base / "tables"),
        },
    )
    try:
        fleet.start()
        store = fleet.store()
        try:
            register_tables(store, str(tpch_dir))
        finally:
            store.close()
        yield Ledger(fleet, tpch_dir)
    finally:
        fleet.stop()


def run_all(ledger: Ledger, user: str) -> None:
    """GOOD and BAD as ``user`` on front door 0, answers checked against DuckDB."""
    for text in GOOD:
        got = ledger.run(0, user, text)
        assert got.to_pylist() == reference(ledger.data_root, text).to_pylist()
    for text in BAD:
        with pytest.raises(AdbcError, match=r"INTERNAL|Conversion"):
            ledger.run(0, user, text)


def test_the_other_front_door_counts_queries_by_state(ledger: Ledger):
    run_all(ledger, BOB)
    assert ledger.expected(BOB) == {"finished": len(GOOD), "failed": len(BAD)}
    ledger.counts_settle(1, ADMIN, None)  # every query of the fleet, as the admin sees it
    ledger.counts_settle(1, ADMIN, BOB, where=f"WHERE \"user\" = '{BOB}'")
    paths = ledger.run(
        1, ADMIN, f"SELECT sql, path FROM system.queries WHERE \"user\" = '{BOB}'"
    ).to_pylist()
    by_sql = {r["sql"]: r["path"] for r in paths}
    assert by_sql[GOOD[2]] == "queue"  # 5 tasks
    assert "fast" in {by_sql[GOOD[0]], by_sql[GOOD[1]]}  # one task over a small table, idle fleet


def test_a_user_sees_only_their_own_queries_and_tasks(ledger: Ledger):
    run_all(ledger, ANA)
    ledger.counts_settle(1, ANA, ANA)  # ana's own, her system queries included
    users = ledger.run(1, ANA, 'SELECT DISTINCT "user" FROM system.queries')
    assert users.column("user").to_pylist() == [ANA]
    orphans = ledger.run(
        1,
        ANA,
        "SELECT count(*) AS n FROM system.tasks t "
        "LEFT JOIN system.queries q ON q.id = t.query_id WHERE q.id IS NULL",
    )
    assert orphans.column("n").to_pylist() == [0]  # no task of a query she does not see
    theirs = ledger.run(1, ADMIN, "SELECT count(DISTINCT query_id) AS n FROM system.tasks")
    mine = ledger.run(1, ANA, "SELECT count(DISTINCT query_id) AS n FROM system.tasks")
    assert 0 < mine.column("n")[0].as_py() < theirs.column("n")[0].as_py()
    ledger.counts_settle(1, CARL, CARL)  # carl ran nothing else: his system queries only


def test_a_view_over_system_queries_shows_each_user_their_own(ledger: Ledger):
    with connect(ledger.door(0), ADMIN, ADMIN_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE VIEW finished_queries AS "
            "SELECT id, \"user\" FROM system.queries WHERE state = 'finished'"
        )
    for user in (ANA, BOB):
        got = ledger.run(1, user, 'SELECT DISTINCT "user" FROM finished_queries')
        assert got.column("user").to_pylist() == [user]
    everyone = ledger.run(1, ADMIN, 'SELECT DISTINCT "user" FROM finished_queries ORDER BY 1')
    assert {ANA, BOB} <= set(everyone.column("user").to_pylist())


def test_create_table_as_keeps_a_snapshot(ledger: Ledger):
    """CREATE TABLE AS (admins only) writes the snapshot it read: a history to keep."""
    before = len(ledger.ran)  # every query run so far has its record (its state may lag)
    with connect(ledger.door(0), ADMIN, ADMIN_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE query_log AS SELECT id, state FROM system.queries")
    ledger.ran.append((ADMIN, "finished"))  # the write ran as a query
    kept = ledger.run(1, ADMIN, "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM query_log")
    assert kept.to_pylist() == [{"n": before, "ids": before}]
    missing = ledger.run(
        1,
        ADMIN,
        "SELECT count(*) AS n FROM query_log k LEFT JOIN system.queries q ON q.id = k.id "
        "WHERE q.id IS NULL",
    )
    assert missing.column("n").to_pylist() == [0]  # the same queries, still in etcd


def test_a_running_query_shows_its_running_tasks_and_busy_workers(ledger: Ledger):
    done: dict[str, object] = {}
    thread = threading.Thread(target=lambda: done.update(table=ledger.run(0, CARL, SLOW)))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            running = ledger.run(
                1,
                ADMIN,
                "SELECT q.id, q.elapsed, t.task_id, t.worker, w.address, w.running "
                "FROM system.queries q JOIN system.tasks t ON t.query_id = q.id "
                "JOIN system.workers w ON w.id = t.worker "
                f"WHERE q.\"user\" = '{CARL}' AND q.state = 'running' AND t.state = 'running'",
            ).to_pylist()
            if running or "table" in done or time.monotonic() > deadline:
                break
        assert running, "the slow query was never seen running"
        members = {m.id: m.location for m in ledger.fleet.members("worker")}
        for row in running:
            assert members[row["worker"]] == row["address"] and row["running"] >= 1
            assert row["elapsed"] > 0
    finally:
        thread.join(60)
    assert "table" in done


def test_system_workers_lists_the_workers(ledger: Ledger):
    got = ledger.run(1, CARL, "SELECT id, address, slots FROM system.workers ORDER BY id")
    members = sorted(ledger.fleet.members("worker"), key=lambda m: m.id)
    assert len(members) == 2
    assert got.to_pylist() == [
        {"id": m.id, "address": m.location, "slots": m.slots} for m in members
    ]
    busy = ledger.run(
        0, CARL, "SELECT sum(running) AS n, min(started) AS since FROM system.workers"
    )
    assert busy.column("n").to_pylist() == [0]  # the asking query's task was not yet claimed
    assert busy.column("since")[0].as_py() is not None


def test_tasks_join_queries_workers_and_real_tables(ledger: Ledger):
    text = GOOD[2]
    ledger.run(0, CARL, text)
    rows = ledger.run(
        1,
        CARL,
        "SELECT q.id, q.tasks_total, q.tasks_done, count(t.task_id) AS tasks, "
        "count(DISTINCT t.stage) AS stages, count(w.id) AS on_known_workers, sum(t.rows) AS rows "
        "FROM system.queries q JOIN system.tasks t ON t.query_id = q.id "
        "LEFT JOIN system.workers w ON w.id = t.worker "
        f"WHERE q.sql = '{text}' AND q.state = 'finished' GROUP BY 1, 2, 3",
    ).to_pylist()
    assert len(rows) == 1, rows
    (row,) = rows
    assert row["tasks"] == row["tasks_total"] == row["tasks_done"] == 5  # 4 files, one merge
    assert row["stages"] == 2 and row["on_known_workers"] == 5
    with connect(ledger.door(1), CARL, PASSWORDS[CARL]) as conn, conn.cursor() as cur:
        cur.execute(  # parameters typed from the system table's columns
            "SELECT count(*) AS n FROM system.queries WHERE tasks_total >= ? AND sql = ?",
            parameters=(5, text),
        )
        assert cur.fetch_arrow_table().column("n").to_pylist() == [1]
    ledger.ran.append((CARL, "finished"))
    nation = reference(ledger.data_root, "SELECT count(*) AS n FROM nation").column("n")[0]
    crossed = ledger.run(
        1, CARL, "SELECT count(*) AS n FROM nation CROSS JOIN system.workers"
    ).column("n")
    assert crossed.to_pylist() == [nation.as_py() * 2]


def test_get_tables_lists_the_system_schema(ledger: Ledger):
    with connect(ledger.door(1), CARL, PASSWORDS[CARL]) as conn:
        [catalog] = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        assert conn.adbc_get_table_types() == ["SYSTEM TABLE", "TABLE", "VIEW"]
    schemas = {s["db_schema_name"]: s["db_schema_tables"] for s in catalog["catalog_db_schemas"]}
    assert [(t["table_name"], t["table_type"]) for t in schemas["system"]] == [
        ("queries", "SYSTEM TABLE"),
        ("tasks", "SYSTEM TABLE"),
        ("workers", "SYSTEM TABLE"),
    ]
    assert "lineitem" in {t["table_name"] for t in schemas["main"]}


def test_explain_says_a_snapshot_is_one_task(ledger: Ledger):
    with connect(ledger.door(0), ANA, PASSWORDS[ANA]) as conn, conn.cursor() as cur:
        cur.execute("EXPLAIN SELECT state, count(*) FROM system.queries GROUP BY 1")
        rows = cur.fetch_arrow_table().to_pylist()
    assert "never split" in rows[0]["detail"], rows[0]
    tasks = [r for r in rows if r["task"] is not None]
    assert len(tasks) == 1 and "snapshot of system.queries" in tasks[0]["reads"]


def test_grants_do_not_hide_system_tables(ledger: Ledger):
    """Last: it makes ungranted tables admins-only. A user with no grant still reads
    system tables (their own queries) and sees them in GetTables."""
    env = {**os.environ, "DUCKFLEET_ETCD": ledger.fleet.etcd_url}
    env["DUCKFLEET_NAMESPACE"] = ledger.fleet.namespace
    done = subprocess.run(
        [sys.executable, "-m", "duckfleet", "grants", "--ungranted", "admins"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 10
    while True:  # each front door sees the setting when its watch delivers it
        try:
            ledger.run(1, BOB, "SELECT count(*) FROM nation")
        except AdbcError as exc:
            assert "PERMISSION_DENIED" in str(exc) or "UNAUTHORIZED" in str(exc), exc
            break
        assert time.monotonic() < deadline, "the ungranted setting never reached front door 1"
        time.sleep(0.05)
    assert ledger.ran.pop() == (BOB, "failed")  # refused before it was published: no query
    ledger.counts_settle(1, BOB, BOB)
    with connect(ledger.door(1), BOB, PASSWORDS[BOB]) as conn:
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    listed = {
        (s["db_schema_name"], t["table_name"])
        for c in objects
        for s in c["catalog_db_schemas"] or []
        for t in s["db_schema_tables"] or []
    }
    assert listed == {("system", "queries"), ("system", "tasks"), ("system", "workers")}
