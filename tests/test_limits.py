"""Resource limits as pure logic: the setting's syntax, and what a client reads."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from duckfleet.control import ClaimedTask
from duckfleet.control.keys import QUERY_SINK
from duckfleet.control.queries import StoredTask
from duckfleet.control.records import Claim, EndReason, QueryRecord
from duckfleet.flight.runner import check_memory_limit
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.planner.plan import TaskPlan
from duckfleet.worker.errors import ResourceLimitExceeded
from duckfleet.worker.limits import check_result_size, failure


def claimed(memory_limit: str = "", max_result_bytes: int = 0, output: bool = True) -> ClaimedTask:
    record = QueryRecord(
        QueryId("q1"),
        "select 1",
        0.0,
        0,
        (TaskId("t0"),),
        1,
        MemberId("fd"),
        memory_limit=memory_limit,
        max_result_bytes=max_result_bytes,
    )
    consumers = (QUERY_SINK,) if output else (TaskId("t1"),)
    task = StoredTask(TaskPlan(TaskId("t0"), 0, "select 1"), consumers)
    return ClaimedTask(record, task, Claim(MemberId("w"), "token", "grpc://w:1"))


@pytest.mark.parametrize("text", ["", "512MB", "1.5 GB", "2GiB", "80%", "20mb", "1K"])
def test_memory_limits_duckdb_accepts_are_accepted(text):
    check_memory_limit(text)
    if text:
        duckdb.connect(config={"memory_limit": text}).close()  # and DuckDB agrees


@pytest.mark.parametrize("text", ["100000", "lots", "5 parsecs", "GB"])
def test_memory_limits_duckdb_refuses_are_refused_at_start(text):
    with pytest.raises(ValueError, match="DUCKFLEET_QUERY_MEMORY_LIMIT"):
        check_memory_limit(text)
    with pytest.raises(duckdb.Error):
        duckdb.connect(config={"memory_limit": text})


def test_an_output_partition_over_the_cap_is_refused_naming_the_cap():
    table = pa.table({"x": list(range(1000))})
    check_result_size(claimed(max_result_bytes=table.nbytes), table)  # at the cap: fine
    check_result_size(claimed(), table)  # no cap
    check_result_size(claimed(max_result_bytes=10, output=False), table)  # not the result
    with pytest.raises(ResourceLimitExceeded, match="DUCKFLEET_MAX_RESULT_BYTES=10"):
        check_result_size(claimed(max_result_bytes=10), table)


def test_duckdb_out_of_memory_names_the_limit_that_was_too_small():
    con = duckdb.connect(config={"memory_limit": "20MB", "threads": "1"})
    with pytest.raises(duckdb.OutOfMemoryException) as info:
        con.sql("select list(i) from range(10000000) t(i)").fetchall()
    error, reason = failure(claimed(memory_limit="20MB"), info.value, "")
    assert reason == EndReason.LIMIT
    assert "DUCKFLEET_QUERY_MEMORY_LIMIT=20MB" in error and "out of memory" in error
    error, reason = failure(claimed(), info.value, "4GB")
    assert reason == EndReason.LIMIT and "DUCKFLEET_MEMORY_LIMIT=4GB" in error


def test_other_errors_say_what_duckdb_said_and_bugs_point_at_the_log():
    con = duckdb.connect()
    with pytest.raises(duckdb.ConversionException) as info:
        con.sql("select 'x'::int").fetchall()
    error, reason = failure(claimed(), info.value, "")
    assert reason == EndReason.NONE
    assert error.startswith("Conversion Error: ") and "Exception" not in error
    error, reason = failure(claimed(), ZeroDivisionError("division by zero"), "")
    assert reason == EndReason.NONE
    assert "internal error in task" in error and "the worker's log" in error
    assert "ZeroDivision" not in error and "division by zero" not in error
