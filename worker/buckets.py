"""Exchange, producer side: split a task's result into hash buckets.

Bucket of a row = ``hash(key columns) % buckets`` computed by DuckDB, so every
producer of every query puts equal keys (of one type) in the same bucket: a
consumer that reads bucket b of each producer sees every row whose key hashes to
b, and no other. NULL keys hash to one fixed bucket, like any other value.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from duckfleet.planner.quoting import quote_ident

_RESULT = "__exchange_result"


def bucket_ids(
    cur: duckdb.DuckDBPyConnection, table: pa.Table, keys: tuple[str, ...], buckets: int
) -> pa.Array:
    """For each row of `table`, in order, its bucket in [0, buckets)."""
    if buckets < 1 or not keys:
        raise ValueError(
            f"a partitioned result needs key columns and buckets >= 1, got {keys}, {buckets}"
        )
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise ValueError(
            f"partition keys {missing} are not columns of the result {table.column_names}"
        )
    cur.register(_RESULT, table)
    try:
        hashed = ", ".join(quote_ident(k) for k in keys)
        # insertion order is preserved (DuckDB's default): row i of the answer is row i
        ids = cur.sql(f"SELECT (hash({hashed}) % {buckets})::INTEGER AS b FROM {_RESULT}")
        column = ids.to_arrow_table().column("b")
    finally:
        cur.unregister(_RESULT)
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def split_buckets(
    cur: duckdb.DuckDBPyConnection, table: pa.Table, keys: tuple[str, ...], buckets: int
) -> list[pa.Table]:
    """`table` split into `buckets` tables by hash of `keys` (same schema each)."""
    if table.num_rows == 0:
        return [table] * buckets
    ids = bucket_ids(cur, table, keys, buckets)
    return [table.filter(pc.equal(ids, b)) for b in range(buckets)]
