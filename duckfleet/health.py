"""The standard gRPC health service (grpc.health.v1.Health) beside a fleet process.

pyarrow's Flight server cannot host other gRPC services, so each front door and worker
runs this small grpcio server on a port of its own (DUCKFLEET_HEALTH_PORT; 0 picks a
free one, -1 turns it off) and advertises it in its member record. It answers for the
whole server (service ``""``) and for ``"duckfleet"``: NOT_SERVING until the process
has joined the fleet, SERVING while it takes work, NOT_SERVING again once it stops
or drains. Load balancers (grpc health checks) and the compose HEALTHCHECK
(``duckfleet health --target HOST:PORT``) read it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from duckfleet.errors import DuckfleetError

SERVICES = ("", "duckfleet")
DISABLED = -1

_Status = health_pb2.HealthCheckResponse.ServingStatus


class HealthError(DuckfleetError):
    """The health port cannot be bound, or a health check could not be made."""


class HealthServer:
    """A grpc.health.v1 server on ``host:port``; ``port`` 0: a free one, -1: none.

    A disabled server has ``port`` 0 and does nothing, so callers need no branches.
    """

    def __init__(self, host: str, port: int = 0) -> None:
        self.enabled = port != DISABLED
        self.port = 0
        if not self.enabled:
            return
        self._servicer = health.HealthServicer()
        self._server = grpc.server(ThreadPoolExecutor(2, thread_name_prefix="health"))
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise HealthError(f"cannot bind the health port {address}: {exc}") from None
        if not self.port:
            raise HealthError(f"cannot bind the health port {address}")
        self.set_serving(False)

    def start(self) -> HealthServer:
        if self.enabled:
            self._server.start()
        return self

    def set_serving(self, serving: bool) -> None:
        if not self.enabled:
            return
        status = _Status.SERVING if serving else _Status.NOT_SERVING
        for service in SERVICES:
            self._servicer.set(service, status)

    def stop(self, grace: float | None = None) -> None:
        if not self.enabled:
            return
        self._servicer.enter_graceful_shutdown()  # NOT_SERVING to every watcher
        self._server.stop(grace)


def check(target: str, service: str = "", timeout: float = 3.0) -> str:
    """The status ``target`` (host:port) reports for ``service``: ``SERVING``,
    ``NOT_SERVING``, ``SERVICE_UNKNOWN`` or ``UNKNOWN``; HealthError if unreachable."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            raise HealthError(
                f"health check of {target} failed: {code.name}: {exc.details()}"  # type: ignore[attr-defined]
            ) from None
    return str(_Status.Name(response.status))


ALIVE, GONE, SILENT = "alive", "gone", "silent"  # what a probe of a health port found


def answers(host: str, port: int, timeout: float) -> bool:
    """Does the health service at host:port answer within `timeout` s?"""
    return probe_health(host, port, timeout) == ALIVE


def probe_health(host: str, port: int, timeout: float) -> str:
    """ALIVE if the health service at host:port answers within `timeout` s (any
    answer, NOT_SERVING too: a draining process is alive); GONE if nothing listens
    there (the connection is refused at once: a killed process's port); SILENT if
    it does not answer in time (a frozen or overloaded process's port accepts the
    connection but never answers). A fresh channel each time, so a reconnect
    backoff left by an earlier failure never hides an answer."""
    with grpc.insecure_channel(f"[{host}]:{port}" if ":" in host else f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.NOT_FOUND:
                return ALIVE
            return GONE if code == grpc.StatusCode.UNAVAILABLE else SILENT
    return ALIVE
