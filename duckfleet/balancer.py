"""One address in front of several front doors: a round-robin TCP balancer.

Flight SQL is gRPC, which is HTTP/2 over one TCP connection (TLS or not). The
balancer relays each client connection, byte for byte, to one front door, so TLS
passes through untouched and every gRPC stream on that connection reaches the same
front door. Any front door can serve any request (tickets and handles are
self-contained), so per-connection balancing is enough.

Which front door takes a new connection: the next healthy one in turn. Health comes
from each front door's standard ``grpc.health.v1`` service (duckfleet/health.py),
polled every ``interval`` seconds; a front door that refuses a connection is marked
down at once and the next one is tried, so new connections never wait for a poll to
notice a dead front door. When no front door is healthy, every one is tried (the
polls may be stale; refusing outright helps nobody).

A connection already relayed to a front door that dies breaks with it; the client
reconnects and lands on a survivor. This is the same contract as the Envoy TCP
proxy of the compose deployment (compose/envoy.yaml); `duckfleet up --frontdoors N`
runs this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from duckfleet.errors import DuckfleetError
from duckfleet.health import HealthError, check
from duckfleet.netutil import host_port

log = logging.getLogger("duckfleet.balancer")

CHUNK = 256 * 1024


class BalancerError(DuckfleetError):
    """Bad balancer arguments, or its listening address cannot be bound."""


@dataclass
class Backend:
    """One front door: where its Flight SQL port is, and where its health service is."""

    host: str
    port: int
    health: tuple[str, int] | None = None  # None: a TCP connect is the only check
    healthy: bool = False  # unknown until the first poll: tried only in panic mode
    connections: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def parse_backend(flight: str, health: str | None) -> Backend:
    """``HOST:PORT`` of a front door and ``HOST:PORT`` of its health service."""
    host, port = host_port(flight, 0)
    if not port:
        raise BalancerError(f"backend {flight!r}: give HOST:PORT")
    if health is None:
        return Backend(host, port)
    hhost, hport = host_port(health, 0)
    if not hport:
        raise BalancerError(f"health address {health!r}: give HOST:PORT")
    return Backend(host, port, (hhost, hport))


class Balancer:
    """``async with Balancer(...)`` or ``await serve()`` until cancelled."""

    def __init__(
        self,
        host: str,
        port: int,
        backends: list[Backend],
        interval: float = 1.0,
        connect_timeout: float = 3.0,
    ) -> None:
        if not backends:
            raise BalancerError("a balancer needs at least one backend")
        self.host = host
        self.port = port
        self.backends = backends
        self.interval = interval
        self.connect_timeout = connect_timeout
        self._next = 0
        self._server: asyncio.Server | None = None
        self._poller: asyncio.Task[None] | None = None
        self._relays: set[asyncio.Task[object]] = set()

    # -- choosing a backend (pure) -------------------------------------------------

    def candidates(self) -> list[Backend]:
        """Backends to try for the next connection, in order: the healthy ones
        round-robin from the next turn, or all of them when none is healthy."""
        n = len(self.backends)
        start = self._next % n
        self._next = (self._next + 1) % n
        ring = self.backends[start:] + self.backends[:start]
        healthy = [b for b in ring if b.healthy]
        return healthy or ring

    def _mark(self, backend: Backend, healthy: bool, why: str) -> None:
        if backend.healthy != healthy:
            log.info("backend %s is %s: %s", backend.name, "up" if healthy else "down", why)
        backend.healthy = healthy

    # -- health polls ----------------------------------------------------------------

    async def _poll_one(self, backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        if backend.health is None:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(backend.host, backend.port), self.connect_timeout
                )
                writer.close()
                self._mark(backend, True, "accepts connections")
            except (OSError, TimeoutError) as exc:
                self._mark(backend, False, f"connect failed: {exc}")
            return
        target = f"{backend.health[0]}:{backend.health[1]}"
        try:
            status = await loop.run_in_executor(None, check, target, "", self.connect_timeout)
        except HealthError as exc:
            self._mark(backend, False, str(exc))
            return
        self._mark(backend, status == "SERVING", f"health service says {status}")

    async def poll_once(self) -> None:
        await asyncio.gather(*(self._poll_one(b) for b in self.backends))

    async def _poll_forever(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval)

    # -- relaying --------------------------------------------------------------------

    async def _connect(
        self,
    ) -> tuple[Backend, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for backend in self.candidates():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(backend.host, backend.port), self.connect_timeout
                )
            except (OSError, TimeoutError) as exc:
                self._mark(backend, False, f"connect failed: {exc}")
                continue
            backend.connections += 1
            return backend, reader, writer
        return None

    async def _client(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            await self._relay(creader, cwriter)
        finally:
            self._relays.discard(task)

    async def _relay(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        peer = cwriter.get_extra_info("peername")
        chosen = await self._connect()
        if chosen is None:
            log.warning("connection from %s refused: no backend accepts connections", peer)
            cwriter.close()
            return
        backend, breader, bwriter = chosen
        log.debug("connection from %s -> %s", peer, backend.name)
        pumps = [
            asyncio.create_task(_pump(creader, bwriter)),
            asyncio.create_task(_pump(breader, cwriter)),
        ]
        try:
            # gRPC never half-closes a connection it still uses: when either side
            # ends, the connection is over
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for w in (bwriter, cwriter):
                w.close()
            await asyncio.gather(*pumps, return_exceptions=True)

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> Balancer:
        await self.poll_once()
        try:
            self._server = await asyncio.start_server(self._client, self.host, self.port)
        except OSError as exc:
            raise BalancerError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._poller = asyncio.create_task(self._poll_forever())
        log.info(
            "balancing %s:%d over %s",
            self.host,
            self.port,
            ", ".join(b.name for b in self.backends),
        )
        return self

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._server is not None:
            self._server.close()
        for task in list(self._relays):  # open connections end with the balancer
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def serve(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Balancer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
