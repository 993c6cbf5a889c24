"""The tables of the ``system`` schema: the fleet's state, queryable with SQL.

``system.queries``, ``system.tasks`` and ``system.workers`` hold no files. The
planner learns from the catalog that they exist and what their columns are
(``Catalog.system``), and plans a query over them as one task; the front door that
publishes it fills in a snapshot of etcd (flight/system_tables.py builds the rows),
which travels with the task as an inline input (planner/plan.py ``InlineInput``).

Pure values: the Arrow schema of each table and the catalog entries made from it.
Timestamps are UTC, without a time zone.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa

from duckfleet.catalog import Column, Table

SYSTEM_SCHEMA = "system"

_ts = pa.timestamp("us")

QUERIES = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("user", pa.string()),  # "" when auth is off
        # queued (in a resource group's queue) | running | finished | failed | cancelled
        pa.field("state", pa.string(), nullable=False),
        pa.field("submitted", _ts),
        pa.field("elapsed", pa.float64()),  # seconds: until it ended, or until the snapshot
        pa.field("tasks_done", pa.int64()),
        pa.field("tasks_total", pa.int64()),
        pa.field("error", pa.string()),
        pa.field("priority", pa.int64()),
        pa.field("frontdoor", pa.string()),
        pa.field("path", pa.string()),  # queue | fast (offered to a worker, planner/fast_path.py)
        pa.field("resource_group", pa.string()),  # the group it was admitted in (or waits in)
        pa.field("sql", pa.string()),  # its first SQL_CHARS characters
    ]
)

TASKS = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("stage", pa.int64()),
        # waiting (for inputs) | queued (runnable) | running | finished | failed |
        # cancelled (its query ended first)
        pa.field("state", pa.string(), nullable=False),
        pa.field("worker", pa.string()),  # running it, or that finished it
        pa.field("attempts", pa.int64()),  # claims so far
        pa.field("started", _ts),  # of the running claim
        pa.field("seconds", pa.float64()),  # running so far, or how long the finishing copy ran
        pa.field("rows", pa.int64()),  # of its result, once finished
        pa.field("bytes", pa.int64()),
    ]
)

WORKERS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("address", pa.string()),
        pa.field("slots", pa.int64()),
        pa.field("running", pa.int64()),  # tasks it holds claims (or copies) of now
        pa.field("started", _ts),
        pa.field("pid", pa.int64()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {"queries": QUERIES, "tasks": TASKS, "workers": WORKERS}

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    _ts: "TIMESTAMP",
}


@cache
def system_tables() -> dict[str, Table]:
    """Each system table (by bare name) as a catalog table without files (one dict,
    shared: do not change it)."""
    return {
        name: Table(
            name=f"{SYSTEM_SCHEMA}.{name}",
            columns=tuple(Column(f.name, _DUCKDB_TYPES[f.type]) for f in schema),
            files=(),
        )
        for name, schema in SCHEMAS.items()
    }
