"""Held-lock bookkeeping: which locks each thread holds, and where it took them.

Models the part of lockdep that every kernel with ``CONFIG_DEBUG_LOCK_ALLOC``
has even when the validator is off: ``lock_acquire`` / ``lock_release``
pushing and popping the task's ``held_locks``, and
``debug_check_no_locks_held`` at exit. The lock-dependency validator
(``locking/lockdep.py``) subclasses :class:`LockTracker` and adds the
dependency graph; the runtime only ever talks to this interface.

Rules:

* R1: every acquisition (including a trylock that succeeded) pushes one
  :class:`HeldLock`; every release pops the matching one. Releasing a lock
  the thread does not hold is reported ("bad unlock balance detected").
* R2: a thread that exits holding locks is reported (``leak``:
  "still has locks held").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any, Protocol, Self

from .stack import Frame, LazySite, call_site, caller_site

_new = object.__new__

if TYPE_CHECKING:
    from .runtime import Kernel
    from .thread import KThread


class LockMap(Protocol):
    """What the runtime needs of a lock's lockdep map: its class name and object id."""

    name: str
    oid: int


class HeldLock(LazySite):
    """One entry of a thread's held-lock stack (the kernel's ``struct held_lock``).

    ``site`` (where the lock was taken) may be stored lazily: the scenario
    frame's code object in ``_site`` and its instruction offset in
    ``_lasti`` (>= 0), turned into a :class:`Frame` the first time a report
    reads it (:func:`~dmabufsim.kernel.stack.site_at`). ``_lasti`` is -1
    once ``_site`` is a Frame (or None).
    """

    __slots__ = ("map", "nest_lock", "read", "refcount", "subclass", "trylock")

    def __init__(
        self,
        map: Any,
        read: int,
        trylock: bool,
        subclass: int,
        nest_lock: Any,
        site: Frame | CodeType | None,
        lasti: int = -1,
    ) -> None:
        self.map = map
        #: 0 = exclusive, 1 = shared (non-recursive read), 2 = recursive read.
        self.read = read
        self.trylock = trylock
        self.subclass = subclass
        self.nest_lock = nest_lock
        self._site: Any = site
        self._lasti = lasti
        #: Nested acquisitions merged into this entry (ww_mutex under nest_lock).
        self.refcount = 1

    @classmethod
    def plain(cls, map: Any, site: Frame | CodeType | None, lasti: int) -> Self:
        """An entry of an exclusive, blocking, un-nested acquisition (subclass 0): the
        lock fast paths' ``cls(map, 0, False, 0, None, site, lasti)`` without ``__init__``."""
        hl = _new(cls)
        hl.map = map
        hl.read = 0
        hl.trylock = False
        hl.subclass = 0
        hl.nest_lock = None
        hl._site = site
        hl._lasti = lasti
        hl.refcount = 1
        return hl

    def __repr__(self) -> str:
        mode = ("W", "R", "r")[self.read]
        return f"<held {self.map.name} {mode} at {self.site}>"


class LockTracker:
    """Maintains per-thread held-lock stacks and reports unbalanced use.

    Extension contract (for the lockdep validator): override
    :meth:`validate` to check a new acquisition against the held stack
    before it is pushed, and :meth:`on_release` to observe releases; never
    switch threads, never block, never raise into the caller.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        #: Called with the thread and its held stack after every push onto it (every
        #: acquisition): the explorer's coverage. Taken from ``Kernel.lock_observer``
        #: so that a tracker installed later (the lockdep validator) keeps it.
        self.observer: Callable[[Any, list[Any]], None] | None = kernel.lock_observer
        #: False when :meth:`validate` is this class's own no-op (the fast paths skip the call).
        self._validates = type(self).validate is not LockTracker.validate
        #: Likewise for :meth:`on_release`.
        self._observes = type(self).on_release is not LockTracker.on_release
        #: lockdep's ``force_read_lock_recursive``: ``read_lock`` of an rwlock_t counts as a
        #: recursive read in process context too (``read_lock_is_recursive``); the locking
        #: selftests set it for their rlock columns.
        self.force_read_lock_recursive = False

    def validate(self, t: KThread, hl: HeldLock) -> None:
        """Check a new acquisition against ``t.held`` (the validator's hook)."""

    def on_release(self, t: KThread, hl: HeldLock) -> None:
        """Observe a release (the validator's hook)."""

    def acquire(
        self,
        map: Any,
        *,
        read: int = 0,
        trylock: bool = False,
        subclass: int = 0,
        nest_lock: Any = None,
    ) -> HeldLock:
        """``lock_acquire``: validate, then push onto the current thread's stack."""
        code, lasti = caller_site(sys._getframe(1))  # the site, lazily (HeldLock.site)
        return self.lock_acquire(self.k.current, map, read, trylock, subclass, nest_lock, code, lasti)

    def lock_acquire(
        self,
        t: Any,
        map: Any,
        read: int,
        trylock: bool,
        subclass: int,
        nest_lock: Any,
        site: Frame | CodeType | None,
        lasti: int = -1,
    ) -> HeldLock:
        """:meth:`acquire` by thread ``t`` (the running one) at ``site``: the locks' fast path.

        ``site`` is a :class:`Frame` (or None), or, with ``lasti`` >= 0, the
        code object of the scenario frame and its instruction offset, as
        :func:`~dmabufsim.kernel.stack.caller_site` returns them (resolved
        only when a report reads :attr:`HeldLock.site`).
        """
        hl = HeldLock(map, read, trylock, subclass, nest_lock, site, lasti)
        self.validate(t, hl)
        t.held.append(hl)
        if self.observer is not None:
            self.observer(t, t.held)
        return hl

    def lock_acquire_plain(self, t: Any, map: Any, site: CodeType | None, lasti: int) -> HeldLock:
        """:meth:`lock_acquire` of an exclusive, blocking, un-nested lock in process context.

        The caller guarantees all that (``read=0``, ``trylock=False``,
        ``subclass=0``, no ``nest_lock``, ``t`` not atomic): the mutex fast
        path. The site is lazy (``site`` a code object, ``lasti`` >= 0) or None.
        """
        # lock_acquire(t, map, 0, False, 0, None, site, lasti) inlined.
        hl = HeldLock.plain(map, site, lasti)
        if self._validates:
            self.validate(t, hl)
        t.held.append(hl)
        if self.observer is not None:
            self.observer(t, t.held)
        return hl

    def release(self, map: Any) -> bool:
        """``lock_release``: pop the entry of ``map``; report when it is not held."""
        return self.lock_release(self.k.current, map)

    def lock_release(self, t: Any, map: Any) -> bool:
        """:meth:`release` by thread ``t`` (the running one): the locks' fast path."""
        held = t.held
        if held and not self._observes:
            hl = held[-1]
            if hl.map is map and hl.refcount == 1:  # the innermost lock: nothing to observe
                del held[-1]
                return True
        for i in range(len(held) - 1, -1, -1):
            hl = held[i]
            if hl.map is map:
                if hl.refcount > 1:
                    hl.refcount -= 1
                else:
                    del held[i]
                self.on_release(t, hl)
                return True
        self.k.report(
            "assertion",
            "WARNING: bad unlock balance detected!",
            details={"lock": map.name, "held": [h.map.name for h in held]},
            rule="lockdep R1: release of a lock the thread does not hold",
            signature=f"bad-unlock:{map.name}",
            text=(
                f"{t.name}/{t.tid} is trying to release lock ({map.name}) at:\n"
                f"{call_site()}\nbut there are no more locks to release!"
            ),
        )
        return False

    def is_held(self, map: Any, t: KThread | None = None) -> bool:
        """``lock_is_held``: does the (current) thread hold ``map``?"""
        t = t or self.k.current
        return any(hl.map is map for hl in t.held)

    def hardirqs_on(self, t: KThread) -> None:
        """``trace_hardirqs_on``: interrupts are enabled again while ``t`` holds locks.

        The held-lock tracker keeps no usage state, so there is nothing to
        mark; the lockdep validator overrides this (lockdep R7).
        """
        return None

    def softirqs_on(self, t: KThread) -> None:
        """``trace_softirqs_on``: softirqs are enabled again while ``t`` holds locks (nothing
        to mark here; the lockdep validator overrides this, lockdep R7)."""
        return None

    def thread_exit(self, t: KThread) -> None:
        """``debug_check_no_locks_held``: report locks still held at exit."""
        if not t.held:
            return
        names = [hl.map.name for hl in t.held]
        lines = [f"BUG: {t.name}/{t.tid} still has locks held!", f"{len(names)} lock(s) held by {t.name}/{t.tid}:"]
        for i, hl in enumerate(t.held):
            lines.append(f" #{i}: ({hl.map.name}), at: {hl.site}")
        self.k.report(
            "leak",
            f"BUG: {t.name}/{t.tid} still has locks held!",
            details={"locks": names},
            rule="lockdep R2: a thread must not exit holding locks",
            signature=f"held-at-exit:{t.name}:{','.join(names)}",
            text="\n".join(lines),
            thread=t,
        )
