"""A worker's DuckDB, shut in: so that a gap in the planner's checks cannot become a
hole, the database itself refuses what user SQL must never do.

* Files: ``enable_external_access`` is off and ``allowed_directories`` lists the table
  storage (DUCKFLEET_STORAGE, comma-separated directories) and DuckDB's own spill
  directory. Reads and writes (COPY ... TO, for CTAS-style results) anywhere else,
  any URL (http, s3, ...), ATTACH, INSTALL, LOAD, EXPORT and persistent secrets fail
  with a PermissionException. With DUCKFLEET_STORAGE unset the list is ``/``: any
  local path, still no network, no extension, no ATTACH outside it.
* Extensions: no automatic install or load, no community extensions.
* Settings: ``lock_configuration``: no SET, RESET or PRAGMA can change any of this.
  (A setting the worker itself must change per query, say a memory limit, goes in
  DuckDB's ``allowed_configs`` here, before the lock.)
* Statements: DuckDB's own parser must read a fragment as one SELECT (or one COPY:
  a CTAS-style write into the storage; or PIVOT's MULTI), so a second statement
  smuggled past sqlglot never runs.

Checked in tests/test_sandbox.py against a real worker process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

from duckfleet.planner.plan import TaskPlan
from duckfleet.planner.quoting import quote_literal
from duckfleet.wire.inline import decode_table
from duckfleet.worker.errors import InputUnavailable, WorkerError
from duckfleet.worker.fragment import run_fragment

FRAGMENT_STATEMENTS = frozenset({"SELECT", "COPY", "MULTI"})


class SandboxRefusal(WorkerError):
    """A fragment asked for something the worker's DuckDB may not do."""


def storage_dirs(setting: str) -> tuple[str, ...]:
    """DUCKFLEET_STORAGE as absolute directory prefixes ending in ``/``; ``("/",)``
    when unset."""
    dirs = [d.strip() for d in setting.split(",") if d.strip()]
    if not dirs:
        return ("/",)
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


def open_database(
    threads: int, memory_limit: str = "", storage: Sequence[str] = ("/",)
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the sandbox on; its settings can no longer change."""
    config: dict[str, str | bool | int] = {
        "threads": threads,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        # Parquet footers kept between tasks: split-aligned and shuffle tasks read the
        # same files over and over
        "enable_object_cache": True,
    }
    if memory_limit:
        config["memory_limit"] = memory_limit
    db = duckdb.connect(config=config)
    # Order matters: the list is fixed before external access goes off, and the lock last.
    db.execute(f"SET allowed_directories = [{', '.join(quote_literal(d) for d in storage)}]")
    db.execute("SET enable_external_access = false")
    db.execute("SET lock_configuration = true")
    return db


def check_fragment(cur: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse a fragment DuckDB does not read as exactly one allowed statement."""
    try:
        statements = cur.extract_statements(sql)
    except duckdb.Error as exc:
        raise SandboxRefusal(f"fragment does not parse in DuckDB: {exc}") from None
    kinds = [str(s.type).rsplit(".", 1)[-1] for s in statements]
    if len(kinds) != 1 or kinds[0] not in FRAGMENT_STATEMENTS:
        raise SandboxRefusal(
            f"refused by the worker's sandbox: DuckDB reads the fragment as "
            f"{len(kinds)} statement(s) ({', '.join(kinds) or 'none'}); a fragment is one "
            "SELECT (or one COPY into the table storage)"
        )


def run_sandboxed(
    cur: duckdb.DuckDBPyConnection,
    task: TaskPlan,
    inputs: Mapping[str, pa.Table],
    storage: Sequence[str],
) -> pa.Table:
    """``run_fragment`` after ``check_fragment``; a file outside the storage is a
    SandboxRefusal that names the storage."""
    check_fragment(cur, task.sql)
    if task.inline:  # tables the task carries: system table snapshots
        inputs = {**inline_inputs(task), **inputs}
    try:
        return run_fragment(cur, task, inputs)
    except duckdb.PermissionException as exc:
        raise SandboxRefusal(
            f"{exc} (a worker's DuckDB reaches files under the table storage only: "
            f"{', '.join(storage)}; set DUCKFLEET_STORAGE)"
        ) from None


def inline_inputs(task: TaskPlan) -> dict[str, pa.Table]:
    """Each inline input's relation -> the table the task carries for it."""
    out = {}
    for i in task.inline:
        if not i.data:
            raise InputUnavailable(
                f"the task carries no snapshot of {i.table}: the front door that published "
                "it did not fill it in; run the query again"
            )
        out[i.relation] = decode_table(i.data)
    return out
