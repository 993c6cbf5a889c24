"""Queries whose front door died before answering, found by the request's
fingerprint (control/fingerprints.py), so another front door can answer with them.

A front door counts as gone when it has no member record, or when its health port
(duckfleet/health.py) does not answer within PROBE_SECONDS: a process killed a
moment ago still has its record until its lease expires, but its port is already
closed; a frozen one's port accepts a connection and never answers. Without a
health port, when nothing accepts a TCP connection at its location.
"""

from __future__ import annotations

import logging
import socket
import time

from duckfleet.control import QueryStore
from duckfleet.control.fingerprints import Fingerprints, Waiter
from duckfleet.control.records import QueryState
from duckfleet.health import answers
from duckfleet.ids import QueryId
from duckfleet.netutil import host_port

log = logging.getLogger("duckfleet.flight")

PROBE_SECONDS = 0.5
# a finished orphan is adopted only this soon after it finished: a retry comes at
# once; a later request with the same SQL must see the tables as they are then
ADOPT_FINISHED_WITHIN = 30.0


def gone(fingerprints: Fingerprints, waiter: Waiter) -> bool:
    member = fingerprints.member(waiter.frontdoor)
    if member is None:
        return True
    host, port = host_port(waiter.location, 0)
    if member.health_port:
        return not answers(host, member.health_port, PROBE_SECONDS)
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return False
    except OSError:
        return True


def adopt(fingerprints: Fingerprints, queries: QueryStore, f: str, me: Waiter) -> QueryId | None:
    """A query of this fingerprint whose front door is gone, now waited for by `me`;
    None if there is none (the request runs anew)."""
    for q, waiter in fingerprints.waiting(f):
        if waiter.frontdoor == me.frontdoor:
            continue  # a live twin request on this very front door
        status = queries.status(q)
        if status is None or status.state not in (QueryState.RUNNING, QueryState.FINISHED):
            continue
        if status.state == QueryState.FINISHED and time.time() - status.at > ADOPT_FINISHED_WITHIN:
            continue
        if not gone(fingerprints, waiter):
            continue
        if fingerprints.take_over(f, q, waiter, me):
            log.warning(
                "query=%s adopted: its front door %s (%s) is gone; answering its retried request",
                q,
                waiter.frontdoor,
                waiter.location,
            )
            return q
    return None
