"""Resource groups in etcd: the configuration, and each group's queue.

    admission/groups            the configuration (duckfleet/resource_groups.py's JSON)
    admission/queue/<g>/<id>    a Ticket: one query of group g, running or waiting,
                                bound to its front door's admission lease

The queue of a group is the tickets under its prefix, in the order etcd created them
(their create revision, one total order for the whole fleet). A query may run while
fewer than ``max_running`` tickets stand before its own; otherwise it waits until
enough of those are deleted. No compare is needed to make that atomic: a ticket
created later always has a higher revision, so it never moves ahead of one already
counted, and the first ``max_running`` tickets — the ones running — can only be
replaced by the next in line, whichever front door holds it. Two front doors can
therefore never both take the last slot.

A new ticket is written and its group's queue read back in one transaction (one
round trip); a ticket past ``max_running + max_queued`` is deleted at once and its
query refused. When its query ends (or its client goes away) the front door deletes
its ticket; a front door that dies takes its tickets with its lease, so its queued
queries leave the queue too. A ticket also says until when its query may run: one
left behind past that (a delete that never reached etcd) no longer counts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control.errors import LeaseLost
from duckfleet.control.store import Store, translated
from duckfleet.resource_groups import ResourceGroupError, ResourceGroups, parse_groups

log = logging.getLogger("duckfleet.control")


@dataclass(frozen=True)
class Ticket:
    """One query's place in its group's queue."""

    id: str
    group: str
    user: str
    frontdoor: str
    at: float  # wall clock when it arrived
    until: float  # wall clock after which it no longer counts (its query's deadline)
    sql: str = ""  # the start of its text (system.queries shows queued queries)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str | bytes) -> Ticket:
        d = json.loads(text)
        known = Ticket.__dataclass_fields__
        return Ticket(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class QueuedTicket:
    """A ticket as read from its group's queue: with its place."""

    ticket: Ticket
    revision: int  # its create revision: the queue's order


def waiting(groups: ResourceGroups, tickets: list[QueuedTicket], now: float) -> list[Ticket]:
    """The tickets of queries waiting in their group's queue (past its first
    ``max_running``, as admission counts them), in queue order."""
    out = []
    for group in groups.groups:
        if group.max_running is None:
            continue
        mine = sorted(
            (t for t in tickets if t.ticket.group == group.name and t.ticket.until > now),
            key=lambda t: t.revision,
        )
        out.extend(t.ticket for t in mine[group.max_running :])
    return out


class GroupStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys

    # --- the configuration ---------------------------------------------------------

    @translated("reading the resource groups")
    def read(self) -> ResourceGroups:
        """The configuration; the default (one ``global`` group) when none was set, or
        when what etcd holds does not parse (logged: the CLI never writes such)."""
        value, meta = self.store.client.get(self.keys.resource_groups())
        return groups_of(value, 0 if meta is None else int(meta.mod_revision))

    @translated("writing the resource groups")
    def write(self, groups: ResourceGroups) -> None:
        self.store.client.put(self.keys.resource_groups(), groups.to_json())

    @translated("resetting the resource groups")
    def reset(self) -> None:
        self.store.client.delete(self.keys.resource_groups())

    # --- the queues ----------------------------------------------------------------

    @translated("joining a resource group's queue")
    def enqueue(self, ticket: Ticket, lease: int) -> int:
        """Write ``ticket`` under ``lease`` and answer how many tickets of its group
        that still count stand before it, in one transaction."""
        txn = self.store.txn
        key, prefix = self.keys.admission_ticket(ticket.group, ticket.id), self._queue(ticket)
        _, responses = self.store.transaction(
            compare=[],
            success=[
                txn.put(key, ticket.to_json(), lease=lease),
                txn.get(prefix, range_end=prefix_range_end(prefix.encode())),
            ],
            failure=[],
        )
        ahead = _ahead(queued_tickets(responses[1]), ticket.id, time.time())
        if ahead is None:  # etcd lost it between the put and the read: cannot be
            raise LeaseLost(f"resource group {ticket.group!r}: the queue lost this query")
        return ahead

    @translated("reading a resource group's queue")
    def ahead(self, ticket: Ticket) -> int | None:
        """How many tickets that still count stand before ``ticket``; None when it is
        no longer in the queue (its lease was lost)."""
        prefix = self._queue(ticket)
        return _ahead(queued_tickets(self.store.client.get_prefix(prefix)), ticket.id, time.time())

    @translated("reading a resource group's queue")
    def queue(self, group: str) -> list[QueuedTicket]:
        """The group's tickets in queue order."""
        prefix = self.keys.admission_queue(group)
        return sorted(
            queued_tickets(self.store.client.get_prefix(prefix)), key=lambda t: t.revision
        )

    @translated("reading the resource groups' queues")
    def all_tickets(self) -> list[QueuedTicket]:
        """Every group's tickets, in queue order within each group."""
        found = queued_tickets(self.store.client.get_prefix(self.keys.admission_queues()))
        return sorted(found, key=lambda t: (t.ticket.group, t.revision))

    @translated("leaving a resource group's queue")
    def release(self, ticket: Ticket) -> None:
        self.store.client.delete(self.keys.admission_ticket(ticket.group, ticket.id))

    def _queue(self, ticket: Ticket) -> str:
        return self.keys.admission_queue(ticket.group)


def queued_tickets(kvs: Any) -> list[QueuedTicket]:
    """Tickets from etcd's (value, metadata) pairs; a key no duckfleet wrote is skipped."""
    out = []
    for value, meta in kvs:
        try:
            out.append(QueuedTicket(Ticket.from_json(value), int(meta.create_revision)))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def groups_of(value: bytes | None, version: int = 0) -> ResourceGroups:
    """The configuration etcd holds as ``value`` (None: none was set)."""
    if value is None:
        return ResourceGroups()
    try:
        return parse_groups(value, version)
    except ResourceGroupError as exc:
        log.warning("the resource groups in etcd are not valid (%s): using the default", exc)
        return ResourceGroups()


def _ahead(queued: list[QueuedTicket], ticket_id: str, now: float) -> int | None:
    mine = next((q for q in queued if q.ticket.id == ticket_id), None)
    if mine is None:
        return None
    return sum(1 for q in queued if q.revision < mine.revision and q.ticket.until > now)


class AdmissionLease:
    """The lease a front door's tickets are bound to, granted when first needed and
    kept alive by a thread: a front door that dies takes its tickets with it within
    ``ttl`` seconds. A lease found expired is replaced (the tickets it held are gone:
    their waiters see it and say so)."""

    def __init__(self, store: Store, ttl: int) -> None:
        self.store = store
        self.ttl = max(2, int(ttl))
        self._lock = threading.Lock()
        self._lease: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def id(self) -> int:
        with self._lock:
            if self._lease is None:
                self._lease = self._grant()
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._keepalive, name="admission-lease", daemon=True
                    )
                    self._thread.start()
            return int(self._lease.id)

    @translated("granting the admission lease")
    def _grant(self) -> Any:
        return self.store.client.lease(self.ttl)

    def _keepalive(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._lock:
                lease = self._lease
            if lease is None:
                continue
            try:
                responses = lease.refresh()
                alive = bool(responses) and int(responses[0].TTL) > 0
            except Exception as exc:  # etcd away: try again at the next tick
                log.info("admission lease: keep-alive failed (%s)", exc)
                continue
            if not alive:
                log.warning(
                    "admission lease %x expired: its queued queries left the queue", lease.id
                )
                with self._lock:
                    if self._lease is lease:
                        self._lease = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is not None:
            try:
                lease.revoke()
            except Exception as exc:  # it expires by itself
                log.info("admission lease: not revoked (%s)", exc)
