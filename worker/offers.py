"""The fast path on a worker: take an offered one-task query, or refuse it.

A front door offers a small read-only query over Flight (DoAction
``duckfleet.offer``, control/offers.py). The worker refuses unless a slot is free
this moment and it is not draining; a refusal costs the front door one round trip
and the query goes through the queue. An accepted offer:

1. takes a slot, then records the query with its claim in one etcd transaction,
   while DuckDB already runs the fragment (both must succeed before it answers);
2. keeps the result like any task's and answers with where it is;
3. commits the completion (the same fenced transaction as a claimed task's) after
   answering, so the client's DoGet and that commit overlap. The slot stays taken
   until the commit is done.

A cancel from any front door reaches it as for any task (the status watch stops
it); a failure is recorded as the query's failure; a lost lease or a refused
record means the front door runs the query again through the queue.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa

from duckfleet.control.errors import ControlError
from duckfleet.control.offers import Offer, OfferAnswer, Offers
from duckfleet.control.queries import stored_tasks
from duckfleet.control.records import Claim, QueryState, QueryStatus, ResultInfo
from duckfleet.control.task_queue import ClaimedTask
from duckfleet.worker.errors import TaskStopped
from duckfleet.worker.limits import check_result_size, expected, failure
from duckfleet.worker.running import RunningTask

if TYPE_CHECKING:
    from duckfleet.worker.worker import Worker

log = logging.getLogger("duckfleet.worker")


class OfferDesk:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.offers = Offers(worker.store)
        # etcd writes of accepted offers: the record (beside DuckDB), the completion
        # (after the answer)
        self.pool = ThreadPoolExecutor(max(2, 2 * worker.slots), thread_name_prefix="offer")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def take(self, offer: Offer) -> OfferAnswer:
        w = self.worker
        plan = offer.plan()
        (task,) = plan.tasks
        q, t = offer.record.id, task.id
        claim = Claim(w.id, uuid.uuid4().hex, w.location, started=time.time(), offered=True)
        ct = ClaimedTask(offer.record, stored_tasks(plan)[t], claim, results={})
        run = RunningTask(ct)
        refusal = w.reserve_slot(run)
        if refusal:
            return OfferAnswer(False, refusal)
        committing = False
        started = time.perf_counter()
        try:
            lease = w.membership.lease_id
            recording = self.pool.submit(
                _timed, self.offers.record, offer.record, plan, claim, lease
            )
            answer, out = self._run(run, recording)
            ran = time.perf_counter() - started
            if answer is not None:
                return answer
            assert out is not None
            info = w.keep_result(ct, out)
            committing = True
            self.pool.submit(self._commit, run, info, lease)
            log.info(
                "query=%s task=%s fast path: %d rows in %.1f ms (run %.1f, record %.1f)",
                q,
                t,
                info.rows,
                (time.perf_counter() - started) * 1000,
                ran * 1000,
                recording.result()[1] * 1000,
            )
            return OfferAnswer(True, result=info)
        finally:
            if not committing:
                w.free_slot(run)

    def _run(
        self, run: RunningTask, recording: Future[tuple[bool, float]]
    ) -> tuple[OfferAnswer | None, pa.Table | None]:
        """Run the fragment beside the etcd record of the offer: (None, its result),
        or (the answer to give instead, None)."""
        w, ct = self.worker, run.ct
        q, t = ct.query_id, ct.task_id
        try:
            out = w.execute_as(run, ct.task.plan, {})
            run.computed()
            assert isinstance(out, pa.Table)  # one task of a query: never buckets
            check_result_size(ct, out)
        except Exception as exc:
            recorded = _recorded(recording)
            if not recorded:
                return OfferAnswer(False, f"not recorded: {exc}"), None
            if run.stopped or isinstance(exc, TaskStopped):
                return self._ended(run, recorded), None
            error, reason = failure(ct, exc, w.cfg.memory_limit)
            log.warning(
                "query=%s task=%s failed: %s", q, t, error, exc_info=None if expected(exc) else exc
            )
            status = QueryStatus(QueryState.FAILED, error=error, task=t, reason=reason)
            try:
                w.queue.fail(ct, error, reason)
            except ControlError:
                pass
            return OfferAnswer(True, status=status), None
        recorded = _recorded(recording)
        if not recorded:
            return OfferAnswer(False, "the query could not be recorded in etcd"), None
        return None, out

    def _ended(self, run: RunningTask, recorded: bool) -> OfferAnswer:
        """The fragment was stopped: the query's terminal status, if it has one (a
        cancel); else the claim was lost (the lease), and the query goes to the queue."""
        w = self.worker
        try:
            w.queue.release(run.ct)  # the claim is still ours: nothing else frees it
            status = w.queries.status(run.ct.query_id)
        except ControlError:
            status = None
        if status is not None and status.terminal:
            return OfferAnswer(True, status=status)
        return OfferAnswer(False, f"stopped: {run.stopped}", recorded=recorded)

    def _commit(self, run: RunningTask, info: ResultInfo, lease: int) -> None:
        w, ct = self.worker, run.ct
        try:
            seconds = time.monotonic() - run.started
            if not w.queue.complete(ct, info, lease, (), seconds):
                w.results.drop(ct.query_id, ct.task_id)
                w.queue.release(ct)  # the query ended meanwhile: the claim is still ours
                log.warning("query=%s task=%s: completion refused", ct.query_id, ct.task_id)
        except ControlError as exc:
            w.results.drop(ct.query_id, ct.task_id)
            log.warning("query=%s task=%s: completion failed: %s", ct.query_id, ct.task_id, exc)
        finally:
            w.free_slot(run)


def _timed(record: Callable[..., bool], *args: object) -> tuple[bool, float]:
    """`record(*args)` and the seconds it took."""
    started = time.perf_counter()
    return record(*args), time.perf_counter() - started


def _recorded(recording: Future[tuple[bool, float]]) -> bool:
    try:
        return recording.result()[0]
    except Exception as exc:  # etcd unreachable, the worker's lease gone
        log.warning("fast path: the offer could not be recorded: %s", exc)
        return False
