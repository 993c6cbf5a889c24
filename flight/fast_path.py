"""The fast path on a front door: offer a small one-task query to a worker.

The planner says whether a plan qualifies (planner/fast_path.py). The front door
then offers it (DoAction ``duckfleet.offer``) to a worker that, as far as this front
door knows, has room: the workers in turn, skipping those this front door has
filled itself. A worker takes it in a free slot, or, when its slots are full or
queued work waits for them, in the headroom it keeps for short queries
(DUCKFLEET_SHORT_SLOTS; a fast-path query is one task over small inputs, as the
planner estimates from catalog statistics: short). A worker may refuse (no room,
draining); after OFFER_TRIES refusals the query goes through the queue like any
other, so when the fleet is full, priorities and fair share decide as always.
Nobody is ever assigned work.

The worker records the accepted offer in etcd, runs it and answers with where the
result is, or with how the query ended (failed, cancelled). A worker lost while it
runs the offer costs a retry through the queue: the front door ends the recorded
query (so no other front door waits on it) and publishes the plan anew.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pyarrow as pa
import pyarrow.flight as fl

from duckfleet.control.errors import QueryCancelled
from duckfleet.control.offers import OFFER_ACTION, Offer, OfferAnswer
from duckfleet.control.records import MemberInfo
from duckfleet.wire.clients import FlightClients

log = logging.getLogger("duckfleet.flight")

OFFER_TRIES = 2  # workers asked before the query goes to the queue
# offers of ours a worker may hold past its slots: the headroom it keeps for short
# queries (DUCKFLEET_SHORT_SLOTS, 1 by default); the worker refuses what it has no room for
SHORT_ROOM = 1
CANCEL_POLL = 0.1  # seconds between looks at the client's cancellation


class WorkerLost(Exception):
    """The worker that took an offer could not be reached before it answered."""


class FastPath:
    def __init__(self, clients: FlightClients, timeout: float) -> None:
        self.clients = clients
        self.timeout = timeout  # the query timeout: the most an offer may take
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._mine: dict[str, int] = {}  # worker -> offers of ours it runs now
        self._calls = ThreadPoolExecutor(32, thread_name_prefix="offer")

    def close(self) -> None:
        self._calls.shutdown(wait=False, cancel_futures=True)

    def offer(
        self,
        offer: Offer,
        workers: Sequence[MemberInfo],
        cancelled: Callable[[], bool] | None = None,
    ) -> OfferAnswer | None:
        """The answer of the first worker that took `offer`, or None if those asked
        all refused. WorkerLost if the one that took it went away; QueryCancelled if
        the client cancelled meanwhile (the caller ends the query)."""
        for worker in self._candidates(workers)[:OFFER_TRIES]:
            with self._lock:
                self._mine[worker.id] = self._mine.get(worker.id, 0) + 1
            try:
                answer = self._ask(worker, offer, cancelled)
            finally:
                with self._lock:
                    self._mine[worker.id] -= 1
            if answer.accepted:
                return answer
            if answer.recorded:  # taken, then its claim was lost: not this worker's
                raise WorkerLost(f"worker {worker.id} lost the query: {answer.reason}")
            log.debug("query=%s offer refused by %s: %s", offer.record.id, worker.id, answer.reason)
        return None

    def _candidates(self, workers: Sequence[MemberInfo]) -> list[MemberInfo]:
        """Workers in turn from a rotating start, those this front door has filled
        left out."""
        if not workers:
            return []
        start = next(self._turn) % len(workers)
        ordered = [*workers[start:], *workers[:start]]
        with self._lock:
            return [w for w in ordered if self._mine.get(w.id, 0) < max(1, w.slots) + SHORT_ROOM]

    def _ask(
        self, worker: MemberInfo, offer: Offer, cancelled: Callable[[], bool] | None
    ) -> OfferAnswer:
        action = fl.Action(OFFER_ACTION, offer.to_json())
        options = fl.FlightCallOptions(timeout=self.timeout)
        client = self.clients.get(worker.location)

        def ask() -> list[fl.Result]:
            return list(client.do_action(action, options))

        if cancelled is None:
            return self._answer(worker, ask)
        # in this thread's context: the call carries the current span (wire/tracing.py)
        call: Future[list[fl.Result]] = self._calls.submit(contextvars.copy_context().run, ask)
        while True:
            try:
                return self._answer(worker, lambda: call.result(CANCEL_POLL))
            except FutureTimeout:
                if cancelled():
                    raise QueryCancelled(
                        f"query {offer.record.id}: the client cancelled or went away"
                    ) from None

    @staticmethod
    def _answer(worker: MemberInfo, results: Callable[[], list[fl.Result]]) -> OfferAnswer:
        try:
            (result,) = results()
        except FutureTimeout:  # still waiting (a TimeoutError, so an OSError too)
            raise
        except (fl.FlightError, pa.ArrowException, ValueError, OSError) as exc:
            raise WorkerLost(f"worker {worker.id} at {worker.location}: {exc}") from None
        return OfferAnswer.from_json(result.body.to_pybytes())
