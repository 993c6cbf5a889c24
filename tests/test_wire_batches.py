"""A worker's result batches stay under the clients' message limit."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.ids import QueryId, TaskId
from duckfleet.wire.tickets import result_ticket
from duckfleet.worker.flight_service import WorkerFlightServer
from duckfleet.worker.results import ResultStore
from duckfleet.worker.wire import MAX_BATCH_BYTES, wire_sized


def big_table() -> pa.Table:
    """One 24 MB record batch, as DuckDB returns for a split of SF1 lineitem."""
    n = 1_000_000
    return pa.table({"k": pa.array(range(n), pa.int64()), "s": pa.array(["x" * 16] * n)})


def test_wire_sized_cuts_big_batches_and_keeps_every_row():
    table = big_table()
    assert table.to_batches()[0].nbytes > 16 << 20
    cut = wire_sized(table)
    assert all(b.nbytes <= MAX_BATCH_BYTES for b in cut.to_batches())
    assert len(cut.to_batches()) > 4
    assert cut.equals(table)
    small = pa.table({"a": [1, 2, 3]})
    assert wire_sized(small).to_batches()[0].num_rows == 3


def test_a_client_with_a_16_mib_message_limit_reads_a_big_result_from_a_worker():
    results = ResultStore()
    q, t = QueryId("q-wire"), TaskId("t0")
    table = big_table()
    results.put(q, t, table)
    server = WorkerFlightServer("grpc://127.0.0.1:0", results)
    try:
        # gRPC's default receive limit is what the ADBC driver uses: 16 MiB
        client = fl.connect(
            f"grpc://127.0.0.1:{server.port}",
            generic_options=[("grpc.max_receive_message_length", 16 << 20)],
        )
        with client:
            got = client.do_get(fl.Ticket(result_ticket(q, t))).read_all()
        assert got.equals(table)
    finally:
        server.shutdown()
