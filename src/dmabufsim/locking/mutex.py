"""Sleeping mutexes.

Models ``struct mutex`` (``kernel/locking/mutex.c``).

Rules:

* R1: ``lock`` may sleep: in atomic context it is a ``sleep-in-atomic``
  finding (``might_sleep``).
* R2: one owner at a time; a thread locking a mutex it holds blocks forever
  (lockdep reports the recursion; the scheduler reports the deadlock).
* R3: only the owner unlocks; unlocking a mutex the thread does not hold is
  reported ("bad unlock balance") and changes nothing.
* R4: ``lock_interruptible`` raises ``EINTR`` when a signal is pending.
* R5: an unlock wakes the first waiter; a thread arriving before it runs may
  take the lock first (the kernel's optimistic spinning / lock stealing).
* R7: ``trylock_recursive`` (``mutex_trylock_recursive``, 2017-2021) answers
  RECURSIVE when the caller already owns the mutex, and otherwise acts as
  ``trylock``; it exists to write the old drivers that used it.
* R6: a lock that must wait calls lock_stat's ``lock_contended`` before it
  sleeps and ``lock_acquired`` once it owns the mutex (``lock_failed`` when
  a signal ends the wait): ``Kernel.lock_stat``, kept only while recording.
* R8 (whole sections): a release by the thread that took the mutex free at
  its own ``mutex_lock`` point, waking no waiter, tells the runtime
  (``Kernel.section_read``): when no unfolded scheduling point lies between
  the two (the reduction folded the release, ``kernel/reduction.py`` L3),
  the step only read the mutex (L6).

A thread preempted at its ``mutex_lock`` point and chosen again while the
mutex is owned is blocked by the runtime without being switched to
(``Kernel._park``, the :class:`~dmabufsim.kernel.thread.ParkLock`
protocol): the same execution, two context switches fewer.
"""

from __future__ import annotations

import sys
from typing import Any

from ..kernel.errors import EINTR
from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import current_kernel
from ..kernel.stack import _INTERNAL_FILE, caller_site
from ..kernel.thread import KThread
from ..kernel.trace import event_word, op_word

_getframe = sys._getframe


#: ``enum mutex_trylock_recursive_enum``.
MUTEX_TRYLOCK_FAILED = 0
MUTEX_TRYLOCK_SUCCESS = 1
MUTEX_TRYLOCK_RECURSIVE = 2


#: What each of a mutex's operations contributes to its points' trace words (``op_word``),
#: once per process rather than once per mutex.
_OP_LOCK = op_word("mutex_lock")
_OP_TRYLOCK = op_word("mutex_trylock")
_OP_UNLOCK = op_word("mutex_unlock")


class Mutex:
    """``struct mutex``. ``with m:`` locks and unlocks."""

    #: The caller-site cache of lockdep's fast path (never changes what happens; accesses A3);
    #: ``quick``: who took the mutex free at its own point (R8), read only by the release to tell
    #: the runtime, never by what the model does.
    __untracked__ = ("_scn_code", "quick")
    __slots__ = (
        "_scn_code", "_w_lock", "_w_trylock", "_w_unlock", "dep_map", "k", "oid", "owner", "park_on", "park_word",
        "quick", "waiters",
    )

    def __init__(self, name: str = "mutex", *, key: object | None = None) -> None:
        self.k = current_kernel()
        self.dep_map = LockdepMap(name, key)
        self.oid = self.dep_map.oid
        self.owner: KThread | None = None
        self.waiters: list[KThread] = []
        #: R8: the thread that took the mutex free at its own mutex_lock point, while it holds it.
        self.quick: KThread | None = None
        # The trace words of this mutex's scheduling points (Kernel.point's word=).
        base = event_word("", self.oid, True, name)  # the empty operation contributes nothing
        self._w_lock = base ^ _OP_LOCK
        self._w_trylock = base ^ _OP_TRYLOCK
        self._w_unlock = base ^ _OP_UNLOCK
        # The kernel.thread.ParkLock protocol: lock() lets the runtime block a thread at its point.
        self.park_word = self._w_lock
        self.park_on = ("mutex_lock", self.oid, name)
        #: The last scenario-level code object seen calling lock() (skips the file check).
        self._scn_code: Any = None

    @property
    def name(self) -> str:
        return self.dep_map.name

    def _lock(self, interruptible: bool, subclass: int, nest_lock: Any) -> None:
        k = self.k
        t = k._current
        if t is None:
            t = k.current  # raises: no kthread is running
        if t.atomic or t.in_irq:  # might_sleep()'s own test, inlined
            k.might_sleep("mutex_lock")
        dep_map = self.dep_map
        code, lasti = caller_site(_getframe(2))  # the caller of lock_interruptible()/lock_killable()
        if interruptible and k._reducer is not None:  # a signalled waiter sees the mutex held (reduction L3)
            k._reducer.tested(t, "mutex_lock_interruptible", self.oid)
        k.lockdep.lock_acquire(t, dep_map, 0, False, subclass, nest_lock, code, lasti)
        k.point("mutex_lock", self.oid, True, dep_map.name, self._w_lock)
        if self.owner is not None:  # contended: lock_stat's lock_contended ... lock_acquired (R6)
            k.lock_stat("lock_contended", self.oid)
            while self.owner is not None:
                self.waiters.append(t)
                reason = k.block("mutex_lock", self.oid, interruptible=interruptible, name=dep_map.name)
                self.waiters.remove(t)
                if reason == "signal":
                    k.lockdep.release(dep_map)
                    k.lock_stat("lock_failed", self.oid)
                    raise EINTR(f"mutex_lock_interruptible({self.name}) interrupted by a signal")
            k.lock_stat("lock_acquired", self.oid)
        self.owner = t
        self.quick = None  # an interruptible attempt is tested (reduction L3), never a whole section

    def lock(self, subclass: int = 0, *, nest_lock: Any = None) -> None:
        """``mutex_lock`` (``mutex_lock_nested`` with a subclass, ``mutex_lock_nest_lock``)."""
        # _lock(False, subclass, nest_lock) inlined: the uncontended lock is the hot path.
        k = self.k
        t = k._current
        if t is None:
            t = k.current  # raises: no kthread is running
        dep_map = self.dep_map
        # The site, lazily (stack.caller_site, its first step inlined): scenario code calls
        # lock() directly, so the caller's frame is usually the site itself.
        f = _getframe(1)
        code = f.f_code
        if code is _ENTER_CODE:  # `with m:`: the site is the with statement's frame
            f = f.f_back  # type: ignore[assignment]  # __enter__ always has a caller
            code = f.f_code
        if code is self._scn_code and not (t.atomic or t.in_irq or subclass) and nest_lock is None:
            k.lockdep.lock_acquire_plain(t, dep_map, code, f.f_lasti)  # the common case
        elif t.atomic or t.in_irq:  # might_sleep()'s own test, inlined
            k.might_sleep("mutex_lock")
            code2, lasti = caller_site(f)
            k.lockdep.lock_acquire(t, dep_map, 0, False, subclass, nest_lock, code2, lasti)
        elif code is self._scn_code:
            k.lockdep.lock_acquire(t, dep_map, 0, False, subclass, nest_lock, code, f.f_lasti)
        elif _INTERNAL_FILE.get(code.co_filename) is False:
            self._scn_code = code
            if subclass or nest_lock is not None:
                k.lockdep.lock_acquire(t, dep_map, 0, False, subclass, nest_lock, code, f.f_lasti)
            else:
                k.lockdep.lock_acquire_plain(t, dep_map, code, f.f_lasti)
        else:
            code2, lasti = caller_site(f)
            k.lockdep.lock_acquire(t, dep_map, 0, False, subclass, nest_lock, code2, lasti)
        t.park = self  # if chosen while the mutex is owned, the runtime may block us at the point
        k.point("mutex_lock", self.oid, True, dep_map.name, self._w_lock)
        t.park = None
        if t.parked:  # it did (Kernel._park: our first pass of the loop below), and we were woken
            t.parked = False
            self.waiters.remove(t)
            self.quick = None
        else:
            self.quick = t if self.owner is None else None  # R8: free at our own point
        if self.owner is not None:  # contended (R6; a parked thread, above, is never recorded)
            k.lock_stat("lock_contended", self.oid)
            while self.owner is not None:  # an uninterruptible sleep never ends with a signal
                self.waiters.append(t)
                k.block("mutex_lock", self.oid, name=dep_map.name)
                self.waiters.remove(t)
            k.lock_stat("lock_acquired", self.oid)
        self.owner = t

    def lock_interruptible(self) -> None:
        """``mutex_lock_interruptible``: raises EINTR on a pending signal (R4)."""
        self._lock(True, 0, None)

    def lock_killable(self) -> None:
        """``mutex_lock_killable`` (every signal is fatal in the model)."""
        self._lock(True, 0, None)

    def trylock(self) -> bool:
        """``mutex_trylock``: take the mutex if free; never sleeps."""
        k = self.k
        k.point("mutex_trylock", self.oid, True, self.dep_map.name, self._w_trylock)
        if self.owner is not None:
            return False
        t = self.owner = k.current
        self.quick = None  # a trylock's point is no lock point (R8)
        code, lasti = caller_site(_getframe(1))
        k.lockdep.lock_acquire(t, self.dep_map, 0, True, 0, None, code, lasti)
        return True

    def trylock_recursive(self) -> int:
        """``mutex_trylock_recursive`` (2017-2021): :data:`MUTEX_TRYLOCK_RECURSIVE` if the caller owns it,
        else :data:`MUTEX_TRYLOCK_SUCCESS` or :data:`MUTEX_TRYLOCK_FAILED` as ``trylock``.

        The kernel marked it a wart from the start ("this function should not be used, *ever*"):
        drivers used it to survive being re-entered under their own big lock.
        """
        k = self.k
        k.point("mutex_trylock", self.oid, True, self.dep_map.name, self._w_trylock)
        if self.owner is k.current:
            return MUTEX_TRYLOCK_RECURSIVE
        return MUTEX_TRYLOCK_SUCCESS if self.trylock() else MUTEX_TRYLOCK_FAILED

    def unlock(self) -> None:
        """``mutex_unlock``: release and wake the first waiter (R3, R5)."""
        k = self.k
        k.point("mutex_unlock", self.oid, True, self.dep_map.name, self._w_unlock)
        t = k._current
        if t is None:
            t = k.current  # raises: no kthread is running
        if self.owner is not t:
            k.lockdep.lock_release(t, self.dep_map)
            return
        k.lockdep.lock_release(t, self.dep_map)
        self.owner = None
        quick = self.quick is t
        self.quick = None
        for w in self.waiters:
            if k.wake(w):
                break
        else:
            if quick and (k.trace.tap is not None or k._acc_check is not None):
                k.section_read(self.oid)  # R8: a whole section, if in one step

    def is_locked(self) -> bool:
        """``mutex_is_locked`` (it observes the owner without waiting: reduction L3)."""
        k = self.k
        if k._reducer is not None and k._current is not None:
            k._reducer.tested(k._current, "mutex_is_locked", self.oid)
        return self.owner is not None

    def __enter__(self) -> Mutex:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def __repr__(self) -> str:
        owner = self.owner.name if self.owner else None
        return f"<Mutex {self.name} owner={owner}>"


#: ``Mutex.__enter__``'s code: ``lock()`` called from it looks one frame further out.
_ENTER_CODE = Mutex.__enter__.__code__
