"""Admission control on a front door: each query's resource group, its place in the
group's queue in etcd, and the limits it runs with.

``Admission.admitted(user, role, cancelled)`` wraps a query's whole run
(flight/runner.py). It selects the group (duckfleet/resource_groups.py), and when
the group limits running queries, joins the group's queue in etcd
(control/resource_groups.py: one transaction writes the ticket and reads the queue
back): among the first ``max_running`` it runs at once; else the call waits, woken
by a watch on the queues, until enough queries before it have left; past
``max_running + max_queued`` it is refused (QueueFull: UNAVAILABLE, naming the group
and the limit; RESOURCE_EXHAUSTED cannot be sent by pyarrow's Flight server). A
client that cancels or goes away while waiting leaves the queue; a wait longer than
the query's timeout is DEADLINE_EXCEEDED. When the query ends, its ticket is
deleted in the background (off the answer's path: the fast path pays one round
trip, the enqueue; a group with no running limit costs none).

While the query runs, ``limits()`` (a context variable) tells the runner its
timeout (the smaller of the group's ``max_run_time`` and DUCKFLEET_QUERY_TIMEOUT)
and its tasks' memory limit (the smaller of ``max_memory`` and
DUCKFLEET_QUERY_MEMORY_LIMIT).

The configuration is read again only when a watch on it says it changed
(control/freshness.py): a `duckfleet resource-groups set` holds at the next query,
with no restart, and wakes the queries waiting (a raised limit lets them in).
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from duckfleet.config import FrontDoorConfig
from duckfleet.control.errors import (
    ControlError,
    LeaseLost,
    QueryCancelled,
    QueryTimeout,
    QueueFull,
)
from duckfleet.control.freshness import Freshness
from duckfleet.control.records import EndReason, QueryState, QueryStatus
from duckfleet.control.resource_groups import AdmissionLease, GroupStore, Ticket
from duckfleet.control.store import PrefixWatch, Store
from duckfleet.resource_groups import (
    Admit,
    QueryLimits,
    ResourceGroup,
    ResourceGroups,
    decide,
    limits_for,
)

log = logging.getLogger("duckfleet.flight")

RECHECK_SECONDS = 2.0  # a waiting query reads its queue at least this often
CANCEL_POLL = 0.1  # seconds between looks at the client's cancellation
TIMEOUT_GRACE = 1.0  # a ticket counts this long past its query's deadline
SQL_KEPT = 200  # characters of a queued query's text its ticket keeps

_limits: contextvars.ContextVar[QueryLimits | None] = contextvars.ContextVar(
    "duckfleet_query_limits", default=None
)


class Admission:
    def __init__(self, store: Store, cfg: FrontDoorConfig, frontdoor: str) -> None:
        self.cfg = cfg
        self.frontdoor = frontdoor
        self.store = GroupStore(store)
        self.lease = AdmissionLease(store, cfg.lease_ttl)
        self.freshness = Freshness(store, store.keys.resource_groups(), "groups").start()
        self._lock = threading.Lock()
        self._groups: ResourceGroups | None = None
        self._token: int | None = None
        self._waiters: dict[str, set[threading.Event]] = {}  # group -> waiting calls
        prefix = store.keys.admission_queues()
        self._prefix = prefix.encode()
        self.watch = PrefixWatch(
            store, prefix, self._on_event, self._wake_all, "admission-queue", kinds=("delete",)
        ).start()
        # what the front door's metrics count (flight/frontdoor.py sets them)
        self.on_queued: Callable[[], None] = _nothing
        self.on_refused: Callable[[], None] = _nothing
        self.on_waited: Callable[[float], None] = _waited_nothing
        self._releases: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._releaser = threading.Thread(target=self._release_loop, name="admission-release")
        self._releaser.daemon = True
        self._releaser.start()

    def close(self) -> None:
        self._releases.put(None)
        self._releaser.join(timeout=5)
        self.watch.stop()
        self.freshness.stop()
        self.lease.stop()

    # --- the configuration -----------------------------------------------------------

    def groups(self) -> ResourceGroups:
        """The resource groups, read again only when the watch says they changed
        (every time while the watch is not connected)."""
        token = self.freshness.token()
        with self._lock:
            if self._groups is not None and token is not None and token == self._token:
                return self._groups
        groups = self.store.read()
        with self._lock:
            self._groups, self._token = groups, token
        return groups

    def default_limits(self) -> QueryLimits:
        return QueryLimits("", self.cfg.query_timeout, self.cfg.query_memory_limit)

    def limits(self) -> QueryLimits:
        """The limits of the query this thread runs now (the front door's settings
        outside ``admitted``: writes, recomputations)."""
        return _limits.get() or self.default_limits()

    # --- admission -------------------------------------------------------------------

    @contextmanager
    def admitted(
        self,
        user: str,
        role: str,
        cancelled: Callable[[], bool] | None = None,
        sql: str = "",
    ) -> Iterator[QueryLimits]:
        """Run the block as an admitted query of the group ``user`` with ``role`` is
        in: waits in the group's queue first if it must; QueueFull if the queue is
        full. The block sees its limits in ``limits()``."""
        group = self.groups().select(user, role)
        limits = limits_for(group, self.cfg.query_timeout, self.cfg.query_memory_limit)
        ticket = None
        if group.max_running is not None:
            ticket = self._enter(group, limits, user, cancelled, sql)
        token = _limits.set(limits)
        try:
            yield limits
        finally:
            _limits.reset(token)
            if ticket is not None:
                self._releases.put(ticket)

    def _enter(
        self,
        group: ResourceGroup,
        limits: QueryLimits,
        user: str,
        cancelled: Callable[[], bool] | None,
        sql: str,
    ) -> Ticket:
        """A ticket of ``group``'s queue whose query may run now; waits until then."""
        now = time.time()
        wait_limit = self.cfg.query_timeout  # the longest a query may wait in a queue
        ticket = Ticket(
            id=uuid.uuid4().hex[:16],
            group=group.name,
            user=user,
            frontdoor=self.frontdoor,
            at=now,
            until=now + wait_limit + limits.timeout + TIMEOUT_GRACE,
            sql=" ".join(sql.split())[:SQL_KEPT],
        )
        woken = threading.Event()
        with self._lock:
            self._waiters.setdefault(group.name, set()).add(woken)
        ahead = None
        try:
            ahead = self.store.enqueue(ticket, self.lease.id())
            decision = decide(group, ahead, new=True)
            if decision.admit == Admit.REFUSE:
                self.on_refused()
                raise QueueFull(decision.refusal(group))
            if decision.admit == Admit.QUEUE:
                self.on_queued()
                log.info(
                    "resource group %r: query queued, %d running, %d queued before it",
                    group.name,
                    decision.running,
                    decision.queued,
                )
                self._wait(ticket, woken, cancelled, time.monotonic() + wait_limit)
            return ticket
        except BaseException:
            if ahead is not None:  # in the queue: leave it
                self._release_now(ticket)
            else:  # etcd may have taken the ticket before the answer was lost
                self._releases.put(ticket)
            raise
        finally:
            with self._lock:
                waiting = self._waiters.get(group.name, set())
                waiting.discard(woken)
                if not waiting:
                    self._waiters.pop(group.name, None)

    def _wait(
        self,
        ticket: Ticket,
        woken: threading.Event,
        cancelled: Callable[[], bool] | None,
        deadline: float,
    ) -> None:
        started = time.monotonic()
        token = self.freshness.token()
        next_read = started + RECHECK_SECONDS
        while True:
            now = time.monotonic()
            if cancelled is not None and cancelled():
                raise QueryCancelled(
                    f"the client cancelled or went away while its query waited in the queue "
                    f"of resource group {ticket.group!r}"
                )
            if now >= deadline:
                raise QueryTimeout(
                    f"the query waited {now - started:.0f}s in the queue of resource group "
                    f"{ticket.group!r} without being admitted (DUCKFLEET_QUERY_TIMEOUT="
                    f"{self.cfg.query_timeout:g}s)"
                )
            fresh = self.freshness.token()
            if woken.is_set() or now >= next_read or fresh is None or fresh != token:
                woken.clear()
                token, next_read = fresh, now + RECHECK_SECONDS
                group = self.groups().group(ticket.group)
                if group is None or group.max_running is None:  # the limit is gone
                    return
                ahead = self.store.ahead(ticket)
                if ahead is None:
                    raise LeaseLost(
                        f"the query lost its place in the queue of resource group "
                        f"{ticket.group!r} (this front door lost its etcd lease)"
                    )
                if decide(group, ahead, new=False).admit == Admit.RUN:
                    self.on_waited(now - started)
                    log.info(
                        "resource group %r: query admitted after %.1fs in the queue",
                        ticket.group,
                        now - started,
                    )
                    return
            woken.wait(min(CANCEL_POLL, max(0.0, deadline - now)))

    # --- the queue watch and releases --------------------------------------------------

    def _on_event(self, kind: str, key: bytes, value: bytes) -> None:
        group = key[len(self._prefix) :].decode().partition("/")[0]
        with self._lock:
            for ev in self._waiters.get(group, ()):
                ev.set()

    def _wake_all(self) -> None:
        with self._lock:
            for evs in self._waiters.values():
                for ev in evs:
                    ev.set()

    def _release_now(self, ticket: Ticket) -> None:
        try:
            self.store.release(ticket)
        except ControlError as exc:  # the releaser keeps trying
            log.warning("resource group %r: ticket not released yet (%s)", ticket.group, exc)
            self._releases.put(ticket)

    def _release_loop(self) -> None:
        """Delete the tickets of queries that ended; one etcd could not take now is
        tried again (it would count against its group until its deadline)."""
        while True:
            ticket = self._releases.get()
            if ticket is None:
                return
            try:
                self.store.release(ticket)
            except ControlError as exc:
                if time.time() > ticket.until:
                    continue  # it no longer counts anyway
                log.warning(
                    "resource group %r: ticket not released (%s); retrying", ticket.group, exc
                )
                time.sleep(0.5)
                self._releases.put(ticket)


def _nothing() -> None:
    return None


def _waited_nothing(seconds: float) -> None:
    return None


def timeout_status(limits: QueryLimits) -> QueryStatus:
    """How a query stopped by its timeout ends: the message names the limit that set
    it (the resource group's max_run_time, or DUCKFLEET_QUERY_TIMEOUT)."""
    return QueryStatus(
        QueryState.CANCELLED, error=limits.timeout_message(), reason=EndReason.TIMEOUT
    )


def explained(status: QueryStatus, limits: QueryLimits) -> QueryStatus:
    """``status`` as the client should read it: a timeout a worker enforced names the
    resource group's max_run_time when that was the limit."""
    if status.reason == EndReason.TIMEOUT and limits.timeout_by_group:
        return replace(status, error=limits.timeout_message())
    return status
