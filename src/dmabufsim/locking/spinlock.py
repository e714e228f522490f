"""Spinlocks: short critical sections in atomic context.

Models ``spinlock_t`` (``include/linux/spinlock.h``).

Rules:

* R1: holding a spinlock makes the thread atomic (preemption off): any
  sleeping call inside is a ``sleep-in-atomic`` finding naming the lock.
* R2: ``lock_irqsave`` / ``lock_irq`` also disable interrupts; lockdep
  learns from this which locks are irq-safe.
* R3: a contended spinlock spins (it does not sleep); a thread spinning on
  a lock it holds itself never gets it (AA deadlock). The spin is modelled
  as a wait at the ``spin_lock`` point until the owner unlocks (the
  ``kernel.thread.ParkLock`` protocol, as ``mutex_lock``): the runtime may
  block a thread chosen at its point while the lock is owned, so an attempt
  that only finds the lock busy is no step of its own.
* R4: only the holder unlocks; anything else is reported and changes nothing.
* R5 (lock_stat): a contended lock calls ``lock_contended`` before it spins
  and ``lock_acquired`` once it owns the lock (``Kernel.lock_stat``, kept
  only while recording).
* R6 (whole sections): a release by the thread that took the lock free at
  its own ``spin_lock`` point, with no spinner to wake, tells the runtime
  (``Kernel.section_read``): when no scheduling point lies between the two,
  the step only read the lock (``kernel/reduction.py`` L6).
"""

from __future__ import annotations

import sys
from types import CodeType
from typing import Any

from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.stack import _INTERNAL_FILE, caller_site
from ..kernel.thread import AtomicReason, KThread
from ..kernel.trace import event_word, op_word

_getframe = sys._getframe


def atomic_exit_fast(k: Kernel, t: KThread, what: str, name: str) -> None:
    """``Kernel.atomic_exit`` for the running thread ``t``; the innermost section is the fast path."""
    atomic = t.atomic
    if atomic:
        r = atomic[-1]
        if r.what == what and r.name == name:
            del atomic[-1]
            if t.held:
                if what == "irqs_disabled":
                    k.irqs_restored(t)  # trace_hardirqs_on: lockdep marks the locks still held
                elif what == "bh_disabled":
                    k.bh_restored(t)  # trace_softirqs_on
            return
    k.atomic_exit(what, name)


#: What each of a spinlock's operations contributes to its points' trace words (``op_word``),
#: once per process rather than once per lock.
_OP_LOCK = op_word("spin_lock")
_OP_TRYLOCK = op_word("spin_trylock")
_OP_UNLOCK = op_word("spin_unlock")


class SpinLock:
    """``spinlock_t``. ``with s:`` is ``spin_lock`` / ``spin_unlock``."""

    #: The caller-site cache of lockdep's fast path (never changes what happens; accesses A3);
    #: ``quick``: who took the lock free at its own point (R6), read only by the release to tell
    #: the runtime, never by what the model does.
    __untracked__ = ("_scn_code", "quick")
    __slots__ = ("_scn_code", "_w_lock", "_w_trylock", "_w_unlock", "dep_map", "k", "oid", "owner", "park_on",
                 "park_word", "quick", "waiters")

    def __init__(self, name: str = "spinlock", *, key: object | None = None) -> None:
        self.k = current_kernel()
        self.dep_map = LockdepMap(name, key)
        self.oid = self.dep_map.oid
        self.owner: KThread | None = None
        self.waiters: list[KThread] = []
        #: R6: the thread that took the lock free at its own spin_lock point, while it holds it.
        self.quick: KThread | None = None
        # The trace words of this lock's scheduling points (Kernel.point's word=).
        base = event_word("", self.oid, True, name)  # the empty operation contributes nothing
        self._w_lock = base ^ _OP_LOCK
        self._w_trylock = base ^ _OP_TRYLOCK
        self._w_unlock = base ^ _OP_UNLOCK
        # The kernel.thread.ParkLock protocol (R3): lock() lets the runtime block a spinner at its point.
        self.park_word = self._w_lock
        self.park_on = ("spin_lock", self.oid, name)
        #: The last scenario-level code object seen taking the lock (skips the file check).
        self._scn_code: Any = None

    def _site(self) -> tuple[CodeType | None, int]:
        """Where the caller of the lock method is, lazily: ``stack.caller_site`` from its caller.

        Scenario code usually calls the lock directly, and again from the
        same function: that case is one comparison.
        """
        f = _getframe(2)
        code = f.f_code
        if code is _ENTER_CODE:  # `with s:`: the site is the with statement's frame
            f = f.f_back  # type: ignore[assignment]  # __enter__ always has a caller
            code = f.f_code
        if code is self._scn_code:
            return code, f.f_lasti
        if _INTERNAL_FILE.get(code.co_filename) is False:
            self._scn_code = code
            return code, f.f_lasti
        return caller_site(f)

    @property
    def name(self) -> str:
        return self.dep_map.name

    def lock(self, subclass: int = 0, *, nest_lock: object = None) -> None:
        """``spin_lock`` (``spin_lock_nested``, ``spin_lock_nest_lock``)."""
        k = self.k
        t = k._current
        if t is None:
            t = k.current  # raises: no kthread is running
        code, lasti = self._site()  # one lazy site for the atomic section and lockdep
        dep_map = self.dep_map
        t.atomic.append(AtomicReason("spinlock", dep_map.name, code, lasti))  # Kernel.atomic_enter
        k.lockdep.lock_acquire(t, dep_map, 0, False, subclass, nest_lock, code, lasti)
        t.park = self  # R3: if chosen while the lock is owned, the runtime may block us at the point
        k.point("spin_lock", self.oid, True, dep_map.name, self._w_lock)
        t.park = None
        if t.parked:  # it did (Kernel._park: our first pass of the loop below), and we were woken
            t.parked = False
            self.waiters.remove(t)
            self.quick = None
        elif self.owner is None:
            self.quick = t  # R6: free at our own point
        else:
            self.quick = None
        if self.owner is not None:  # spinning: lock_stat's lock_contended ... lock_acquired (R5)
            k.lock_stat("lock_contended", self.oid)
            while self.owner is not None:
                self.waiters.append(t)
                k.block("spin_lock", self.oid, name=dep_map.name)
                self.waiters.remove(t)
            k.lock_stat("lock_acquired", self.oid)
        self.owner = t

    def lock_irqsave(self) -> int:
        """``spin_lock_irqsave``: disable interrupts, then lock. Returns the flags to restore."""
        code, lasti = self._site()
        self._lock_in("irqs_disabled", code, lasti)
        return 1

    def _lock_in(self, section: str, code: CodeType | None, lasti: int) -> None:
        """Enter the atomic ``section`` (irqs or bottom halves disabled), then lock: the body
        of ``lock()`` (fences take their lock this way), with the caller's lazy site."""
        k = self.k
        t = k.current
        dep_map = self.dep_map
        name = dep_map.name
        atomic = t.atomic
        # Kernel.atomic_enter twice, then the body of lock().
        atomic.append(AtomicReason(section, name, code, lasti))
        atomic.append(AtomicReason("spinlock", name, code, lasti))
        k.lockdep.lock_acquire(t, dep_map, 0, False, 0, None, code, lasti)
        t.park = self  # R3, as in lock()
        k.point("spin_lock", self.oid, True, name, self._w_lock)
        t.park = None
        if t.parked:
            t.parked = False
            self.waiters.remove(t)
            self.quick = None
        elif self.owner is None:
            self.quick = t  # R6: free at our own point
        else:
            self.quick = None
        if self.owner is not None:  # spinning: lock_stat's lock_contended ... lock_acquired
            k.lock_stat("lock_contended", self.oid)
            while self.owner is not None:
                self.waiters.append(t)
                k.block("spin_lock", self.oid, name=name)
                self.waiters.remove(t)
            k.lock_stat("lock_acquired", self.oid)
        self.owner = t

    def lock_irq(self) -> None:
        """``spin_lock_irq``."""
        self.lock_irqsave()

    def lock_bh(self) -> None:
        """``spin_lock_bh``: disable softirqs, then lock."""
        code, lasti = self._site()
        self._lock_in("bh_disabled", code, lasti)

    def unlock_bh(self) -> None:
        """``spin_unlock_bh``: unlock, then enable softirqs."""
        self.unlock()
        atomic_exit_fast(self.k, self.k.current, "bh_disabled", self.dep_map.name)

    def trylock(self) -> bool:
        """``spin_trylock``: take the lock if free; never spins."""
        k = self.k
        k.point("spin_trylock", self.oid, True, self.dep_map.name, self._w_trylock)
        if self.owner is not None:
            return False
        t = k.current
        code, lasti = self._site()
        t.atomic.append(AtomicReason("spinlock", self.dep_map.name, code, lasti))  # Kernel.atomic_enter
        self.owner = t
        self.quick = None  # a trylock's point is no lock point (R6)
        k.lockdep.lock_acquire(t, self.dep_map, 0, True, 0, None, code, lasti)
        return True

    def unlock(self) -> None:
        """``spin_unlock``."""
        k = self.k
        dep_map = self.dep_map
        k.point("spin_unlock", self.oid, True, dep_map.name, self._w_unlock)
        t = k._current
        if t is None:
            t = k.current  # raises: no kthread is running
        if self.owner is not t:
            k.lockdep.lock_release(t, dep_map)
            return
        k.lockdep.lock_release(t, dep_map)
        self.owner = None
        atomic_exit_fast(k, t, "spinlock", dep_map.name)
        self.released(k, t)

    def released(self, k: Kernel, t: KThread) -> None:
        """The end of ``spin_unlock`` once the owner ``t`` let go: wake the spinners, or,
        with none, tell the runtime of a whole section (R6)."""
        quick = self.quick is t
        self.quick = None
        if self.waiters:
            for w in list(self.waiters):
                k.wake(w)
        elif quick and (k.trace.tap is not None or k._acc_check is not None):
            k.section_read(self.oid)

    def unlock_irqrestore(self, flags: int = 1) -> None:
        """``spin_unlock_irqrestore``."""
        k = self.k
        dep_map = self.dep_map
        name = dep_map.name
        k.point("spin_unlock", self.oid, True, name, self._w_unlock)
        t = k.current
        # unlock() inlined, then the irqs_disabled section ends.
        if self.owner is not t:
            k.lockdep.lock_release(t, dep_map)
        else:
            k.lockdep.lock_release(t, dep_map)
            self.owner = None
            atomic_exit_fast(k, t, "spinlock", name)
            self.released(k, t)
        atomic_exit_fast(k, t, "irqs_disabled", name)

    def unlock_irq(self) -> None:
        """``spin_unlock_irq``."""
        self.unlock_irqrestore()

    def is_locked(self) -> bool:
        """``spin_is_locked`` (it observes the owner without waiting: reduction L3)."""
        k = self.k
        if k._reducer is not None and k._current is not None:
            k._reducer.tested(k._current, "spin_is_locked", self.oid)
        return self.owner is not None

    def __enter__(self) -> SpinLock:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def __repr__(self) -> str:
        owner = self.owner.name if self.owner else None
        return f"<SpinLock {self.name} owner={owner}>"


#: ``SpinLock.__enter__``'s code: ``lock()`` called from it looks one frame further out.
_ENTER_CODE = SpinLock.__enter__.__code__
