"""A real etcd server per test module, on free loopback ports, always stopped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from duckfleet.control import Store
from duckfleet.etcd_server import EtcdServer


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    data = tmp_path_factory.mktemp("etcd")
    server = EtcdServer(data_dir=str(data), log_path=str(data / "etcd.log"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def store(etcd: EtcdServer) -> Iterator[Store]:
    """A Store on its own namespace, so tests sharing one etcd never see each other."""
    s = Store(etcd.url, namespace=f"/test-{uuid.uuid4().hex[:8]}")
    s.wait_ready()
    try:
        yield s
    finally:
        s.close()
