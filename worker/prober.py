"""The worker's prober: the carrier of control/detection.py's decisions.

One thread lists the fleet's workers and every claim and copy (one etcd read each
DUCKFLEET_PROBE_INTERVAL, skipped while the worker's watches know of no claim in
the fleet: an idle fleet costs nothing), tells the Detector, and starts the probes it asks for on
a small pool: a grpc.health.v1 Check on the suspect's health port, on a channel of
its own (a fresh connection, so a reconnect backoff never hides an answer), or a
TCP connect to its Flight port when it has no health port. A probe's outcome goes
back to the Detector; a death it decides is declared by control/declarations.py.
DUCKFLEET_PROBE_INTERVAL 0 turns it off (then only a lease's expiry frees claims).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control import Store
from duckfleet.control.declarations import HeldClaim, declare_dead
from duckfleet.control.detection import Declare, DetectionSettings, Detector, Probe, Target
from duckfleet.control.errors import ControlError
from duckfleet.control.records import Claim, MemberInfo
from duckfleet.health import ALIVE, GONE, SILENT, probe_health
from duckfleet.ids import MemberId
from duckfleet.netutil import host_port

log = logging.getLogger("duckfleet.worker")


def probe(target: Target, timeout: float) -> str:
    """ALIVE, GONE (nothing listens on its port: the process is dead) or SILENT (no
    answer in time: frozen, overloaded or cut off). Any health answer counts as
    alive (NOT_SERVING too: draining)."""
    if not target.health_port:
        try:
            socket.create_connection((target.host, target.flight_port), timeout).close()
            return ALIVE
        except ConnectionRefusedError:
            return GONE
        except OSError:
            return SILENT
    return probe_health(target.host, target.health_port, timeout)


class Prober:
    def __init__(
        self,
        store: Store,
        me: MemberId,
        settings: DetectionSettings,
        claims_known: Callable[[], bool] = lambda: True,
        on_declared: Callable[[], None] = lambda: None,
    ) -> None:
        """`claims_known`: may any claim be held in the fleet now (the worker's
        watches say so, or cannot say)? If not, no listing."""
        self.store = store
        self.claims_known = claims_known
        self.on_declared = on_declared
        self.settings = settings
        self.detector = Detector(me, settings)
        self._held: dict[MemberId, list[HeldClaim]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="probe")
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self.declared = 0  # deaths this prober declared (that applied)

    def start(self) -> Prober:
        if self.settings.interval > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            with self._lock:
                probing = self.detector.probing()
            if not probing and not self.claims_known():
                continue
            try:
                workers, held = self._list()
            except ControlError as exc:
                log.debug("prober: listing failed: %s", exc)
                continue
            except Exception:  # a bug: log it, keep probing
                log.exception("prober: listing failed")
                continue
            with self._lock:
                self._held = held
                probes = self.detector.listed(time.monotonic(), workers, set(held))
            for p in probes:
                self._pool.submit(self._probe, p)

    def _list(self) -> tuple[list[Target], dict[MemberId, list[HeldClaim]]]:
        """The workers (each incarnation) and what each holds, from one read."""
        k, txn = self.store.keys, self.store.txn
        prefixes = (k.members("worker"), k.all_claims(), k.all_copies())
        _, (member_kvs, claim_kvs, copy_kvs) = self.store.transaction(
            compare=[],
            success=[txn.get(p, range_end=prefix_range_end(p.encode())) for p in prefixes],
            failure=[],
        )
        workers = []
        for value, meta in member_kvs:
            info = MemberInfo.from_json(value)
            host, port = host_port(info.location, 0)
            workers.append(
                Target(
                    info.id,
                    int(meta.create_revision),
                    int(meta.lease_id),
                    host,
                    info.health_port,
                    port,
                )
            )
        held: dict[MemberId, list[HeldClaim]] = {}
        for kvs, prefix, copy in (
            (claim_kvs, k.all_claims(), False),
            (copy_kvs, k.all_copies(), True),
        ):
            for value, meta in kvs:
                q, t = k.split_task_key(meta.key, prefix)
                worker = Claim.from_json(value).worker
                held.setdefault(worker, []).append(HeldClaim(q, t, bytes(value), copy))
        return workers, held

    def _probe(self, p: Probe) -> None:
        started = time.monotonic()
        try:
            found = probe(p.target, self.settings.timeout)
        except Exception as exc:  # an unexpected failure of the probe itself: not a death
            log.warning("prober: probe of %s failed oddly: %s", p.target.member, exc)
            found = ALIVE
        alive = found == ALIVE
        if not alive:
            took = (time.monotonic() - started) * 1000
            log.info(
                "prober: %s did not answer a probe: %s (%.0f ms)", p.target.member, found, took
            )
        with self._lock:
            todo = self.detector.answered(time.monotonic(), p.target, alive, gone=found == GONE)
            held = list(self._held.get(p.target.member, []))
        for d in todo:
            self._declare(d, held)

    def _declare(self, d: Declare, held: list[HeldClaim]) -> None:
        try:
            applied = declare_dead(self.store, d.target, held, forgive=d.forgive)
        except ControlError as exc:
            log.warning("prober: declaring %s dead failed: %s", d.target.member, exc)
            applied = False
        with self._lock:
            self.detector.declared(d.target, applied)
        if applied:
            self.declared += 1
            self.on_declared()
            log.warning(
                "worker %s declared dead after %d failed probes: %d task(s) it held are "
                "runnable again (%s)",
                d.target.member,
                d.failures,
                sum(not h.copy for h in held),
                "not counted as attempts: it may have been alive, only silent"
                if d.forgive
                else "each an attempt: its port refused every probe, the process is gone",
            )
