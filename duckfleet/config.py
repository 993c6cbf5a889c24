"""Settings of every component, from DUCKFLEET_* environment variables.

Command-line flags override the environment; the environment overrides the
defaults below. One table, so README and code cannot drift apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields


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
    # host name clients use to reach this process (compose: the service name)
    advertise_host: str = field(default_factory=lambda: _env("advertise_host", ""))
    lease_ttl: int = field(default_factory=lambda: int(_env("lease_ttl", "5")))
    log_level: str = field(default_factory=lambda: _env("log_level", "INFO"))
    # grpc.health.v1 service port (duckfleet/health.py): 0 = a free port, -1 = none
    health_port: int = field(default_factory=lambda: int(_env("health_port", "0")))

    def location(self, port: int) -> str:
        return f"grpc://{self.advertise_host or self.host}:{port}"


@dataclass
class WorkerConfig(CommonConfig):
    port: int = field(default_factory=lambda: int(_env("worker_port", "0")))
    cores: int = field(default_factory=lambda: int(_env("cores", str(_cores()))))
    slots: int = field(default_factory=lambda: int(_env("slots", "0")))  # 0: = cores
    memory_limit: str = field(default_factory=lambda: _env("memory_limit", ""))
    # on SIGTERM: seconds to let running tasks finish before releasing them
    drain_timeout: float = field(default_factory=lambda: float(_env("drain_timeout", "30")))
    # "fair": the query with the fewest running tasks first; "fifo": oldest query first
    scheduling: str = field(default_factory=lambda: _env("scheduling", "fair"))

    @property
    def task_slots(self) -> int:
        return self.slots or self.cores


@dataclass
class FrontDoorConfig(CommonConfig):
    port: int = field(default_factory=lambda: int(_env("port", "31337")))
    query_timeout: float = field(default_factory=lambda: float(_env("query_timeout", "600")))
    result_ttl: int = field(default_factory=lambda: int(_env("result_ttl", "300")))
    max_attempts: int = field(default_factory=lambda: int(_env("max_attempts", "3")))
    broadcast_max_bytes: int = field(
        default_factory=lambda: int(_env("broadcast_max_bytes", str(64 * 1024 * 1024)))
    )
    # planner/joins, splitting joins, subqueries, CTEs and windows by key: "cost" when
    # the planner's costs say it pays, "always" whenever the answer stays right,
    # "never"
    split_joins: str = field(default_factory=lambda: _env("split_joins", "cost").lower())
    # tasks the fleet runs at once, for the planner's costs; 0: its workers' slots
    parallelism: int = field(default_factory=lambda: int(_env("parallelism", "0")))


def override(cfg: CommonConfig, **flags: object) -> None:
    """Apply command-line flags that were given (not None) on top of cfg."""
    names = {f.name for f in fields(cfg)}
    for k, v in flags.items():
        if v is not None and k in names:
            setattr(cfg, k, v)
