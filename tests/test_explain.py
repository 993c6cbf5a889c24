"""EXPLAIN and EXPLAIN ANALYZE through a real front door, with the ADBC Flight SQL driver.

EXPLAIN answers the plan the planner makes for the same catalog: stages, tasks,
splits, inputs and fragment SQL, and why a query runs as one task. EXPLAIN ANALYZE
runs the query and adds each task's worker, rows, bytes and time from the task
records.
"""

from __future__ import annotations

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from fleet_fixture import run
from tpch_data import tpch_catalog

from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.explain import Explain, explain_statement
from duckfleet.wire import sql_messages as sql
from duckfleet.wire.commands import pack

AGGREGATE = "SELECT l_returnflag, SUM(l_quantity) AS q FROM lineitem GROUP BY l_returnflag"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EXPLAIN SELECT 1", Explain("SELECT 1", analyze=False)),
        ("explain analyze SELECT 1;", Explain("SELECT 1;", analyze=True)),
        ("/* hi */ EXPLAIN\n  ANALYSE SELECT 2", Explain("SELECT 2", analyze=True)),
        ("SELECT 1", None),
        ("EXPLAINX SELECT 1", None),
    ],
)
def test_explain_statements_are_recognised(text, expected):
    assert explain_statement(text) == expected


def test_explain_shows_stages_tasks_splits_and_fragment_sql(fleet, tpch_dir):
    table = run(fleet.uri, f"EXPLAIN {AGGREGATE}")
    plan = plan_query(AGGREGATE, tpch_catalog(tpch_dir), PlannerSettings())
    rows = table.to_pylist()
    assert table.column_names == ["stage", "kind", "task", "detail", "reads", "inputs", "sql"]
    assert rows[0]["kind"] == "plan" and rows[0]["detail"] == plan.reason
    tasks = [r for r in rows if r["task"] is not None]
    assert [(r["stage"], r["kind"], r["task"], r["sql"]) for r in tasks] == [
        (s.index, str(s.kind), t.id, t.sql) for s in plan.stages for t in s.tasks
    ]
    partials = [r for r in tasks if r["kind"] == "partial"]
    assert len(partials) == 4
    assert sorted(r["reads"] for r in partials) == [
        f"lineitem: lineitem.{n}.parquet" for n in range(1, 5)
    ]
    (merge,) = [r for r in tasks if r["kind"] == "merge"]
    assert merge["inputs"] == "__stage0 <- t0, t1, t2, t3"


def test_explain_says_why_a_query_runs_as_one_task(fleet):
    rows = run(fleet.uri, "EXPLAIN SELECT MEDIAN(l_quantity) AS m FROM lineitem").to_pylist()
    assert rows[0]["detail"] == (
        "one task: MEDIAN cannot be merged exactly; it needs every row of a group in one "
        "task, and without GROUP BY all rows are one group"
    )
    (task,) = [r for r in rows if r["task"] is not None]
    assert (task["kind"], task["reads"]) == ("single", "lineitem: 4 files")
    assert task["sql"] == "SELECT MEDIAN(l_quantity) AS m FROM lineitem"


def test_explain_analyze_adds_each_tasks_worker_rows_bytes_and_time(fleet):
    answer = run(fleet.uri, AGGREGATE)
    table = run(fleet.uri, f"EXPLAIN ANALYZE {AGGREGATE}")
    assert table.column_names[-4:] == ["worker", "rows", "bytes", "ms"]
    assert table.schema.field("rows").type == pa.int64()
    rows = table.to_pylist()
    assert rows[0]["rows"] == answer.num_rows
    tasks = [r for r in rows if r["task"] is not None]
    workers = {m.id for m in fleet.members("worker")}
    assert all(r["worker"] in workers for r in tasks), tasks
    assert all(r["rows"] > 0 and r["bytes"] > 0 and r["ms"] > 0 for r in tasks), tasks
    (merge,) = [r for r in tasks if r["kind"] == "merge"]
    assert merge["rows"] == answer.num_rows
    assert sum(r["rows"] for r in tasks if r["kind"] == "partial") >= answer.num_rows


def test_any_front_door_answers_an_explain_ticket_again(fleet):
    """The ticket carries the statement: a DoGet on a new connection answers it."""
    command = sql.CommandStatementQuery(query=f"EXPLAIN {AGGREGATE}")
    with fl.connect(fleet.uri) as client:
        info = client.get_flight_info(fl.FlightDescriptor.for_command(pack(command)))
    (endpoint,) = info.endpoints
    assert list(endpoint.locations) == []
    with fl.connect(fleet.uri) as client:
        again = client.do_get(endpoint.ticket).read_all()
    assert again.equals(run(fleet.uri, f"EXPLAIN {AGGREGATE}"))


@pytest.mark.parametrize("sql_text", ["EXPLAIN SELECT * FROM nope", "EXPLAIN ANALYZE DROP TABLE x"])
def test_explain_of_bad_sql_is_invalid_argument(fleet, sql_text):
    with pytest.raises(adbc_driver_manager.ProgrammingError) as info:
        run(fleet.uri, sql_text)
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
