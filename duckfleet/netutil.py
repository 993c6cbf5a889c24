"""Small network helpers shared by the launcher, the CLI and the tests."""

from __future__ import annotations

import random
import socket
import time
from urllib.parse import urlparse

_EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


def _below_ephemeral() -> range:
    """Ports the kernel never hands out by itself: below the range it picks from for
    outgoing connections and for bind(0). A port chosen from the ephemeral range can
    be taken, between the choice and the bind, by any process's outgoing connection
    (an etcd client, a worker fetching a result), and a server then fails to start."""
    try:
        with open(_EPHEMERAL_RANGE) as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(max(10000, low - 12000), low)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller binds it soon after), chosen at
    random outside the kernel's ephemeral range where there is one."""
    ports = _below_ephemeral()
    for _ in range(64 if ports else 0):
        port = random.choice(ports)
        if _bindable(host, port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_port(host: str, port: int, timeout: float) -> bool:
    """True once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """'http://h:p', 'grpc://h:p' or 'h:p' -> (h, p)."""
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    return parsed.hostname or "127.0.0.1", parsed.port or default_port
