"""System tables without a network: the planner's one-task plans over inline
snapshots, the rows each table makes from a snapshot of etcd (who sees what), the
snapshot carried in the task and run in DuckDB as a worker runs it (compared with
DuckDB over the same Arrow tables), the size cap, and the metadata listing.
The same on real processes: tests/test_system_tables_fleet.py."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from tpch_data import tpch_catalog

from duckfleet.auth import ADMIN, ANONYMOUS, Identity
from duckfleet.catalog import Catalog, View
from duckfleet.control.errors import LimitExceeded
from duckfleet.control.fleet_state import Done, FleetState
from duckfleet.control.records import Claim, MemberInfo, QueryRecord, QueryState, QueryStatus
from duckfleet.flight import metadata
from duckfleet.flight.describe import Describer
from duckfleet.flight.system_tables import filled, queries_table, tasks_table, workers_table
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.planner import plan_query
from duckfleet.planner.errors import UnknownTableError, UnsupportedStatementError
from duckfleet.planner.plan import TaskPlan
from duckfleet.planner.reads import names_read
from duckfleet.system_catalog import QUERIES, TASKS, WORKERS
from duckfleet.wire import sql_messages as sql
from duckfleet.wire.inline import decode_table
from duckfleet.worker.errors import InputUnavailable
from duckfleet.worker.sandbox import run_sandboxed

NOW = 1_800_000_000.0
ANA = Identity("ana", "user", math.inf)
BOB = Identity("bob", "user", math.inf)
ROOT = Identity("root", ADMIN, math.inf)


def record(q: str, user: str, created: float, ntasks: int, priority: int = 0) -> QueryRecord:
    return QueryRecord(
        id=QueryId(q),
        sql=f"SELECT {q}",
        created=created,
        lease=1,
        outputs=(TaskId(f"t{ntasks - 1}"),),
        ntasks=ntasks,
        frontdoor=MemberId("fd-1"),
        priority=priority,
        user=user,
    )


def key(q: str, t: str) -> tuple[QueryId, TaskId]:
    return QueryId(q), TaskId(t)


def claim(worker: str, started: float) -> Claim:
    return Claim(MemberId(worker), "tok", f"grpc://{worker}:1", started)


def fleet_state() -> FleetState:
    """q1 (ana) finished, 2 tasks; q2 (bob) running: t0 done, t1 running, t2 queued,
    t3 waiting; q3 (ana) failed in t0, t1 never ran; q4 (bob) cancelled."""
    return FleetState(
        now=NOW,
        records={
            QueryId("q1"): record("q1", "ana", NOW - 60, 2),
            QueryId("q2"): record("q2", "bob", NOW - 10, 4, priority=5),
            QueryId("q3"): record("q3", "ana", NOW - 30, 2),
            QueryId("q4"): record("q4", "bob", NOW - 20, 1),
        },
        statuses={
            QueryId("q1"): QueryStatus(QueryState.FINISHED, at=NOW - 58.5),
            QueryId("q2"): QueryStatus(QueryState.RUNNING),
            QueryId("q3"): QueryStatus(QueryState.FAILED, error="boom", task="t0", at=NOW - 29),
            QueryId("q4"): QueryStatus(QueryState.CANCELLED, error="client went away"),
        },
        done={
            key("q1", "t0"): Done("w1", 10, 100, 0.5),
            key("q1", "t1"): Done("w2", 1, 8, 0.25),
            key("q2", "t0"): Done("w1", 7, 70, 1.0),
        },
        stages={
            key("q1", "t0"): 0,
            key("q1", "t1"): 1,
            key("q2", "t0"): 0,
            key("q2", "t1"): 0,
            key("q2", "t2"): 0,
            key("q2", "t3"): 1,
            key("q3", "t0"): 0,
            key("q3", "t1"): 0,
            key("q4", "t0"): 0,
        },
        claims={key("q2", "t1"): claim("w2", NOW - 4)},
        copies={},
        attempts={key("q1", "t0"): 1, key("q1", "t1"): 1, key("q2", "t0"): 2, key("q2", "t1"): 1},
        runnable=frozenset({key("q2", "t2")}),
        workers=(
            MemberInfo(MemberId("w2"), "worker", "grpc://h:2", 4, NOW - 100, 22),
            MemberInfo(MemberId("w1"), "worker", "grpc://h:1", 2, NOW - 200, 11),
        ),
    )


# --- the planner ------------------------------------------------------------------


def test_a_system_query_is_one_task_over_inline_snapshots():
    plan = plan_query(
        "SELECT q.state, count(*) AS n FROM system.queries AS q "
        "JOIN system.tasks ON tasks.query_id = q.id GROUP BY 1",
        Catalog(),
    )
    (task,) = plan.tasks
    assert [(i.relation, i.table, i.data) for i in task.inline] == [
        ("__system_queries", "system.queries", b""),
        ("__system_tasks", "system.tasks", b""),
    ]
    assert "__system_queries AS q" in task.sql and "__system_tasks AS tasks" in task.sql
    assert "system." not in task.sql
    assert not task.tables and not task.inputs
    assert "never split" in plan.reason and "system.queries and system.tasks" in plan.reason
    assert "__system_queries=snapshot of system.queries" in plan.explain()


@pytest.mark.parametrize(
    "text",
    [
        "SELECT queries.id FROM system.queries",
        "SELECT system.queries.id FROM system.queries",
        'SELECT id FROM "duckfleet"."system"."queries"',
        "SELECT id FROM SYSTEM.QUERIES",
    ],
)
def test_system_table_names_as_clients_write_them(text):
    (task,) = plan_query(text, Catalog()).tasks
    assert [i.table for i in task.inline] == ["system.queries"]
    assert "__system_queries AS queries" in task.sql.replace('"', "")


def test_a_join_with_catalog_tables_reads_them_whole(tpch_dir: Path):
    catalog = tpch_catalog(tpch_dir)
    plan = plan_query(
        "SELECT w.id, count(*) AS n FROM system.workers AS w, lineitem GROUP BY 1", catalog
    )
    (task,) = plan.tasks
    (binding,) = task.tables
    assert binding.table == "lineitem"
    assert len(binding.files) == len(catalog.get("lineitem").files) == 4
    assert [i.table for i in task.inline] == ["system.workers"]
    assert plan.tables == ("lineitem",)


def test_a_view_over_system_tables_plans_as_they_do():
    view = View("slow", "SELECT id, elapsed FROM system.queries WHERE elapsed > 1", (), ())
    catalog = Catalog(views={"slow": view})
    plan = plan_query("SELECT count(*) AS n FROM slow", catalog)
    (task,) = plan.tasks
    assert [i.table for i in task.inline] == ["system.queries"]
    assert "FROM __system_queries AS queries WHERE elapsed > 1" in task.sql
    describer = Describer()  # a view DuckDB cannot create there does not stop the rest
    try:
        prepared = describer.prepare("SELECT count(*) AS n FROM slow", catalog)
        assert prepared.dataset_schema.names == ["n"]
        assert describer.prepare("SELECT 1 AS one", catalog).dataset_schema.names == ["one"]
    finally:
        describer.close()


def test_grant_checks_do_not_count_system_tables(tpch_dir: Path):
    catalog = tpch_catalog(tpch_dir)
    catalog = replace(catalog, tables={**catalog.tables, "queries": catalog.get("nation")})
    text = "SELECT * FROM system.queries q, queries, system.workers"
    assert names_read(text, catalog) == {"queries": None}  # the catalog table alone


def test_unknown_system_tables_and_sandbox_escapes_are_refused():
    with pytest.raises(UnknownTableError, match=r"system\.nodes.*system\.queries"):
        plan_query("SELECT * FROM system.nodes", Catalog())
    with pytest.raises(UnsupportedStatementError, match="getenv"):
        plan_query("SELECT getenv('HOME') FROM system.workers", Catalog())
    with pytest.raises(UnsupportedStatementError, match="another catalog or schema"):
        plan_query("SELECT * FROM system.workers, other.t", Catalog())
    with pytest.raises(UnknownTableError):  # the relation is not a name users reach
        plan_query("SELECT * FROM __system_queries", Catalog())


def test_the_task_carries_its_snapshot_through_json():
    state = fleet_state()
    plan = filled(plan_query("SELECT * FROM system.workers", Catalog()), state, ROOT)
    (task,) = plan.tasks
    again = TaskPlan.from_json(task.to_json())
    assert again == task
    assert decode_table(again.inline[0].data).equals(workers_table(state))


# --- the rows, and who sees them --------------------------------------------------


def test_queries_rows():
    rows = {r["id"]: r for r in queries_table(fleet_state(), ROOT).to_pylist()}
    assert list(rows) == ["q1", "q3", "q4", "q2"]  # oldest first
    q1, q2, q3, q4 = rows["q1"], rows["q2"], rows["q3"], rows["q4"]
    assert (q1["state"], q1["tasks_done"], q1["tasks_total"], q1["elapsed"]) == (
        "finished",
        2,
        2,
        1.5,
    )
    assert (q2["state"], q2["tasks_done"], q2["elapsed"], q2["priority"]) == ("running", 1, 10, 5)
    assert (q3["state"], q3["error"], q3["elapsed"]) == ("failed", "boom", 1.0)
    assert (q4["state"], q4["elapsed"]) == ("cancelled", None)  # ended before statuses had `at`
    assert q1["submitted"].timestamp() == pytest.approx(NOW - 60 - _utc_offset(NOW - 60))
    assert q1["user"] == "ana" and q1["frontdoor"] == "fd-1" and q1["sql"] == "SELECT q1"
    assert q1["path"] == "queue"


def _utc_offset(seconds: float) -> float:
    """Naive UTC datetimes read back by .timestamp() as local time."""
    import datetime

    local = datetime.datetime.fromtimestamp(seconds)
    utc = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(tzinfo=None)
    return (local - utc).total_seconds()


def test_query_records_carry_user_and_path_and_ignore_fields_they_do_not_know():
    r = record("q9", "ana", NOW, 1)
    again = QueryRecord.from_json(r.to_json())
    assert again == r and (again.user, again.path) == ("ana", "queue")
    later = json.loads(r.to_json()) | {"a_field_from_a_later_version": 1}
    assert QueryRecord.from_json(json.dumps(later)) == r
    older = {k: v for k, v in json.loads(r.to_json()).items() if k not in ("user", "path")}
    assert (QueryRecord.from_json(json.dumps(older)).user, r.path) == ("", "queue")


def test_tasks_rows():
    rows = {(r["query_id"], r["task_id"]): r for r in tasks_table(fleet_state(), ROOT).to_pylist()}
    states = {k: r["state"] for k, r in rows.items()}
    assert states == {
        ("q1", "t0"): "finished",
        ("q1", "t1"): "finished",
        ("q2", "t0"): "finished",
        ("q2", "t1"): "running",
        ("q2", "t2"): "queued",
        ("q2", "t3"): "waiting",
        ("q3", "t0"): "failed",
        ("q3", "t1"): "cancelled",
        ("q4", "t0"): "cancelled",
    }
    done, running = rows[("q2", "t0")], rows[("q2", "t1")]
    assert (done["worker"], done["rows"], done["bytes"], done["seconds"], done["attempts"]) == (
        "w1",
        7,
        70,
        1.0,
        2,
    )
    assert done["started"] is None
    assert (running["worker"], running["seconds"], running["rows"]) == ("w2", 4.0, None)
    assert running["started"] is not None
    assert rows[("q2", "t3")]["stage"] == 1 and rows[("q2", "t3")]["worker"] is None


def test_workers_rows_and_running_counts():
    state = fleet_state()
    state = FleetState(
        **{**state.__dict__, "copies": {key("q2", "t2"): claim("w1", NOW - 1)}},
    )
    rows = workers_table(state).to_pylist()
    assert [(r["id"], r["address"], r["slots"], r["running"], r["pid"]) for r in rows] == [
        ("w1", "grpc://h:1", 2, 1, 11),  # a speculative copy counts
        ("w2", "grpc://h:2", 4, 1, 22),
    ]


@pytest.mark.parametrize(
    ("who", "queries"),
    [(ROOT, ["q1", "q3", "q4", "q2"]), (ANONYMOUS, ["q1", "q3", "q4", "q2"]),
     (ANA, ["q1", "q3"]), (BOB, ["q4", "q2"]), (Identity("cy", "user", math.inf), [])],
)  # fmt: skip
def test_admins_and_auth_off_see_all_users_their_own(who, queries):
    state = fleet_state()
    assert queries_table(state, who).column("id").to_pylist() == queries
    assert sorted(set(tasks_table(state, who).column("query_id").to_pylist())) == sorted(queries)
    assert workers_table(state, who).num_rows == 2  # workers: everyone


def test_the_tables_have_their_declared_schemas():
    state = fleet_state()
    assert queries_table(state, ROOT).schema == QUERIES
    assert tasks_table(state, ROOT).schema == TASKS
    assert workers_table(state, ROOT).schema == WORKERS
    empty = FleetState(now=NOW)
    assert queries_table(empty, ROOT).num_rows == 0 and queries_table(empty, ROOT).schema == QUERIES


# --- run as a worker runs it, compared with DuckDB over the same tables ----------

QUERIES_ASKED = [
    "SELECT state, count(*) AS n FROM system.queries GROUP BY 1 ORDER BY 1",
    "SELECT q.id, q.user, count(t.task_id) AS tasks, sum(t.rows) AS rows "
    "FROM system.queries q JOIN system.tasks t ON t.query_id = q.id GROUP BY 1, 2 ORDER BY 1",
    "SELECT w.id, w.slots - w.running AS free FROM system.workers w ORDER BY w.started",
    "SELECT t.worker, count(*) AS n FROM system.tasks t JOIN system.workers w ON w.id = t.worker "
    "WHERE t.state = 'finished' GROUP BY 1 ORDER BY 1",
    "SELECT id, elapsed FROM system.queries WHERE error IS NOT NULL ORDER BY id",
]


@pytest.mark.parametrize("text", QUERIES_ASKED)
@pytest.mark.parametrize("who", [ROOT, ANA], ids=["admin", "user"])
def test_the_task_answers_as_duckdb_over_the_snapshot(text, who):
    state = fleet_state()
    (task,) = filled(plan_query(text, Catalog()), state, who).tasks
    with duckdb.connect() as con:
        got = run_sandboxed(con.cursor(), task, {}, ())
    with duckdb.connect() as con:
        con.execute("ATTACH ':memory:' AS fleet")
        con.execute("CREATE SCHEMA fleet.system")
        for name, table in (
            ("queries", queries_table(state, who)),
            ("tasks", tasks_table(state, who)),
            ("workers", workers_table(state, who)),
        ):
            con.register(f"arrow_{name}", table)
            con.execute(f"CREATE TABLE fleet.system.{name} AS SELECT * FROM arrow_{name}")
        want = con.sql(text.replace("system.", "fleet.system.")).to_arrow_table()
    assert got.to_pylist() == want.to_pylist()
    assert got.schema.names == want.schema.names


def test_a_snapshot_over_the_cap_is_refused_naming_it():
    plan = plan_query("SELECT * FROM system.queries", Catalog())
    with pytest.raises(LimitExceeded, match=r"system\.queries 4 rows in [\d,]+ bytes\).*more"):
        filled(plan, fleet_state(), ROOT, max_bytes=64)
    both = plan_query("SELECT * FROM system.queries, system.workers", Catalog())
    sizes = [len(i.data) for i in filled(both, fleet_state(), ROOT).tasks[0].inline]
    filled(both, fleet_state(), ROOT, max_bytes=sum(sizes))  # the cap holds for both together
    with pytest.raises(LimitExceeded, match=r"system\.queries.*system\.workers"):
        filled(both, fleet_state(), ROOT, max_bytes=sum(sizes) - 1)


def test_a_task_whose_snapshot_was_not_filled_fails_clearly():
    (task,) = plan_query("SELECT * FROM system.workers", Catalog()).tasks
    with duckdb.connect() as con, pytest.raises(InputUnavailable, match="no snapshot of system"):
        run_sandboxed(con.cursor(), task, {}, ())


# --- describing and listing -------------------------------------------------------


def test_prepared_statements_describe_system_queries():
    describer = Describer()
    try:
        prepared = describer.prepare(
            "SELECT state, count(*) AS n, max(elapsed) AS slowest FROM system.queries GROUP BY 1",
            Catalog(),
        )
    finally:
        describer.close()
    assert prepared.dataset_schema.names == ["state", "n", "slowest"]
    assert prepared.dataset_schema.types == [pa.string(), pa.int64(), pa.float64()]
    describer = Describer()
    try:
        prepared = describer.prepare(
            'SELECT id FROM system.queries q WHERE tasks_total > ? AND q."user" = ? '
            "AND submitted > ?",
            Catalog(),
        )
    finally:
        describer.close()
    assert prepared.parameter_schema.types == [pa.int64(), pa.string(), pa.timestamp("us")]


def test_get_tables_lists_the_system_schema(tpch_dir: Path):
    catalog = tpch_catalog(tpch_dir)
    table = metadata.tables_table(sql.CommandGetTables(db_schema_filter_pattern="system"), catalog)
    assert table.column("table_name").to_pylist() == ["queries", "tasks", "workers"]
    assert set(table.column("table_type").to_pylist()) == {"SYSTEM TABLE"}
    everything = metadata.tables_table(sql.CommandGetTables(include_schema=True), catalog)
    names = list(
        zip(
            everything["db_schema_name"].to_pylist(),
            everything["table_name"].to_pylist(),
            strict=True,
        )
    )
    assert names[-3:] == [("system", "queries"), ("system", "tasks"), ("system", "workers")]
    raw = everything["table_schema"].to_pylist()[-1]
    schema = pa.ipc.read_schema(pa.py_buffer(raw))
    assert schema.names == WORKERS.names
    assert schema.field("id").metadata[b"ARROW:FLIGHT:SQL:SCHEMA_NAME"] == b"system"
    schemas = metadata.db_schemas_table(sql.CommandGetDbSchemas())
    assert schemas.column("db_schema_name").to_pylist() == ["main", "system"]
