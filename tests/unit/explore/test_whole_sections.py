"""Whole critical sections read their lock (``kernel/reduction.py`` L6).

A step that takes a lock free at its own lock point and releases it before
the step ends (a fence's sections on a lock shared by many fences, a
reduced mutex section) leaves the lock as it found it: the explorer counts
it a read of the lock, so sections on one lock that touch different objects
commute. Checked the way the reduction is: on random programs over fences
sharing one lock, sections holding the lock across a point, trylocks and
lock-free observers, DFS without reduction, DFS with it, optimal DPOR and
DPOR with and without it reach exactly the same terminal states and
findings, optimal DPOR drops nothing and runs nothing redundant; and a
section whose protected state is undeclared is reported by the access
checker (it no longer hides behind the lock's writes).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.dma import DMA_FENCE_FLAG_USER_BITS, DmaFenceArray, NamedFenceOps, context_alloc
from dmabufsim.explore import DFS, DPOR, OptimalDPOR
from dmabufsim.explore.explorer import run_job

VAR = 40_000

#: ("cb", f): add a callback to fence f (its lock's section, one step);
#: ("sig", f): signal fence f; ("test", f): dma_fence_is_signaled (no lock);
#: ("held", v): take the shared lock, write variable v at a point of its own, release (held across a point);
#: ("try",): spin_trylock the shared lock and, if taken, release it at a point;
#: ("wait", f): dma_fence_wait_timeout with a zero timeout (enable signalling, then the queueing section);
#: ("en", f): dma_fence_enable_sw_signaling (after the first, it only reads the flags: dma_fence R12);
#: ("sleep", f): dma_fence_wait (sleeps queued on the callback list; only in chosen programs that signal f).
#: Fence 2's driver polls a hardware completion (its ops.signaled) and signals at enable_signaling
#: when the work is done (returns False): ("hw",) completes the work (dma_fence R13: the signal
#: declares itself). ("ub", f): test_and_set_bit of a driver's flag bit; ("ut", f): test_bit of it.
#: An array of fences 0 and 1 (its own lock): ("atest",) its dma_fence_is_signaled (ops.signaled
#: reads its ENABLE_SIGNAL), ("aen",) dma_fence_enable_sw_signaling, ("acb",) a callback on it.
section_op = st.one_of(
    st.tuples(st.just("en"), st.integers(0, 2)),
    st.tuples(st.just("cb"), st.integers(0, 2)),
    st.tuples(st.just("sig"), st.integers(0, 2)),
    st.tuples(st.just("test"), st.integers(0, 2)),
    st.tuples(st.just("held"), st.integers(0, 1)),
    st.tuples(st.just("try")),
    st.tuples(st.just("wait"), st.integers(0, 2)),
)
section_programs = st.lists(st.lists(section_op, min_size=1, max_size=3), min_size=2, max_size=3)
bit_op = st.one_of(
    st.tuples(st.just("en"), st.integers(0, 2)),
    st.tuples(st.just("cb"), st.integers(0, 2)),
    st.tuples(st.just("sig"), st.integers(0, 2)),
    st.tuples(st.just("test"), st.integers(0, 2)),
    st.tuples(st.just("wait"), st.integers(0, 2)),
    st.tuples(st.just("hw")),
    st.tuples(st.just("ub"), st.integers(0, 2)),
    st.tuples(st.just("ut"), st.integers(0, 2)),
    st.tuples(st.just("atest")),
    st.tuples(st.just("aen")),
    st.tuples(st.just("acb")),
)
bit_programs = st.lists(st.lists(bit_op, min_size=1, max_size=2), min_size=2, max_size=3)
#: The model object of fence 2's hardware completion (declared by its readers and its writer).
HW = VAR + 7
#: The driver's flag bit the programs set and test.
USER_BIT = DMA_FENCE_FLAG_USER_BITS + 1


class _HwOps(NamedFenceOps):
    """A driver polling a completion: ``signaled`` reads it, ``enable_signaling`` returns False
    (the fence is then signalled inside the enable, dma_fence R13) when the work is already done."""

    def __init__(self, done: list[bool]) -> None:
        super().__init__("hw", "ring")
        self.done = done

    def signaled(self, fence: ds.DmaFence) -> bool:
        fence.k.event("hw_poll", HW, False)
        return self.done[0]

    def enable_signaling(self, fence: ds.DmaFence) -> bool:
        fence.k.event("hw_poll", HW, False)
        return not self.done[0]


def fence_scenario(programs: list[list[tuple[Any, ...]]]) -> Any:
    """Threads running the programs over three fences on one shared lock (the ring's fence lock,
    as ``amdgpu_fence_emit`` passes ``ring->fence_drv.lock`` to ``dma_fence_init``). Every access
    is declared, so the final state is a function of the Mazurkiewicz trace."""

    def scenario(k: ds.Kernel) -> None:
        lock = ds.SpinLock("ring.fence_lock")
        ctx = context_alloc(1)
        done = [False]
        fences = [ds.DmaFence(lock=lock, context=ctx, seqno=i + 1) for i in range(2)]
        fences.append(ds.DmaFence(_HwOps(done), lock=lock, context=ctx, seqno=3))
        array = DmaFenceArray([f.get() for f in fences[:2]], context_alloc(1), 1)
        arr_ran: list[int] = []
        mem = [0, 0]
        # per fence, the callbacks in the order they ran (FIFO on that fence, R3)
        ran: list[list[int]] = [[], [], []]
        seen: list[tuple[int, int]] = []

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            acc = 0
            for o in prog:
                if o[0] == "cb":
                    i = o[1]
                    try:
                        fences[i].add_callback(lambda f, cb, i=i, tid=tid: ran[i].append(tid))
                        acc = acc * 3 + 1
                    except ds.ENOENT:
                        acc = acc * 3 + 2
                elif o[0] == "sig":
                    acc = acc * 3 + (fences[o[1]].signal() == 0)
                elif o[0] == "test":
                    acc = acc * 3 + fences[o[1]].is_signaled()
                elif o[0] == "held":
                    lock.lock_irqsave()
                    k.point("write", VAR + o[1], True)
                    mem[o[1]] = tid * 10 + acc % 7 + 1
                    lock.unlock_irqrestore()
                elif o[0] == "try":
                    if lock.trylock():
                        acc = acc * 3 + 1
                        lock.unlock()
                    else:
                        acc = acc * 3 + 2
                elif o[0] == "wait":
                    acc = acc * 3 + (fences[o[1]].wait_timeout(False, 0) > 0)
                elif o[0] == "en":
                    fences[o[1]].enable_sw_signaling()
                elif o[0] == "sleep":
                    acc = acc * 3 + (fences[o[1]].wait() == 0)
                elif o[0] == "hw":
                    k.point("hw_complete", HW, True)
                    done[0] = True
                elif o[0] == "ub":
                    acc = acc * 3 + fences[o[1]].test_and_set_bit(USER_BIT)
                elif o[0] == "ut":
                    acc = acc * 3 + fences[o[1]].test_bit(USER_BIT)
                elif o[0] == "atest":
                    acc = acc * 3 + array.is_signaled()
                elif o[0] == "aen":
                    array.enable_sw_signaling()
                elif o[0] == "acb":
                    try:
                        array.add_callback(lambda f, cb, tid=tid: arr_ran.append(tid))
                        acc = acc * 3 + 1
                    except ds.ENOENT:
                        acc = acc * 3 + 2
            seen.append((tid, acc))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")

        def final() -> Any:
            return (tuple(mem), tuple(sorted(seen)), tuple(tuple(r) for r in ran), tuple(arr_ran),
                    tuple(f.flags for f in (*fences, array)), array.error, array.num_pending)

        k.ext["explore.state"] = final

    return scenario


def _search(scenario: Any, strategy: Any, reduction: bool, budget: int = 4000, check_accesses: bool = False) -> Any:
    strategy.reduction = reduction
    return run_job(scenario, [(strategy, budget)], stop_on_first=False, collect_states=True, coverage=False,
                   kernel_options={"lockdep": True, "check_accesses": check_accesses})


def _agree(programs: list[list[tuple[Any, ...]]], check_accesses: bool = False, budget: int = 4000,
           complete: bool = False) -> None:
    """DFS without reduction = DFS with it = optimal DPOR and DPOR with and without it; with
    ``check_accesses``, optimal DPOR's executions (one per Mazurkiewicz trace) run under the access
    checker, which finds an undeclared access in any execution that makes one, whatever the order."""
    sc = fence_scenario(programs)
    dfs = DFS()
    full = _search(sc, dfs, False, budget)
    assert dfs.complete or not complete, "a chosen program must be enumerated"
    if not dfs.complete:
        return  # too large to enumerate
    for reduction in (True, False):
        for strategy in (DFS(), OptimalDPOR(), DPOR()):
            if isinstance(strategy, DFS) and not reduction:
                continue
            checked = check_accesses and reduction and isinstance(strategy, OptimalDPOR)
            got = _search(sc, strategy, reduction, budget, check_accesses=checked)
            assert strategy.complete
            if checked:
                undeclared = [s for s in got.findings if s.startswith("undeclared")]
                assert undeclared == [], undeclared
            assert got.states == full.states, (type(strategy).__name__, reduction)
            assert set(got.findings) == set(full.findings), (type(strategy).__name__, reduction)
            if isinstance(strategy, OptimalDPOR):
                assert strategy.redundant == 0 and strategy.deviations == 0


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section_programs)
def test_whole_sections_keep_terminal_states_and_findings(programs: list[list[tuple[Any, ...]]]) -> None:
    """DFS without reduction = DFS with it = optimal DPOR and DPOR with and without it."""
    _agree(programs)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section_programs)
def test_whole_sections_keep_terminal_states_and_findings_long(programs: list[list[tuple[Any, ...]]]) -> None:
    """The same agreement on more programs."""
    _agree(programs)


@pytest.mark.parametrize("programs", [
    [[("cb", 0)], [("cb", 1)], [("sig", 0), ("sig", 1)]],
    [[("wait", 0), ("cb", 1)], [("held", 0)], [("sig", 1)]],
    [[("try",), ("cb", 0)], [("cb", 0), ("sig", 0)]],
    [[("test", 2), ("cb", 2)], [("sig", 2)], [("try",), ("held", 1)]],
    # dma_fence R12: is_signaled reads the flags, a callback queued on an enabled fence writes its list
    [[("en", 0), ("test", 0)], [("cb", 0), ("cb", 0)], [("test", 0), ("sig", 0)]],
    [[("test", 0), ("cb", 0)], [("cb", 0), ("test", 0)], [("en", 0), ("sig", 0)]],
    [[("sleep", 1), ("test", 1)], [("test", 1), ("cb", 1)], [("en", 1), ("sig", 1)]],
    [[("sleep", 0)], [("sleep", 0), ("cb", 0)], [("test", 0), ("sig", 0)]],
])
def test_whole_sections_on_chosen_programs(programs: list[list[tuple[Any, ...]]]) -> None:
    """The same agreement on programs that mix every kind of access of the shared lock."""
    _agree(programs)


def _two_callbacks(k: ds.Kernel) -> None:
    lock = ds.SpinLock("ring.fence_lock")
    ctx = context_alloc(1)
    f0 = ds.DmaFence(lock=lock, context=ctx, seqno=1)
    f1 = ds.DmaFence(lock=lock, context=ctx, seqno=2)

    def a() -> None:
        f0.wait_timeout(False, 0)  # enable_sw_signaling's section, then default_wait's
        f0.signal()

    def b() -> None:
        f1.wait_timeout(False, 0)
        f1.signal()

    k.spawn(a, name="a")
    k.spawn(b, name="b")


def test_sections_on_one_lock_touching_different_fences_commute() -> None:
    """Two threads, each polling its own fence with a zero timeout and signalling it, both fences
    on one lock: every section is whole (one step), so one Mazurkiewicz trace; DFS runs every
    order of the steps."""
    odpor, dfs = OptimalDPOR(), DFS()
    o = _search(_two_callbacks, odpor, True)
    d = _search(_two_callbacks, dfs, False, budget=20_000)
    assert odpor.complete and dfs.complete
    assert o.executions == 1
    assert d.executions == 4752
    assert o.states == d.states
    assert odpor.deviations == 0 and odpor.redundant == 0


def test_without_the_rule_the_sections_race_on_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same search with ``Kernel.section_read`` silenced: every section writes the shared lock,
    so optimal DPOR explores every order of the two threads' three sections each (6 choose 3)."""
    monkeypatch.setattr(ds.Kernel, "section_read", lambda self, lock: None)
    odpor = OptimalDPOR()
    o = _search(_two_callbacks, odpor, True)
    assert odpor.complete
    assert o.executions == 20


def _held_across(k: ds.Kernel) -> None:
    lock = ds.SpinLock("ring.fence_lock")
    f0 = ds.DmaFence(lock=lock, context=context_alloc(1), seqno=1)

    def holder() -> None:
        lock.lock_irqsave()
        k.point("write", VAR, True)  # a point inside the section: the lock is held across it
        lock.unlock_irqrestore()

    def waiter() -> None:
        f0.add_callback(lambda f, cb: None)
        f0.signal()

    k.spawn(holder, name="holder")
    k.spawn(waiter, name="waiter")


def test_a_section_held_across_a_point_still_writes_the_lock() -> None:
    """A thread holding the lock across a scheduling point is ordered with every section on it:
    the other thread's sections run before the acquisition or after the release (three traces:
    its two sections, enabling signalling and queueing the callback, each go before or after)."""
    odpor = OptimalDPOR()
    o = _search(_held_across, odpor, True)
    assert odpor.complete
    assert o.executions == 3
    assert odpor.deviations == 0 and odpor.redundant == 0


class _Stray(NamedFenceOps):
    """A driver whose ``enable_signaling`` (under the fence lock, inside the section) writes a
    fence the step does not declare: the planted bug."""

    def __init__(self, victim: list[ds.DmaFence]) -> None:
        super().__init__("stray", "ring")
        self.victim = victim

    def enable_signaling(self, fence: ds.DmaFence) -> bool:
        self.victim[0].error = -(fence.seqno + 1)  # undeclared: not this fence, not declared
        return True


def _planted(k: ds.Kernel) -> None:
    lock = ds.SpinLock("ring.fence_lock")
    ctx = context_alloc(1)
    victim: list[ds.DmaFence] = []
    ops = _Stray(victim)
    victim.append(ds.DmaFence(context=context_alloc(1), seqno=1))
    f0 = ds.DmaFence(ops, lock=lock, context=ctx, seqno=1)
    f1 = ds.DmaFence(ops, lock=lock, context=ctx, seqno=2)

    k.spawn(f0.enable_sw_signaling, name="a")  # one whole section each, on its own fence
    k.spawn(f1.enable_sw_signaling, name="b")


def test_an_undeclared_write_inside_a_whole_section_is_reported() -> None:
    """The lock no longer orders the two sections (each only read it), so a section writing state
    it does not declare is an undeclared access, as it would be without the lock."""
    ex = ds.Kernel(seed=0, check_accesses=True, lockdep=False).run(_planted)
    found = [f for f in ex.findings if f.kind == "undeclared-access"]
    assert len(found) == 1
    f = found[0]
    assert f.details["object"].startswith("DmaFence#")
    assert f.details["attribute"] == "error"
    assert f.details["access"] == "write"
    assert f.details["other_access"] == "write"
    assert f.rule == "accesses A4: conflicting accesses are ordered by the declared accesses"
    assert "write #" in f.details["declared"] and "read #" in f.details["declared"]


def test_a_whole_section_declares_a_read_of_its_lock_to_the_access_checker() -> None:
    """Without the planted write, the same two sections are clean under the access checker: the
    owner they set and cleared counts as read (A3), their fences are declared."""
    ex = ds.Kernel(seed=0, check_accesses=True, lockdep=False).run(_two_callbacks)
    assert [f.kind for f in ex.findings if f.kind == "undeclared-access"] == []


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bit_programs)
def test_flag_bits_keep_terminal_states_and_findings(programs: list[list[tuple[Any, ...]]]) -> None:
    """dma_fence R13 (each flag bit its own pseudo-object): on programs that poll, enable, queue,
    signal (also inside a driver's enable_signaling and through its ops.signaled), set and test a
    driver's bit and use a fence array (whose ops.signaled reads its ENABLE_SIGNAL), DFS without
    reduction = DFS with it = optimal DPOR and DPOR with and without it, and every access is
    declared in every schedule (the access checker on DFS's)."""
    _agree(programs, check_accesses=True)


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bit_programs)
def test_flag_bits_keep_terminal_states_and_findings_long(programs: list[list[tuple[Any, ...]]]) -> None:
    """The same agreement on more programs."""
    _agree(programs, check_accesses=True)


@pytest.mark.parametrize("programs", [
    # a poll of SIGNALED against the first enable (ENABLE_SIGNAL): the pair C8's proof waited on
    [[("test", 0)], [("en", 0)], [("sig", 0)]],
    [[("test", 0), ("cb", 0)], [("en", 0), ("sig", 0)]],
    # the driver signals inside its enable_signaling, or through its ops.signaled
    [[("en", 2)], [("hw",)], [("test", 2)]],
    [[("wait", 2)], [("hw",), ("test", 2)]],
    # a driver's bit against SIGNALED and ENABLE_SIGNAL on the same fence
    [[("ub", 1), ("ut", 1)], [("en", 1), ("ub", 1)], [("test", 1), ("sig", 1)]],
    # a fence array: its poll reads its ENABLE_SIGNAL and num_pending, its enable hooks callbacks
    # on the members, whose signals count num_pending down (dma_fence_array R5)
    [[("aen",)], [("sig", 0)]],
    [[("atest",)], [("sig", 0)]],
    [[("acb",)], [("sig", 0)]],
    [[("atest",), ("atest",)], [("aen",)]],
    [[("aen",), ("atest",)], [("sig", 0)]],
])
def test_flag_bits_on_chosen_programs(programs: list[list[tuple[Any, ...]]]) -> None:
    """The same agreement on programs that race each bit against the others, each enumerated."""
    _agree(programs, check_accesses=True, budget=10_000, complete=True)
