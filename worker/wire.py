"""Result batches cut to a size every Flight client takes.

DuckDB hands back record batches of any size (22 MB for a split of SF1 lineitem);
one batch is one gRPC message, and the ADBC Flight SQL driver, like gRPC's
default, refuses messages over 16 MiB. So a worker serves a result in batches of at
most ``MAX_BATCH_BYTES``: the same rows, more messages.
"""

from __future__ import annotations

import pyarrow as pa

MAX_BATCH_BYTES = 4 << 20  # well under the 16 MiB message limit of the clients


def wire_sized(table: pa.Table, max_bytes: int = MAX_BATCH_BYTES) -> pa.Table:
    """``table`` with no record batch over ``max_bytes`` (zero-copy slices)."""
    batches: list[pa.RecordBatch] = []
    for batch in table.to_batches():
        if batch.nbytes <= max_bytes or batch.num_rows <= 1:
            batches.append(batch)
            continue
        rows = max(1, batch.num_rows * max_bytes // batch.nbytes)
        batches.extend(batch.slice(i, rows) for i in range(0, batch.num_rows, rows))
    return pa.Table.from_batches(batches, schema=table.schema)
