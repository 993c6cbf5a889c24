"""Run one task's SQL fragment in DuckDB: bind its names, execute, return Arrow.

A fragment names catalog tables and earlier results by plain relation names; this
module gives those names meaning inside a fresh DuckDB cursor (a connection of its
own, so temporary views never leak between tasks) and runs the fragment.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pyarrow as pa

from duckfleet.planner.plan import TaskPlan


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def bind_tables(cur: duckdb.DuckDBPyConnection, task: TaskPlan) -> None:
    for b in task.tables:
        files = ", ".join(quote_literal(f) for f in b.files)
        # a split-aligned task reads one key range (DuckDB skips the row groups
        # outside it by their statistics)
        where = f" WHERE {b.filter}" if b.filter else ""
        cur.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote_ident(b.table)} AS "
            f"SELECT * FROM read_parquet([{files}]){where}"
        )


def run_fragment(
    cur: duckdb.DuckDBPyConnection, task: TaskPlan, inputs: Mapping[str, pa.Table]
) -> pa.Table:
    """Execute ``task`` on ``cur`` (a cursor the caller owns and closes).

    ``inputs`` maps each of the task's input relations to the concatenated results
    of its producer tasks.
    """
    bind_tables(cur, task)
    for relation, table in inputs.items():
        cur.register(relation, table)
    return cur.sql(task.sql).to_arrow_table()
