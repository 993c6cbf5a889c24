"""Write a task's result to a Parquet file (CREATE TABLE AS, INSERT).

The file appears whole or not at all: DuckDB writes a temporary file beside it,
renamed into place once complete, so a task retried after its worker died simply
writes the same file again. The task's result is then a one-row summary.
"""

from __future__ import annotations

import os
import uuid

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

SUMMARY = pa.schema([("file", pa.utf8()), ("rows", pa.int64()), ("bytes", pa.int64())])


def write_result(relation: duckdb.DuckDBPyRelation, path: str) -> pa.Table:
    """Write ``relation`` to ``path``; the summary row of what was written."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        relation.write_parquet(partial, compression="zstd")
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    rows = pq.read_metadata(path).num_rows
    return pa.table({"file": [path], "rows": [rows], "bytes": [os.path.getsize(path)]}, SUMMARY)
