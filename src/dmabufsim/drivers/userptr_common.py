"""Models the parts every userptr driver shares: the buffer object and its four primitives.

A *userptr* object (``DRM_IOCTL_AMDGPU_GEM_USERPTR``,
``DRM_IOCTL_I915_GEM_USERPTR``) lets a GPU use a range of a process's
anonymous memory. Whatever the design, a driver does the same four things
with it; what differs between the designs of the seed thread is *when* and
*under which lock* it does them, and whether an MMU notifier makes it undo
them:

1. :meth:`UserptrBo.gup`: ``get_user_pages(FOLL_WRITE)`` under
   ``mmap_read_lock`` -- references to the pages the process maps now;
2. :meth:`UserptrBo.bind`: ``dma_map_sg`` through the device's IOMMU and
   GPU page-table entries at the object's GPU VA (``amdgpu_ttm_backend_bind``,
   ``i915_vma_bind``);
3. :meth:`UserptrBo.unbind`: zap the GPU PTEs, flush the GPU TLB and
   ``dma_unmap_sg`` with an IOTLB sync;
4. :meth:`UserptrBo.release_pages`: ``set_page_dirty`` (for a writable
   object) + ``mark_page_accessed`` + ``put_page``.

Jobs that name the object add their fence to its reservation object
(:meth:`UserptrBo.add_fence`), so invalidations and teardown can wait for
them.

Rules:

* R1 (no fault under resv): ``gup`` takes ``mmap_lock``; it must not be
  called holding a reservation lock (the primed order is ``mmap_lock ->
  reservation_ww_class_mutex``; lockdep reports the inversion).
* R2 (bind): binding maps every page through the IOMMU, then points the
  GPU VA at it; the object then holds the page references until
  :meth:`release_pages` (the primitives never drop them on their own).
  Each IOMMU entry records that it was made *for the object's process at
  the object's address*: a page that copy-on-write already gave to another
  process is then judged as that process's page (``dma-foreign-page``).
* R3 (unbind before release, claim C14): after :meth:`unbind` no device
  can reach the pages (PTEs zapped, GPU TLB and IOTLB flushed);
  :meth:`release_pages` on pages still reachable is what the isolation
  checker reports as ``dirty-while-mapped``.
* R4 (fences): :meth:`reserve_fence` (which may allocate) then
  :meth:`add_fence`, both with the reservation lock held; the fence is
  added as ``BOOKKEEP`` (every waiter of the object waits for it).
* R5 (teardown): :meth:`destroy_pages` waits for every fence, unbinds,
  releases the pages; a destroyed object leaves nothing behind for the
  leak check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import Device, DmaOp
from ..dma.fence import DmaFence
from ..dma.resv import DmaResv, DmaResvUsage
from ..kernel.errors import UsageError
from ..kernel.runtime import current_kernel
from ..mm.gup import FOLL_NONE, FOLL_WRITE, get_user_pages
from ..mm.memory import MmStruct
from ..mm.page import PAGE_SHIFT, PAGE_SIZE, Page

#: Where the model's drivers put userptr objects in the GPU address space.
GPU_VA_BASE = 0x4000_0000


class UserptrBo:
    """A userptr GEM object: ``[start, start + npages * PAGE_SIZE)`` of ``mm`` at ``gpu_va`` on ``dev``.

    State: ``pages`` (the page references held, or None), ``bound`` (IOMMU
    entries and GPU PTEs exist for ``pages``), ``resv`` (job fences).
    Invariant: ``bound`` implies ``pages is not None``.
    """

    __slots__ = ("bound", "dev", "gpu_va", "helper_teardowns", "k", "mm", "name", "npages", "oid", "pages",
                 "resv", "start", "writable")

    def __init__(self, dev: Device, mm: MmStruct, start: int, npages: int, *, gpu_va: int | None = None,
                 writable: bool = True, name: str = "userptr") -> None:
        if start & (PAGE_SIZE - 1) or npages <= 0:
            raise UsageError(f"a userptr needs a page-aligned start and npages > 0, got {start:#x}, {npages}")
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.dev = dev
        self.mm = mm
        self.start = start
        self.npages = npages
        self.gpu_va = gpu_va if gpu_va is not None else GPU_VA_BASE + start
        self.writable = writable
        self.name = name
        self.resv = DmaResv(f"{name}.resv")
        self.pages: list[Page] | None = None
        self.bound = False
        #: Teardowns that went through the shared helper (claim C16 counts them).
        self.helper_teardowns = 0

    def __repr__(self) -> str:
        state = "bound" if self.bound else ("pages" if self.pages is not None else "empty")
        return f"<UserptrBo {self.name} [{self.start:#x}+{self.npages}p] {state}>"

    @property
    def end(self) -> int:
        return self.start + self.npages * PAGE_SIZE

    # ------------------------------------------------------------------ the four primitives

    def gup(self) -> list[Page]:
        """``get_user_pages`` of the whole range under ``mmap_read_lock`` (R1). Raises EFAULT."""
        mm = self.mm
        mm.mmap_lock.down_read()
        try:
            return get_user_pages(mm, self.start, self.npages, FOLL_WRITE if self.writable else FOLL_NONE)
        finally:
            mm.mmap_lock.up_read()

    def bind(self, pages: Sequence[Page]) -> None:
        """``dma_map_sg`` + GPU PTEs for ``pages`` at ``gpu_va`` (R2)."""
        if self.bound:
            raise UsageError(f"{self.name}: bind while already bound")
        self.k.point("userptr_bind", self.oid, True, self.name)
        self.pages = list(pages)
        recs = self.dev.map_pages(self.gpu_va, self.pages, self.writable, mm=self.mm)
        # The driver maps the pages *for this process at these addresses* (iommu R6): that is
        # what the isolation checker must judge later accesses against, even when
        # copy-on-write moved a page to another owner before the bind.
        for i, rec in enumerate(recs):
            self.k.event("userptr_bind", rec.page.oid, True)  # the frame's device mapping, labelled
            rec.user_mm = self.mm
            rec.user_va = va = self.start + i * PAGE_SIZE
            rec.user_ptes, rec.user_vpn = object.__getattribute__(self.mm, "ptes"), va >> PAGE_SHIFT
        self.k.event("userptr_bind", self.oid, True)  # after the mapping's points: this step binds it
        self.bound = True

    def unbind(self) -> None:
        """Zap the GPU PTEs, flush the GPU TLB, ``dma_unmap_sg`` with IOTLB sync (R3)."""
        if not self.bound:
            return
        self.k.point("userptr_unbind", self.oid, True, self.name)
        self.dev.unmap_pages(self.gpu_va, self.npages, flush=True)
        self.k.event("userptr_unbind", self.oid, True)  # after the unmapping's points: this step unbinds it
        self.bound = False

    def release_pages(self, pages: Sequence[Page] | None = None, *, dirty: bool | None = None) -> None:
        """``set_page_dirty`` (writable objects) + ``mark_page_accessed`` + ``put_page`` (R3).

        Without ``pages``, releases the object's own pages (and forgets them).
        """
        if pages is None:
            self.k.event("userptr_release_pages", self.oid, True)
            pages = self.pages or []
            self.pages = None
        make_dirty = self.writable if dirty is None else dirty
        for p in pages:
            if make_dirty:
                p.set_dirty()
            p.mark_accessed()
            p.put()

    # ------------------------------------------------------------------ jobs

    def job_ops(self, value: object, pages: Sequence[int] | None = None) -> list[DmaOp]:
        """DMA ops writing ``value`` at offset 0 of each page (or of ``pages``) through the GPU VA."""
        idx = range(self.npages) if pages is None else pages
        return [("write", self.gpu_va + i * PAGE_SIZE, value) for i in idx]

    def reserve_fence(self) -> None:
        """``dma_resv_reserve_fences(resv, 1)`` (may allocate: before any lock taken in reclaim)."""
        self.resv.reserve_fences(1)

    def add_fence(self, fence: DmaFence, usage: DmaResvUsage = DmaResvUsage.BOOKKEEP) -> None:
        """Publish a job fence in ``resv`` (R4): the reservation lock is held, a slot reserved."""
        self.resv.add_fence(fence, usage)

    def bind_looked_up(self, fresh: Sequence[Page] | None) -> None:
        """Bind ``fresh``, pages looked up before the locks were taken, unless
        another submission bound the range meanwhile: then give them back
        (not dirtied). ``None``: nothing was looked up."""
        if fresh is None:
            return
        if self.pages is None:
            self.bind(fresh)
        else:
            self.release_pages(fresh, dirty=False)

    def submit_fenced(self, ops: Sequence[DmaOp], **job: Any) -> DmaFence:
        """Queue a job of ``ops`` on the object's device and publish its fence (R4:
        reservation lock held, slot reserved)."""
        fence = self.dev.submit(list(ops), **job)
        self.add_fence(fence)
        return fence

    def wait_idle(self) -> None:
        """``dma_resv_wait_timeout(BOOKKEEP, uninterruptible, forever)``: lockless wait for every job."""
        self.resv.wait_timeout(DmaResvUsage.BOOKKEEP, False, None)

    def destroy_pages(self) -> None:
        """Wait idle, unbind, release (R5): the safe teardown every design uses at close."""
        self.wait_idle()
        self.unbind()
        if self.pages is not None:
            self.release_pages()
