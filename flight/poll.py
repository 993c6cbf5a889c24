"""PollFlightInfo: a query's progress while it runs (served by the grpcio front door,
flight/grpc_service.py; pyarrow's Python server cannot serve it).

The first poll of a statement or prepared statement plans and publishes it as
GetFlightInfo does, but answers at once (``FleetBackend.start``); each poll answers:

* ``progress``: finished tasks over all of the query's tasks, read from etcd as
  system.queries reads them (control/query_progress.py), never less than the
  client was told before, below 1.0 while it runs and 1.0 once it finished;
* ``flight_descriptor``, while it runs: the descriptor to poll with next, naming
  the query (wire/poll_handle.py), so ANY front door answers the next poll;
* ``info``: the endpoints known so far. Output partitions are appended as their
  tasks finish (the endpoints answered before keep their places: the descriptor
  lists their tasks), so a query whose outputs are many tasks (a scan per split)
  can be read while it runs; one that ends in a merge has its one endpoint at the
  end. Once the query finished, every endpoint (the ones answered before first,
  then the rest in output order).

A failed, cancelled or timed-out query's poll raises its error (the status codes of
GetFlightInfo). What runs at once anyway is answered whole on the first poll, with
progress 1.0 and no descriptor: writes, EXPLAIN, a statement run once per bound
parameter row, metadata commands, and queries on the fast path (one small task).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.flight as flight

from duckfleet.flight.backend import QueryOutcome
from duckfleet.ids import QueryId
from duckfleet.wire.poll_handle import is_poll_command, parse_poll_command, poll_command
from duckfleet.wire.tickets import parse_result_ticket


@dataclass(frozen=True)
class PollAnswer:
    """A PollInfo: ``descriptor`` None once the query is done."""

    info: flight.FlightInfo
    descriptor: flight.FlightDescriptor | None
    progress: float


def flight_info(descriptor: flight.FlightDescriptor, outcome: QueryOutcome) -> flight.FlightInfo:
    endpoints = [flight.FlightEndpoint(p.ticket, list(p.locations)) for p in outcome.partitions]
    return flight.FlightInfo(outcome.schema, descriptor, endpoints, outcome.rows, outcome.bytes)


def answer(
    descriptor: flight.FlightDescriptor,
    outcome: QueryOutcome,
    progress: float,
    finished: bool,
    told: float = 0.0,
) -> PollAnswer:
    """The PollInfo of a query at `progress` (`told`: what the client heard last)."""
    if finished:
        return PollAnswer(flight_info(descriptor, outcome), None, 1.0)
    progress = max(progress, told)
    given = [parse_result_ticket(p.ticket)[1] for p in outcome.partitions]
    command = poll_command(outcome.query_id, progress, given)
    again = flight.FlightDescriptor.for_command(command)
    # the info names the query too: CancelFlightInfo with it cancels the query
    return PollAnswer(flight_info(again, outcome), again, progress)


def whole(info: flight.FlightInfo) -> PollAnswer:
    """The PollInfo of something answered at once (GetFlightInfo's answer)."""
    return PollAnswer(info, None, 1.0)


def polled_query(info: flight.FlightInfo) -> set[QueryId]:
    """The query a PollInfo's info names (its descriptor), if it does."""
    descriptor = info.descriptor
    if descriptor is None or descriptor.descriptor_type != flight.DescriptorType.CMD:
        return set()
    if not is_poll_command(descriptor.command):
        return set()
    return {parse_poll_command(descriptor.command).query_id}
