"""Dynamic splitting of optimal DPOR (``odpor.py`` R9, ``osplit.py`` O1-O5), in this process.

The pieces together must explore every Mazurkiewicz trace the one-process
search explores: the same terminal states, the same findings, the same
verdict, and the same set of traces (each execution's trace fingerprint);
a trace may run more than once (O4), so the execution count is at least
one process's.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmabufsim.explore import osplit
from dmabufsim.explore.job import JobOptions, run_job
from dmabufsim.explore.odpor import Apart, OptimalDPOR, _WNode, place
from dmabufsim.explore.osplit import OPiece, Rounds, run_here, run_opiece, run_rounds
from dmabufsim.scenarios.catalog import discover

from .scenarios import NO_LOCKDEP, abba, make_counter, philosophers
from .test_audit_property import build
from .test_odpor import rw_scenario

ALL = JobOptions(stop_on_first=False, coverage=False, kernel_options=NO_LOCKDEP, collect_states=True)


@pytest.fixture
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 1, 2, 4 executions: a hand-off after nearly every execution."""
    monkeypatch.setattr(osplit, "SLICE_FIRST", 1)
    monkeypatch.setattr(osplit, "SLICE_MAX", 4)


def _one(scenario: Any) -> tuple[Any, OptimalDPOR]:
    o = OptimalDPOR()
    o.traces = set()
    return run_job(scenario, [(o, 100_000)], ALL), o


def _same_search(scenario: Any) -> tuple[Any, Any, int]:
    one, o = _one(scenario)
    run, traces, _ = run_here(scenario, ALL, 1_000_000)
    assert o.complete and o.redundant == 0
    assert run.states == one.states
    assert traces == len(o.traces) == one.executions  # O4: every trace of one process, each counted once
    assert run.executions >= one.executions
    assert sorted(run.findings) == sorted(one.findings) and sorted(run.info) == sorted(one.info)
    assert (run.phases[0].exhausted, run.phases[0].proved) == (one.phases[0].exhausted, one.phases[0].proved)
    assert run.reason == one.reason == "space exhausted"
    return one, run, traces


@pytest.mark.usefixtures("tiny_slices")
@pytest.mark.parametrize("scenario", [
    make_counter(2, 2),
    philosophers(3),  # a late sequence under a sibling explored since (O3): explored apart, not dropped
    abba,
    rw_scenario([[("r", 0), ("w", 0)]] * 3),
    rw_scenario([[("w", 0)], [("r", 0)], [("r", 0)], [("r", 0)]]),
], ids=["counter-2x2", "philosophers-3", "abba", "counter-rw-3", "writer-readers"])
def test_the_pieces_explore_every_trace_of_one_process(scenario: Any) -> None:
    _same_search(scenario)


def test_a_counter_splits_into_several_pieces(tiny_slices: None) -> None:
    """O2: the search is really split: several pieces ran, some made for late sequences (O3); three
    threads' late sequences re-explore some traces (O4: 52 executions for 36 traces). Philosophers
    (3) split into 2 pieces: each of their late sequences was covered, or grafted (R9)."""
    run, traces, rounds = run_here(make_counter(3, 1), ALL, 100_000)
    assert len({s.number for s in rounds.segments}) == rounds.numbers == 9
    assert (run.executions, traces) == (52, 36)
    _, _, rounds = run_here(philosophers(3), ALL, 100_000)
    assert len({s.number for s in rounds.segments}) == rounds.numbers == 2


def test_a_4_thread_counter_reruns_traces_but_runs_every_one() -> None:
    """O4 in the slices of a cluster (8 to 128 executions): four threads' late sequences explored apart
    rerun traces (1,715 executions for one process's 576, 33 pieces), every one of the 576 among them."""
    one, o = _one(make_counter(4, 1))
    run, traces, rounds = run_here(make_counter(4, 1), ALL, 1_000_000)
    assert one.executions == len(o.traces) == traces == 576
    assert set().union(*(s.traces for s in rounds.segments)) == o.traces
    assert (run.executions, rounds.numbers, len(rounds.segments)) == (1715, 33, 39)
    assert run.states == one.states and run.phases[0].proved


lock_op = st.one_of(
    st.tuples(st.just("lock"), st.integers(0, 1)),
    st.tuples(st.just("unlock")),
    st.tuples(st.just("read"), st.integers(0, 1)),
    st.tuples(st.just("write"), st.integers(0, 1)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(lock_op, min_size=1, max_size=3), min_size=2, max_size=3))
def test_sound_on_random_lock_programs(tiny_slices: None, programs: list[list[tuple[Any, ...]]]) -> None:
    """O4 on random lock programs: the same terminal states, findings, verdict and traces."""
    one, o = _one(build(programs))
    if not o.complete:
        return
    run, traces, rounds = run_here(build(programs), ALL, 1_000_000)
    assert run.states == one.states
    assert traces == len(o.traces)
    assert set().union(*(s.traces for s in rounds.segments)) == o.traces  # trace by trace
    assert sorted(run.findings) == sorted(one.findings)
    assert run.phases[0].proved == one.phases[0].proved


def test_the_rounds_do_not_depend_on_the_order_slices_run_in(tiny_slices: None) -> None:
    """O2, O5: the slices of a round run in any order (here: last first): the same pieces, counts,
    findings at the same indices."""
    scenario = make_counter(2, 2)

    def backwards(batch: list[tuple[OPiece, int]]) -> list[Any]:
        segs = [run_opiece(scenario, p, n, ALL) for p, n in reversed(batch)]
        return segs[::-1]

    a, _ = run_rounds(Rounds.start(10_000), backwards).merge()
    b, _, _ = run_here(scenario, ALL, 10_000)
    assert a.executions == b.executions and a.states == b.states
    assert {s: f.execution for s, f in a.findings.items()} == {s: f.execution for s, f in b.findings.items()}


def test_a_handoff_keeps_its_child_asleep_in_the_piece() -> None:
    """R9: once a node of a 2x2 counter has a second child, the piece gets it with the child being
    explored asleep, and owns that node; this search lends it and keeps only its child there."""
    s = OptimalDPOR()
    while not any(len(n.wut) > 1 for n in s._stack):
        run_job(make_counter(2, 2), [(s, 1)], ALL)
    d = next(i for i, n in enumerate(s._stack) if len(n.wut) > 1)
    kept = s._stack[d].wut[0].tid
    piece = s.handoff()
    assert piece is not None
    assert piece._own_from == d and len(piece._stack) == d + 1
    assert kept in piece._stack[d].sleep and piece._stack[d].wut[0].tid != kept
    assert s._lent == {d: -1} and [w.tid for w in s._stack[d].wut] == [kept]


def test_a_late_sequence_is_placed_as_when_its_child_was_explored() -> None:
    """R9 ``place``: dropped when a thread asleep before its child is a weak initial; explored
    apart, with the sleep set that branch began with, when a child explored after it is; else
    the node's tree takes it."""
    a, b = ((0, True),), ((1, True),)
    v = [(2, a)]  # thread 2 writes object 0
    assert place({0: b}, None, (), 0, v) is False
    assert place({3: a, 0: b}, None, (), 0, v) is False  # thread 3 asleep before touches object 0: not a weak initial
    assert place({3: ((5, True),), 0: b}, None, (), 0, v) is True  # thread 3 independent of v, asleep before: covered
    assert place({0: b, 3: ((5, True),)}, None, (), 0, v) == Apart({0: b}, rest=v)  # 3 explored after the child: apart
    assert place({0: b}, 4, ((6, True),), 0, v) == Apart({0: b}, rest=v)  # it would join the branch being explored


def test_a_late_sequence_is_explored_apart_where_r4s_walk_ends_in_its_branch() -> None:
    """R9 ``place``: a sequence compatible with a child explored since goes down the subtree that child
    began with as far as R4's walk goes; it is explored from there, the children one process explored
    there before it asleep (the earlier siblings on the way, every child where it ends)."""
    a, b = ((0, True),), ((1, True),)
    c, d, e = ((0, False),), ((3, True),), ((0, False), (4, True))
    # thread 3's branch began with 3 -> {5 (reads object 0), 6 (object 3) -> {7 (reads object 0)}}
    branch = _WNode(3, b, [_WNode(5, c), _WNode(6, d, [_WNode(7, e)])])
    v = [(6, d), (8, a)]  # 6, then thread 8 writes object 0: 3 is a weak initial, 5 is not, 6 is, 7 is not
    got = place({0: a, 3: b}, None, (), 0, v, {3: branch})
    assert got == Apart({0: a}, [(3, b), (6, d)], [{5: c}, {7: e}], [(8, a)])
    assert got.chain == [(3, b), (6, d), (8, a)]
    assert place({0: a, 3: b}, None, (), 0, [(6, d), (9, ((4, False),))], {3: branch}) is True  # down to a leaf


@pytest.mark.usefixtures("tiny_slices")
@pytest.mark.parametrize("key", ["M4/gfp-nowait", "C9/torn-down"])
def test_a_proved_catalog_row_is_proved_by_the_pieces(key: str) -> None:
    """O4 on clean catalog rows: proved, with every trace one process proves them with."""
    row = discover(()).resolve(key)
    assert row.scenario is not None
    opts = replace(ALL, kernel_options=dict(row.kernel_options))
    o = OptimalDPOR()
    o.traces = set()
    one = run_job(row.scenario, [(o, 10_000)], opts)
    run, traces, rounds = run_here(row.scenario, opts, 100_000)
    assert one.phases[0].proved and run.phases[0].proved
    assert traces == len(o.traces) == one.executions
    assert run.states == one.states and not run.findings and not one.findings
    assert len(rounds.segments) > 1


def test_open_pieces_pickle_and_resume_to_the_same_result(tiny_slices: None) -> None:
    """O2: the coordinator's state between rounds (open pieces, their stacks, wakeup trees and
    lineage) pickles, and a search resumed from it ends as the uninterrupted one."""
    scenario = philosophers(3)

    def one_round(batch: list[tuple[OPiece, int]]) -> list[Any]:
        return [run_opiece(scenario, p, n, ALL) for p, n in batch]

    whole, traces = run_rounds(Rounds.start(100_000), one_round).merge()
    part = Rounds.start(100_000)
    for _ in range(2):
        batch = part.batch()
        part.take(batch, one_round(batch))
    assert part.pieces and not part.done
    resumed = run_rounds(pickle.loads(pickle.dumps(part)), one_round)
    run, traces2 = resumed.merge()
    assert (run.executions, traces2, run.states) == (whole.executions, traces, whole.states)
    assert sorted(run.findings) == sorted(whole.findings) and run.phases[0].proved


#: A 4-thread lock program that deadlocks (hypothesis found it): three threads end queued on mutex 1,
#: whose owner waits on mutex 0. Before the join gate declared a waiter torn down at a deadlock's end
#: as it declares the other waiters (odpor R1), the last waiter's event wrote the mutex once, and its
#: exit, where the others' wait wrote it: one process then ran one order of threads 1 and 4 queueing
#: ahead of thread 2, and the pieces both (71 traces for one process, 73 for the pieces; none lost).
DEADLOCK_4 = [[("unlock",), ("lock", 1), ("lock", 0)], [("write", 0), ("lock", 0), ("write", 1), ("read", 1)],
              [("lock", 0), ("read", 0), ("lock", 1), ("lock", 1)], [("lock", 0), ("read", 0), ("read", 1)]]


def test_a_deadlocking_4_thread_program_runs_one_processs_traces(tiny_slices: None) -> None:
    """O4: the pieces' distinct traces are exactly one process's 71 fingerprints (they ran 73 when the
    waiters torn down at the deadlock were declared unlike the others)."""
    one, o = _one(build(DEADLOCK_4))
    run, traces, rounds = run_here(build(DEADLOCK_4), ALL, 1_000_000)
    assert o.complete and len(o.traces) == one.executions == 71
    assert set().union(*(s.traces for s in rounds.segments)) == o.traces
    assert traces == 71 and run.executions == 151
    assert run.states == one.states and sorted(run.findings) == sorted(one.findings) != []
    assert run.phases[0].proved == one.phases[0].proved
