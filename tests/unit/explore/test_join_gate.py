"""Joins under optimal DPOR: the join gate (runtime R15, odpor R1/R3), and the audit with joins.

A join without a timeout is a scheduling point of its own that reads the
joined thread's exit; while that thread runs, the joiner's ``gate`` (a
``JoinGate``) says all it could do there is queue and sleep, so optimal
DPOR does not count it as enabled (as a busy lock attempt, ``LockGate``)
until the exit -- the gate's release -- unless every runnable thread is
gated: then the join really blocks and a deadlock is found as before. A
parent joining its workers is thus no trace apart per join (the join
blocking, or finding the thread exited). Declaring the wait of a join as no
access instead (an earlier attempt) lost the planted deadlock of
``tests/unit/mm/test_fork_device_private.py``, found at its 4th execution
with the gate. The audit below (optimal and classic DPOR, reduction on and
off, against DFS) covers joins of threads that wait at locks, of threads
that join others, and joins made holding a lock the joined thread wants.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import DFS, DPOR, OptimalDPOR, audit
from dmabufsim.explore.explorer import run_job

from .scenarios import NO_LOCKDEP, VAR
from .test_audit_property import program_runner


def _run(scenario: Any, strategy: Any, budget: int = 2000, reduction: bool = False) -> Any:
    strategy.reduction = reduction
    return run_job(scenario, [(strategy, budget)], stop_on_first=False, collect_states=True, coverage=False,
                   kernel_options=NO_LOCKDEP)


def two_workers_joined(k: ds.Kernel) -> None:
    """The scenario's thread spawns two workers touching nothing in common and joins both."""

    def work(i: int) -> None:
        for n in range(3):
            k.point("write", VAR + 10 * i + n, True)

    a = k.spawn(work, 0, name="a")
    b = k.spawn(work, 1, name="b")
    k.join(a)
    k.join(b)


def test_joins_of_running_threads_are_no_events_of_their_own() -> None:
    """Two independent workers and a parent joining both: one Mazurkiewicz trace, the joins of
    running threads being no events of their own (without the gate: 5 executions, the parent's
    step ending in each join racing with the joined thread's last step)."""
    odpor = OptimalDPOR()
    o = _run(two_workers_joined, odpor)
    assert odpor.complete and o.executions == 1
    assert odpor.deviations == 0 and odpor.redundant == 0


def woken_joiner_races_a_writer(k: ds.Kernel) -> None:
    """``j`` joins ``c`` (which writes nothing ``j`` or ``w`` touch), then writes X; ``w`` writes X.
    Who writes X last depends on whether ``w`` runs before ``c`` exits."""
    mem = [0]

    def c() -> None:
        k.point("write", VAR + 1, True)

    tc = k.spawn(c, name="c")

    def j() -> None:
        k.join(tc)
        k.point("write", VAR, True)
        mem[0] = 1

    def w() -> None:
        k.point("write", VAR, True)
        mem[0] = 2

    k.spawn(j, name="j")
    k.spawn(w, name="w")
    k.ext["explore.state"] = lambda: mem[0]


def test_a_joiner_asleep_is_woken_by_the_exit_it_waits_for() -> None:
    """A joiner woken by the exit races with a writer: both orders of the two writes of X, as DFS
    finds them, nothing dropped and no redundant execution."""
    res = audit(woken_joiner_races_a_writer, budget=5000, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.exhausted and res.ok, res.summary()
    odpor = OptimalDPOR()
    o = _run(woken_joiner_races_a_writer, odpor)
    assert odpor.complete and {s[2] for s in o.states} == {1, 2}
    assert odpor.deviations == 0 and odpor.redundant == 0


def holder_joins(k: ds.Kernel) -> None:
    """The scenario's thread holds ``m`` and joins ``w``, which takes ``m``: a deadlock."""
    m = ds.Mutex("m")

    def w() -> None:
        with m:
            k.point("write", VAR, True)

    m.lock()
    t = k.spawn(w, name="w")
    k.join(t)
    m.unlock()


def test_a_join_holding_the_lock_the_joined_thread_wants_is_the_deadlock_it_was() -> None:
    """Every runnable thread gated (the joiner at its join, ``w`` at its lock point with ``m``
    owned): they are all enabled, the join blocks, and the deadlock is reported as before the
    gate -- same kind, same blocked threads and waits -- by every search."""
    for strategy in (DFS(), DPOR(), OptimalDPOR()):
        o = _run(holder_joins, strategy)
        assert strategy.complete
        assert set(o.findings) == {"deadlock:scenario@join,w@mutex_lock"}, strategy
    odpor = OptimalDPOR()
    assert _run(holder_joins, odpor).executions == 1
    rep = ds.explore(holder_joins, "odpor", budget=100, confirm_cycles=False)
    assert [f.finding.kind for f in rep.findings] == ["deadlock"]
    d = rep.findings[0].finding.details
    assert d["blocked"] == {"scenario": "join", "w": "mutex_lock"}
    assert d["waiting_for"] == {"scenario": "", "w": "m"}


def joins_through_a_joiner(k: ds.Kernel) -> None:
    """``b`` holds ``m`` and joins ``a``, which takes ``m``; the scenario's thread joins ``b``."""
    m = ds.Mutex("m")

    def a() -> None:
        with m:
            k.point("write", VAR, True)

    ta = k.spawn(a, name="a")

    def b() -> None:
        with m:
            k.join(ta)

    tb = k.spawn(b, name="b")
    k.join(tb)


def test_a_join_of_a_thread_that_joins_another_finds_the_deadlock_behind_it() -> None:
    """The deadlock lies behind a chain of joins: found by optimal DPOR as by DFS, whichever of
    ``a`` and ``b`` takes ``m`` first (``a`` first: no deadlock): two traces (three while the
    waiters torn down at the end of the deadlock were taken for exits, odpor R1)."""
    dfs, odpor = DFS(), OptimalDPOR()
    full = _run(joins_through_a_joiner, dfs, 5000)
    o = _run(joins_through_a_joiner, odpor)
    assert dfs.complete and odpor.complete
    assert set(o.findings) == set(full.findings) == {"deadlock:a@mutex_lock,b@join,scenario@join"}
    assert o.executions == 2 and odpor.deviations == 0 and odpor.redundant == 0


def chain_of_joins(k: ds.Kernel) -> None:
    """``b`` joins ``a`` and writes; the scenario's thread joins ``b``, then ``a`` (exited by then)."""

    def a() -> None:
        k.point("write", VAR, True)

    ta = k.spawn(a, name="a")

    def b() -> None:
        k.join(ta)
        k.point("write", VAR + 1, True)

    tb = k.spawn(b, name="b")
    k.join(tb)
    k.join(ta)


def test_a_chain_of_joins_is_one_trace() -> None:
    """Nothing races in a chain of joins: one trace (four before the gate), as classic DPOR sees."""
    odpor, dpor = OptimalDPOR(), DPOR()
    assert _run(chain_of_joins, odpor).executions == 1
    assert _run(chain_of_joins, dpor).executions == 1
    assert odpor.complete and dpor.complete and odpor.deviations == 0 and odpor.redundant == 0


def join_of_a_lock_waiter(k: ds.Kernel) -> None:
    """``u`` and ``w`` each take ``m``; the scenario's thread joins ``w`` (perhaps waiting at its
    lock point behind ``u``), then ``u``."""
    m = ds.Mutex("m")
    order: list[str] = []

    def body(name: str) -> None:
        with m:
            k.point("write", VAR, True)
            order.append(name)

    tu = k.spawn(body, "u", name="u")
    tw = k.spawn(body, "w", name="w")
    k.join(tw)
    k.join(tu)
    k.ext["explore.state"] = lambda: tuple(order)


def test_a_join_of_a_thread_waiting_at_a_lock_is_gated_behind_it() -> None:
    """The joiner gated behind a thread that is itself not enabled (at its lock point with the lock
    owned): the two orders of the sections, and nothing else."""
    odpor, dpor = OptimalDPOR(), DPOR()
    o = _run(join_of_a_lock_waiter, odpor)
    c = _run(join_of_a_lock_waiter, dpor)
    assert odpor.complete and dpor.complete
    assert {s[2] for s in o.states} == {s[2] for s in c.states} == {("u", "w"), ("w", "u")}
    assert o.executions == 2 and odpor.deviations == 0 and odpor.redundant == 0


def joins_one_writer_of_two(planted: bool) -> Any:
    """``b`` writes the result, ``a`` something else; the scenario's thread reads the result after
    joining both -- or, planted, after joining only ``a`` (the join of ``b`` comes too late)."""

    def scenario(k: ds.Kernel) -> None:
        res = [0]

        def b() -> None:
            k.point("write", VAR, True)
            res[0] = 1

        def a() -> None:
            k.point("write", VAR + 1, True)

        tb = k.spawn(b, name="b")
        ta = k.spawn(a, name="a")
        k.join(ta)
        if not planted:
            k.join(tb)
        k.point("read", VAR, False)
        if res[0] != 1:
            k.report("assertion", "the result read before b wrote it", signature="unjoined-writer")
        k.join(tb)

    return scenario


def test_a_read_after_joining_the_wrong_thread_is_found() -> None:
    """Planted: the result is read after joining ``a`` only. The first execution runs ``b`` first
    (the joiner gated behind ``a``); the read moved before ``b``'s write needs ``a``'s exit in the
    reversal (odpor R3: the gate's release), and finds the bug at the second execution. Fixed,
    nothing is found, as DFS agrees."""
    odpor = OptimalDPOR()
    o = _run(joins_one_writer_of_two(True), odpor)
    assert set(o.findings) == {"unjoined-writer"}
    assert odpor.complete and o.executions == 2
    rep = ds.explore(joins_one_writer_of_two(True), "odpor", budget=100, confirm_cycles=False)
    assert [(f.finding.kind, f.execution) for f in rep.findings] == [("assertion", 1)]
    res = audit(joins_one_writer_of_two(False), budget=5000, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.exhausted and res.ok, res.summary()
    fixed = OptimalDPOR()
    assert not _run(joins_one_writer_of_two(False), fixed).findings and fixed.complete


#: one thread's program: ("lock", m) / ("unlock",) / ("read", v) / ("write", v) / ("join", n): join
#: the n-th thread spawned before it (none: a no-op), perhaps with a timeout.
join_op = st.one_of(
    st.tuples(st.just("lock"), st.integers(0, 1)),
    st.tuples(st.just("unlock")),
    st.tuples(st.just("read"), st.integers(0, 1)),
    st.tuples(st.just("write"), st.integers(0, 1)),
    st.tuples(st.just("join"), st.integers(0, 1)),
)
join_programs = st.lists(st.lists(join_op, min_size=1, max_size=3), min_size=2, max_size=3)


def build_joins(programs: list[list[tuple[Any, ...]]], parent_joins: tuple[int, ...]) -> Any:
    """Threads running the programs; a thread joins only threads spawned before it (no cycle but
    through a lock: a deadlock the search must find too); the scenario's thread then joins the
    threads ``parent_joins`` names and reads both variables."""

    def scenario(k: ds.Kernel) -> None:
        locks = [ds.Mutex(f"m{i}") for i in range(2)]
        mem = [0, 0]
        seen: list[tuple[int, ...]] = []
        threads: list[ds.KThread] = []

        run = program_runner(k, locks, mem, seen, threads, VAR)

        for i, p in enumerate(programs):
            threads.append(k.spawn(run, i, p, name=f"t{i}"))
        for n in parent_joins:
            if n < len(threads):
                k.join(threads[n])
        k.point("read", VAR, False)
        final = mem[0]
        k.point("read", VAR + 1, False)
        final = final * 100 + mem[1]
        k.ext["explore.state"] = lambda: (tuple(mem), final, tuple(sorted(seen)))

    return scenario


def _agree(programs: list[list[tuple[Any, ...]]], parent_joins: tuple[int, ...]) -> None:
    sc = build_joins(programs, parent_joins)
    dfs = DFS()
    full = _run(sc, dfs, 3000)
    if not dfs.complete:
        return  # too large to enumerate
    for reduction in (False, True):
        odpor, dpor = OptimalDPOR(), DPOR()
        optimal = _run(sc, odpor, 3000, reduction)
        classic = _run(sc, dpor, 3000, reduction)
        assert odpor.complete and dpor.complete
        assert set(optimal.states) == set(full.states), (reduction, "odpor")
        assert set(classic.states) == set(full.states), (reduction, "dpor")
        assert set(optimal.findings) == set(full.findings) == set(classic.findings)
        assert odpor.deviations == 0 and odpor.redundant == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(join_programs, st.lists(st.integers(0, 2), max_size=3, unique=True).map(tuple))
def test_sound_on_random_programs_with_joins(programs: list[list[tuple[Any, ...]]],
                                             parent_joins: tuple[int, ...]) -> None:
    """The audit with joins: optimal and classic DPOR, reduction on and off, reach exactly DFS's
    terminal states (memory, what each thread read, the parent's view after its joins) and
    findings, with nothing dropped and no redundant execution."""
    _agree(programs, parent_joins)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(join_programs, st.lists(st.integers(0, 2), max_size=3, unique=True).map(tuple))
def test_sound_on_many_random_programs_with_joins(programs: list[list[tuple[Any, ...]]],
                                                  parent_joins: tuple[int, ...]) -> None:
    """The audit with joins, with more examples (a join is a scheduling point: DFS enumerates
    fewer of the larger programs within its budget)."""
    _agree(programs, parent_joins)
