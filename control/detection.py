"""Failure detection: when a member holding claims is suspect, and when it is dead.

A worker that dies must be known dead when its port stops answering, not only when
its lease expires (DUCKFLEET_LEASE_TTL, 5 s). Every worker runs a prober
(worker/prober.py) that lists the fleet's workers and claims (one read every
DUCKFLEET_PROBE_INTERVAL) and asks this module what to do:

- who is probed: only a worker that holds a claim (or a copy) now, and mainly by
  one prober: among the other live workers, the first in rendezvous order of
  (suspect, prober) — so every worker agrees which one without a word. Each other
  worker probes it too, BACKUP_FACTOR times less often: the backstop when that
  prober is itself dead or frozen (its own death is declared by someone else, but
  until then it probes nobody). One probe of a suspect is in flight per prober at
  a time, at most one every interval. A probe is a grpc.health.v1 Check on the member's
  health port (duckfleet/health.py) with DUCKFLEET_PROBE_TIMEOUT: any answer, even
  NOT_SERVING (a draining worker), is alive; a refused connection (a SIGKILLed
  process's port refuses at once) or no answer in time (a frozen one) is a failure.
- when it is dead: DUCKFLEET_PROBE_FAILURES failures in a row, none older than the
  window (failures x (interval + timeout) x 2); one answer clears them. Failures
  count per incarnation (member id and the create revision of its member record), so
  a member that rejoined starts clean.

A death is declared in one fenced etcd transaction (control/declarations.py): it
applies only while the member record is the incarnation that was probed, so a
second declaration is a no-op, and a slow worker that was declared dead can never
commit afterwards (its completion is fenced on its claim, which the declaration
deleted). Its tasks are runnable again at once and their attempt allowance is
raised by one: a mistaken declaration costs a retry, not an attempt. Pure: no I/O,
no clock (the caller passes `now`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from duckfleet.ids import MemberId

BACKUP_FACTOR = 5  # a worker that is not a suspect's first prober probes it this much less often


@dataclass(frozen=True)
class Target:
    """One incarnation of a member, and where to probe it."""

    member: MemberId
    revision: int  # create revision of its member record: the incarnation
    lease: int  # the lease its record, claims and results are bound to
    host: str
    health_port: int  # 0: none; the Flight port is probed (connect only) instead
    flight_port: int


@dataclass(frozen=True)
class Probe:
    target: Target


@dataclass(frozen=True)
class Declare:
    """Declare `target` dead (control/declarations.py); `failures`: what decided it."""

    target: Target
    failures: int
    # the attempts it cut short are forgiven (not counted against max_attempts):
    # unless every failed probe found its port closed (the process is gone, a death
    # as certain as its lease's expiry), the member may have been alive, only silent
    forgive: bool = True


@dataclass(frozen=True)
class DetectionSettings:
    interval: float = 0.2  # seconds between probes of one suspect (and listings)
    failures: int = 3  # failed probes in a row before a member is declared dead
    timeout: float = 0.5  # seconds a probe waits for an answer

    def window(self, interval: float | None = None) -> float:
        """Failures older than this are forgotten (so are isolated blips), for
        probes every `interval` (default: the first prober's)."""
        return self.failures * ((interval or self.interval) + self.timeout) * 2


def prober_of(suspect: MemberId, workers: list[MemberId]) -> MemberId | None:
    """The one worker that probes `suspect`: first of the others in rendezvous order."""
    others = [w for w in workers if w != suspect]
    if not others:
        return None
    return min(others, key=lambda w: hashlib.sha1(f"{suspect}/{w}".encode()).digest())


@dataclass
class _Suspect:
    failures: list[float] = field(default_factory=list)  # when each failed probe ended
    silent: list[float] = field(default_factory=list)  # ... of those that got no answer
    in_flight: bool = False
    last_probe: float = -1e18
    declared: bool = False
    interval: float = 0.0  # between this prober's probes of it


class Detector:
    """One prober's view: events in (`listed`, `answered`), instructions out."""

    def __init__(self, me: MemberId, settings: DetectionSettings | None = None) -> None:
        self.me = me
        self.settings = settings or DetectionSettings()
        self._suspects: dict[tuple[MemberId, int], _Suspect] = {}

    def listed(self, now: float, workers: list[Target], holders: set[MemberId]) -> list[Probe]:
        """The fleet as one read saw it: its live workers, and which of them hold
        claims. The probes to start now."""
        ids = [w.member for w in workers]
        wanted = {
            (w.member, w.revision): w
            for w in workers
            if w.member in holders and w.member != self.me
        }
        for key in [k for k in self._suspects if k not in wanted]:
            if not self._suspects[key].in_flight:  # gone, rejoined, or holds nothing
                del self._suspects[key]
        out = []
        for key, target in wanted.items():
            s = self._suspects.setdefault(key, _Suspect())
            first = prober_of(target.member, ids) == self.me
            s.interval = self.settings.interval * (1 if first else BACKUP_FACTOR)
            # listings come an interval apart: one a little early still probes
            if s.in_flight or s.declared or now - s.last_probe < s.interval * 0.9:
                continue
            s.in_flight, s.last_probe = True, now
            out.append(Probe(target))
        return out

    def answered(
        self, now: float, target: Target, alive: bool, gone: bool = False
    ) -> list[Declare]:
        """A probe of `target` ended: answered (`alive`) or failed; `gone`: it failed
        because nothing listens on the port (refused), not for want of an answer."""
        s = self._suspects.setdefault((target.member, target.revision), _Suspect())
        s.in_flight = False
        if alive:
            s.failures.clear()
            s.silent.clear()
            return []
        window = self.settings.window(s.interval or None)
        s.failures = [t for t in s.failures if now - t <= window] + [now]
        s.silent = [t for t in s.silent if now - t <= window] + ([] if gone else [now])
        if s.declared or len(s.failures) < self.settings.failures:
            return []
        s.declared = True
        return [Declare(target, len(s.failures), forgive=bool(s.silent))]

    def declared(self, target: Target, applied: bool) -> None:
        """The declaration's outcome; one that did not apply (the member rejoined
        or was declared by another) is forgotten, so the next listing decides."""
        if not applied:
            self._suspects.pop((target.member, target.revision), None)

    def probing(self) -> int:
        """Probes in flight now."""
        return sum(s.in_flight for s in self._suspects.values())
