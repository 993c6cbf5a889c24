"""The front-door process: a Flight SQL server announced in etcd."""

from __future__ import annotations

import logging
import os
import threading
import time

from duckfleet.config import FrontDoorConfig
from duckfleet.control import Membership, Store
from duckfleet.control.errors import QueryCancelled, QueryFailed, QueryTimeout, ResultsLost
from duckfleet.control.records import MemberInfo
from duckfleet.flight.grpc_service import front_door_servers
from duckfleet.flight.runner import FleetBackend
from duckfleet.health import HealthServer
from duckfleet.ids import new_member_id
from duckfleet.metrics import FrontDoorMetrics, serve_logged
from duckfleet.netutil import free_port
from duckfleet.wire.auth import ProcessSecurity

log = logging.getLogger("duckfleet.flight")


class FrontDoor:
    def __init__(self, cfg: FrontDoorConfig) -> None:
        self.cfg = cfg
        self.id = new_member_id("frontdoor")
        self.port = cfg.port or free_port(cfg.host)
        self.location = cfg.location(self.port)
        self.security = ProcessSecurity.from_config(cfg)  # before anything starts
        self.metrics = FrontDoorMetrics()  # duckfleet/metrics.py
        self.store = Store(cfg.etcd, namespace=cfg.namespace, metrics=self.metrics.etcd)
        self.backend = FleetBackend(
            cfg, self.store, self.id, self.location, self.security.client(self.id)
        )
        # every query counted by outcome and timed; served bytes counted by DoGet
        self.backend.run = self.metrics.counted(  # type: ignore[method-assign]
            self.backend.run, cancelled=(QueryCancelled, QueryTimeout)
        )
        self.backend.poll = self.metrics.counted_polls(  # type: ignore[method-assign]
            self.backend.poll, (QueryCancelled, QueryTimeout), (QueryFailed, ResultsLost)
        )  # PollFlightInfo: counted by the poll that answers the end
        admission = self.backend.admission  # resource groups (flight/admission.py)
        admission.on_queued = self.metrics.admission_queued.inc
        admission.on_refused = self.metrics.admission_refused.inc
        admission.on_waited = self.metrics.admission_wait_seconds.observe
        # pyarrow's Flight server, or grpcio's over its handlers (DUCKFLEET_FRONTDOOR_SERVER)
        self.server, self.grpc = front_door_servers(
            cfg, self.port, self.backend, self.location, self.metrics.served_bytes.inc,
            self.security.server_kwargs(),
        )  # fmt: skip
        self.health = HealthServer(cfg.host, cfg.health_port)
        info = MemberInfo(
            self.id, "frontdoor", self.location, 0, time.time(), os.getpid(), self.health.port
        )
        self.membership = Membership(self.store, info, cfg.lease_ttl)
        self._stop = threading.Event()

    def start(self) -> FrontDoor:
        self.health.start()
        serve_logged(self.metrics, f"front door {self.id}", self.cfg.host, self.cfg.metrics_port)
        if self.grpc is not None:
            self.grpc.start()
        else:
            threading.Thread(target=self.server.serve, name="flight", daemon=True).start()
        self.membership.start_when_reachable(self._stop)
        self.health.set_serving(True)
        log.info(
            "front door %s serving Flight SQL at %s (%s server; %s)",
            self.id,
            self.location,
            self.cfg.frontdoor_server,
            self.security.describe(),
        )
        return self

    def wait(self) -> None:
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
        self.health.set_serving(False)
        if self.grpc is not None:
            self.grpc.stop()
        self.server.shutdown()
        self.membership.stop()
        self.backend.close()
        self.store.close()
        self.health.stop()
        self.metrics.stop()
        log.info("front door %s stopped", self.id)
