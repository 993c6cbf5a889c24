"""Chaos soak: concurrent clients run TPC-H and generated queries against a fleet of
several workers and two front doors while workers and front doors are killed with
SIGKILL and restarted at random. Every answer is compared with DuckDB in-process.
The fleet's etcd is not restarted if it exits: the soak then fails (etcd issue 14110
took it down once), and the per-minute table shows when answers stopped.

Each query ends as one of:

* ok: the answer equals DuckDB's (perhaps after retries);
* wrong: an answer came back and differs — never acceptable;
* hung: no answer within the deadline (a generous one) — never acceptable;
* failed: gave up with a status that is not retryable (e.g. INTERNAL: a task lost
  its worker DUCKFLEET_MAX_ATTEMPTS times); reported, with the message.

Attempts that fail with a retryable status (UNAVAILABLE — a front door or worker
gone; CANCELLED — a stream cut) are counted too, and the client retries at once on
the other front door, up to MAX_TRIES times. At most one worker and one front door
are down at a time, so the fleet can always answer. Exit status 1 if any query was
wrong or hung.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import adbc_driver_manager
import pyarrow as pa

from bench.engines import DuckDBEngine
from bench.fleet import adbc_connect, fetch, fleet_setup, register, running_fleet
from bench.machine import environment
from bench.progress import say
from bench.report import Table, publish
from bench.tpch import is_ordered, query_text
from duckfleet.etcd_server import EtcdServer, start_cluster
from duckfleet.local_fleet import LocalFleet, generate_tpch
from duckfleet.verify import difference

HELP = "chaos soak: clients vs SIGKILLed workers and front doors; wrong and hung must be 0"
NAME = "chaos"
OK, RETRIED, WRONG, HUNG, FAILED = "ok", "retryable failures", "wrong", "hung", "failed"
MAX_TRIES = 20
RETRYABLE = {adbc_driver_manager.AdbcStatusCode.IO, adbc_driver_manager.AdbcStatusCode.CANCELLED}

# generated queries: (table, group-by column, numeric columns, filter column)
SHAPES = (
    ("lineitem", "l_returnflag", ("l_quantity", "l_extendedprice", "l_discount"), "l_tax"),
    ("lineitem", "l_shipmode", ("l_quantity", "l_extendedprice"), "l_discount"),
    ("orders", "o_orderstatus", ("o_totalprice",), "o_totalprice"),
    ("orders", "o_orderpriority", ("o_totalprice", "o_shippriority"), "o_totalprice"),
    ("customer", "c_mktsegment", ("c_acctbal",), "c_acctbal"),
    ("partsupp", "ps_suppkey % 7", ("ps_supplycost", "ps_availqty"), "ps_availqty"),
    ("part", "p_size % 5", ("p_retailprice", "p_size"), "p_retailprice"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=3.0, help="soak length (default 3)")
    p.add_argument("--seed", type=int, default=1, help="random seed (queries and kills)")
    p.add_argument("--scale", type=float, default=0.01, help="TPC-H scale (default 0.01)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--workers", type=int, default=3, help="workers (default 3)")
    p.add_argument("--generated", type=int, default=40, help="generated queries (default 40)")
    p.add_argument("--deadline", type=float, default=90.0, help="seconds before 'hung'")
    p.add_argument("--lease-ttl", type=int, default=2, help="DUCKFLEET_LEASE_TTL (default 2)")
    p.add_argument("--every", type=float, default=5.0, help="mean seconds between kills")
    p.add_argument(
        "--max-gap",
        type=float,
        default=0.0,
        help="faults 1 to this many seconds apart, uniformly (0: exponential, --every)",
    )
    p.add_argument(
        "--freeze",
        action="store_true",
        help="also freeze workers and front doors (SIGSTOP, SIGCONT 0.5-3 s later)",
    )
    p.add_argument(
        "--etcd-members",
        type=int,
        default=1,
        help="etcd members; 3 or more: one at a time is killed or frozen too",
    )


def generated_queries(rng: random.Random, n: int) -> list[str]:
    """Simple aggregates and filters over TPC-H tables, drawn from SHAPES."""
    out = []
    for _ in range(n):
        table, key, nums, filt = rng.choice(SHAPES)
        aggs = [
            f"{rng.choice(('sum', 'min', 'max', 'avg', 'count'))}({c}) as a{i}"
            for i, c in enumerate(rng.sample(nums, k=rng.randint(1, len(nums))))
        ]
        where = f" where {filt} > {rng.choice((0, 0.02, 0.05, 10, 1000, 5000))}"
        if rng.random() < 0.3:  # a plain filter, many rows, no aggregate
            cols = ", ".join(dict.fromkeys([filt, *nums]))
            out.append(f"select {cols} from {table}{where}")
        else:
            sql = f"select {key} as k, count(*) as n, {', '.join(aggs)} from {table}"
            out.append(sql + (where if rng.random() < 0.6 else "") + " group by 1")
    return out


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    events: list[tuple[float, str]] = field(default_factory=list)  # (time, outcome)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    inflight: dict[int, float] = field(default_factory=dict)  # client -> attempt start
    retry_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str, t: float, detail: str = "") -> None:
        with self.lock:
            self.counts[outcome] += 1
            self.events.append((t, outcome))
            if detail:
                self.failures.append(f"{outcome}: {detail}")


def attempt(uri: str, sql: str, deadline: float) -> pa.Table:
    """One try on one front door, on a new connection. Once the answer is in, an
    error while closing (the front door died since) does not matter."""
    conn = adbc_connect(uri, timeout=deadline)
    try:
        cur = conn.cursor()
        table = fetch(cur, sql)
        with contextlib.suppress(adbc_driver_manager.Error):
            cur.close()
        return table
    finally:
        with contextlib.suppress(adbc_driver_manager.Error):
            conn.close()


def quiet_unraisable(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """Drop the driver's complaint when a cursor whose close failed is collected."""

    def quiet(unraisable: Any) -> None:
        if "Underflow in closing" not in str(unraisable.exc_value):
            hook(unraisable)

    return quiet


def short(message: str) -> str:
    """An error message without its numbers (ports, ids), for counting alike ones."""
    return re.sub(r"[0-9a-f]{8,}|\d+", "#", message)[:160]


def client(
    i: int,
    fleet: LocalFleet,
    queries: list[tuple[str, pa.Table]],
    end: float,
    deadline: float,
    seed: int,
    tally: Tally,
    t0: float,
) -> None:
    rng = random.Random(seed * 1000 + i)
    uris = [f"grpc://127.0.0.1:{p}" for p in fleet.frontdoor_ports]
    while time.monotonic() < end:
        sql, expected = rng.choice(queries)
        door = rng.randrange(len(uris))
        started = time.monotonic()
        last = ""
        for _ in range(MAX_TRIES):
            tally.inflight[i] = time.monotonic()
            try:
                table = attempt(uris[door], sql, deadline)
            except adbc_driver_manager.Error as exc:
                now = time.monotonic()
                message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                if exc.status_code == adbc_driver_manager.AdbcStatusCode.TIMEOUT:
                    tally.add(HUNG, now - t0, f"{sql[:80]!r}: {message}")
                elif exc.status_code in RETRYABLE and now - started < deadline:
                    tally.add(RETRIED, now - t0)
                    last = f"{exc.status_code.name}: {message}"
                    with tally.lock:
                        tally.retry_reasons[short(last)] += 1
                    door = (door + 1) % len(uris)  # the other front door, at once
                    continue
                else:
                    tally.add(FAILED, now - t0, f"{exc.status_code.name} {sql[:80]!r}: {message}")
                break
            else:
                diff = difference(table, expected, ordered=is_ordered(sql))
                now = time.monotonic()
                if diff is not None:
                    tally.add(WRONG, now - t0, f"{sql[:80]!r}: {diff[:200]}")
                elif now - started > deadline:
                    tally.add(HUNG, now - t0, f"{sql[:80]!r}: answered after {now - started:.0f} s")
                else:
                    tally.add(OK, now - t0)
                break
        else:
            tally.add(FAILED, time.monotonic() - t0, f"{MAX_TRIES} retryable failures, last {last}")
        tally.inflight.pop(i, None)


# faults and their weights: (what, signal); the etcd ones only with a cluster
FAULTS = (
    (("worker", "SIGKILL"), 6),
    (("front door", "SIGKILL"), 4),
)
FREEZES = (
    (("worker", "SIGSTOP"), 2),
    (("front door", "SIGSTOP"), 1),
)
ETCD_FAULTS = (
    (("etcd member", "SIGKILL"), 2),
    (("etcd member", "SIGSTOP"), 1),
)


def chaos_monkey(
    fleet: LocalFleet,
    rng: random.Random,
    end: float,
    every: float,
    kills: list[tuple],
    *,
    members: Sequence[EtcdServer] = (),
    freeze: bool = False,
    max_gap: float = 0.0,
) -> None:
    """A fault at a time, at random: a worker or front door SIGKILLed and restarted
    0.5-3 s later; with `freeze`, also SIGSTOPped and SIGCONTinued 0.5-3 s later;
    with `members` (an etcd cluster), also one of its members killed and started
    again, or frozen. Faults start `every` s apart on average (exponential), or, with
    `max_gap`, uniformly 1 to `max_gap` s apart, so at least one in every `max_gap`."""
    t0 = time.monotonic()
    faults = [*FAULTS, *(FREEZES if freeze else ()), *(ETCD_FAULTS if members else ())]
    kinds = [f for f, _ in faults]
    weights = [w for _, w in faults]
    started = time.monotonic()
    while True:
        gap = rng.uniform(1.0, max_gap) if max_gap else rng.expovariate(1 / every)
        at = started + gap
        if at + 3 > end:
            return
        time.sleep(max(0.0, at - time.monotonic()))
        started = time.monotonic()
        down = rng.uniform(0.5, 3.0)
        what, how = rng.choices(kinds, weights)[0]
        if what == "worker":
            victim = rng.choice([p for p in fleet.worker_procs if p.poll() is None])
            label, pid = "worker", victim.pid
            if how == "SIGKILL":
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                time.sleep(down)
                fleet.start_worker()
            else:
                pause(pid, down)
        elif what == "front door":
            i = rng.randrange(len(fleet.frontdoor_procs))
            victim = fleet.frontdoor_procs[i]
            label, pid = f"front door {i}", victim.pid
            if how == "SIGKILL":
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                time.sleep(down)
                fleet.restart_frontdoor(i)
            else:
                pause(pid, down)
        else:
            member = rng.choice(list(members))
            assert member.proc is not None
            label, pid = f"etcd {member.name}", member.proc.pid
            if how == "SIGKILL":
                member.proc.send_signal(signal.SIGKILL)
                member.proc.wait()
                time.sleep(down)
                member.proc = None
                member.start()  # rejoins with its data
            else:
                pause(pid, down)
        kills.append((started - t0, label, pid, how, down))


def kind(label: str) -> str:
    """ "front door 1" -> "front door", "etcd m2" -> "etcd", "worker" -> "worker"."""
    return label.rsplit(" ", 1)[0] if label[-1].isdigit() else label


def pause(pid: int, seconds: float) -> None:
    """Freeze a process for `seconds` (SIGSTOP, then SIGCONT)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def run_chaos(args: argparse.Namespace) -> int:
    header = environment()
    warnings.filterwarnings("ignore", message="Cannot disable autocommit")
    sys.unraisablehook = quiet_unraisable(sys.unraisablehook)
    rng = random.Random(args.seed)
    root = generate_tpch(args.data_dir, args.scale, parts=4)
    texts = [query_text(n) for n in range(1, 23)] + generated_queries(rng, args.generated)
    duck = DuckDBEngine(root, 2)
    try:
        queries = [(sql, duck.run(sql)) for sql in texts]
    finally:
        duck.close()
    tally = Tally()
    kills: list[tuple] = []
    env = {"DUCKFLEET_QUERY_TIMEOUT": str(int(args.deadline * 2))}
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="bench-logs-")
    members = start_cluster(log_dir, args.etcd_members) if args.etcd_members > 1 else []
    stack = contextlib.ExitStack()  # the members outlive the fleet, and are closed
    for m in members:
        stack.callback(m.close)
    with (
        stack,
        running_fleet(
            args.workers,
            log_dir,
            per_worker=1,
            frontdoors=2,
            lease_ttl=args.lease_ttl,
            env=env,
            etcd_urls=",".join(m.url for m in members) or None,
        ) as fleet,
    ):
        setup = fleet_setup(fleet)
        register(fleet, root)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        say(f"soaking for {args.minutes:g} min: {args.clients} clients, seed {args.seed}")
        threads = [
            threading.Thread(
                target=client,
                args=(i, fleet, queries, end, args.deadline, args.seed, tally, t0),
                name=f"client-{i}",
                daemon=True,  # a hung one must not keep the process alive
            )
            for i in range(args.clients)
        ]
        monkey = threading.Thread(
            target=chaos_monkey,
            args=(fleet, random.Random(args.seed + 1), end, args.every, kills),
            kwargs={"members": members, "freeze": args.freeze, "max_gap": args.max_gap},
            name="chaos",
        )
        for t in [*threads, monkey]:
            t.start()
        while any(t.is_alive() for t in threads) and time.monotonic() < end + args.deadline:
            time.sleep(1)
            done = sum(tally.counts.values())
            if int(time.monotonic() - t0) % 15 == 0:
                say(f"{done} queries, {dict(tally.counts)}, {len(kills)} kill(s)")
        monkey.join()
        stuck = [i for i, t in enumerate(threads) if t.is_alive()]
        for _ in stuck:
            tally.add(HUNG, time.monotonic() - t0, "a client still waiting past the deadline")
        servers = members or ([fleet.etcd] if fleet.etcd else [])
        exits = [m.proc.poll() if m.proc else -1 for m in servers]  # after their restarts
        etcd_exit = next((e for e in exits if e is not None), None)

    counts = tally.counts
    table = Table(["outcome", "queries"])
    for outcome in (OK, RETRIED, WRONG, HUNG, FAILED):
        table.add(outcome, counts[outcome])
    killed = Table(
        ["seconds", "process", "pid", "signal", "down s"], digits={"seconds": 1, "down s": 1}
    )
    for at, what, pid, how, down in kills:
        killed.add(at, what, pid, how, down)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(kills)]
    minutes = per_minute(tally.events, args.minutes)
    etcd_line = (
        (
            "etcd served throughout"
            if not members
            else f"all {len(members)} etcd members up at the end"
        )
        if etcd_exit is None
        else f"etcd EXITED (status {etcd_exit}); see its log in the fleet's log directory"
    )
    print(
        f"{etcd_line}; chaos: ok {counts[OK]}, retryable failures {counts[RETRIED]}, wrong "
        f"{counts[WRONG]}, hung {counts[HUNG]}, failed {counts[FAILED]}; "
        + ", ".join(f"{n} x {k}" for k, n in Counter(f"{k[3]} {kind(k[1])}" for k in kills).items())
        + (f"; longest gap between faults {max(gaps):.1f} s" if gaps else "")
    )
    for line in tally.failures[:20]:
        print("  " + line)
    for m, n in tally.retry_reasons.most_common(8):
        print(f"  retried {n} x {m}")
    header["command"] = "`python -m bench " + shlex.join(sys.argv[1:]) + "`"
    header["setup"] = setup
    header["etcd during the soak"] = etcd_line
    header["soak"] = (
        f"{args.minutes:g} min, seed {args.seed}, {args.clients} clients, TPC-H SF"
        f"{args.scale:g}: the 22 queries and {args.generated} generated aggregates and "
        f"filters; a fault "
        + (
            f"1-{args.max_gap:g} s after the last"
            if args.max_gap
            else f"every {args.every:g} s on average"
        )
        + ": SIGKILL of a worker or front door (restarted 0.5-3 s later)"
        + ("; SIGSTOP of one (SIGCONT 0.5-3 s later)" if args.freeze else "")
        + (f"; SIGKILL or SIGSTOP of one of {len(members)} etcd members" if members else "")
        + f"; deadline {args.deadline:g} s; each attempt on a new ADBC connection; retries "
        "go to the other front door"
    )
    header["faults"] = ", ".join(
        f"{n} x {k}" for k, n in Counter(f"{k[3]} {kind(k[1])}" for k in kills).items()
    ) + (f"; longest gap between two faults' starts {max(gaps):.1f} s" if gaps else "")

    def plot(path: Path) -> None:
        from bench.report import _pyplot

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(10, 4))
        width = 10.0
        buckets = int(args.minutes * 60 // width) + 2
        bottom = [0.0] * buckets
        colors = {OK: "tab:green", RETRIED: "tab:orange", FAILED: "tab:purple"}
        colors |= {WRONG: "tab:red", HUNG: "black"}
        for outcome, color in colors.items():
            hist = [0.0] * buckets
            for t, o in tally.events:
                if o == outcome:
                    hist[min(int(t // width), buckets - 1)] += 1
            xs = [i * width for i in range(buckets)]
            ax.bar(xs, hist, width * 0.9, bottom=bottom, color=color, label=outcome, align="edge")
            bottom = [b + h for b, h in zip(bottom, hist, strict=True)]
        for at, what, *_ in kills:
            color = {"worker": "tab:red", "etcd": "tab:gray"}.get(what.split(" ")[0], "tab:blue")
            ax.axvline(at, color=color, linewidth=0.6)
        ax.set_xlabel(
            "seconds (vertical lines: faults; red a worker, blue a front door, gray etcd)"
        )
        ax.set_ylabel(f"queries per {width:g} s")
        ax.set_title(f"Chaos soak: {counts[OK]} ok, {counts[WRONG]} wrong, {counts[HUNG]} hung")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    notes = [f"- {line}" for line in tally.failures[:50]]
    if notes:
        notes.insert(0, "Queries that did not end ok:\n")
    if tally.retry_reasons:
        notes += ["", "Retryable failures, by message (numbers replaced by #):", ""]
        notes += [f"- {n} x {m}" for m, n in tally.retry_reasons.most_common(15)]
    paths = publish(
        Path(args.out),
        NAME,
        "Chaos soak: workers, front doors and etcd members killed or frozen under load",
        header,
        table,
        plot,
        sections=[("Per minute", minutes), ("Faults", killed)],
        notes=notes,
    )
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return 1 if counts[WRONG] or counts[HUNG] or etcd_exit is not None else 0


def per_minute(events: list[tuple[float, str]], minutes: float) -> Table:
    """Outcomes by the minute of the soak they ended in."""
    table = Table(["minute", OK, RETRIED, FAILED, WRONG, HUNG])
    n = max(1, int(-(-minutes // 1)))
    counts = [Counter[str]() for _ in range(n)]
    for t, outcome in events:
        counts[min(int(t // 60), n - 1)][outcome] += 1
    for i, c in enumerate(counts):
        table.add(f"{i}-{i + 1}", c[OK], c[RETRIED], c[FAILED], c[WRONG], c[HUNG])
    return table


def main(args: argparse.Namespace) -> int:
    return run_chaos(args)
