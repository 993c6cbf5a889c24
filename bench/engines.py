"""The engines `python -m bench tpch` compares, each behind the same two calls:
`run(sql) -> pyarrow.Table` and `close()`, all reading the same Parquet files.

* duckdb: DuckDB in-process, a view per table over its files (the reference);
* duckfleet: the fleet, through ADBC Flight SQL;
* datafusion: Apache DataFusion in-process (`datafusion` on PyPI), one registered
  Parquet table per directory;
* spark: PySpark in local mode (`pyspark` on PyPI, needs Java 17+), a temporary
  view per table.

The TPC-H text is DuckDB SQL. Dialect adjustments are explicit and listed in
`DIALECT`: Spark gets sqlglot's DuckDB -> Spark transpilation; DataFusion takes the
text as it is. Every answer is compared with DuckDB's by `engine_difference`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot

from duckfleet.local_fleet import TPCH_TABLES
from duckfleet.planner.quoting import quote_ident, quote_literal
from duckfleet.table_files import expand_paths
from duckfleet.verify import difference

ENGINES = ("duckdb", "duckfleet", "datafusion", "spark")

# How each engine's SQL is made from the DuckDB text (shown in the report).
DIALECT = {
    "duckdb": "the query text as it is",
    "duckfleet": "the query text as it is",
    "datafusion": "the query text as it is",
    "spark": "sqlglot.transpile(read='duckdb', write='spark')",
}

# Engines round decimal AVG and division differently (DuckDB: DOUBLE; DataFusion and
# Spark: DECIMAL with 6 digits of scale), so answers are compared as doubles, equal
# within a relative 1e-6 or one unit of that sixth decimal.
CROSS_ENGINE_REL_TOL = 1e-6
CROSS_ENGINE_ABS_TOL = 1e-6


class Engine:
    name = ""

    def translate(self, sql: str) -> str:
        return sql

    def run(self, sql: str) -> pa.Table:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, root: str, threads: int) -> None:
        self.con = duckdb.connect(config={"threads": str(threads)})
        for table in TPCH_TABLES:
            files = ", ".join(quote_literal(f) for f in expand_paths(str(Path(root) / table)))
            self.con.execute(
                f"CREATE VIEW {quote_ident(table)} AS SELECT * FROM read_parquet([{files}])"
            )

    def run(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def close(self) -> None:
        self.con.close()


class FleetEngine(Engine):
    name = "duckfleet"

    def __init__(self, uri: str) -> None:
        from bench.fleet import adbc_connect

        self.conn = adbc_connect(uri)
        self.cur = self.conn.cursor()

    def run(self, sql: str) -> pa.Table:
        self.cur.execute(sql)
        return self.cur.fetch_arrow_table()

    def close(self) -> None:
        self.cur.close()
        self.conn.close()


class DataFusionEngine(Engine):
    name = "datafusion"

    def __init__(self, root: str, threads: int) -> None:
        import datafusion

        config = datafusion.SessionConfig().with_target_partitions(threads)
        self.ctx = datafusion.SessionContext(config)
        for table in TPCH_TABLES:
            self.ctx.register_parquet(table, str(Path(root) / table) + os.sep)

    def run(self, sql: str) -> pa.Table:
        return self.ctx.sql(sql).to_arrow_table()


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, root: str, threads: int, memory: str = "4g") -> None:
        from pyspark.sql import SparkSession

        self.spark = (
            SparkSession.builder.master(f"local[{threads}]")
            .appName("duckfleet-bench")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", memory)
            .config("spark.sql.shuffle.partitions", str(max(2, threads * 2)))
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")
        for table in TPCH_TABLES:
            self.spark.read.parquet(str(Path(root) / table)).createOrReplaceTempView(table)

    def translate(self, sql: str) -> str:
        return sqlglot.transpile(sql, read="duckdb", write="spark")[0]

    def run(self, sql: str) -> pa.Table:
        return self.spark.sql(self.translate(sql)).toArrow()

    def close(self) -> None:
        """Stop Spark and its JVM (stopping the session alone leaves the JVM and its
        heap alive until this process exits, under the experiments that follow)."""
        from pyspark import SparkContext

        self.spark.stop()
        gateway = SparkContext._gateway
        if gateway is None:
            return
        gateway.shutdown()
        proc = getattr(gateway, "proc", None)
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        SparkContext._gateway = None
        SparkContext._jvm = None


def make_engine(name: str, root: str, threads: int, uri: str | None = None) -> Engine:
    makers: dict[str, Callable[[], Engine]] = {
        "duckdb": lambda: DuckDBEngine(root, threads),
        "duckfleet": lambda: FleetEngine(uri or ""),
        "datafusion": lambda: DataFusionEngine(root, threads),
        "spark": lambda: SparkEngine(root, threads),
    }
    return makers[name]()


def _comparable(table: pa.Table) -> pa.Table:
    """Decimals as doubles, integers as int64, strings as string: the types engines
    choose differently for the same value."""
    columns = []
    for column in table.columns:
        t = column.type
        if pa.types.is_decimal(t) or pa.types.is_floating(t):
            column = pc.cast(column, pa.float64())
        elif pa.types.is_integer(t):
            column = pc.cast(column, pa.int64())
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            column = pc.cast(column, pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def engine_difference(
    actual: pa.Table, expected: pa.Table, *, ordered: bool, exact: bool
) -> str | None:
    """None if `actual` is DuckDB's answer `expected`. `exact` (duckfleet): names,
    types and values as verify.difference checks them. Otherwise (another engine):
    columns matched by position (engines name unaliased expressions differently),
    numbers compared as doubles to CROSS_ENGINE_REL_TOL / _ABS_TOL."""
    if exact:
        return difference(actual, expected, ordered=ordered)
    if actual.num_columns != expected.num_columns:
        return f"{actual.num_columns} columns, expected {expected.num_columns}"
    actual = actual.rename_columns(expected.column_names)
    return difference(
        _comparable(actual),
        _comparable(expected),
        ordered=ordered,
        check_types=False,
        rel_tol=CROSS_ENGINE_REL_TOL,
        abs_tol=CROSS_ENGINE_ABS_TOL,
    )
