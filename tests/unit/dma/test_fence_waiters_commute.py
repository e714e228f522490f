"""dma_fence R14 (runtime R16): the waiters ``dma_fence_default_wait`` links on a fence commute.

A waiter's node only wakes its thread, and one signal wakes every node in
its one step, so which waiter linked first leaves no trace: the link is
declared a read of the callback list and the sleep on it a read too. Every
other change of the list (a driver's callback, whose place decides when it
runs; a removal; a waiter's unlink after a timeout; the signal) writes it.
The audit below checks the declarations against DFS on random programs that
mix waits (with and without a timeout), callbacks whose order is observable,
their removal, polls and signals; the planted bug shows a wrong order after
the waits is still found.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.explore import DFS, DPOR, OptimalDPOR, explore
from dmabufsim.explore.explorer import run_job
from tests.unit.explore.scenarios import NO_LOCKDEP, VAR

#: One thread's operations on the execution's two fences (``f`` is 0 or 1).
_OPS = st.one_of(
    st.tuples(st.just("wait"), st.integers(0, 1)),
    st.tuples(st.just("wait_timeout"), st.integers(0, 1), st.sampled_from([0, 5_000])),
    st.tuples(st.just("cb"), st.integers(0, 1)),
    st.tuples(st.just("remove"), st.integers(0, 1)),
    st.tuples(st.just("poll"), st.integers(0, 1)),
    st.tuples(st.just("signal"), st.integers(0, 1)),
    st.tuples(st.just("write"), st.integers(0, 1)),
    st.tuples(st.just("read"), st.integers(0, 1)),
)
_PROGRAMS = st.lists(st.lists(_OPS, min_size=1, max_size=2), min_size=2, max_size=3)


def build(programs: list[list[tuple[Any, ...]]]) -> Any:
    """Threads running the programs on two fences of one ring (one lock, as a ring's fences
    share); the state is the callbacks' order per fence, the memory and what each thread saw."""

    def scenario(k: ds.Kernel) -> None:
        ring = dma.FenceContext("ring")
        fences = [ring.create(), ring.create()]
        ran: list[list[int]] = [[], []]
        mem = [0, 0]
        seen: list[tuple[int, int]] = []

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            acc = 0
            cbs: list[Any] = []
            for op in prog:
                f = fences[op[1]]
                if op[0] == "wait":
                    f.wait()
                    acc = acc * 3 + 1
                elif op[0] == "wait_timeout":
                    acc = acc * 3 + (1 if f.wait_timeout(False, op[2]) else 2)
                elif op[0] == "cb":
                    try:
                        cbs.append(f.add_callback(lambda fence, cb, i=op[1], me=tid: ran[i].append(me)))
                    except ds.ENOENT:
                        acc = acc * 3 + 2
                elif op[0] == "remove":
                    if cbs:
                        acc = acc * 3 + (1 if fences[op[1]].remove_callback(cbs[-1]) else 2)
                elif op[0] == "poll":
                    acc = acc * 3 + (1 if f.is_signaled() else 2)
                elif op[0] == "signal":
                    f.signal()  # a second signal is refused and reported (R2): a finding, compared
                elif op[0] == "write":
                    k.point("write", VAR + op[1], True)
                    mem[op[1]] = tid * 10 + acc % 7 + 1
                else:
                    k.point("read", VAR + op[1], False)
                    acc = acc * 3 + mem[op[1]]
            seen.append((tid, acc))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")
        # a wait nobody signals is a deadlock (or an unsignalled fence): findings, compared too
        k.ext["explore.state"] = lambda: (tuple(map(tuple, ran)), tuple(mem), tuple(sorted(seen)))

    return scenario


def _run(scenario: Any, strategy: Any, budget: int, reduction: bool = False) -> Any:
    strategy.reduction = reduction
    return run_job(scenario, [(strategy, budget)], stop_on_first=False, collect_states=True, coverage=False,
                   kernel_options=NO_LOCKDEP)


def _agree(programs: list[list[tuple[Any, ...]]]) -> bool:
    """Optimal and classic DPOR, reduction on and off, against DFS: the same terminal states and
    findings when DFS enumerates every schedule; else every state and finding DFS reaches within
    two preemptions (a fence operation takes several scheduling points, so unbounded DFS only
    finishes the smallest programs). False when even that is too large to enumerate."""
    sc = build(programs)
    dfs = DFS()
    full = _run(sc, dfs, 4000)
    exact = dfs.complete
    if not exact:
        dfs = DFS(2)
        full = _run(sc, dfs, 3000)
        if not dfs.complete:
            return False
    for reduction in (False, True):
        odpor, dpor = OptimalDPOR(), DPOR()
        optimal = _run(sc, odpor, 3000, reduction)
        classic = _run(sc, dpor, 3000, reduction)
        assert odpor.complete
        assert odpor.deviations == 0 and odpor.redundant == 0
        # classic DPOR is not optimal: three waiters that never see a signal take it past the budget
        # (sleep-set blocked executions); it is compared whenever it exhausts
        searches = [("odpor", optimal)] + ([("dpor", classic)] if dpor.complete else [])
        for name, res in searches:
            if exact:
                assert set(res.states) == set(full.states), (reduction, name)
                assert set(res.findings) == set(full.findings), (reduction, name)
            else:
                assert set(full.states) <= set(res.states), (reduction, name)
                assert set(full.findings) <= set(res.findings), (reduction, name)
    return True


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PROGRAMS)
def test_sound_on_random_programs_with_fence_waiters(programs: list[list[tuple[Any, ...]]]) -> None:
    """Optimal and classic DPOR, reduction on and off, reach DFS's terminal states (the order of
    the driver callbacks on each fence, memory, what each thread saw) and findings, with nothing
    dropped and no redundant execution."""
    _agree(programs)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PROGRAMS)
@example([[("cb", 0), ("wait", 0)]] * 3)  # classic DPOR does not exhaust it within the budget
def test_sound_on_many_random_programs_with_fence_waiters(programs: list[list[tuple[Any, ...]]]) -> None:
    """The audit with fence waiters, with more examples."""
    _agree(programs)


def test_waiters_a_driver_callback_and_a_timed_wait_against_dfs() -> None:
    """The cases the rule is about, pinned: two waiters and a signal; a waiter hanging a driver
    callback first (its place among the waiters' nodes is a write of the list); a timed wait."""
    assert _agree([[("wait", 0)], [("wait", 0)], [("signal", 0)]])
    assert _agree([[("cb", 0), ("wait", 0)], [("wait", 0), ("write", 0)], [("signal", 0)]])
    assert _agree([[("wait", 0), ("read", 0)], [("wait_timeout", 0, 5_000), ("write", 0)],
                   [("cb", 0), ("signal", 0)]])


def _waiters(k: ds.Kernel) -> None:
    f = dma.FenceContext("ring").create()
    f.enable_sw_signaling()
    for n in range(3):
        k.spawn(f.wait, name=f"w{n}")
    k.spawn(f.signal, name="signaller")


def test_three_waiters_link_their_nodes_in_one_trace() -> None:
    """Three waiters on an enabled fence and its signal: each waiter's two sections (the enable,
    then default_wait's test and link) each read SIGNALED, so a waiter runs both before the
    signal (it links its node and sleeps), one, or none: 27 traces, 3 per waiter. The links no
    longer race (R14); before, every order of the links made before the signal was a trace of
    its own: 38. Every access stays declared."""
    for check in (False, True):
        r = explore(_waiters, "odpor", budget=1000, kernel_options={"check_accesses": check})
        assert r.verdict == "exhausted" and r.findings == [] and r.executions == 27


def _planted(k: ds.Kernel) -> None:
    """Two waiters on one fence, each writing X once woken; the scenario expects the first
    waiter's write last, which holds in some orders only: the woken waiters still race."""
    f = dma.FenceContext("ring").create()
    mem = [""]

    def waiter(name: str) -> None:
        f.wait()
        k.point("write", VAR, True)
        mem[0] = name

    a = k.spawn(waiter, "a", name="a")
    b = k.spawn(waiter, "b", name="b")
    k.spawn(f.signal, name="signaller")
    k.join(a)
    k.join(b)
    if mem[0] != "a":
        k.report("assertion", "the waiters woke in the other order", signature="planted:wake-order")


def test_a_bug_in_what_the_woken_waiters_do_is_still_found() -> None:
    r = explore(_planted, "odpor", budget=1000)
    assert r.findings and {f.kind for f in r.findings} == {"assertion"}


def test_the_access_checker_sees_a_waiters_link_as_an_update_of_the_list() -> None:
    """A waiter's link is recorded as an update of ``cb_list`` (R14): a step that changes the list
    declaring something else (the planted bug) is caught against it, though the link itself
    declares only a read."""

    def planted(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        f.enable_sw_signaling()

        def stray() -> None:
            k.point("stray", VAR, True)  # declares something else...
            f.cb_list.append(dma.DmaFenceCb(lambda fence, cb: None))  # ...and links a callback

        k.spawn(stray, name="stray")
        k.spawn(f.wait, name="waiter")
        k.spawn(f.signal, name="signaller")

    found = []
    for seed in range(12):
        ex = ds.Kernel(seed=seed, check_accesses=True, lockdep=False).run(planted)
        found += [dict(f.details) for f in ex.findings if f.kind == "undeclared-access"]
    assert found and all(d["attribute"] == "cb_list" for d in found)
    # the stray link against the signal's list_replace, and against the waiter's link (an update)
    assert {d["other_thread"] for d in found} <= {"stray", "waiter", "signaller"}
    assert any({d["access"], d["other_access"]} == {"update", "write"} for d in found)
