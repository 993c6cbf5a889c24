"""Arrow record batches as Flight's FlightData messages and back, for the grpcio front
door (flight/grpc_service.py).

A DoGet answer is an Arrow IPC stream cut into its messages: the schema first, then
each batch (dictionary batches before the batch that needs them), each message's
flatbuffer metadata in ``data_header`` and its body in ``data_body``. A DoPut
request is the same sequence coming in; it is put back together into an IPC stream
(continuation marker, length, metadata padded to 8 bytes, body) and read with
pyarrow.ipc.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator

import pyarrow as pa

from duckfleet.wire.flight_messages import FlightData

CONTINUATION = b"\xff\xff\xff\xff"


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken out as they come."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _messages(data: bytes) -> Iterator[bytes]:
    """Each IPC message of ``data`` (whole messages only) as a serialized FlightData."""
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(data))
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return
        body = message.body
        yield FlightData(
            data_header=message.metadata.to_pybytes(),
            data_body=body.to_pybytes() if body is not None else b"",
        ).SerializeToString()


def to_flight_data(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The serialized FlightData messages of a record batch stream: its schema, then its
    batches, each encoded as it comes."""
    sink = _Drain()
    with pa.ipc.new_stream(sink, schema) as writer:
        yield from _messages(sink.take())
        for batch in batches:
            writer.write_batch(batch)
            yield from _messages(sink.take())
    yield from _messages(sink.take())  # with no batch at all, the schema comes at close


def _pad8(n: int) -> int:
    return (8 - n % 8) % 8


def ipc_stream(messages: Iterable[tuple[bytes, bytes]]) -> bytes:
    """An Arrow IPC stream from (metadata flatbuffer, body) pairs, end marker included."""
    out = io.BytesIO()
    for header, body in messages:
        if not header:
            continue  # a message of app_metadata alone
        padding = _pad8(len(header))
        out.write(CONTINUATION)
        out.write(struct.pack("<i", len(header) + padding))
        out.write(header)
        out.write(b"\x00" * padding)
        out.write(body)
        out.write(b"\x00" * _pad8(len(body)))
    out.write(CONTINUATION + b"\x00\x00\x00\x00")
    return out.getvalue()


class PutReader:
    """What a DoPut handler reads (``read_all``), from the incoming FlightData: the
    pyarrow MetadataRecordBatchReader's part that FrontDoorServer.do_put uses."""

    def __init__(self, messages: list[tuple[bytes, bytes]]) -> None:
        self._messages = messages

    def read_all(self) -> pa.Table:
        if not any(header for header, _ in self._messages):
            return pa.table({})  # not even a schema: nothing was sent
        return pa.ipc.open_stream(ipc_stream(self._messages)).read_all()


class PutWriter:
    """Collects what a DoPut handler writes back (``write``), each one a PutResult."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, buffer: pa.Buffer | bytes) -> None:
        self.written.append(buffer.to_pybytes() if isinstance(buffer, pa.Buffer) else buffer)
