"""Secondary MMUs on classic MMU notifiers: a lock-protected one and a counting one (KVM-style).

Two reusable subscribers of ``mm/mmu_notifier.py`` for the rows about the
notifier core and its non-blockable callers (the OOM reaper):

* :class:`LockedSecondaryMmu`: a device's page tables behind a driver mutex
  (``mn->lock``, ``svm->lock``...). Its ``invalidate_range_start`` takes the
  mutex and zaps the device's view. ``honour_blockable=False`` is the design
  from before 93065ac753e4 ("mm, oom: distinguish blockable mode for mmu
  notifiers", 2018): the mutex is taken even in a non-blockable range, i.e.
  the callback sleeps where it must not. ``honour_blockable=True`` is the
  fix: in a non-blockable range, trylock, and answer ``EAGAIN`` when busy.
* :class:`CountingSecondaryMmu`: KVM's scheme (``kvm_mmu_notifier_invalidate_range_start``
  / ``_end``, ``mmu_invalidate_in_progress`` and ``mmu_invalidate_seq``): start
  raises a count, end lowers it and bumps the sequence; a vCPU fault
  (:meth:`CountingSecondaryMmu.map`) may only install its mapping while no
  invalidation is in progress, and waits until then. It relies on every
  successful start being followed by its end.

Rules:

* R1 (``LockedSecondaryMmu``): the device view of ``[start, end)`` is dropped
  under the mutex; with ``honour_blockable`` a non-blockable range never
  sleeps: a busy mutex is answered with ``EAGAIN`` and nothing changes.
* R2 (``CountingSecondaryMmu``): ``in_progress`` counts started, not yet
  ended, ranges (under the spinlock ``mmu_lock``); ``map`` waits (``wq``)
  for ``in_progress == 0`` and installs its mapping only then.
"""

from __future__ import annotations

from ..kernel.errors import EAGAIN
from ..kernel.runtime import current_kernel
from ..kernel.wait import WaitQueue
from ..locking.mutex import Mutex
from ..locking.spinlock import SpinLock
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps
from ..mm.notifier_hooks import MmuNotifierRange


class LockedSecondaryMmu(MMUNotifierOps):
    """A device view of a process's memory behind a driver mutex (R1)."""

    def __init__(self, name: str, *, honour_blockable: bool) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.lock = Mutex(f"{name}.lock")
        self.honour_blockable = honour_blockable
        #: Pages the device may still reach (its view of the mm), by user address.
        self.mapped: set[int] = set()

    def work(self, ns: int) -> None:
        """The driver's own work under its lock (a submission, a page-table update) for ``ns`` ns."""
        with self.lock:
            self.k.nsleep(ns)

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        if not range.blockable and self.honour_blockable:
            if not self.lock.trylock():
                raise EAGAIN(f"{self.name}: busy, cannot invalidate without sleeping")
        else:
            self.lock.lock()
        try:
            self.k.point("secondary_mmu_zap", self.oid, True)
            self.mapped = {a for a in self.mapped if not range.start <= a < range.end}
        finally:
            self.lock.unlock()


class CountingSecondaryMmu(MMUNotifierOps):
    """KVM's invalidation count and sequence (R2)."""

    def __init__(self, name: str = "kvm") -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        #: ``kvm->mmu_lock``.
        self.mmu_lock = SpinLock(f"{name}.mmu_lock")
        #: ``mmu_invalidate_in_progress``.
        self.in_progress = 0
        #: ``mmu_invalidate_seq``.
        self.seq = 0
        self.wq = WaitQueue(f"{name}.invalidate_wq")
        self.mapped: set[int] = set()

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        with self.mmu_lock:
            self.k.event("mmu_invalidate_begin", self.oid, True)
            self.in_progress += 1
            self.mapped = {a for a in self.mapped if not range.start <= a < range.end}

    def invalidate_range_end(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        with self.mmu_lock:
            self.k.event("mmu_invalidate_end", self.oid, True)
            self.seq += 1
            self.in_progress -= 1
            done = self.in_progress == 0
        if done:
            self.wq.wake_up()

    def map(self, addr: int) -> None:
        """A vCPU fault: install the mapping of ``addr`` once no invalidation is in progress."""
        while True:
            self.wq.wait_event(lambda: self.in_progress == 0, reads=self.oid)
            with self.mmu_lock:
                self.k.event("mmu_invalidate_retry", self.oid, True)
                if self.in_progress == 0:  # mmu_invalidate_retry
                    self.mapped.add(addr)
                    return
