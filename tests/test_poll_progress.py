"""PollFlightInfo with real progress, on a real fleet whose two front doors are the
grpcio server (DUCKFLEET_FRONTDOOR_SERVER=grpc; flight/poll.py, flight/grpc_service.py),
auth on.

* ADBC with ``adbc.statement.exec.incremental`` sees ``adbc.statement.exec.progress``
  never decrease and end at 1.0, and the answer is DuckDB's.
* Raw polls alternating between the two front doors: progress never decreases,
  passes values between 0 and 1 and ends at 1.0; endpoints are added while the query
  runs and keep their places, so ADBC reads each partition once, some before the
  query ends; the rows behind them are DuckDB's.
* A failed query's poll raises its error, with GetFlightInfo's status code; a
  CancelFlightInfo with a PollInfo's info cancels the query; a user cannot poll
  another user's query; what runs at once is answered whole on the first poll.
* The poll that answers a query's end counts it in the front door's query metrics,
  once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from secure_fleet import (
    ADMIN,
    ADMIN_PASSWORD,
    READER,
    READER_PASSWORD,
    SecureFleet,
    connect,
    login,
    started_secure_fleet,
)
from test_metrics import scrape, total
from tpch_data import reference as tpch_reference
from tpch_data import tpch_catalog

from duckfleet.client import statement_descriptor
from duckfleet.verify import assert_same_result
from duckfleet.wire import commands
from duckfleet.wire import flight_messages as msg
from duckfleet.wire import sql_messages as sql
from duckfleet.wire.poll_handle import parse_poll_command

pytestmark = pytest.mark.timeout(180)

SERVICE = "/arrow.flight.protocol.FlightService"
INCREMENTAL = "adbc.statement.exec.incremental"
PROGRESS = "adbc.statement.exec.progress"

# Four lineitem splits, each joined with three small tables: a second or two of work
# per task on one core, then a merge.
LONG = """
select l_returnflag, count(*) as n, sum(l_quantity) as qty, max(n1.n_name || n2.n_name) as m
from lineitem, nation n1, nation n2, region r1
where n1.n_regionkey = r1.r_regionkey or l_linenumber > 2
group by l_returnflag
"""
# The same work with no merge: one output task per lineitem split.
SPREAD = """
select l_orderkey, l_linenumber, n1.n_nationkey, n2.n_nationkey as k2, r1.r_regionkey
from lineitem, nation n1, nation n2, region r1
where (l_orderkey + n1.n_nationkey * 7 + n2.n_nationkey * 11 + r1.r_regionkey * 13) % 10007 = 0
"""


@pytest.fixture(scope="module")
def poll_fleet(tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureFleet]:
    env = {"DUCKFLEET_FRONTDOOR_SERVER": "grpc", "DUCKFLEET_PACK_BYTES": "0"}
    base = tmp_path_factory.mktemp("poll-fleet")
    with started_secure_fleet(tpch_dir, base, env, frontdoors=2) as fleet:
        yield fleet


def reference(fleet: SecureFleet, text: str) -> pa.Table:
    return tpch_reference(tpch_catalog(fleet.data_root), text)


def token(fleet: SecureFleet, user: str = ADMIN, password: str = ADMIN_PASSWORD) -> bytes:
    with fl.connect(fleet.fleet.frontdoor_uri(0)) as client:
        [(_, value)] = login(client, user, password).headers  # type: ignore[attr-defined]
    return value


class Door:
    """Raw gRPC calls to one front door, with a bearer token."""

    def __init__(self, uri: str, bearer: bytes) -> None:
        self.channel = grpc.insecure_channel(uri.removeprefix("grpc://"))
        self.metadata = (("authorization", bearer.decode()),)

    def poll(self, descriptor: fl.FlightDescriptor) -> msg.PollInfo:  # type: ignore[valid-type]
        call = self.channel.unary_unary(f"{SERVICE}/PollFlightInfo")
        answer = msg.PollInfo()
        answer.ParseFromString(call(descriptor.serialize(), metadata=self.metadata, timeout=60))
        return answer

    def action(self, kind: str, body: bytes) -> list[bytes]:
        call = self.channel.unary_stream(f"{SERVICE}/DoAction")
        results = call(fl.Action(kind, body).serialize(), metadata=self.metadata, timeout=60)
        return [fl.Result.deserialize(r).body.to_pybytes() for r in results]

    def close(self) -> None:
        self.channel.close()


@pytest.fixture(scope="module")
def doors(poll_fleet: SecureFleet) -> Iterator[list[Door]]:
    bearer = token(poll_fleet)
    out = [Door(poll_fleet.fleet.frontdoor_uri(i), bearer) for i in range(2)]
    yield out
    for door in out:
        door.close()


def poll_to_the_end(doors: list[Door], text: str) -> list[msg.PollInfo]:  # type: ignore[valid-type]
    """Every answer, polling front door 0, 1, 0, ... with the descriptor each answered."""
    answers = [doors[0].poll(statement_descriptor(text))]
    deadline = time.monotonic() + 120
    while answers[-1].flight_descriptor:
        assert time.monotonic() < deadline, "the query never ended"
        time.sleep(0.05)
        descriptor = fl.FlightDescriptor.deserialize(answers[-1].flight_descriptor)
        answers.append(doors[len(answers) % 2].poll(descriptor))
    return answers


def read_endpoints(fleet: SecureFleet, info: fl.FlightInfo) -> pa.Table:
    with fl.connect(fleet.fleet.frontdoor_uri(1)) as client:
        options = login(client)
        tables = []
        for endpoint in info.endpoints:
            location = endpoint.locations[0] if endpoint.locations else None
            if location is None:
                tables.append(client.do_get(endpoint.ticket, options).read_all())
                continue
            with fl.connect(location) as holder:
                tables.append(holder.do_get(endpoint.ticket, options).read_all())
    return pa.concat_tables(tables)


def test_adbc_incremental_execution_reports_progress_that_rises_to_one(poll_fleet):
    seen: list[float] = []
    stop = threading.Event()
    with connect(poll_fleet.uri) as conn, conn.cursor() as cur:
        cur.adbc_statement.set_options(**{INCREMENTAL: "true"})

        def sample() -> None:  # the driver updates it after each of its polls
            while not stop.is_set():
                seen.append(cur.adbc_statement.get_option_float(PROGRESS))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        partitions: list[bytes] = []
        try:
            while True:
                new, _ = cur.adbc_execute_partitions(LONG)
                if not new:
                    break
                partitions.extend(new)
                seen.append(cur.adbc_statement.get_option_float(PROGRESS))
        finally:
            stop.set()
            sampler.join()
        tables = []
        for partition in partitions:
            cur.adbc_read_partition(partition)
            tables.append(cur.fetch_arrow_table())
    running = [p for p in seen if p > 0.0]  # 0.0: before the first poll, or after the last
    assert running and running[-1] == 1.0, seen
    assert running == sorted(running), f"progress went down: {seen}"
    assert any(0.0 < p < 1.0 for p in running), f"no progress before the end: {seen}"
    assert_same_result(pa.concat_tables(tables), reference(poll_fleet, LONG), ordered=False)


def test_polls_on_either_front_door_rise_to_one_and_end_with_duckdbs_answer(poll_fleet, doors):
    answers = poll_to_the_end(doors, LONG)
    progress = [a.progress for a in answers]
    assert progress == sorted(progress), progress
    assert progress[-1] == 1.0 and any(0.0 < p < 1.0 for p in progress), progress
    assert all(a.flight_descriptor for a in answers[:-1]) and not answers[-1].flight_descriptor
    # the descriptor names the query: every front door answered about the same one
    queries = {parse_poll_command(fl.FlightDescriptor.deserialize(a.flight_descriptor).command)
               for a in answers[:-1]}  # fmt: skip
    assert len({h.query_id for h in queries}) == 1
    info = fl.FlightInfo.deserialize(answers[-1].info)
    assert_same_result(read_endpoints(poll_fleet, info), reference(poll_fleet, LONG), ordered=False)


def test_endpoints_are_added_as_output_tasks_finish_and_keep_their_places(poll_fleet, doors):
    answers = poll_to_the_end(doors, SPREAD)
    infos = [fl.FlightInfo.deserialize(a.info) for a in answers]
    tickets = [[e.ticket.ticket for e in info.endpoints] for info in infos]
    for before, after in itertools.pairwise(tickets):
        assert after[: len(before)] == before, "an endpoint went away or moved"
    assert len(tickets[-1]) == len(set(tickets[-1])) == 4  # one per split (PACK_BYTES=0)
    assert any(0 < len(t) < 4 for t in tickets[:-1]), [len(t) for t in tickets]
    table = read_endpoints(poll_fleet, infos[-1])
    assert_same_result(table, reference(poll_fleet, SPREAD), ordered=False)


def test_adbc_reads_partitions_of_a_running_query_and_each_once(poll_fleet):
    with connect(poll_fleet.uri) as conn, conn.cursor() as cur:
        cur.adbc_statement.set_options(**{INCREMENTAL: "true"})
        batches: list[tuple[int, float]] = []
        partitions: list[bytes] = []
        while True:
            new, _ = cur.adbc_execute_partitions(SPREAD)
            if not new:
                break
            partitions.extend(new)
            batches.append((len(new), cur.adbc_statement.get_option_float(PROGRESS)))
        tables = []
        for partition in partitions:
            cur.adbc_read_partition(partition)
            tables.append(cur.fetch_arrow_table())
    assert len(partitions) == 4, batches
    assert batches[0][1] < 1.0, f"nothing came before the end: {batches}"
    assert_same_result(pa.concat_tables(tables), reference(poll_fleet, SPREAD), ordered=False)


def test_a_failed_query_poll_raises_its_error_with_get_flight_info_s_code(poll_fleet, doors):
    text = "SELECT CAST(l_comment AS INTEGER) AS n FROM lineitem"
    with pytest.raises(grpc.RpcError) as polled:
        poll_to_the_end(doors, text)
    call = doors[0].channel.unary_unary(f"{SERVICE}/GetFlightInfo")
    with pytest.raises(grpc.RpcError) as direct:
        call(statement_descriptor(text).serialize(), metadata=doors[0].metadata, timeout=60)
    assert polled.value.code() == direct.value.code() == grpc.StatusCode.INTERNAL
    assert "Could not convert" in polled.value.details()
    assert "Traceback" not in polled.value.details() and ".py" not in polled.value.details()


def test_cancel_flight_info_with_a_poll_info_cancels_the_query(poll_fleet, doors):
    first = doors[0].poll(statement_descriptor(LONG + " -- cancelled"))
    assert first.flight_descriptor, "the query ended before it could be cancelled"
    request = sql.CancelFlightInfoRequest(info=first.info).SerializeToString()
    [raw] = doors[1].action("CancelFlightInfo", request)
    result = sql.CancelFlightInfoResult()
    result.ParseFromString(raw)
    assert result.status == sql.CancelFlightInfoResult.CANCEL_STATUS_CANCELLED  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as again:
        doors[0].poll(fl.FlightDescriptor.deserialize(first.flight_descriptor))
    assert again.value.code() == grpc.StatusCode.CANCELLED, again.value.details()


def test_a_user_cannot_poll_another_user_s_query(poll_fleet, doors):
    first = doors[0].poll(statement_descriptor(LONG + " -- admin's"))
    assert first.flight_descriptor
    descriptor = fl.FlightDescriptor.deserialize(first.flight_descriptor)
    reader = Door(poll_fleet.fleet.frontdoor_uri(1), token(poll_fleet, READER, READER_PASSWORD))
    try:
        with pytest.raises(grpc.RpcError) as refused:
            reader.poll(descriptor)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND, refused.value.details()
    finally:
        reader.close()
    poll_query_to_the_end(doors, descriptor)  # the admin still can


def poll_query_to_the_end(doors: list[Door], descriptor: fl.FlightDescriptor) -> None:
    answer = doors[0].poll(descriptor)
    while answer.flight_descriptor:
        time.sleep(0.05)
        answer = doors[1].poll(fl.FlightDescriptor.deserialize(answer.flight_descriptor))
    assert answer.progress == 1.0


def test_what_runs_at_once_is_answered_whole_on_the_first_poll(poll_fleet, doors):
    tables = fl.FlightDescriptor.for_command(commands.pack(sql.CommandGetTables()))
    small = statement_descriptor("SELECT count(*) AS n FROM nation")  # the fast path
    for descriptor in (tables, small):
        answer = doors[1].poll(descriptor)
        assert answer.progress == 1.0 and not answer.flight_descriptor
        assert len(fl.FlightInfo.deserialize(answer.info).endpoints) == 1
    info = fl.FlightInfo.deserialize(doors[1].poll(small).info)
    expected = reference(poll_fleet, "SELECT count(*) AS n FROM nation")
    assert_same_result(read_endpoints(poll_fleet, info), expected, ordered=False)


def test_the_poll_that_answers_a_query_s_end_counts_it_in_the_metrics(poll_fleet, doors):
    urls = [u for name, u in poll_fleet.fleet.metrics_urls() if name.startswith("front door")]
    assert len(urls) == 2

    def counts() -> dict[str, float]:
        samples = [scrape(u) for u in urls]
        names = {
            outcome: total(samples, "duckfleet_queries_total", outcome=outcome)
            for outcome in ("finished", "failed", "cancelled")
        }
        names["timed"] = total(samples, "duckfleet_query_duration_seconds_count")
        return names

    before = counts()
    poll_to_the_end(doors, SPREAD + " -- counted")
    with pytest.raises(grpc.RpcError):
        poll_to_the_end(doors, "SELECT CAST(l_comment AS INTEGER) AS n FROM lineitem -- counted")
    after = counts()
    moved = {k: after[k] - before[k] for k in after}
    assert moved == {"finished": 1, "failed": 1, "cancelled": 0, "timed": 1}, moved
