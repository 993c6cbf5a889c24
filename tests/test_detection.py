"""control/detection.py: when a claim holder is probed, when it is declared dead.

Pure: no network, the clock passed in."""

from __future__ import annotations

from duckfleet.control.declarations import forgiven_marker
from duckfleet.control.detection import (
    BACKUP_FACTOR,
    Declare,
    DetectionSettings,
    Detector,
    Probe,
    Target,
    prober_of,
)
from duckfleet.control.queries import runnable_marker
from duckfleet.ids import MemberId, QueryId, TaskId

S = DetectionSettings(interval=0.2, failures=3, timeout=0.5)
A, B, C = MemberId("worker-a"), MemberId("worker-b"), MemberId("worker-c")


def target(m: MemberId, revision: int = 10) -> Target:
    return Target(m, revision, 0x99, "127.0.0.1", 1234, 4321)


def detector_probing(suspect: MemberId, workers: list[MemberId]) -> Detector:
    """The detector of the one worker that probes `suspect`."""
    me = prober_of(suspect, workers)
    assert me is not None
    return Detector(me, S)


def test_each_suspect_has_exactly_one_prober_all_agree_on():
    workers = [MemberId(f"worker-{i}") for i in range(7)]
    for suspect in workers:
        chosen = {
            w: prober_of(suspect, sorted(workers, key=lambda x: hash((x, w)))) for w in workers
        }
        assert len(set(chosen.values())) == 1  # the order of the listing does not matter
        assert chosen[suspect] != suspect
    spread = {prober_of(s, workers) for s in workers}
    assert len(spread) > 1  # not every suspect falls on the same prober
    assert prober_of(A, [A]) is None


def probes_in(d: Detector, seconds: float, workers: list[Target], holders: set[MemberId]) -> int:
    """Probes `d` starts over `seconds` of listings every interval, each answered."""
    n = 0
    for i in range(round(seconds / S.interval)):
        t = i * S.interval
        for p in d.listed(t, workers, holders):
            n += 1
            d.answered(t + 0.01, p.target, alive=True)
    return n


def test_only_claim_holders_are_probed_mostly_by_their_first_prober():
    workers = [target(A), target(B), target(C)]
    ids = [A, B, C]
    first = detector_probing(B, ids)
    (backup,) = [Detector(w, S) for w in ids if w not in (B, first.me)]
    assert first.listed(0.0, workers, holders=set()) == []  # B holds nothing: not probed
    assert first.listed(0.0, workers, holders={first.me}) == []  # never itself
    n_first = probes_in(first, 10.0, workers, {B})
    n_backup = probes_in(backup, 10.0, workers, {B})
    assert n_first == 50  # every interval
    assert n_backup == 50 // BACKUP_FACTOR  # the backstop, less often
    assert probes_in(Detector(B, S), 10.0, workers, {B}) == 0


def test_one_probe_in_flight_per_suspect_and_at_most_one_per_interval():
    ids = [A, B]
    d = detector_probing(B, ids)
    workers = [target(A), target(B)]
    assert len(d.listed(0.0, workers, {B})) == 1
    assert d.listed(0.5, workers, {B}) == []  # still in flight
    assert d.probing() == 1
    d.answered(0.55, target(B), alive=True)
    assert d.listed(0.6, workers, {B}) == [Probe(target(B))]  # 0.6 s after the last start
    d.answered(0.61, target(B), alive=True)
    assert d.listed(0.7, workers, {B}) == []  # only 0.1 s after the last start


def test_dead_after_n_failures_in_a_row_and_declared_once():
    d = detector_probing(B, [A, B])
    workers = [target(A), target(B)]
    t = 0.0
    outcomes = []
    for i in range(5):
        probes = d.listed(t, workers, {B})
        assert probes == ([Probe(target(B))] if i < 3 else [])  # none once declared
        outcomes.append(d.answered(t + 0.01, target(B), alive=False))
        t += 0.25
    assert outcomes[:2] == [[], []]
    assert outcomes[2] == [Declare(target(B), 3)]
    assert outcomes[3:] == [[], []]  # declared once, never twice
    assert d.listed(t, workers, {B}) == []  # no more probes of a declared incarnation


def test_an_answer_clears_the_failures():
    d = detector_probing(B, [A, B])
    tb = target(B)
    assert d.answered(0.0, tb, alive=False) == []
    assert d.answered(0.2, tb, alive=False) == []
    assert d.answered(0.4, tb, alive=True) == []
    assert d.answered(0.6, tb, alive=False) == []
    assert d.answered(0.8, tb, alive=False) == []
    assert d.answered(1.0, tb, alive=False) == [Declare(tb, 3)]


def test_failures_older_than_the_window_are_forgotten():
    d = detector_probing(B, [A, B])
    tb = target(B)
    gap = S.window() + 0.1
    assert d.answered(0.0, tb, alive=False) == []
    assert d.answered(0.2, tb, alive=False) == []
    assert d.answered(0.2 + gap, tb, alive=False) == []  # the first two are stale
    assert d.answered(0.4 + gap, tb, alive=False) == []
    assert d.answered(0.6 + gap, tb, alive=False) == [Declare(tb, 3)]


def test_a_rejoined_member_is_a_new_incarnation_with_clean_failures():
    d = detector_probing(B, [A, B])
    old, new = target(B, revision=10), target(B, revision=20)
    for i in range(3):
        d.answered(i * 0.2, old, alive=False)
    # it was declared, and rejoined with a new member record
    assert d.listed(1.0, [target(A), new], {B}) == [Probe(new)]
    assert d.answered(1.1, new, alive=False) == []  # one failure, not four


def test_a_backup_prober_declares_a_death_when_the_first_prober_is_gone_too():
    ids = [A, B, C]
    first = prober_of(B, ids)
    (other,) = [w for w in ids if w not in (B, first)]
    backup = Detector(other, S)
    workers = [target(w) for w in ids]
    t, declared = 0.0, []
    while not declared and t < 10:
        for p in backup.listed(t, workers, {B, MemberId(str(first))}):
            if p.target.member == B:
                declared += backup.answered(t + S.timeout, p.target, alive=False)
            else:  # the first prober is dead as well: never answers
                backup.answered(t + S.timeout, p.target, alive=False)
        t += S.interval
    assert declared and declared[0].target.member == B
    # three probes a backup interval apart: well inside a 5 s lease
    assert t <= 3 * S.interval * BACKUP_FACTOR + S.interval


def test_a_declaration_that_did_not_apply_is_forgotten():
    d = detector_probing(B, [A, B])
    tb = target(B)
    for i in range(3):
        out = d.answered(i * 0.2, tb, alive=False)
    assert out == [Declare(tb, 3)]
    d.declared(tb, applied=False)  # it had rejoined, or another declared it
    assert d.listed(1.0, [target(A), tb], {B}) == [Probe(tb)]


def test_a_declared_death_raises_the_attempt_allowance_by_one():
    value = '{"created": 1.0, "priority": 0, "lease": 7, "max_attempts": 3, "inputs": true}'
    raised = runnable_marker(QueryId("q"), TaskId("t"), forgiven_marker(value))
    before = runnable_marker(QueryId("q"), TaskId("t"), value)
    assert raised.max_attempts == before.max_attempts + 1
    assert (raised.created, raised.priority, raised.lease, raised.inputs) == (
        before.created,
        before.priority,
        before.lease,
        before.inputs,
    )


def test_a_member_whose_port_refused_every_probe_is_not_forgiven_its_attempts() -> None:
    d = Detector(A, S)
    tb = target(B)
    for i in range(2):
        assert d.answered(i * 0.2, tb, alive=False, gone=True) == []
    assert d.answered(0.4, tb, alive=False, gone=True) == [Declare(tb, 3, forgive=False)]


def test_one_probe_without_an_answer_forgives_a_declaration() -> None:
    d = Detector(A, S)
    tb = target(B)
    assert d.answered(0.0, tb, alive=False, gone=True) == []
    assert d.answered(0.2, tb, alive=False) == []  # silent: it may be alive, frozen
    assert d.answered(0.4, tb, alive=False, gone=True) == [Declare(tb, 3, forgive=True)]
