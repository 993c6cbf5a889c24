"""Tables carried inside a task (planner/plan.py ``InlineInput``): Arrow IPC bytes.

The front door encodes a system table snapshot (flight/system_tables.py), the
worker decodes it before the fragment runs (worker/sandbox.py). A task lives in
etcd, whose requests are at most 1.5 MiB by default, so a task's snapshots are
capped at ``INLINE_MAX_BYTES`` of compressed IPC together (a third more as base64 in
the task's JSON: 1 MiB, leaving room for the rest of the transaction).
"""

from __future__ import annotations

import pyarrow as pa

INLINE_MAX_BYTES = 768 << 10  # 768 KiB: 1 MiB as base64, under etcd's 1.5 MiB requests

_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def encode_table(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream, compressed."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
