"""Fuzz the wire: thousands of malformed requests, one fixed seed, a real front door
and a real worker (tests/secure_fleet.py, auth on).

Inputs: random bytes; valid Flight SQL messages truncated, bit-flipped, spliced or
padded; descriptors of type PATH; mutated result tickets, front-door-local tickets and
action bodies; unknown action types; random authorization headers; 10 MB SQL, tickets
and action bodies. Every one must come back as a Flight status that duckfleet chose
(INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, UNAUTHENTICATED, ...), or as a normal
answer when the mutation still made sense; never UNKNOWN, never duckfleet's "internal
error" (an unhandled exception), never a timeout. Then both processes still answer.
"""

from __future__ import annotations

import collections
import random
import string
from collections.abc import Callable

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from secure_fleet import ADMIN, ADMIN_PASSWORD, SecureFleet

from duckfleet.client import statement_descriptor
from duckfleet.wire import commands, tickets
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(120)

SEED = 20261124
TIMEOUT = 20.0  # seconds per call: longer means the server hung
BIG = 10 * 1024 * 1024


def corpus_commands() -> list[bytes]:
    handle = tickets.prepared_statement_handle("SELECT n_name FROM nation")
    messages = [
        sql.CommandStatementQuery(query="SELECT n_name FROM nation WHERE n_nationkey < 3"),
        sql.CommandStatementQuery(query="SELECT 1"),
        sql.CommandPreparedStatementQuery(prepared_statement_handle=handle),
        sql.CommandGetSqlInfo(info=[0, 1, 500]),
        sql.CommandGetCatalogs(),
        sql.CommandGetDbSchemas(catalog="duckfleet", db_schema_filter_pattern="%"),
        sql.CommandGetTables(table_name_filter_pattern="n%", include_schema=True),
        sql.CommandGetTableTypes(),
        sql.CommandGetPrimaryKeys(table="nation"),
        sql.CommandGetXdbcTypeInfo(),
        sql.CommandStatementUpdate(query="CREATE TABLE t AS SELECT 1"),
        sql.CommandStatementIngest(table="t"),
    ]
    return [commands.pack(m) for m in messages]  # type: ignore[arg-type]


def corpus_actions() -> list[tuple[str, bytes]]:
    handle = tickets.prepared_statement_handle("SELECT 1")
    return [
        ("CreatePreparedStatement", commands.pack(
            sql.ActionCreatePreparedStatementRequest(query="SELECT n_name FROM nation"))),
        ("ClosePreparedStatement", commands.pack(
            sql.ActionClosePreparedStatementRequest(prepared_statement_handle=handle))),
        ("CloseSession", sql.CloseSessionRequest().SerializeToString()),
        ("CancelFlightInfo", b""),
        ("BeginTransaction", b""),
    ]  # fmt: skip


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One of: random bytes, truncation, flipped bytes, insertion, splice, padding."""
    kind = rng.randrange(6)
    if kind == 0 or not data:
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 1:
        return data[: rng.randrange(len(data))]
    if kind == 2:
        out = bytearray(data)
        for _ in range(rng.randrange(1, 6)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == 3:
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.randbytes(rng.randrange(1, 40)) + data[at:]
    if kind == 4:
        a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
        return data[:a] + data[b:] + data[a:b]
    return data + rng.randbytes(rng.randrange(1, 100))


class Tally:
    """Each call's outcome: the status name, or a bad outcome recorded as a failure."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.bad: list[str] = []

    def call(self, what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
            self.counts["OK"] += 1
            return
        except fl.FlightUnauthenticatedError:
            code = "UNAUTHENTICATED"
        except fl.FlightUnauthorizedError:
            code = "PERMISSION_DENIED"
        except fl.FlightTimedOutError as exc:
            self.bad.append(f"{what}: timed out ({exc})")
            return
        except fl.FlightInternalError as exc:
            if "internal error in duckfleet" in str(exc) or "query failed" not in str(exc):
                self.bad.append(f"{what}: {str(exc)[:300]}")
                return
            code = "INTERNAL (query failed)"  # a mutated query DuckDB could not run
        except (fl.FlightServerError, fl.FlightUnavailableError, fl.FlightCancelledError) as e:
            self.bad.append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
            return
        except pa.ArrowInvalid:
            code = "INVALID_ARGUMENT"
        except pa.ArrowKeyError:
            code = "NOT_FOUND"
        except NotImplementedError:
            code = "UNIMPLEMENTED"
        except OSError as exc:
            # pyarrow's GetSchema raises a plain OSError that keeps the status only in
            # its text ("... Detail: Unauthenticated")
            if not str(exc).endswith("Detail: Unauthenticated"):
                self.bad.append(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
                return
            code = "UNAUTHENTICATED"
        self.counts[code] += 1

    def __len__(self) -> int:
        return sum(self.counts.values()) + len(self.bad)


class _Silent(fl.ClientAuthHandler):
    """Handshake with nothing but the headers of the call options."""

    def authenticate(self, outgoing: fl.ClientAuthSender, incoming: fl.ClientAuthReader) -> None:
        pass

    def get_token(self) -> bytes:
        return b""


def printable(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/=.-_ ") for _ in range(n))


def test_malformed_requests_get_flight_errors_and_both_servers_keep_serving(
    secure_fleet: SecureFleet,
):
    rng = random.Random(SEED)
    tally = Tally()
    door = fl.connect(secure_fleet.uri)
    header = door.authenticate_basic_token(ADMIN, ADMIN_PASSWORD)
    options = fl.FlightCallOptions(headers=[header], timeout=TIMEOUT)
    info = door.get_flight_info(statement_descriptor("SELECT n_name FROM nation"), options=options)
    result_ticket = info.endpoints[0].ticket.ticket
    worker_uri = info.endpoints[0].locations[0].uri.decode()
    worker = fl.connect(worker_uri)
    local_ticket = tickets.local_ticket(sql.CommandGetTableTypes())
    cmds, actions = corpus_commands(), corpus_actions()
    no_token = fl.FlightCallOptions(timeout=TIMEOUT)

    def descriptor(data: bytes) -> fl.FlightDescriptor:
        if rng.random() < 0.05:
            return fl.FlightDescriptor.for_path(printable(rng, rng.randrange(1, 20)))
        return fl.FlightDescriptor.for_command(data)

    # front door: descriptors
    for n in range(1000):
        d = descriptor(mutate(rng, rng.choice(cmds)))
        opts = options if n % 10 else no_token
        if n % 3:
            tally.call("GetFlightInfo", lambda d=d, o=opts: door.get_flight_info(d, options=o))
        else:
            tally.call("GetSchema", lambda d=d, o=opts: door.get_schema(d, options=o))
    # front door and worker: tickets
    for n in range(1000):
        t = fl.Ticket(mutate(rng, rng.choice([result_ticket, local_ticket])))
        target = door if n % 2 else worker
        opts = options if n % 10 else no_token
        tally.call("DoGet", lambda c=target, t=t, o=opts: c.do_get(t, options=o).read_all())
    # front door: actions, known and unknown types, mutated bodies
    for n in range(700):
        kind, body = rng.choice(actions)
        if n % 7 == 0:
            kind = printable(rng, rng.randrange(0, 30))
        action = fl.Action(kind, mutate(rng, body))
        tally.call("DoAction", lambda a=action: list(door.do_action(a, options=options)))
    # the worker: everything a worker does not serve
    for _ in range(150):
        d = fl.FlightDescriptor.for_command(mutate(rng, rng.choice(cmds)))
        tally.call("worker GetFlightInfo", lambda d=d: worker.get_flight_info(d, options=options))
        a = fl.Action(printable(rng, 10), rng.randbytes(20))
        tally.call("worker DoAction", lambda a=a: list(worker.do_action(a, options=options)))
    # authorization headers and Handshake credentials
    for n in range(300):
        scheme = rng.choice(["Basic ", "Bearer ", "bearer ", "", "Digest "])
        value = scheme + printable(rng, rng.randrange(0, 200))
        if n % 4 == 0:
            value = scheme + mutate(rng, b"v1.abc.def").hex()
        headers = fl.FlightCallOptions(headers=[(b"authorization", value.encode())],
                                       timeout=TIMEOUT)  # fmt: skip
        target = door if n % 2 else worker
        if n % 3 == 0:
            tally.call("Handshake", lambda c=target, h=headers: c.authenticate(_Silent(), h))
        else:
            tally.call("DoGet", lambda c=target, h=headers: c.do_get(
                fl.Ticket(result_ticket), options=h).read_all())  # fmt: skip
    # oversized requests
    huge_sql = "SELECT 1 -- " + "x" * BIG
    oversized = [
        ("GetFlightInfo 10 MB SQL", lambda: door.get_flight_info(
            statement_descriptor(huge_sql), options=options)),
        ("CreatePreparedStatement 10 MB SQL", lambda: list(door.do_action(fl.Action(
            "CreatePreparedStatement", commands.pack(
                sql.ActionCreatePreparedStatementRequest(query=huge_sql))), options=options))),
        ("DoGet 10 MB ticket (front door)", lambda: door.do_get(
            fl.Ticket(rng.randbytes(BIG)), options=options).read_all()),
        ("DoGet 10 MB ticket (worker)", lambda: worker.do_get(
            fl.Ticket(rng.randbytes(BIG)), options=options).read_all()),
        ("DoAction 10 MB body", lambda: list(door.do_action(
            fl.Action("CloseSession", rng.randbytes(BIG)), options=options))),
        ("GetFlightInfo 10 MB descriptor", lambda: door.get_flight_info(
            fl.FlightDescriptor.for_command(rng.randbytes(BIG)), options=options)),
    ]  # fmt: skip
    for what, fn in oversized:
        tally.call(what, fn)
    print(dict(tally.counts))  # shown with -s: what the fuzz met

    assert len(tally) > 3000
    assert not tally.bad, f"{len(tally.bad)} bad outcome(s) of {len(tally)}: {tally.bad[:10]}"
    # every kind of refusal was exercised, not just one
    for code in ("INVALID_ARGUMENT", "UNIMPLEMENTED", "UNAUTHENTICATED", "NOT_FOUND"):
        assert tally.counts[code] > 0, tally.counts
    # the 10 MB statement is refused for its size, before any parsing
    with pytest.raises(pa.ArrowInvalid, match="duckfleet accepts at most 1048576 bytes"):
        door.get_flight_info(statement_descriptor(huge_sql), options=options)
    # both processes still serve, and nothing exited
    secure_fleet.fleet._check_children()
    info = door.get_flight_info(statement_descriptor("SELECT 1 AS one"), options=options)
    (endpoint,) = info.endpoints
    with fl.connect(endpoint.locations[0]) as where:
        assert where.do_get(endpoint.ticket, options=options).read_all().to_pylist() == [{"one": 1}]
    assert worker.do_get(fl.Ticket(result_ticket), options=options).read_all().num_rows == 25
    door.close()
    worker.close()
