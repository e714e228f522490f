"""Ports of ``lib/locking-selftest.c``'s softirq cases (lockdep R7, softirq state).

The soft variants of the irq families use the kernel's ``*-softirq.h``
headers: ``IRQ_ENTER`` is ``SOFTIRQ_ENTER`` (a softirq handler:
``Kernel.raise_softirq``), ``IRQ_DISABLE``/``IRQ_ENABLE`` are
``local_bh_disable``/``local_bh_enable``. Verdicts are the kernel's: spin
and write locks FAILURE, recursive read locks SUCCESS; ``irqsafe2A``
(enabling hardirqs with a softirq-safe lock held) fails too, and
``hardirq_deadlock_softirq_not_deadlock`` reports the hardirq chain only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabufsim as ds

from .test_locking_selftest import (
    INCONSISTENT,
    INVERSION,
    IRQ_KINDS,
    PERMS3,
    Lk,
    _run_events,
    assert_clean,
    assert_one,
    lockdep_findings,
    lu2,
    run_seq,
)

BAD_SOFTIRQ = "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"
BAD_HARDIRQ = "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"


def _in_softirq(k: ds.Kernel, fn: Callable[[], object]) -> None:
    """``SOFTIRQ_ENTER(); fn(); SOFTIRQ_EXIT();`` -- a softirq handler, waited for."""
    k.join(k.raise_softirq(fn, name="softirq"))


def _bh_off(k: ds.Kernel, fn: Callable[[], object]) -> None:
    """``local_bh_disable(); fn(); local_bh_enable();``"""
    k.local_bh_disable()
    fn()
    k.local_bh_enable()


@pytest.mark.parametrize("order", ["12", "21"])
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe1_soft(kind: str, reported: bool, order: str) -> None:
    """A softirq-safe lock taken with softirqs enabled."""

    def body(k: ds.Kernel) -> None:
        a = Lk(kind, "A")

        def e1() -> None:
            _in_softirq(k, lambda: (a.lock(), a.unlock()))

        def e2() -> None:
            a.lock()
            a.unlock()

        for step in order:
            (e1 if step == "1" else e2)()

    ex = run_seq(body)
    if not reported:
        assert_clean(ex)
        return
    f = assert_one(ex, "recursive-locking", INCONSISTENT, ["A"])
    expected = ["IN-SOFTIRQ-W", "SOFTIRQ-ON-W"] if order == "12" else ["SOFTIRQ-ON-W", "IN-SOFTIRQ-W"]
    assert f.details["usage"] == expected
    assert "[HC0[0]:SC" in f.report and "SOFTIRQ" in f.report


@pytest.mark.parametrize("order", ["12", "21"])
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe2A(kind: str, reported: bool, order: str) -> None:
    """Enabling hardirqs with a softirq-safe lock held: ``trace_hardirqs_on`` marks the held
    lock taken with softirqs enabled too."""

    def body(k: ds.Kernel) -> None:
        a = Lk(kind, "A")

        def e1() -> None:
            _in_softirq(k, lambda: (a.lock(), a.unlock()))

        def e2() -> None:  # HARDIRQ_DISABLE(); LOCK(A); HARDIRQ_ENABLE(); UNLOCK(A);
            k.atomic_enter("irqs_disabled", "local_irq_disable")
            a.lock()
            k.atomic_exit("irqs_disabled", "local_irq_disable")
            a.unlock()

        for step in order:
            (e1 if step == "1" else e2)()

    ex = run_seq(body)
    if not reported:
        assert_clean(ex)
        return
    f = assert_one(ex, "recursive-locking", INCONSISTENT, ["A"])
    expected = ["IN-SOFTIRQ-W", "SOFTIRQ-ON-W"] if order == "12" else ["SOFTIRQ-ON-W", "IN-SOFTIRQ-W"]
    assert f.details["usage"] == expected


@pytest.mark.parametrize("order", ["12", "21"])
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe2B_soft(kind: str, reported: bool, order: str) -> None:
    """Enabling softirqs with a softirq-safe lock held (``trace_softirqs_on``)."""

    def body(k: ds.Kernel) -> None:
        a = Lk(kind, "A")

        def e1() -> None:
            _in_softirq(k, lambda: (a.lock(), a.unlock()))

        def e2() -> None:  # local_bh_disable(); LOCK(A); local_bh_enable(); UNLOCK(A);
            k.local_bh_disable()
            a.lock()
            k.local_bh_enable()
            a.unlock()

        for step in order:
            (e1 if step == "1" else e2)()

    ex = run_seq(body)
    if not reported:
        assert_clean(ex)
        return
    f = assert_one(ex, "recursive-locking", INCONSISTENT, ["A"])
    expected = ["IN-SOFTIRQ-W", "SOFTIRQ-ON-W"] if order == "12" else ["SOFTIRQ-ON-W", "IN-SOFTIRQ-W"]
    assert f.details["usage"] == expected


def _irqsafe34_soft(kind: str, perm: str, bh_off_in_e1: bool) -> ds.Execution:
    """E1: [BH_DISABLE] A -> B [BH_ENABLE]; E2: B with softirqs on; E3: A in a softirq."""

    def body(k: ds.Kernel) -> None:
        a, b = Lk(kind, "A"), Lk(kind, "B")

        def e1() -> None:
            if bh_off_in_e1:
                _bh_off(k, lambda: lu2(a, b))
            else:
                lu2(a, b)

        def e2() -> None:
            b.lock()
            b.unlock()

        def e3() -> None:
            _in_softirq(k, lambda: (a.lock(), a.unlock()))

        for step in perm:
            {"1": e1, "2": e2, "3": e3}[step]()

    return run_seq(body)


@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe3_soft(kind: str, reported: bool, perm: str) -> None:
    """A softirq-unsafe B taken under A, where A is softirq-safe and taken with softirqs on."""
    ex = _irqsafe34_soft(kind, perm, bh_off_in_e1=False)
    if not reported:
        assert_clean(ex)
        return
    fs = lockdep_findings(ex)
    assert (fs[0].kind, fs[0].title, fs[0].details["chain"]) == ("recursive-locking", INCONSISTENT, ["A"])
    later = [(f.title, f.details["chain"]) for f in fs[1:]]
    assert later == ([(BAD_SOFTIRQ, ["A", "B"])] if perm in ("231", "312", "321") else [])


@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe4_soft(kind: str, reported: bool, perm: str) -> None:
    """A turns softirq-safe, having taken the softirq-unsafe B (A -> B with softirqs off)."""
    ex = _irqsafe34_soft(kind, perm, bh_off_in_e1=True)
    if not reported:
        assert_clean(ex)
        return
    title = BAD_SOFTIRQ if perm in ("231", "321") else INVERSION
    f = assert_one(ex, "circular-locking", title, ["A", "B"])
    assert (f.details["safe"], f.details["unsafe"], f.details["state"]) == ("A", "B", "SOFTIRQ")


@pytest.mark.parametrize("perm", PERMS3)
def test_irq_inversion_soft_spin(perm: str) -> None:
    """softirq-safe A -> softirq-unsafe B, in every order of the three events."""

    def body(k: ds.Kernel) -> None:
        a, b = ds.SpinLock("A"), ds.SpinLock("B")

        def e1() -> None:  # bottom halves off: A -> B
            a.lock_bh()
            b.lock()
            b.unlock()
            a.unlock_bh()

        def e2() -> None:  # B with softirqs on: softirq-unsafe
            b.lock()
            b.unlock()

        def e3() -> None:  # A in a softirq: softirq-safe
            _in_softirq(k, lambda: (a.lock(), a.unlock()))

        for step in perm:
            {"1": e1, "2": e2, "3": e3}[step]()

    title = BAD_SOFTIRQ if perm[-1] == "1" else INVERSION
    f = assert_one(run_seq(body), "circular-locking", title, ["A", "B"])
    assert (f.details["safe"], f.details["unsafe"]) == ("A", "B")
    assert "SOFTIRQ-" in f.report and "HARDIRQ-safe" not in f.report


def test_hardirq_deadlock_softirq_not_deadlock() -> None:
    """``check_irq_usage`` per irq state: mutex_A -> C -> D is softirq-unsafe -> softirq-safe
    (no deadlock); A -> B -> C -> D is hardirq-safe -> hardirq-unsafe (reported)."""

    def body(k: ds.Kernel) -> None:
        mutex_a = ds.Mutex("mutex_A")
        lock_a, lock_b, lock_c, lock_d = (ds.SpinLock(n) for n in ("lock_A", "lock_B", "lock_C", "lock_D"))

        def irqs_off(fn: Callable[[], object]) -> None:
            k.atomic_enter("irqs_disabled", "local_irq_disable")
            fn()
            k.atomic_exit("irqs_disabled", "local_irq_disable")

        def nested(x: ds.SpinLock, y: ds.SpinLock) -> None:
            x.lock()
            y.lock()
            y.unlock()
            x.unlock()

        mutex_a.lock()  # mutex_A is hardirq-unsafe and softirq-unsafe; mutex_A -> lock_C
        irqs_off(lambda: (lock_c.lock(), lock_c.unlock()))
        mutex_a.unlock()
        k.join(k.raise_irq(lambda: (lock_a.lock(), lock_a.unlock()), name="irq"))  # lock_A hardirq-safe
        irqs_off(lambda: nested(lock_a, lock_b))  # lock_A -> lock_B
        irqs_off(lambda: nested(lock_b, lock_c))  # lock_B -> lock_C
        _in_softirq(k, lambda: (lock_d.lock(), lock_d.unlock()))  # lock_D softirq-safe
        _bh_off(k, lambda: (lock_d.lock(), lock_d.unlock()))  # and hardirq-unsafe
        irqs_off(lambda: nested(lock_c, lock_d))

    f = assert_one(run_seq(body), "circular-locking", BAD_HARDIRQ, ["lock_A", "lock_B", "lock_C", "lock_D"])
    assert (f.details["safe"], f.details["unsafe"], f.details["new_edge"]) == ("lock_A", "lock_D",
                                                                              ["lock_C", "lock_D"])


# ---------------------------------------------------------------- the softirq context itself


def test_softirq_handler_is_atomic_and_may_not_sleep() -> None:
    def body(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        _in_softirq(k, lambda: (m.lock(), m.unlock()))

    ex = ds.Kernel(strategy=ds.FirstStrategy(), prime_lockdep=False).run(body)
    f = next(f for f in ex.findings if f.kind == "sleep-in-atomic")
    assert f.details["atomic"][0]["what"] == "softirq" and f.details["irqs_disabled"] is False


def test_bh_disabled_section_is_atomic_and_balanced_by_spin_lock_bh() -> None:
    seen: list[tuple[str, ...]] = []

    def body(k: ds.Kernel) -> None:
        s = ds.SpinLock("s")
        s.lock_bh()
        seen.append(tuple(r.what for r in k.current.atomic))
        s.unlock_bh()
        seen.append(tuple(r.what for r in k.current.atomic))
        k.local_bh_disable()
        k.msleep(1)  # sleeping with bottom halves disabled
        k.local_bh_enable()

    ex = ds.Kernel(strategy=ds.FirstStrategy(), prime_lockdep=False).run(body)
    assert seen == [("bh_disabled", "spinlock"), ()]
    assert [f.details["atomic"][0]["what"] for f in ex.findings if f.kind == "sleep-in-atomic"] == ["bh_disabled"]


def test_usage_string_shows_both_irq_states() -> None:
    """``{hardirq W R, softirq W R}``: a lock taken in a softirq (hardirqs on there) and with
    softirqs on is ``{+.?.}``: hardirq-unsafe, softirq both."""
    from dmabufsim.locking.lockdep import Lockdep

    classes: list[str] = []

    def body(k: ds.Kernel) -> None:
        a = ds.SpinLock("A")
        _in_softirq(k, lambda: (a.lock(), a.unlock()))
        ld = k.lockdep
        assert isinstance(ld, Lockdep)
        classes.append(ld.graph.classes[0].usage_str())
        a.lock()
        a.unlock()
        classes.append(ld.graph.classes[0].usage_str())

    run_seq(body)
    assert classes == ["+.-.", "+.?."]


# ---------------------------------------------------------------- read recursion, softirq state


def _soft_events(e1_body: Callable[[dict[str, Any]], None], e2_body: Callable[[dict[str, Any]], None],
                 e3_handler: Callable[[dict[str, Any]], None], perm: str) -> ds.Execution:
    """E1 with bottom halves off, E2 with softirqs on, E3 in a softirq, in the order ``perm``."""

    def e1(k: ds.Kernel, lk: dict[str, Any]) -> None:
        _bh_off(k, lambda: e1_body(lk))

    def e2(k: ds.Kernel, lk: dict[str, Any]) -> None:
        e2_body(lk)

    def e3(k: ds.Kernel, lk: dict[str, Any]) -> None:
        _in_softirq(k, lambda: e3_handler(lk))

    return _run_events({"1": e1, "2": e2, "3": e3}, perm)


def _take(lk: dict[str, Any], name: str, kind: str) -> None:
    lk[name].rl() if kind == "rlock" else lk[name].wl()


@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("wlock", True)])
def test_irq_read_recursion_soft(kind: str, reported: bool, perm: str) -> None:
    """A read with softirqs on; A taken in the softirq: as a recursive reader that is safe."""
    ex = _soft_events(
        lambda lk: (lk["A"].wl(), lk["A"].u()),
        lambda lk: (lk["A"].rl(), lk["A"].u()),
        lambda lk: (_take(lk, "A", kind), lk["B"].wl(), lk["B"].u(), lk["A"].u()),
        perm,
    )
    if reported:
        assert_one(ex, "recursive-locking", INCONSISTENT, ["A"])
    else:
        assert_clean(ex)


@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("wlock", True)])
def test_irq_read_recursion2_soft(kind: str, reported: bool, perm: str) -> None:
    """softirq-safe B -> A, A read with softirqs on: unsafe only if B's holder takes A for write."""
    ex = _soft_events(
        lambda lk: (lk["B"].wl(), _take(lk, "A", kind), lk["A"].u(), lk["B"].u()),
        lambda lk: (lk["A"].rl(), lk["A"].u()),
        lambda lk: (lk["B"].wl(), lk["B"].u()),
        perm,
    )
    if reported:
        f = assert_one(ex, "circular-locking", BAD_SOFTIRQ if perm[-1] == "1" else INVERSION, ["B", "A"])
        assert (f.details["safe"], f.details["unsafe"], f.details["state"]) == ("B", "A", "SOFTIRQ")
    else:
        assert_clean(ex)


@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("wlock", True)])
def test_irq_read_recursion3_soft(kind: str, reported: bool, perm: str) -> None:
    """B read in the softirq, A read with softirqs on: B write-held -> A blocks only if A is written."""
    ex = _soft_events(
        lambda lk: (lk["B"].wl(), _take(lk, "A", kind), lk["A"].u(), lk["B"].u()),
        lambda lk: (lk["A"].rl(), lk["A"].u()),
        lambda lk: (lk["B"].rl(), lk["B"].u()),
        perm,
    )
    if reported:
        assert_one(ex, "circular-locking", BAD_SOFTIRQ if perm[-1] == "1" else INVERSION, ["B", "A"])
    else:
        assert_clean(ex)
