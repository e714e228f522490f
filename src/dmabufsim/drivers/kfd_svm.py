"""A kfd-like shared-virtual-memory range: an interval notifier whose deferred work pins the mm.

Models the part of ``drivers/gpu/drm/amd/amdkfd/kfd_svm.c`` that keeps a
GPU mapping of a process's address range coherent
(``svm_range_cpu_invalidate_pagetables``, ``svm_rangeadd_list_work``,
``svm_range_deferred_list_work``) and the part of ``kfd_process.c`` that
ties the kfd process to the mm (``kfd_process_notifier_release``).

Rules:

* K1 (the kfd process): a reference-counted object (a tracked ``kref``:
  ``kfd_process_ref_release``), whose reference is dropped by the mm's
  ``mmu_notifier`` ``release`` when ``exit_mmap`` runs. A process whose mm
  is never torn down keeps it, and with it the GPU memory: a ``leak`` at
  the end of a completed execution.
* K2 (the callback, ``svm_range_cpu_invalidate_pagetables``): returns at
  once for ``RELEASE``; otherwise, under the range's mutex
  (``svm_range_lock``), sets the interval's sequence, and for an ``UNMAP``
  (``svm_range_unmap_from_cpu``) puts the range on the deferred list
  (``svm_rangeadd_list_work``) and schedules the deferred work; other
  events evict the range (its GPU mapping goes; nothing to defer).
* K3 (who holds the mm, :data:`MM_DESIGNS`): ``mmput-in-callback``
  (fa582c6f3684, "drm/amdkfd: Use mmget_not_zero in MMU notifier", 2021):
  the callback pins the mm with ``mmget_not_zero`` for its whole run and
  drops it with ``mmput`` at the end; queueing takes a plain ``mmget``
  (the callback holds one). ``mmget-when-queueing`` (Philip Yang, "drm/amdkfd:
  Don't call mmput from MMU notifier callback", 2025): the callback takes
  no mm reference; queueing takes ``mmget_not_zero`` and drops the range
  when the mm is already going away.
* K4 (the deferred work, ``svm_range_deferred_list_work``): a work item in
  process context: takes each range off the list under
  ``deferred_list_lock``, handles it under ``mmap_lock`` for write, then
  ``mmput``\\ s the reference queueing took.
"""

from __future__ import annotations

from typing import Any

from ..kernel.errors import UsageError
from ..kernel.lifetime import Kref
from ..kernel.runtime import current_kernel
from ..kernel.workqueue import Workqueue, WorkStruct
from ..locking.mutex import Mutex
from ..locking.spinlock import SpinLock
from ..mm.mmu_notifier import MMUIntervalNotifier, MMUIntervalNotifierOps, MMUNotifier, MMUNotifierOps, MMUNotifierRange
from ..mm.notifier_hooks import MmuNotifyEvent

#: Who pins the mm around the deferred work (K3).
MM_DESIGNS = ("mmput-in-callback", "mmget-when-queueing")


class _ProcessNotifier(MMUNotifierOps):
    """``kfd_process_mmu_notifier_ops``: its ``release`` drops the kfd process (K1)."""

    def __init__(self, svm: KfdSvm) -> None:
        self.svm = svm

    def release(self, sub: MMUNotifier, mm: Any) -> None:
        """``kfd_process_notifier_release``."""
        self.svm.process.put()


class KfdSvm(MMUIntervalNotifierOps):
    """One kfd process with one SVM range ``[start, start + length)`` of ``mm`` (K1-K4)."""

    def __init__(self, mm: Any, start: int, length: int, *, design: str, wq: Workqueue) -> None:
        if design not in MM_DESIGNS:
            raise UsageError(f"unknown kfd mm design {design!r}; known: {list(MM_DESIGNS)}")
        self.k = current_kernel()
        self.mm = mm
        self.design = design
        self.wq = wq
        #: ``struct kfd_process`` (K1): the mmu_notifier's release drops the reference.
        self.process = Kref("kfd_process", track=True)
        #: ``prange->lock`` (K2).
        self.range_lock = Mutex("&prange->lock")
        #: ``svms->deferred_list_lock`` and ``deferred_range_list`` (K4): (op, mm) entries.
        self.deferred_list_lock = SpinLock("&svms->deferred_list_lock")
        self.deferred: list[tuple[str, Any]] = []
        self.work = WorkStruct(self._deferred_list_work, "svm_range_deferred_list_work")
        self.notifier = MMUNotifier(_ProcessNotifier(self))
        self.notifier.register(mm)
        self.sub = MMUIntervalNotifier.insert(mm, start, length, self)

    # ------------------------------------------------------------------ K2, K3

    def invalidate(self, sub: MMUIntervalNotifier, range: MMUNotifierRange, cur_seq: int) -> bool:
        """``svm_range_cpu_invalidate_pagetables`` (K2, by design K3)."""
        if range.event == MmuNotifyEvent.RELEASE:
            return True
        mm = self.mm
        if self.design == "mmput-in-callback" and not mm.mmget_not_zero():
            return True
        self.range_lock.lock()  # svm_range_lock(prange)
        try:
            sub.set_seq(cur_seq)
            if range.event == MmuNotifyEvent.UNMAP:
                self.add_list_work("unmap")  # svm_range_unmap_from_cpu
        finally:
            self.range_lock.unlock()
        if self.design == "mmput-in-callback":
            mm.mmput()  # may be the last user: exit_mmap runs here, inside the invalidation
        return True

    def add_list_work(self, op: str) -> None:
        """``svm_rangeadd_list_work`` + ``schedule_deferred_list_work`` (K3)."""
        mm = self.mm
        self.deferred_list_lock.lock()
        try:
            if self.design == "mmput-in-callback":
                mm.mmget()  # the callback holds a user: a plain get is safe
            elif not mm.mmget_not_zero():
                return  # the process is exiting: nothing to update
            self.deferred.append((op, mm))
        finally:
            self.deferred_list_lock.unlock()
        self.wq.queue_work(self.work)

    # ------------------------------------------------------------------ K4

    def _deferred_list_work(self, work: WorkStruct) -> None:
        """``svm_range_deferred_list_work``: in a kworker, with the reference queueing took."""
        while True:
            self.deferred_list_lock.lock()
            entry = self.deferred.pop(0) if self.deferred else None
            self.deferred_list_lock.unlock()
            if entry is None:
                return
            _op, mm = entry
            mm.mmap_lock.down_write()  # svm_range_handle_list_op under mmap_write_lock
            mm.mmap_lock.up_write()
            mm.mmput()  # pairs with the get of svm_rangeadd_list_work
