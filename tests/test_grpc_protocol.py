"""The whole of tests/test_flight_protocol.py (the Flight SQL surface, in process,
over DuckDB) run again against the grpcio front door: its tests are imported, and
``server`` here serves the same FrontDoorServer's handlers through GrpcFrontDoor
(flight/grpc_service.py) on a free port, the pyarrow server kept for its handlers
listening on a Unix socket only. 165 of its 166 tests: one is about the pyarrow
server's own bound port."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from test_flight_protocol import *  # noqa: F403  (every test and fixture of it)
from test_flight_protocol import DuckDBBackend

from duckfleet.flight.grpc_service import GrpcFrontDoor
from duckfleet.flight.server import FrontDoorServer

# about the pyarrow server's own port (the grpcio door advertises what the front door
# process gives it: flight/frontdoor.py)
del test_advertised_location_has_the_bound_port  # noqa: F821


class GrpcServed:
    """What the protocol tests use of a server: its port."""

    def __init__(self, door: GrpcFrontDoor, handlers: FrontDoorServer) -> None:
        self.port = door.port
        self.handlers = handlers


@pytest.fixture
def server(backend: DuckDBBackend) -> Iterator[GrpcServed]:
    with tempfile.TemporaryDirectory(prefix="grpc-protocol-") as scratch:
        handlers = FrontDoorServer(f"grpc+unix://{scratch}/handlers.sock", backend)
        door = GrpcFrontDoor(handlers, "127.0.0.1", 0, {}).start()
        try:
            yield GrpcServed(door, handlers)
        finally:
            door.stop(grace=0)
            handlers.shutdown()
