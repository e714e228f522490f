"""dma_fence R10: add_callback is one scheduling point (a Lipton reduction of its locked section).

What must not change: lockdep still sees the fence lock taken and released
(edges from held locks, recursive locking), the trace still pairs
``spin_lock`` / ``spin_unlock`` and shows the fence written, and the
systematic explorers still reach every outcome of a race on the fence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma.fence import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    DMA_FENCE_FLAG_SIGNALED_BIT,
    FLAG_NAMES,
    DmaFence,
    DmaFenceCb,
    FenceOps,
    cb_list_oid,
    flag_oid,
)
from dmabufsim.explore import explore
from tests.helpers import run_first


def _steps_of(op: Callable[[DmaFence], object]) -> int:
    got: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        before = k.steps
        op(f)
        got.append(k.steps - before)
        if not f.signaled_flag:
            f.signal()

    ex = run_first(scenario)
    assert ex.findings == []
    return got[0]


def _named(events: list[ds.Event], fence: int, lock: int, tid: int | None = None) -> list[tuple[str, str, bool]]:
    """(op, part, write) of the events on the fence's parts (R12, R13) and its lock."""
    names = {fence: "fence", lock: "lock", cb_list_oid(fence): "list"}
    names.update({flag_oid(fence, bit): name for bit, name in FLAG_NAMES.items()})
    return [(e.op, names[e.obj], e.write) for e in events if e.obj in names and (tid is None or e.tid == tid)]


def test_add_callback_is_one_scheduling_point_and_the_trace_keeps_its_events() -> None:
    assert _steps_of(lambda f: f.add_callback(lambda fence, cb: None)) == 1
    ids: dict[str, int] = {}

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        ids["fence"], ids["lock"] = f.oid, f.lock.oid
        f.add_callback(lambda fence, cb: None)
        f.signal()

    ex = run_first(scenario, record_trace=True)
    assert ex.events is not None
    assert _named(ex.events, ids["fence"], ids["lock"]) == [
        # the lockless test_bit(SIGNALED), declared by the step that runs it (R13); then one step:
        # it tests ENABLE_SIGNAL and SIGNALED, the first enable writes ENABLE_SIGNAL (R13),
        # the callback is linked on the list (R12), then the unlock
        ("dma_fence_add_callback", "SIGNALED", False),
        ("spin_lock", "lock", True), ("dma_fence_add_callback", "ENABLE_SIGNAL", False),
        ("dma_fence_add_callback", "SIGNALED", False), ("dma_fence_enable_signaling", "ENABLE_SIGNAL", True),
        ("dma_fence_add_callback", "list", True), ("spin_unlock", "lock", True),
        # two steps (the callback takes no point): the point on the fence, and the lock's step,
        # which declares what it signals
        ("dma_fence_signal", "fence", True), ("spin_lock", "lock", True), ("dma_fence_signal", "SIGNALED", True),
        ("dma_fence_signal", "list", True), ("dma_fence_signal", "fence", True),
        ("dma_fence_signal", "TIMESTAMP", True), ("dma_fence_signal", "EXPLICIT", True),
        ("spin_unlock", "lock", True),
    ]


def test_signal_releases_in_its_step_unless_a_callback_takes_a_scheduling_point() -> None:
    assert _steps_of(lambda f: f.signal()) == 2  # dma_fence_signal, spin_lock (+ spin_unlock event)

    def with_cb(f: DmaFence) -> None:
        f.add_callback(lambda fence, cb: None)  # a callback that takes no point (as a waiter's wake-up)
        f.signal()

    assert _steps_of(with_cb) == 1 + 2

    def with_point_cb(f: DmaFence) -> None:
        k = f.k
        f.add_callback(lambda fence, cb: k.point("queue_work", 50_000, True))  # a point inside the section
        f.signal()

    assert _steps_of(with_point_cb) == 1 + 4  # ... the callback's point, then spin_unlock's own


def test_already_signalled_add_callback_takes_a_point_on_the_fence_and_not_the_lock() -> None:
    def op(f: DmaFence) -> None:
        f.signal()
        try:
            f.add_callback(lambda fence, cb: None)
        except ds.ENOENT:
            return
        raise AssertionError("ENOENT expected")

    assert _steps_of(op) == 2 + 1


def test_lockdep_still_sees_the_fence_lock_in_add_callback() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring")
        f, g = tl.create(), tl.create()
        outer = ds.SpinLock("driver_lock")
        with outer:
            f.add_callback(lambda fence, cb: None)  # driver_lock -> ring.fence_lock
        g.add_callback(lambda fence, cb: outer.lock() or outer.unlock())  # taken under the fence lock
        g.signal()  # ring.fence_lock -> driver_lock: a cycle
        f.signal()

    ex = run_first(scenario)
    assert ex.kinds == ["circular-locking"]


def test_add_callback_from_a_callback_on_the_same_lock_is_still_recursive_locking() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring")
        f, g = tl.create(), tl.create()
        f.add_callback(lambda fence, cb: g.add_callback(lambda fence2, cb2: None))
        f.signal()  # the callback runs under the shared timeline lock and takes it again

    ex = run_first(scenario, max_steps=500)
    assert "recursive-locking" in ex.kinds


class _ArmingOps(FenceOps):
    """enable_signaling takes a scheduling point (a driver arming an interrupt under a lock)."""

    def __init__(self, other: ds.SpinLock) -> None:
        self.other = other

    def get_driver_name(self, fence: DmaFence) -> str:
        return "arming"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "arming"

    def enable_signaling(self, fence: DmaFence) -> bool:
        with self.other:
            pass
        return True


def test_a_driver_enable_signaling_that_takes_points_keeps_the_unlock_point() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = DmaFence(_ArmingOps(ds.SpinLock("irq_lock")), None, dma.context_alloc(), 1)
        before = k.steps
        f.add_callback(DmaFenceCb(lambda fence, cb: None))
        # spin_lock(fence), spin_lock(irq_lock), spin_unlock(irq_lock), spin_unlock(fence)
        assert k.steps - before == 4
        f.signal()

    assert run_first(scenario).findings == []


def _race_outcomes(strategy: str) -> tuple[set[tuple[str, bool, bool]], int]:
    """add_callback(f) racing signal(f), and a third thread reading f (all on the timeline's lock)."""
    seen: set[tuple[str, bool, bool]] = set()

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        out: dict[str, object] = {"ran": False}

        def adder() -> None:
            try:
                f.add_callback(lambda fence, cb: out.__setitem__("ran", True))
                out["add"] = "queued"
            except ds.ENOENT:
                out["add"] = "enoent"

        def reader() -> None:
            out["saw"] = f.is_signaled()

        k.spawn(adder, name="adder")
        k.spawn(f.signal, name="signaller")
        k.spawn(reader, name="reader")
        k.at_exit.append(lambda: seen.add((str(out["add"]), bool(out["ran"]), bool(out["saw"]))))

    rep = explore(scenario, strategy, budget=20000, stop_on_first=False, check_replay=False, coverage=False,
                  confirm_cycles=False)
    assert rep.verdict == "exhausted", rep.reason
    return seen, rep.executions


def test_dfs_and_dpor_reach_every_outcome_of_an_add_callback_signal_race() -> None:
    expected = {
        ("queued", True, False), ("queued", True, True),  # added first: the signal runs it
        ("enoent", False, False), ("enoent", False, True),  # signalled first
    }
    dfs, n_dfs = _race_outcomes("dfs")
    dpor, n_dpor = _race_outcomes("dpor")
    assert dfs == dpor == expected
    assert n_dpor <= n_dfs


def test_precomputed_words_and_in_step_events_give_the_recorded_digest() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring")
        fs = [tl.create() for _ in range(3)]
        for f in fs:
            k.spawn(f.wait, False, name="w")
        fs[0].add_callback(lambda fence, cb: None)
        for f in fs:
            f.is_signaled()
            k.raise_irq(f.signal, name="irq")

    for seed in range(4):
        plain = run_first(scenario) if seed == 0 else ds.Kernel(seed=seed).run(scenario)
        rec = (run_first(scenario, record_trace=True) if seed == 0
               else ds.Kernel(seed=seed, record_trace=True).run(scenario))
        assert plain.findings == rec.findings == []
        assert plain.trace_digest == rec.trace_digest


def test_enable_sw_signaling_is_one_step_and_keeps_its_events() -> None:
    # Before: a point on the fence, the lock's point and the unlock's point (3 steps).
    assert _steps_of(lambda f: f.enable_sw_signaling()) == 1
    ids: dict[str, int] = {}

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        ids["fence"], ids["lock"] = f.oid, f.lock.oid
        f.enable_sw_signaling()
        f.signal()

    ex = run_first(scenario, record_trace=True)
    assert ex.events is not None
    # test_and_set_bit(ENABLE_SIGNAL) and test_bit(SIGNALED), declared read, then the first enable's
    # write of ENABLE_SIGNAL alone (R13)
    assert _named(ex.events, ids["fence"], ids["lock"])[:5] == [
        ("spin_lock", "lock", True), ("dma_fence_enable_signaling", "ENABLE_SIGNAL", False),
        ("dma_fence_enable_signaling", "SIGNALED", False), ("dma_fence_enable_signaling", "ENABLE_SIGNAL", True),
        ("spin_unlock", "lock", True),
    ]


def test_a_wait_on_a_pending_fence_is_two_steps_before_it_sleeps() -> None:
    """dma_fence_wait_timeout: the enable section, then default_wait's section (test, link the waiter)."""
    ids: dict[str, int] = {}

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        ids["fence"], ids["lock"] = f.oid, f.lock.oid
        k.spawn(f.wait, False, name="waiter")
        k.spawn(f.signal, name="signaller")

    ex = run_first(scenario, record_trace=True)
    assert ex.findings == [] and ex.events is not None
    waiter = next(e.tid for e in ex.events if e.op == "dma_fence_enable_signaling")
    # The enable section (the first test_and_set_bit writes ENABLE_SIGNAL, R13), then
    # default_wait's (tests SIGNALED and ENABLE_SIGNAL, links the waiter on the list: R12; a
    # waiter's link commutes with the other waiters', so it reads the list, R14).
    assert _named(ex.events, ids["fence"], ids["lock"], waiter)[:10] == [
        ("spin_lock", "lock", True), ("dma_fence_enable_signaling", "ENABLE_SIGNAL", False),
        ("dma_fence_enable_signaling", "SIGNALED", False), ("dma_fence_enable_signaling", "ENABLE_SIGNAL", True),
        ("spin_unlock", "lock", True),
        ("spin_lock", "lock", True), ("dma_fence_wait", "SIGNALED", False),
        ("dma_fence_wait", "ENABLE_SIGNAL", False), ("dma_fence_wait", "list", False),
        ("spin_unlock", "lock", True)]
    # two steps: each section's events share its lock point's step (before: six points)
    parts = {ids["fence"], ids["lock"], cb_list_oid(ids["fence"])} | {flag_oid(ids["fence"], b) for b in FLAG_NAMES}
    mine = [e for e in ex.events if e.tid == waiter and e.obj in parts]
    assert len({e.step for e in mine[:10]}) == 2


def test_waiting_on_a_signalled_fence_returns_at_once_and_an_interrupted_wait_raises() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        f.signal()
        assert f.wait() == 0
        assert f.wait_timeout(False, 0) >= 1  # signalled: time left, not a timeout
        g = dma.FenceContext("ring2").create()
        assert g.wait_timeout(False, 0) == 0  # pending, no time: 0, nothing queued
        assert not g.cb_list
        k.send_signal(k.current)
        try:
            g.wait(intr=True)
        except ds.ERESTARTSYS:
            pass
        else:
            raise AssertionError("ERESTARTSYS expected")
        assert not g.cb_list
        g.signal()

    assert run_first(scenario).findings == []


def _two_waiters(k: ds.Kernel) -> None:
    f = dma.FenceContext("ring").create()
    woke: list[str] = []

    def waiter(name: str) -> None:
        f.wait()
        woke.append(name)

    k.spawn(waiter, "a", name="a")
    k.spawn(waiter, "b", name="b")
    k.spawn(f.signal, name="signaller")
    k.ext["explore.state"] = lambda: tuple(sorted(woke))


def test_waiters_woken_by_one_signal_are_independent_steps() -> None:
    """dma_fence R6: a waiter woken by the signal only reads the fence (the signaller unlinked its
    callback), so the two wake-up steps no longer make two traces of each order (136 before, when a
    wake-up wrote the fence; 114 before the signal's section, which wakes them, released the lock
    in its own step; 126 before the callback list was a part of its own, R12: the second
    waiter's enable only reads the flags; 58 before each flag bit was apart, R13: the waiters read
    SIGNALED, which the signal's point on the fence does not touch; 16 before the waiters' links
    commuted, R14: which waiter links its node first leaves no trace); every access stays declared, and
    each waiter still wakes."""
    for check in (False, True):
        r = explore(_two_waiters, "odpor", budget=1000, race_stats=True, kernel_options={"check_accesses": check})
        assert r.verdict == "exhausted" and r.findings == [] and r.executions == 14
        assert r.races is not None
        woken = [row for row in r.races.rows() if "(woken)" in row.first and "(woken)" in row.second]
        assert woken == []  # the two wake-ups never race


def _undeclared_of(scenario: Callable[[ds.Kernel], None], seeds: range) -> list[dict[str, object]]:
    out = []
    for seed in seeds:
        ex = ds.Kernel(seed=seed, check_accesses=True, lockdep=False).run(scenario)
        out += [dict(f.details) for f in ex.findings if f.kind == "undeclared-access"]
    return out


def test_the_access_checker_sees_the_flags_and_the_callback_list_apart() -> None:
    """dma_fence R12 declares the flags and the callback list (``cb_list_oid``) apart; the access
    checker compares attribute by attribute, so a step that writes a flag bit declaring only the
    list (the planted bug) is caught against dma_fence_is_signaled's read of that bit."""

    def planted(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        f.enable_sw_signaling()

        def stray() -> None:
            k.point("stray", cb_list_oid(f.oid), True)  # declares the list...
            f.flags |= 1 << DMA_FENCE_FLAG_SIGNALED_BIT  # ...and sets SIGNALED

        k.spawn(stray, name="stray")
        k.spawn(f.is_signaled, name="poll")

    found = _undeclared_of(planted, range(6))
    assert found and all(d["attribute"] == "flags.SIGNALED" for d in found)
    assert {(d["access"], d["other_access"]) for d in found} <= {("write", "read"), ("read", "write")}
    assert {d["other_thread"] for d in found} <= {"stray", "poll"}


def _bit_planted(stray_decl: int, stray_bit: int, stray_write: bool, poll_bit: int, poll_write: bool) -> Any:
    """Two threads on one enabled-or-not fence: ``stray`` declares one bit and touches another."""

    def planted(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()

        def stray() -> None:
            k.point("stray", flag_oid(f.oid, stray_decl), stray_write)
            if stray_write:
                f.flags |= 1 << stray_bit
            else:
                _ = f.flags & 1 << stray_bit

        def poll() -> None:
            k.point("poll", flag_oid(f.oid, poll_bit), poll_write)
            if poll_write:
                f.flags |= 1 << poll_bit
            else:
                _ = f.flags & 1 << poll_bit

        k.spawn(stray, name="stray")
        k.spawn(poll, name="poll")

    return planted


def test_the_access_checker_compares_the_flags_bit_by_bit() -> None:
    """dma_fence R13, accesses A6: each bit of ``flags`` is compared on its own. A step that sets
    ENABLE_SIGNAL declaring only SIGNALED is caught against a declared read of ENABLE_SIGNAL (a fence
    array's ops.signaled); a read of SIGNALED declared as ENABLE_SIGNAL is caught against a declared
    set of SIGNALED; correctly declared, the same accesses of two different bits are no finding."""
    sig, en = DMA_FENCE_FLAG_SIGNALED_BIT, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT
    found = _undeclared_of(_bit_planted(sig, en, True, en, False), range(6))
    assert found and {d["attribute"] for d in found} == {"flags.ENABLE_SIGNAL"}
    assert {(d["access"], d["other_access"]) for d in found} <= {("write", "read"), ("read", "write")}
    found = _undeclared_of(_bit_planted(en, sig, False, sig, True), range(6))
    assert found and {d["attribute"] for d in found} == {"flags.SIGNALED"}
    # the bits apart: a set of ENABLE_SIGNAL and a read of SIGNALED, each declared, commute
    assert _undeclared_of(_bit_planted(en, en, True, sig, False), range(6)) == []
    assert _undeclared_of(_bit_planted(sig, sig, False, sig, False), range(6)) == []


def test_a_bit_tested_in_a_later_step_than_its_load_is_refused() -> None:
    """accesses A6: the bits are read where the word is loaded; a test in a later step could hide
    a conflict, so the checker refuses it."""

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        flags = f.flags
        k.point("elsewhere", 12345, True)
        _ = flags & 1

    ex = ds.Kernel(seed=0, check_accesses=True, lockdep=False).run(scenario)
    assert [(f.kind, f.title.split(":")[0]) for f in ex.findings] == [("exception", "SimulatorError in scenario")]
    assert "accesses A6: DmaFence#" in ex.findings[0].title and ".flags, loaded at " in ex.findings[0].title
    assert "in a later step: test the bits in the step that loads them" in ex.findings[0].title


def test_the_access_checker_catches_a_list_write_declared_as_a_flags_read() -> None:
    def planted(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        f.enable_sw_signaling()

        def stray() -> None:
            k.point("stray", f.oid, False)  # declares a read of the flags...
            cbs = f.cb_list
            assert cbs is not None
            cbs.append(DmaFenceCb(lambda fence, cb: None))  # ...and links a callback

        k.spawn(stray, name="stray")
        k.spawn(f.add_callback, lambda fence, cb: None, name="queue")

    found = _undeclared_of(planted, range(6))
    assert found and all(d["attribute"] == "cb_list" for d in found)


def test_is_signaled_against_queueing_on_an_enabled_fence_is_declared_and_independent() -> None:
    """cs-b's dma_fence_is_signaled of a move fence against its ghost's queueing section on it:
    every access declared (no finding), and the polls no longer race with the queueing (R12)."""

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        f.enable_sw_signaling()
        k.spawn(f.is_signaled, name="poll")
        k.spawn(f.wait, False, name="ghost")

        def signaller() -> None:
            f.is_signaled()
            f.signal()

        k.spawn(signaller, name="signal")

    assert _undeclared_of(scenario, range(8)) == []
    r = explore(scenario, "odpor", budget=1000, race_stats=True, kernel_options={"check_accesses": True})
    assert r.verdict == "exhausted" and r.findings == []
    assert r.races is not None
    polls = [row for row in r.races.rows() if "dma_fence_is_signaled" in row.first + row.second
             and "dma_fence_wait" in row.first + row.second]
    assert polls == []


def test_add_callbacks_lockless_test_is_declared() -> None:
    """dma_fence_add_callback tests the SIGNALED bit without the lock, then takes the lock's point:
    the test is made in the step before that point, which declares a read of SIGNALED (R13), so a
    signal is ordered with it: no undeclared access (before the declaration, the checker found one
    on seed 2)."""

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        f.enable_sw_signaling()
        k.spawn(f.add_callback, lambda fence, cb: None, name="queue")
        k.spawn(f.signal, name="signal")

    assert _undeclared_of(scenario, range(8)) == []
