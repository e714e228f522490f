"""Ports of ``lib/locking-selftest.c``'s softirq-only cases, and the softirq context itself.

The irq families run in both irq states in ``test_locking_selftest.py``
(its ``IRQS``: ``IRQ_ENTER`` is ``SOFTIRQ_ENTER``, a handler run by
``Kernel.raise_softirq``; ``IRQ_DISABLE``/``IRQ_ENABLE`` are
``local_bh_disable``/``local_bh_enable``), with ``irqsafe2A``. Here:
``hardirq_deadlock_softirq_not_deadlock`` (``check_irq_usage`` per irq
state: only the hardirq chain is reported), and what softirq context and
bottom-half sections are to the rest of the model.
"""

from __future__ import annotations

from collections.abc import Callable

import dmabufsim as ds

from .test_locking_selftest import (
    assert_one,
    run_seq,
)

BAD_HARDIRQ = "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"


def _in_softirq(k: ds.Kernel, fn: Callable[[], object]) -> None:
    """``SOFTIRQ_ENTER(); fn(); SOFTIRQ_EXIT();`` -- a softirq handler, waited for."""
    k.join(k.raise_softirq(fn, name="softirq"))


def _bh_off(k: ds.Kernel, fn: Callable[[], object]) -> None:
    """``local_bh_disable(); fn(); local_bh_enable();``"""
    k.local_bh_disable()
    fn()
    k.local_bh_enable()


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
