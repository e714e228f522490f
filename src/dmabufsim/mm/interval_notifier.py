"""Models ``struct mmu_interval_notifier`` (``mm/mmu_notifier.c``, v5.5+) and its collision protocol.

An interval subscription watches ``[start, start + length)`` of one mm. Its
``invalidate`` callback is called for every invalidation that overlaps the
interval; drivers pair it with a *sequence* so that a mapping built from
pages looked up before an invalidation is never published after it
(``Documentation/mm/hmm.rst``)::

    again:
        seq = sub.read_begin()
        pages = look up / pin the pages          # not under the notifier lock
        with driver.notifier_lock:
            if sub.read_retry(seq):
                goto again                        # an invalidation collided
            program the device                    # pages are current here
    invalidate(sub, range, cur_seq):
        if not range.blockable: return False
        with driver.notifier_lock:
            sub.set_seq(cur_seq)
            stop device access to the range

Rules (the per-mm sequence is R5 of ``mmu_notifier.py``):

* R1 (insert): ``insert(mm, start, length, ops)`` rejects a zero or
  overflowing length (``EINVAL``, the kernel's -EOVERFLOW). Inserted while
  idle, the interval's sequence is the global one minus 1 (odd, never
  equal to it); inserted during an invalidation, it equals the global odd
  sequence (so ``read_begin`` waits for that invalidation) and, if the
  invalidation overlaps intervals, the tree update is deferred to its end.
* R2 (read_begin): returns the interval's sequence; if it equals the
  global sequence (an invalidation of *this* interval is in progress) it
  first sleeps until the global sequence changes. It acquires and releases
  the ``mmu_notifier_invalidate_range_start`` map: calling it holding a
  lock that an ``invalidate`` callback takes is a lockdep cycle.
* R3 (read_retry): true iff the interval's sequence differs from ``seq``;
  it must be called holding the same driver lock the ``invalidate``
  callback holds around ``set_seq`` (``lock`` given to
  :meth:`MMUIntervalNotifier.read_retry`; a call without it is an
  ``assertion`` finding). ``check_retry`` is the lockless advisory check.
* R4 (set_seq): only from ``invalidate``, with the ``cur_seq`` it was given.
* R5 (remove): waits for an in-progress invalidation that still sees the
  interval; after it returns no callback runs. Same lockdep rule as
  ``read_begin``. Called from the interval's own ``invalidate`` callback
  it does what the kernel does: lockdep reports the recursive acquisition
  of ``mmu_notifier_invalidate_range_start`` and the thread then waits for
  the end of the invalidation it is itself running -- forever (the
  "tear a range down from the notifier" mistake; drivers defer it to a
  worker, ``drm_gpusvm``'s garbage collector).
"""

from __future__ import annotations

from typing import Any

from ..kernel.errors import EINVAL, UsageError
from ..kernel.runtime import current_kernel
from ..locking.annotations import mmu_notifier_map
from .mmu_notifier import MMUNotifierRange, MMUNotifierSubscriptions, subscriptions

#: The largest user address the model accepts (a 57-bit address space).
TASK_SIZE = 1 << 57


class MMUIntervalNotifierOps:
    """``struct mmu_interval_notifier_ops`` (extension contract).

    ``invalidate(sub, range, cur_seq) -> bool``: called for every
    overlapping invalidation. Must, under the driver's notifier lock, call
    ``sub.set_seq(cur_seq)`` and make sure the device no longer uses the
    range when it returns True. May sleep only if ``range.blockable``;
    otherwise return False instead of sleeping (``mmu_notifier`` R4).
    Must never allocate with direct reclaim, remove the subscription, or
    call ``read_begin``.
    """

    def invalidate(self, sub: MMUIntervalNotifier, range: MMUNotifierRange, cur_seq: int) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement invalidate(sub, range, cur_seq)")


class MMUIntervalNotifier:
    """``struct mmu_interval_notifier``: one watched interval of one mm.

    Create with :meth:`insert` (``mmu_interval_notifier_insert``). State:
    ``invalidate_seq`` (the interval's sequence, R1/R4) and ``in_tree``.
    """

    __slots__ = ("end", "in_tree", "invalidate_seq", "k", "mm", "oid", "ops", "removed", "start", "subs")

    def __init__(
        self, mm: Any, start: int, end: int, ops: MMUIntervalNotifierOps, subs: MMUNotifierSubscriptions
    ) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.mm = mm
        self.start = start
        self.end = end
        self.ops = ops
        self.subs = subs
        self.invalidate_seq = 0
        self.in_tree = False
        self.removed = False

    @classmethod
    def insert(cls, mm: Any, start: int, length: int, ops: MMUIntervalNotifierOps) -> MMUIntervalNotifier:
        """``mmu_interval_notifier_insert`` (R1)."""
        k = current_kernel()
        if length <= 0 or start < 0 or start + length > TASK_SIZE:
            raise EINVAL(f"mmu_interval_notifier_insert: bad interval start={start:#x} length={length:#x}")
        subs = subscriptions(mm, create=True, k=k)
        assert subs is not None
        if getattr(mm, "dead", False):
            raise UsageError("mmu_interval_notifier_insert on an mm that was already torn down")
        k.might_sleep("mmu_interval_notifier_insert")
        sub = cls(mm, start, start + length, ops, subs)
        k.point("mmu_interval_notifier_insert", subs.oid, True, f"[{start:#x}, {start + length:#x})")
        subs.has_itree = True
        if subs.active_invalidate_ranges:
            if subs.is_invalidating:
                subs.deferred.append((True, sub))
            else:
                subs.invalidate_seq |= 1
                subs.intervals.append(sub)
                sub.in_tree = True
            sub.invalidate_seq = subs.invalidate_seq
        else:
            sub.invalidate_seq = subs.invalidate_seq - 1
            subs.intervals.append(sub)
            sub.in_tree = True
        return sub

    def read_begin(self) -> int:
        """``mmu_interval_read_begin`` (R2): a sequence to check with :meth:`read_retry`."""
        k = self.k
        subs = self.subs
        k.might_sleep("mmu_interval_read_begin")
        k.point("mmu_interval_read_begin", self.oid, False)
        k.event("mmu_interval_read_begin", subs.oid, False)  # subscriptions->invalidate_seq, under its lock
        seq = self.invalidate_seq
        invalidating = seq == subs.invalidate_seq
        m = mmu_notifier_map()
        m.acquire()
        m.release()
        if invalidating:
            subs.wq.wait_event(lambda: subs.invalidate_seq != seq, reads=subs.oid)
        return seq

    def read_retry(self, seq: int, lock: Any = None) -> bool:
        """``mmu_interval_read_retry`` (R3): did an invalidation collide since ``read_begin``?

        ``lock`` is the driver's notifier lock; it must be held (the kernel
        documents the requirement; the model checks it).
        """
        k = self.k
        if lock is not None:
            dep_map = getattr(lock, "dep_map", lock)
            if not k.lockdep.is_held(dep_map):
                k.report(
                    "assertion",
                    "WARNING: mmu_interval_read_retry called without the notifier lock",
                    details={"lock": dep_map.name, "interval": f"[{self.start:#x}, {self.end:#x})"},
                    rule="interval_notifier R3: read_retry under the lock that invalidate holds for set_seq",
                    signature=f"read-retry-unlocked:{dep_map.name}",
                )
        k.point("mmu_interval_read_retry", self.oid, False)
        return self.invalidate_seq != seq

    def check_retry(self, seq: int) -> bool:
        """``mmu_interval_check_retry``: lockless and advisory (True is reliable, False is not)."""
        self.k.point("mmu_interval_check_retry", self.oid, False)
        return self.invalidate_seq != seq

    def set_seq(self, cur_seq: int) -> None:
        """``mmu_interval_set_seq`` (R4): from ``invalidate``, under the driver's notifier lock."""
        k = self.k
        if not cur_seq & 1:
            raise UsageError(f"mmu_interval_set_seq with an even sequence {cur_seq}: pass invalidate()'s cur_seq")
        k.point("mmu_interval_set_seq", self.oid, True)
        self.invalidate_seq = cur_seq

    def remove(self) -> None:
        """``mmu_interval_notifier_remove`` (R5)."""
        k = self.k
        subs = self.subs
        if self.removed:
            raise UsageError("mmu_interval_notifier_remove of an interval that was already removed")
        k.might_sleep("mmu_interval_notifier_remove")
        k.point("mmu_interval_notifier_remove", subs.oid, True)
        self.removed = True
        seq = 0
        if subs.is_invalidating:
            if not self.in_tree:
                subs.deferred = [(ins, s) for ins, s in subs.deferred if s is not self]
            else:
                subs.deferred.append((False, self))
                seq = subs.invalidate_seq
        else:
            subs.intervals.remove(self)
            self.in_tree = False
        m = mmu_notifier_map()
        m.acquire()
        m.release()
        if seq:
            subs.wq.wait_event(lambda: subs.invalidate_seq != seq, reads=subs.oid)

    def __repr__(self) -> str:
        return f"<MMUIntervalNotifier #{self.oid} [{self.start:#x}, {self.end:#x}) seq={self.invalidate_seq}>"
