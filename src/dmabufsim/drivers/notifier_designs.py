"""Models the notifier designs argued about in the thread, on classic MMU notifiers.

Each design is a classic ``mmu_notifier`` over a process's mm that keeps a
list of userptr objects (:class:`~.userptr_common.UserptrBo`) and a plain
command submission (:meth:`ClassicUserptrDriver.submit`: look the pages up
if the object has none, reserve, bind, push the job, add its fence). They
differ only in what ``invalidate_range_start`` does:

* :class:`WaitFreeKeepSg` -- Christian's "harmless" variant (claim C3):
  wait for the object's fences without the reservation lock
  (``reservation_object_wait_timeout_rcu``), then release the pages; "the
  sg tables pointing to the now released memory might live a bit longer".
  The IOMMU entries and GPU PTEs stay until the next submission rebinds.
* :class:`ResvLockWait` -- the pre-4.16 amdgpu notifier (claim C5):
  ``amdgpu_bo_reserve`` -- a blocking ``dma_resv_lock`` -- in the notifier,
  wait, unreserve.
* :class:`ResvUnmap` -- "destroy the sg tables inside
  mmu_invalidate_range" under the reservation lock (claim C10): lock,
  wait, zap the GPU PTEs, ``dma_unmap_sg``, dirty and put the pages,
  unlock. Isolation holds; lockdep reports the "horror" Christian
  remembers: ``mmu_notifier_invalidate_range_start ->
  reservation_ww_class_mutex`` against the boot-time ``reservation_ww_class_mutex ->
  fs_reclaim -> mmu_notifier_invalidate_range_start``.

Rules:

* R1 (submission): pages are looked up before the reservation lock is
  taken (no fault under resv), the slot for the fence is reserved before
  binding, the fence is added before the lock drops. There is no sequence
  check: these designs are about what the notifier does, not about the
  lookup/use race of claim C11.
* R2 (``WaitFreeKeepSg``): after the callback the pages may be freed and
  reused while the IOMMU can still reach them (``dirty-while-mapped`` at the
  release, ``stale-mapping`` by the C15 invariant, ``dma-foreign-page`` when a
  faulty device writes later).
* R3 (``ResvLockWait``, ``ResvUnmap``): the callback blocks on the
  reservation lock: lockdep's ``circular-locking`` through ``fs_reclaim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import Device, DmaOp
from ..dma.fence import DmaFence
from ..kernel.errors import UsageError
from ..mm.memory import MmStruct
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps, MMUNotifierRange
from .userptr_common import UserptrBo


class ClassicUserptrDriver(MMUNotifierOps):
    """A driver's classic notifier over ``mm`` with its userptr objects (R1); subclasses say what it does."""

    #: One line naming the design (reports, docs).
    design = "classic"

    def __init__(self, dev: Device, mm: MmStruct) -> None:
        self.dev = dev
        self.mm = mm
        self.objects: list[UserptrBo] = []
        self.sub = MMUNotifier(self)
        self.sub.register(mm)

    def add(self, bo: UserptrBo) -> UserptrBo:
        if bo.mm is not self.mm:
            raise UsageError("the userptr object belongs to another mm")
        self.objects.append(bo)
        return bo

    def submit(self, bo: UserptrBo, ops: Sequence[DmaOp], **job: Any) -> DmaFence:
        """Command submission naming ``bo`` (R1)."""
        bo.k.event("userptr_peek_bound", bo.oid, False)  # a lockless look before get_user_pages
        valid = bo.bound and bool(bo.pages)
        fresh = bo.gup() if not valid else None
        bo.resv.lock(None)
        try:
            bo.reserve_fence()
            if fresh is not None:
                if bo.bound and bo.pages:  # another submission rebound it meanwhile
                    bo.release_pages(fresh, dirty=False)
                else:
                    bo.unbind()
                    if bo.pages is not None:
                        bo.release_pages()
                    bo.bind(fresh)
            fence = bo.dev.submit(list(ops), **job)
            bo.add_fence(fence)
        finally:
            bo.resv.unlock()
        return fence

    def destroy(self, bo: UserptrBo) -> None:
        """Close ``bo``: forget it, then wait, unbind and release under its reservation lock."""
        self.objects.remove(bo)
        bo.resv.lock(None)
        try:
            bo.destroy_pages()
        finally:
            bo.resv.unlock()

    def invalidate_range_start(self, sub: MMUNotifier, range: MMUNotifierRange) -> None:
        for bo in [b for b in self.objects if range.overlaps(b.start, b.end)]:
            self.invalidate_bo(bo)

    def invalidate_bo(self, bo: UserptrBo) -> None:
        raise NotImplementedError(f"{type(self).__name__} must say what its notifier does to an object")


class WaitFreeKeepSg(ClassicUserptrDriver):
    """C3: lockless wait, release the pages, keep the sg table / IOMMU entries / GPU PTEs (R2)."""

    design = "wait, free, keep sg"

    def invalidate_bo(self, bo: UserptrBo) -> None:
        bo.wait_idle()
        if bo.pages is not None:
            bo.k.event("userptr_release_pages", bo.oid, True)
            pages, bo.pages = bo.pages, []  # the sg table still lists them
            bo.release_pages(pages)


class ResvLockWait(ClassicUserptrDriver):
    """C5 (pre-4.16 amdgpu): ``amdgpu_bo_reserve`` in the notifier, wait, unreserve (R3)."""

    design = "blocking reservation lock in the notifier"

    def invalidate_bo(self, bo: UserptrBo) -> None:
        bo.resv.lock(None)
        try:
            bo.wait_idle()
        finally:
            bo.resv.unlock()


class ResvUnmap(ClassicUserptrDriver):
    """C10: under the reservation lock, wait, zap, ``dma_unmap_sg``, dirty and put (R3)."""

    design = "unmap under the reservation lock in the notifier"

    def invalidate_bo(self, bo: UserptrBo) -> None:
        bo.resv.lock(None)
        try:
            bo.destroy_pages()
        finally:
            bo.resv.unlock()
