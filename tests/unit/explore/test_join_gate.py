"""Joins under optimal DPOR: the audit with joins, and the join gate still to build.

The exit of a thread is a write of its exit pseudo-object; a join reads it
(at once when the thread had exited), and the step that ends in the wait of
a join writes it (odpor R1). So a parent that joins its workers has two
traces per join -- the join blocking, or finding the thread exited -- for
every schedule of the workers. Declaring the wait of a join as no access
(and not reversing an exit against a join's read of it) lost the planted
deadlock of ``tests/unit/mm/test_fork_device_private.py`` (a fault that
waits for the frame's next user, found by the old search at execution 8,
not in 30,000 executions without that reversal), and keeping the reversal
dropped wakeup sequences on the audit below: a joiner moved before the exit
only waits, so its event is another one. The gate needs the joiner held at
a scheduling point of its own while the joined thread runs, as a busy lock
attempt is (``LockGate``), not a change of declarations; until then the
test of its effect is an expected failure.
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


@pytest.mark.xfail(strict=True, reason="the join gate is not built (module docstring): 5 executions, not 1")
def test_joins_of_running_threads_are_no_events_of_their_own() -> None:
    """Two independent workers and a parent joining both: one Mazurkiewicz trace once a join of a
    running thread is no event of its own; today the parent's step ending in each join races with
    the joined thread's last step (a running and an exited thread for each join)."""
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
