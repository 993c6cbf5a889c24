"""Settings of every component, from DUCKFLEET_* environment variables.

Command-line flags override the environment; the environment overrides the
defaults below. One table, so README and code cannot drift apart.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields

HOSTNAME = "@hostname"  # DUCKFLEET_ADVERTISE_HOST value: advertise socket.gethostname()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _env(name: str, default: str) -> str:
    return os.environ.get(f"DUCKFLEET_{name.upper()}", default)


@dataclass
class CommonConfig:
    etcd: str = field(default_factory=lambda: _env("etcd", "http://127.0.0.1:2379"))
    namespace: str = field(default_factory=lambda: _env("namespace", "/duckfleet"))
    host: str = field(default_factory=lambda: _env("host", "127.0.0.1"))  # bind address
    # host name clients use to reach this process (compose: the service name);
    # "@hostname": this machine's host name (a scaled compose replica's container id)
    advertise_host: str = field(default_factory=lambda: _env("advertise_host", ""))
    # port clients use to reach this process, when a balancer or a port mapping sits
    # in front of it (0: the port it listens on)
    advertise_port: int = field(default_factory=lambda: int(_env("advertise_port", "0")))
    lease_ttl: int = field(default_factory=lambda: int(_env("lease_ttl", "5")))
    log_level: str = field(default_factory=lambda: _env("log_level", "INFO"))
    # grpc.health.v1 service port (duckfleet/health.py): 0 = a free port, -1 = none
    health_port: int = field(default_factory=lambda: int(_env("health_port", "0")))
    # Prometheus /metrics port (duckfleet/metrics.py): 0 = a free port, -1 = none
    metrics_port: int = field(default_factory=lambda: int(_env("metrics_port", "0")))
    # where tables written through Flight SQL (ingest, CREATE TABLE AS, INSERT) live,
    # one directory each; storage every worker and front door reaches. "": no writes
    data_dir: str = field(default_factory=lambda: _env("data_dir", ""))
    # auth and TLS (duckfleet/auth, README "Auth and TLS"): "basic" or "none"
    auth: str = field(default_factory=lambda: _env("auth", "basic"))
    # HMAC key shared by every front door and worker (or a file holding it)
    token_key: str = field(default_factory=lambda: _env("token_key", ""))
    token_key_file: str = field(default_factory=lambda: _env("token_key_file", ""))
    token_ttl: float = field(default_factory=lambda: float(_env("token_ttl", "43200")))
    tls_cert_file: str = field(default_factory=lambda: _env("tls_cert_file", ""))
    tls_key_file: str = field(default_factory=lambda: _env("tls_key_file", ""))
    # roots this process's own clients trust; default: the certificate file itself
    tls_ca_file: str = field(default_factory=lambda: _env("tls_ca_file", ""))
    # the name this process's own clients check other members' certificates against,
    # when members are reached by names no certificate lists (compose: container ids)
    tls_server_name: str = field(default_factory=lambda: _env("tls_server_name", ""))

    @property
    def scheme(self) -> str:
        return "grpc+tls" if self.tls_cert_file else "grpc"

    def location(self, port: int) -> str:
        host = self.advertise_host or self.host
        if host == HOSTNAME:
            host = socket.gethostname()
        return f"{self.scheme}://{host}:{self.advertise_port or port}"


@dataclass
class WorkerConfig(CommonConfig):
    port: int = field(default_factory=lambda: int(_env("worker_port", "0")))
    cores: int = field(default_factory=lambda: int(_env("cores", str(_cores()))))
    slots: int = field(default_factory=lambda: int(_env("slots", "0")))  # 0: = cores
    # fast-path offers (short queries: one task over small inputs) a worker takes past
    # its slots when they are full, so a short query never waits behind long tasks
    short_slots: int = field(default_factory=lambda: max(0, int(_env("short_slots", "1"))))
    memory_limit: str = field(default_factory=lambda: _env("memory_limit", ""))
    # on SIGTERM: seconds to let running tasks finish before releasing them
    drain_timeout: float = field(default_factory=lambda: float(_env("drain_timeout", "30")))
    # "fair": the query with the fewest running tasks first; "fifo": oldest query first
    scheduling: str = field(default_factory=lambda: _env("scheduling", "fair"))
    # a second copy of a task running `factor` times its stage's median, and at least
    # `min_seconds`, on an idle worker (control/speculation.py); "off" disables it
    speculation: str = field(default_factory=lambda: _env("speculation", "on"))
    speculation_factor: float = field(
        default_factory=lambda: float(_env("speculation_factor", "3"))
    )
    speculation_min_seconds: float = field(
        default_factory=lambda: float(_env("speculation_min_seconds", "2"))
    )
    # directories holding table files, comma-separated: DuckDB reads and writes files
    # there only (worker/sandbox.py); empty: any local path
    storage: str = field(default_factory=lambda: _env("storage", ""))
    # failure detection (control/detection.py): a worker holding claims is probed
    # on its health port every interval by one other worker; this many failed
    # probes in a row (each waits at most probe_timeout s) declare it dead
    probe_interval: float = field(default_factory=lambda: float(_env("probe_interval", "0.2")))
    probe_failures: int = field(default_factory=lambda: int(_env("probe_failures", "3")))
    probe_timeout: float = field(default_factory=lambda: float(_env("probe_timeout", "0.5")))

    @property
    def task_slots(self) -> int:
        return self.slots or self.cores


@dataclass
class FrontDoorConfig(CommonConfig):
    port: int = field(default_factory=lambda: int(_env("port", "31337")))
    query_timeout: float = field(default_factory=lambda: float(_env("query_timeout", "600")))
    result_ttl: int = field(default_factory=lambda: int(_env("result_ttl", "300")))
    max_attempts: int = field(default_factory=lambda: int(_env("max_attempts", "3")))
    # DuckDB memory limit of each task of a query (its own database on the worker); "": none
    query_memory_limit: str = field(default_factory=lambda: _env("query_memory_limit", ""))
    # bytes (Arrow) a query's result may hold; 0: no cap
    max_result_bytes: int = field(default_factory=lambda: int(_env("max_result_bytes", "0")))
    broadcast_max_bytes: int = field(
        default_factory=lambda: int(_env("broadcast_max_bytes", str(64 * 1024 * 1024)))
    )
    # seconds a client session (SetSessionOptions) lives after its last change
    session_ttl: int = field(default_factory=lambda: int(_env("session_ttl", "86400")))
    # who may log in when auth is "basic" (duckfleet/auth/users.py)
    admin_user: str = field(default_factory=lambda: _env("admin_user", "admin"))
    admin_password: str = field(default_factory=lambda: _env("admin_password", ""))
    admin_password_file: str = field(default_factory=lambda: _env("admin_password_file", ""))
    users_file: str = field(default_factory=lambda: _env("users_file", ""))
    # plans kept by a front door (the same SQL on the same catalog is planned once)
    plan_cache: int = field(default_factory=lambda: int(_env("plan_cache", "256")))
    # a split (one task's share of a large table): about this many bytes of Parquet
    split_bytes: int = field(
        default_factory=lambda: int(_env("split_bytes", str(32 * 1024 * 1024)))
    )
    # smaller files packed together into splits of at most this many bytes
    # (planner/splits.py), so a query over less than a split is one task; 0: never
    pack_bytes: int = field(default_factory=lambda: int(_env("pack_bytes", str(32 * 1024 * 1024))))
    # planner/joins, splitting joins, subqueries, CTEs and windows by key: "cost" when
    # the planner's costs say it pays, "always" whenever the answer stays right,
    # "never"
    split_joins: str = field(default_factory=lambda: _env("split_joins", "cost").lower())
    # a one-task read-only query over at most this many bytes of table files is
    # offered straight to a worker with a free slot (planner/fast_path.py); 0: never
    fast_path_bytes: int = field(
        default_factory=lambda: int(_env("fast_path_bytes", str(32 * 1024 * 1024)))
    )
    # tasks the fleet runs at once, for the planner's costs; 0: its workers' slots
    parallelism: int = field(default_factory=lambda: int(_env("parallelism", "0")))
    # what serves Flight SQL: "arrow" (pyarrow's C++ server) or "grpc" (grpcio, which
    # also serves PollFlightInfo: flight/grpc_service.py)
    frontdoor_server: str = field(
        default_factory=lambda: _env("frontdoor_server", "arrow").strip().lower()
    )


def override(cfg: CommonConfig, **flags: object) -> None:
    """Apply command-line flags that were given (not None) on top of cfg."""
    names = {f.name for f in fields(cfg)}
    for k, v in flags.items():
        if v is not None and k in names:
            setattr(cfg, k, v)


@dataclass
class DemoDataConfig(CommonConfig):
    """`duckfleet demo-data`: TPC-H generated under demo_dir and registered.
    (DUCKFLEET_DATA_DIR is where Flight SQL writes tables, a different place.)"""

    demo_scale: float = field(default_factory=lambda: float(_env("demo_scale", "1")))
    demo_parts: int = field(default_factory=lambda: int(_env("demo_parts", "4")))
    demo_dir: str = field(default_factory=lambda: _env("demo_dir", "./data"))
