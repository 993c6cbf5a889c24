"""Declaring a member dead: one fenced etcd transaction, then its lease revoked.

The transaction (control/detection.py decides when) compares the create revision
of the member's record with the incarnation that was probed, and then:

- deletes the member record;
- for each claim it held, in a nested transaction fenced on that claim's exact
  value: deletes the claim and, when the declaration forgives (some probe got no
  answer: the member may have been alive, only frozen or slow), writes the task's
  runnable marker again with its attempt allowance (``max_attempts``) one higher,
  so the attempt the declaration cut short does not count against
  DUCKFLEET_MAX_ATTEMPTS (the ``attempts/<q>/<t>`` version keeps counting claims;
  the allowance moves instead). A member whose port refused every probe is gone
  for certain: its attempts count, as they would when its lease expired, so a task
  that kills its worker every time still fails its query after max_attempts;
- deletes each speculative copy it held (copies never count as attempts).

Then the member's lease is revoked, which removes every key still bound to it
(its results index entries, and a claim it made after the probe's read: that one
costs an attempt, as an expiry does). A declaration that does not apply (the record
is gone: declared already, expired, or rejoined with a new one) changes nothing.
A declared worker that was only slow finds its lease gone at its next keep-alive
and rejoins (control/membership.py); its completions fail their fence meanwhile.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from duckfleet.control.detection import Target
from duckfleet.control.store import Store, translated
from duckfleet.ids import QueryId, TaskId

log = logging.getLogger("duckfleet.control")


@dataclass(frozen=True)
class HeldClaim:
    """A claim (or copy) as a listing read it: the exact value fences its removal."""

    query: QueryId
    task: TaskId
    value: bytes
    copy: bool = False


def forgiven_marker(value: bytes | str) -> str:
    """A runnable marker (control/queries.py runnable_value) with one attempt more."""
    d = json.loads(value)
    d["max_attempts"] = int(d["max_attempts"]) + 1
    return json.dumps(d)


@translated("declaring a member dead")
def declare_dead(
    store: Store, target: Target, held: list[HeldClaim], kind: str = "worker", forgive: bool = True
) -> bool:
    """Declare `target` dead; False if the declaration did not apply. `forgive`: the
    attempts its claims were do not count (it may have been alive); else they count,
    as they would when its lease expired."""
    k, txn = store.keys, store.txn
    claims = [h for h in held if not h.copy] if forgive else []
    markers: dict[tuple[QueryId, TaskId], tuple[bytes, int]] = {}
    if claims:  # the markers to raise, read first; each nested write is fenced on it
        _, responses = store.transaction(
            compare=[], success=[txn.get(k.runnable(h.query, h.task)) for h in claims], failure=[]
        )
        for h, kvs in zip(claims, responses, strict=True):
            if kvs:
                markers[(h.query, h.task)] = (kvs[0][0], int(json.loads(kvs[0][0])["lease"]))
    success = [txn.delete(k.member(kind, target.member))]
    for h in held:
        key = k.copy(h.query, h.task) if h.copy else k.claim(h.query, h.task)
        fence = [txn.value(key) == h.value]
        writes = [txn.delete(key)]
        marker = markers.get((h.query, h.task))
        if not h.copy and marker is not None:
            value, lease = marker
            runnable = k.runnable(h.query, h.task)
            fence.append(txn.value(runnable) == value)
            writes.append(txn.put(runnable, forgiven_marker(value), lease=lease))
        success.append(txn.txn(compare=fence, success=writes, failure=[]))
    applied, _ = store.transaction(
        compare=[txn.create(k.member(kind, target.member)) == target.revision],
        success=success,
        failure=[],
    )
    if applied:
        try:
            store.client.revoke_lease(target.lease)
        except Exception as exc:  # expired meanwhile: its keys are gone anyway
            log.info("member %s: lease %x not revoked: %s", target.member, target.lease, exc)
    return bool(applied)
