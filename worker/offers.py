"""The fast path on a worker: take an offered one-task query, or refuse it.

A front door offers a small read-only query over Flight (DoAction
``duckfleet.offer``, control/offers.py). The worker refuses unless a slot is free
this moment and it is not draining; a refusal costs the front door one round trip
and the query goes through the queue. An accepted offer:

1. takes a slot and records the query with its claim in one etcd transaction (a
   record that fails is a refusal);
2. runs the fragment in DuckDB, keeps the result like any task's and answers with
   where it is;
3. once the answer is on its way, commits the completion (the same fenced
   transaction as a claimed task's), so the client's DoGet and that commit
   overlap. The slot stays taken until the commit is done.

All of it on the calling thread, one step after the other: run beside the record on
a second thread, the two contended for the interpreter and took longer together
(5.3 ms at the median for SELECT 1) than one after the other (1.7 + 0.7 ms).

A cancel from any front door reaches it as for any task (the status watch stops
it); a failure is recorded as the query's failure; a lost lease means the front
door runs the query again through the queue.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from duckfleet.control.errors import ControlError
from duckfleet.control.offers import Offer, OfferAnswer, Offers
from duckfleet.control.queries import stored_tasks
from duckfleet.control.records import Claim
from duckfleet.control.task_queue import ClaimedTask
from duckfleet.worker.running import RunningTask
from duckfleet.worker.state import Answer, Event, OfferNotRecorded, OfferRecorded, Refuse

if TYPE_CHECKING:
    from duckfleet.worker.worker import Worker

log = logging.getLogger("duckfleet.worker")


@dataclass(frozen=True)
class Taken:
    """An offer's answer, and what to do once it has been sent (the completion)."""

    answer: OfferAnswer
    then: Callable[[], None] = lambda: None


class OfferDesk:
    """Carries an offer through the worker's state machine on the Flight thread that
    received it: the slot, the record, the fragment, the answer; the commit after."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.offers = Offers(worker.store)

    def take(self, offer: Offer) -> Taken:
        w = self.worker
        plan = offer.plan()
        (task,) = plan.tasks
        claim = Claim(w.id, uuid.uuid4().hex, w.location, started=time.time(), offered=True)
        ct = ClaimedTask(offer.record, stored_tasks(plan)[task.id], claim, results={})
        run = RunningTask(ct)
        run.offer_plan = plan
        started = time.perf_counter()
        rest = w.drive(w.offer_arrived(run), until=(Answer, Refuse))
        if not rest:  # cannot be: every path of an offer ends in an answer
            raise RuntimeError("the offer ended without an answer")
        answer, after = rest[0], rest[1:]
        (w.metrics.offer_refused if isinstance(answer, Refuse) else w.metrics.offer_taken).inc()
        if isinstance(answer, Refuse):
            w.drive(after)
            return Taken(OfferAnswer(False, answer.why, recorded=run.recorded))
        if run.info is not None:
            log.info(
                "query=%s task=%s fast path: %d rows in %.1f ms",
                ct.query_id,
                ct.task_id,
                run.info.rows,
                (time.perf_counter() - started) * 1000,
            )
            return Taken(OfferAnswer(True, result=run.info), lambda: w.drive(after))
        w.drive(after)
        if run.status is not None:  # it failed: the failure is the query's
            return Taken(OfferAnswer(True, status=run.status))
        return Taken(self._stopped(run))

    def record(self, run: RunningTask) -> Event:
        """Record the offered query with its claim (one transaction)."""
        ct, key = run.ct, (run.ct.query_id, run.ct.task_id)
        try:
            recorded = self.offers.record(
                ct.record, run.offer_plan, ct.claim, self.worker.membership.lease_id
            )
        except ControlError as exc:  # etcd unreachable, the worker's lease gone
            return OfferNotRecorded(key, f"the query could not be recorded: {exc}")
        if not recorded:
            return OfferNotRecorded(key, "a query of this id exists already")
        run.recorded = True
        return OfferRecorded(key)

    def _stopped(self, run: RunningTask) -> OfferAnswer:
        """The fragment was stopped: the query's terminal status, if it has one (a
        cancel); else the claim was lost (the lease), and the query goes to the queue."""
        try:
            status = self.worker.queries.status(run.ct.query_id)
        except ControlError:
            status = None
        if status is not None and status.terminal:
            return OfferAnswer(True, status=status)
        return OfferAnswer(False, f"stopped: {run.stopped}", recorded=True)
