"""Small network helpers shared by the launcher, the CLI and the tests."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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
