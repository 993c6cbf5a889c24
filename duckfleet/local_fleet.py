"""A whole fleet on one machine, as child processes: what `duckfleet up` runs.

The tests start fleets through this class too, so the processes they talk to are
the same commands a user runs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from duckfleet.auth.local import FleetSecurity
from duckfleet.control import CatalogStore, Store
from duckfleet.control.records import MemberInfo
from duckfleet.errors import DuckfleetError
from duckfleet.etcd_server import EtcdServer
from duckfleet.netutil import free_port, wait_port
from duckfleet.supervisor import Child, Supervisor
from duckfleet.table_files import describe_table

log = logging.getLogger("duckfleet.up")

TPCH_TABLES = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")


def tpchgen_binary() -> str:
    here = Path(sys.executable).parent / "tpchgen-cli"
    return str(here) if here.exists() else "tpchgen-cli"


def missing_tpch_tables(data_dir: str, scale: float) -> list[str]:
    """The TPC-H tables `generate_tpch` would generate (those not there yet)."""
    out = Path(data_dir) / f"sf{scale:g}"
    return [t for t in TPCH_TABLES if not ((out / t).is_dir() and any((out / t).iterdir()))]


def generate_tpch(
    data_dir: str,
    scale: float,
    parts: int = 4,
    on_table: Callable[[str], None] | None = None,
) -> str:
    """TPC-H Parquet under data_dir/sf<scale>/<table>/; tables already there are
    skipped. `on_table(name)` is told as each table is written (progress), in the
    order they are seen: all its files there, or the generator done."""
    out = Path(data_dir) / f"sf{scale:g}"
    missing = missing_tpch_tables(data_dir, scale)
    if not missing:
        return str(out)
    out.mkdir(parents=True, exist_ok=True)
    log.info("generating TPC-H scale %g into %s", scale, out)
    cmd = [tpchgen_binary(), "parquet", "-s", str(scale), "--parts", str(parts)]
    cmd += [f"--tables={','.join(missing)}", "-o", str(out)]
    # one process for every table (each start costs seconds); its own progress bar
    # would garble ours, so its output is kept for an error message
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        told: set[str] = set()
        reader = _Drain(proc)
        while proc.poll() is None:
            for table in missing:
                if table not in told and _written(out / table, parts):
                    told.add(table)
                    if on_table is not None:
                        on_table(table)
            time.sleep(0.1)
        said = reader.text()
    if proc.returncode != 0:
        raise DuckfleetError(f"tpchgen-cli failed: {said.strip()[-500:]}")
    for table in missing:
        if table not in told and on_table is not None:
            on_table(table)
    return str(out)


def _written(directory: Path, parts: int) -> bool:
    """All of a table's files are there (nation and region have one file)."""
    try:
        files = [p for p in directory.iterdir() if p.suffix == ".parquet"]
    except FileNotFoundError:
        return False
    return len(files) >= (1 if directory.name in ("nation", "region") else parts)


class _Drain:
    """A child's output, read on a thread so its pipe never fills."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._chunks.append(line)
            del self._chunks[:-50]

    def text(self) -> str:
        self._thread.join(5)
        return b"".join(self._chunks).decode(errors="replace")


def register_tables(
    store: Store,
    root: str,
    names: tuple[str, ...] = TPCH_TABLES,
    on_table: Callable[[str], None] | None = None,
) -> None:
    catalog = CatalogStore(store)
    for name in names:
        if on_table is not None:
            on_table(name)
        catalog.put_table(describe_table(name, os.path.join(root, name)))


@dataclass
class LocalFleet:
    etcd_url: str | None = None  # None: start one
    frontdoors: int = 1
    workers: int = 2
    # the one address clients use: the front door's port, or with several front
    # doors the port of the balancer in front of them (duckfleet/balancer.py)
    port: int = 31337
    cores_per_worker: int | None = None
    lease_ttl: int = 5
    namespace: str = "/duckfleet"
    log_dir: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # auth and TLS of every process; the default: DUCKFLEET_AUTH=none, plaintext
    security: FleetSecurity = field(default_factory=FleetSecurity)
    storage: str = ""  # DUCKFLEET_STORAGE of the workers ("": any local path)
    etcd: EtcdServer | None = field(default=None, init=False)
    frontdoor_procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)
    worker_procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)
    frontdoor_ports: list[int] = field(default_factory=list, init=False)
    balancer_proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    balancer_port: int | None = field(default=None, init=False)
    _frontdoor_env: list[dict[str, str]] = field(default_factory=list, init=False)
    _logs: dict[int, str] = field(default_factory=dict, init=False)  # pid -> log file
    _balancer_args: list[str] = field(default_factory=list, init=False)
    supervisor: Supervisor | None = field(default=None, init=False)
    # Prometheus /metrics port of each front door and worker, by (role, index): each
    # child keeps its port when it is started again
    metrics_ports: dict[tuple[str, int], int] = field(default_factory=dict, init=False)

    @property
    def uri(self) -> str:
        return f"{self.security.scheme}://127.0.0.1:{self.balancer_port or self.frontdoor_ports[0]}"

    def frontdoor_uri(self, index: int) -> str:
        """One front door itself, bypassing the balancer."""
        return f"{self.security.scheme}://127.0.0.1:{self.frontdoor_ports[index]}"

    def store(self) -> Store:
        assert self.etcd_url is not None
        return Store(self.etcd_url, namespace=self.namespace)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        assert self.etcd_url is not None
        env.update(
            {
                "DUCKFLEET_ETCD": self.etcd_url,
                "DUCKFLEET_NAMESPACE": self.namespace,
                "DUCKFLEET_LEASE_TTL": str(self.lease_ttl),
                "DUCKFLEET_HOST": "127.0.0.1",
                "DUCKFLEET_STORAGE": self.storage,
            }
        )
        env.update(self.security.env())
        env.update(self.extra_env)
        return env

    def _spawn(
        self, role: str, args: list[str], index: int, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "duckfleet.cli", role, *args]
        env = {**self._metrics_env(role, index), **(env or {})}
        log = os.path.join(self.log_dir, f"{role}-{index}.log") if self.log_dir else None
        out = open(log, "ab") if log else None
        try:
            proc = subprocess.Popen(cmd, env={**self._env(), **(env or {})}, stdout=out, stderr=out)
        finally:
            if out is not None:
                out.close()
        if log:
            self._logs[proc.pid] = log
        return proc

    def _metrics_env(self, role: str, index: int) -> dict[str, str]:
        """DUCKFLEET_METRICS_PORT of a front door or worker: a free port of its own
        (unless -1 turns metrics off)."""
        if role not in ("frontdoor", "worker") or self._env().get("DUCKFLEET_METRICS_PORT") == "-1":
            return {}
        port = self.metrics_ports.setdefault((role, index), free_port())
        return {"DUCKFLEET_METRICS_PORT": str(port)}

    def metrics_urls(self) -> list[tuple[str, str]]:
        """("front door 0", its /metrics URL), then the workers'."""
        names = {"frontdoor": "front door", "worker": "worker"}
        return [
            (f"{names[role]} {i}", f"http://127.0.0.1:{port}/metrics")
            for (role, i), port in sorted(self.metrics_ports.items())
        ]

    def _worker_args(self) -> list[str]:
        args = ["--port", "0"]
        if self.cores_per_worker:
            args += ["--cores", str(self.cores_per_worker)]
        return args

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = self._spawn("worker", self._worker_args(), len(self.worker_procs))
        self.worker_procs.append(proc)
        return proc

    def restart_worker(self, index: int) -> subprocess.Popen[bytes]:
        """Start worker `index` again (a new member: its results died with the old one)."""
        _not_running(self.worker_procs[index], f"worker {index}")
        self.worker_procs[index] = self._spawn("worker", self._worker_args(), index)
        return self.worker_procs[index]

    def _start_frontdoor(self, index: int) -> subprocess.Popen[bytes]:
        port = self.frontdoor_ports[index]
        env = self._frontdoor_env[index]
        return self._spawn("frontdoor", ["--port", str(port)], index, env)

    def restart_frontdoor(self, index: int) -> subprocess.Popen[bytes]:
        """Start front door `index` again on its own port, after it exited or was killed
        (the chaos soak does this)."""
        _not_running(self.frontdoor_procs[index], f"front door {index}")
        self.frontdoor_procs[index] = self._start_frontdoor(index)
        return self.frontdoor_procs[index]

    def restart_balancer(self) -> None:
        assert self.balancer_proc is not None
        _not_running(self.balancer_proc, "the balancer")
        self.balancer_proc = self._spawn("balance", self._balancer_args, 0)

    def restart_etcd(self) -> None:
        """etcd again from its data directory, on its ports: the catalog and every key
        that had not expired are there."""
        assert self.etcd is not None
        self.etcd.stop()
        self.etcd.start()

    def supervise(self) -> Supervisor:
        """Restart every child that exits from now on (duckfleet/supervisor.py)."""
        children = []
        if self.etcd is not None:
            etcd = self.etcd
            children.append(
                Child("etcd", lambda: etcd.proc.poll() if etcd.proc else 0, self.restart_etcd)
            )
        if self.balancer_proc is not None:
            children.append(
                Child("the balancer", lambda: self._poll(self.balancer_proc), self.restart_balancer)
            )
        for role, procs, restart in (
            ("front door", self.frontdoor_procs, self.restart_frontdoor),
            ("worker", self.worker_procs, self.restart_worker),
        ):
            for i in range(len(procs)):
                poll = lambda i=i, procs=procs: procs[i].poll()  # noqa: E731
                children.append(Child(f"{role} {i}", poll, lambda i=i, r=restart: r(i)))
        self.supervisor = Supervisor(children).start()
        return self.supervisor

    @staticmethod
    def _poll(proc: subprocess.Popen[bytes] | None) -> int | None:
        return proc.poll() if proc is not None else 0

    def start(self, timeout: float = 60.0) -> LocalFleet:
        if self.etcd_url is None:
            self.etcd = EtcdServer(
                log_path=os.path.join(self.log_dir, "etcd.log") if self.log_dir else None
            ).start()
            self.etcd_url = self.etcd.url
        if self.frontdoors > 1:
            self._start_frontdoors_behind_balancer()
        else:
            self.frontdoor_ports.append(self.port or free_port())
            self._frontdoor_env.append({})
            self.frontdoor_procs.append(self._start_frontdoor(0))
        for _ in range(self.workers):
            self.start_worker()
        self.wait_ready(timeout)
        return self

    def _start_frontdoors_behind_balancer(self) -> None:
        """Front doors on free ports and `duckfleet balance` on `port`. Each front door
        advertises its own address, so the fallback location of a result names the
        front door that issued it, and a retry on another front door can tell by that
        port whether the first is gone (flight/orphans.py)."""
        self.balancer_port = self.port or free_port()
        balance = ["--listen", f"127.0.0.1:{self.balancer_port}"]
        for i in range(self.frontdoors):
            port, health = free_port(), free_port()
            self.frontdoor_ports.append(port)
            self._frontdoor_env.append({"DUCKFLEET_HEALTH_PORT": str(health)})
            self.frontdoor_procs.append(self._start_frontdoor(i))
            balance += ["--backend", f"127.0.0.1:{port}", "--health", f"127.0.0.1:{health}"]
        self._balancer_args = balance
        self.balancer_proc = self._spawn("balance", balance, 0)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for port in self.frontdoor_ports + ([self.balancer_port] if self.balancer_port else []):
            while not wait_port("127.0.0.1", port, 0.5):
                self._check_children()  # a child that exited says why, at once
                if time.monotonic() > deadline:
                    raise DuckfleetError(f"front door on port {port} did not start")
        store = self.store()
        try:
            while time.monotonic() < deadline:
                self._check_children()
                members = store.client.get_prefix(store.keys.members("worker"), keys_only=True)
                if len(list(members)) >= self.workers:
                    return
                time.sleep(0.1)
        finally:
            store.close()
        raise DuckfleetError(f"{self.workers} worker(s) did not join within {timeout}s")

    def members(self, kind: str = "worker") -> list[MemberInfo]:
        store = self.store()
        try:
            prefix = store.keys.members(kind)
            return [MemberInfo.from_json(v) for v, _ in store.client.get_prefix(prefix)]
        finally:
            store.close()

    def pid_of(self, member_id: str) -> int | None:
        return next((m.pid for m in self.members("worker") if m.id == member_id), None)

    def _children(self) -> list[subprocess.Popen[bytes]]:
        balancer = [self.balancer_proc] if self.balancer_proc is not None else []
        return balancer + self.frontdoor_procs + self.worker_procs

    def _check_children(self) -> None:
        for p in self._children():
            if p.poll() is not None and p.returncode not in (0, -signal.SIGKILL):
                command = " ".join(map(str, p.args))
                raise DuckfleetError(
                    f"{command!r} exited with {p.returncode}{self._last_words(p.pid)}"
                )

    def log_of(self, pid: int) -> str | None:
        """The log file of the child with this pid, if it has one."""
        return self._logs.get(pid)

    def _last_words(self, pid: int) -> str:
        """The last line of a child's log (its one-line error), if it has a log."""
        log = self._logs.get(pid)
        if not log:
            return ""
        try:
            lines = Path(log).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1]} (log: {log})" if lines else f" (log: {log})"

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        procs = self._children()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.etcd is not None:
            self.etcd.close()

    def __enter__(self) -> LocalFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _not_running(proc: subprocess.Popen[bytes], what: str) -> None:
    if proc.poll() is None:
        raise DuckfleetError(f"{what} (pid {proc.pid}) is still running")
