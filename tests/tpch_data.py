"""Tiny TPC-H data for tests, and the two ways to run a query over it.

* `tpch_dir`: a session fixture; TPC-H at scale 0.01 written by tpchgen-cli with
  `--parts 4` (DIR/<table>/<table>.N.parquet; nation and region have one file).
* `tpch_catalog(dir)`: the catalog of those files (duckfleet.table_files: columns
  from DuckDB's DESCRIBE, rows and row groups from the footers, bytes from sizes).
* `tpch_query(n)`: the text of TPC-H query n, from shared/tpch/queries.
* `reference(catalog, sql)`: DuckDB in-process over views of every file: the answer.
* `execute_plan(plan)`: the plan run stage by stage through the worker's
  `run_fragment`, each task on a fresh cursor, partitioned results split into
  buckets by the worker's `split_buckets`: the distributed answer.
* `is_ordered(sql)`: whether the two answers must also agree on row order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from duckfleet.catalog import Catalog
from duckfleet.planner.plan import Plan
from duckfleet.planner.quoting import quote_ident, quote_literal
from duckfleet.table_files import describe_table
from duckfleet.worker.buckets import split_buckets
from duckfleet.worker.fragment import run_fragment

TPCH_SCALE = "0.01"
TPCH_PARTS = 4
# shared/tpch/queries beside the repository (CI checks shared/ out there), or where
# DUCKFLEET_TPCH_QUERIES says.
TPCH_QUERIES = Path(__file__).resolve().parents[2] / "shared" / "tpch" / "queries"
if not TPCH_QUERIES.is_dir():
    TPCH_QUERIES = Path(
        os.environ.get("DUCKFLEET_TPCH_QUERIES", "../shared/tpch/queries")
    ).resolve()


def tpchgen_cli() -> str:
    beside = Path(sys.executable).parent / "tpchgen-cli"
    found = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if found is None:
        pytest.skip("tpchgen-cli is not installed (pip install tpchgen-cli)")
    return found


@pytest.fixture(scope="session")
def tpch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tpch")
    cmd = [tpchgen_cli(), "parquet", "-s", TPCH_SCALE, "--parts", str(TPCH_PARTS), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def tpch_catalog(directory: Path) -> Catalog:
    subdirs = sorted(p for p in directory.iterdir() if p.is_dir())
    return Catalog(tables={sub.name: describe_table(sub.name, str(sub)) for sub in subdirs})


def tpch_query(n: int) -> str:
    """The text of TPC-H query `n` (1..22), DuckDB SQL."""
    return (TPCH_QUERIES / f"q{n:02d}.sql").read_text()


def reference(catalog: Catalog, sql: str) -> pa.Table:
    """DuckDB's own answer: one connection, a view per table over all its files."""
    with duckdb.connect() as con:
        for table in catalog.tables.values():
            files = ", ".join(quote_literal(f.path) for f in table.files)
            con.execute(
                f"CREATE VIEW {quote_ident(table.name)} AS SELECT * FROM read_parquet([{files}])"
            )
        return con.sql(sql).to_arrow_table()


def is_ordered(sql: str) -> bool:
    """Whether the query's answer has an order to compare: an outermost ORDER BY."""
    return sqlglot.parse_one(sql, dialect="duckdb").args.get("order") is not None


def execute_plan(plan: Plan, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Run `plan` as workers would, stage by stage, each task on a fresh cursor of `con`
    (a new in-memory database by default); the output tasks' results, in order.

    A partitioned task's result is split into its buckets (worker.buckets, as the
    worker does); an input with a bucket reads that bucket of each producer.
    """
    if con is None:
        with duckdb.connect() as own:
            return execute_plan(plan, own)
    results: dict[str, pa.Table | list[pa.Table]] = {}

    def read(t: str, bucket: int) -> pa.Table:
        held = results[t]
        if isinstance(held, list):
            assert bucket >= 0, f"{t} is partitioned: its consumers name a bucket"
            return held[bucket]
        assert bucket < 0, f"{t} is not partitioned"
        return held

    for stage in plan.stages:
        for task in stage.tasks:
            inputs = {
                b.relation: pa.concat_tables([read(t, b.bucket) for t in b.tasks])
                for b in task.inputs
            }
            cursor = con.cursor()
            try:
                table = run_fragment(cursor, task, inputs)
                if task.partitioned:
                    table = split_buckets(cursor, table, task.partition_by, task.buckets)
                results[task.id] = table
            finally:
                cursor.close()
    return pa.concat_tables([read(t.id, -1) for t in plan.output_tasks])
