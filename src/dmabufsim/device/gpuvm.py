"""GPU virtual memory: the device's own page tables in front of the IOMMU.

Models a GPU VM (``amdgpu_vm.c``, ``i915_gem_gtt.c`` / PPGTT, ``drm_gpuvm``)
reduced to what isolation depends on: GPU VA -> device address (IOVA)
entries, zapping them, and the GPU TLB that keeps serving a zapped entry
until it is flushed.

Rules:

* R1 (translation): a job's access to a GPU VA uses the GPU TLB, else the
  page table (a hit fills the TLB). No entry is a GPU page fault
  (``iommu-fault`` kind, title "GPU VM fault": the access does nothing).
* R2 (zap): ``zap`` removes PTEs; until ``flush_tlb`` the GPU may still
  use cached translations of the zapped range -- a driver that zaps and
  then frees without flushing leaves a window (claims C13/C14).
* R3 (persistence): entries stay until zapped; a mapping made once is
  reachable by any later job of the VM, whichever buffers it names
  (claim C13's "the VM mapping is persistent").
* R4 (usage): mapping a GPU VA already mapped raises ``EBUSY``; unaligned
  addresses raise ``EINVAL``.
"""

from __future__ import annotations

from ..kernel.errors import EBUSY, EINVAL
from ..kernel.runtime import Kernel, current_kernel
from ..mm.page import PAGE_SHIFT, PAGE_SIZE


class GpuPte:
    """One GPU page-table entry: the device address it points at and its write bit."""

    __slots__ = ("iova", "writable")

    def __init__(self, iova: int, writable: bool) -> None:
        self.iova = iova
        self.writable = writable


class GpuVm:
    """A GPU address space (one per device here; drivers may create more)."""

    def __init__(self, name: str) -> None:
        self.k: Kernel = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        #: GPU VA page number -> PTE.
        self.ptes: dict[int, GpuPte] = {}
        #: GPU TLB: VA page number -> cached PTE (may outlive a zap until flush).
        self.tlb: dict[int, GpuPte] = {}
        self.nr_flushes = 0

    def __repr__(self) -> str:
        return f"<GpuVm {self.name} {len(self.ptes)} ptes>"

    def map(self, va: int, iova: int, writable: bool = True, npages: int = 1) -> None:
        """Write PTEs mapping ``npages`` pages at ``va`` to consecutive device addresses (R4)."""
        if va & (PAGE_SIZE - 1) or iova & (PAGE_SIZE - 1):
            raise EINVAL(f"GpuVm.map: unaligned va {va:#x} / iova {iova:#x}")
        self.k.point("gpuvm_map", self.oid, True, f"{va:#x}")
        v0 = va >> PAGE_SHIFT
        for i in range(npages):
            if v0 + i in self.ptes:
                raise EBUSY(f"GpuVm.map: va {(v0 + i) << PAGE_SHIFT:#x} already mapped in {self.name}")
        for i in range(npages):
            self.ptes[v0 + i] = GpuPte(iova + (i << PAGE_SHIFT), writable)

    def zap(self, va: int, npages: int = 1) -> int:
        """Clear PTEs (the TLB is not flushed: R2). Returns the number cleared."""
        if va & (PAGE_SIZE - 1):
            raise EINVAL(f"GpuVm.zap: unaligned va {va:#x}")
        self.k.point("gpuvm_zap", self.oid, True, f"{va:#x}")
        n = 0
        v0 = va >> PAGE_SHIFT
        for v in range(v0, v0 + npages):
            if self.ptes.pop(v, None) is not None:
                n += 1
        return n

    def flush_tlb(self) -> None:
        """Invalidate the GPU TLB (R2)."""
        self.k.point("gpuvm_flush_tlb", self.oid, True)
        self.nr_flushes += 1
        self.tlb.clear()

    def zap_and_flush(self, va: int, npages: int = 1) -> int:
        """``zap`` then ``flush_tlb``: after return the GPU cannot use the range."""
        n = self.zap(va, npages)
        self.flush_tlb()
        return n

    def lookup(self, va: int) -> GpuPte | None:
        """The PTE a GPU access to ``va`` uses (TLB, then page table), or None (R1).

        The step reads the VM, and writes it when it fills the TLB."""
        v = va >> PAGE_SHIFT
        pte = self.tlb.get(v)
        if pte is None:
            pte = self.ptes.get(v)
            if pte is not None:
                self.k.event("gpuvm_tlb_fill", self.oid, True)
                self.tlb[v] = pte
                return pte
        self.k.event("gpuvm_lookup", self.oid, False)
        return pte

    def translate(self, va: int) -> int | None:
        """Device address for GPU VA ``va`` (TLB, then PTE), or None: a GPU fault (R1)."""
        v = va >> PAGE_SHIFT
        pte = self.tlb.get(v)
        if pte is None:
            pte = self.ptes.get(v)
            if pte is None:
                self.k.event("gpuvm_lookup", self.oid, False)
                return None
            self.k.event("gpuvm_tlb_fill", self.oid, True)
            self.tlb[v] = pte
        else:
            self.k.event("gpuvm_lookup", self.oid, False)
        return pte.iova | (va & (PAGE_SIZE - 1))

    def stale_tlb_entries(self) -> int:
        """TLB entries whose PTE was zapped (what a flush would drop)."""
        return sum(1 for v, pte in self.tlb.items() if self.ptes.get(v) is not pte)
