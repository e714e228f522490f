"""Shared virtual addressing: a device bound to a process's mm through a PASID.

Models ``iommu_sva_bind_device`` / ``iommu_sva_unbind_device``
(``drivers/iommu/iommu-sva.c``), the SVA domain of an IOMMU that walks the
*CPU* page table for a PASID, the device's ATS translation cache (the
"device IOTLB"), page requests (PRI, ``iommu_sva_handle_iopf``) and the
mmu_notifier the IOMMU driver registers to keep that cache coherent
(``intel_mm_ops``, ``arm_smmu_mmu_notifier_ops``,
``amd_iommu_v2``'s ``iommu_mn``).

Rules:

* R1 (walk): a device access at user address ``va`` under the bond's PASID
  uses the IOTLB; on a miss the IOMMU walks the mm's page table (an ATS
  translation request); a present PTE fills the IOTLB with the frame and
  the write bit. No present PTE (or a read-only one for a write): a page
  request (PRI) -- the fault is handled like a CPU fault
  (``mmap_read_lock``, ``handle_mm_fault``) on the accessing thread, and the
  walk is tried again; a fault the mm refuses is an ``iommu-fault``
  (info, "the device got an error response") and the access does nothing.
* R2 (reachability): every IOTLB entry is a :class:`DmaMapping` with
  ``ats=True``, listed in its frame's ``dev_maps``: the isolation checker
  judges every access through it (``dma-freed-page``,
  ``dma-foreign-page``, ``user-incoherence``) and a frame freed while an
  entry can still reach it is ``dirty-while-mapped``.
* R3 (when the IOTLB is flushed): the hardware can refill the IOTLB at any
  time while a PTE is present, so only a flush *after* the PTE is cleared
  and *before* the page is freed is coherent: ``flush="secondary_tlbs"``
  flushes the range in ``arch_invalidate_secondary_tlbs`` (the kernel
  since 3.19, named so since 6.6). ``flush="range_start"`` flushes in
  ``invalidate_range_start`` only (the IOTLB refills in the window before
  the PTE is cleared), ``flush="range_end"`` in ``invalidate_range_end``
  only (after the page was freed): both are the bug the hook was added for.
* R4 (release, unbind): ``release`` (``exit_mmap``) and ``unbind`` flush the
  whole IOTLB; after either, an access gets an error response
  (``iommu-fault``) and touches nothing.
"""

from __future__ import annotations

from typing import Any

from ..kernel.errors import EFAULT, UsageError
from ..mm.memory import PTE_PRESENT, MmStruct
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps
from ..mm.notifier_hooks import MmuNotifierRange
from ..mm.page import PAGE_SHIFT, PAGE_SIZE
from .device import Device
from .iommu import DmaMapping, IommuDomain

#: The IOTLB flush policies of R3.
SVA_FLUSH_POLICIES = ("secondary_tlbs", "range_start", "range_end")


class IommuSva(MMUNotifierOps):
    """``struct iommu_sva``: one device bound to one mm under one PASID (R1-R4).

    Create with :func:`iommu_sva_bind_device`. ``dma_write`` / ``dma_read``
    are the device's accesses at user addresses. Counters: ``nr_walks``
    (IOTLB misses), ``nr_iopf`` (page requests), ``nr_flushes``.
    """

    def __init__(self, dev: Device, mm: MmStruct, pasid: int, flush: str) -> None:
        if flush not in SVA_FLUSH_POLICIES:
            raise UsageError(f"iommu_sva_bind_device: flush must be one of {SVA_FLUSH_POLICIES}, got {flush!r}")
        self.dev = dev
        self.mm = mm
        self.k = dev.k
        self.pasid = pasid
        self.flush = flush
        #: The SVA domain (``IOMMU_DOMAIN_SVA``): names the IOTLB entries in reports.
        self.domain = IommuDomain(f"{dev.name}/pasid{pasid}")
        #: The device IOTLB (ATS): user page number -> cached translation.
        self.iotlb: dict[int, DmaMapping] = {}
        self.bound = True
        self.nr_walks = 0
        self.nr_iopf = 0
        self.nr_flushes = 0
        self.notifier = MMUNotifier(self)

    def __repr__(self) -> str:
        return f"<IommuSva {self.dev.name} pasid={self.pasid} {self.mm.name} {len(self.iotlb)} cached>"

    # ------------------------------------------------------------------ the IOTLB

    def _flush(self, start: int, end: int) -> None:
        """Invalidate the IOTLB entries of ``[start, end)`` (an ATS invalidation, completed)."""
        k = self.k
        k.point("sva_iotlb_flush", self.domain.oid, True, f"{start:#x}")
        self.nr_flushes += 1
        lo, hi = start >> PAGE_SHIFT, (end + PAGE_SIZE - 1) >> PAGE_SHIFT
        iotlb = self.iotlb
        for vpn in sorted(v for v in iotlb if lo <= v < hi):
            self.domain._drop(iotlb.pop(vpn))

    # ------------------------------------------------------------------ mmu_notifier_ops (R3, R4)

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        if self.flush == "range_start":
            self._flush(range.start, range.end)

    def invalidate_range_end(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        if self.flush == "range_end":
            self._flush(range.start, range.end)

    def arch_invalidate_secondary_tlbs(self, sub: MMUNotifier, mm: Any, start: int, end: int) -> None:
        """``arch_invalidate_secondary_tlbs``: the PTEs are gone, the pages not yet freed (R3)."""
        if self.flush == "secondary_tlbs":
            self._flush(start, end)

    def release(self, sub: MMUNotifier, mm: Any) -> None:
        """``release``: the mm is torn down; the PASID's translations stop (R4)."""
        self.bound = False
        self._flush(0, 1 << 57)
        mm.pt_walkers -= 1

    # ------------------------------------------------------------------ device accesses (R1, R2)

    def _iopf(self, va: int, write: bool) -> bool:
        """``iommu_sva_handle_iopf``: service a page request. False: the device gets an error response."""
        self.nr_iopf += 1
        mm = self.mm
        mm.mmap_lock.down_read()
        try:
            mm.handle_mm_fault(va, write)
        except EFAULT:
            return False
        finally:
            mm.mmap_lock.up_read()
        return True

    def _translate(self, va: int, write: bool) -> DmaMapping | None:
        k = self.k
        vpn = va >> PAGE_SHIFT
        while True:
            k.point("sva_dma", self.domain.oid, True, f"{va:#x}")
            if not self.bound:
                return None
            rec = self.iotlb.get(vpn)
            if rec is not None and (rec.writable or not write):
                return rec
            # An ATS translation request: the IOMMU walks the CPU page table.
            self.nr_walks += 1
            mm = self.mm
            k.event("sva_walk", mm.oid, False)
            pte = mm.ptes.get(vpn)
            if pte is not None and pte.swp == PTE_PRESENT and (pte.writable or not write):
                if rec is not None:
                    self.domain._drop(self.iotlb.pop(vpn))
                k.event("sva_iotlb_fill", pte.page.oid, True)  # the frame's device mappings, written
                rec = DmaMapping(self.domain, vpn << PAGE_SHIFT, pte.page, pte.writable)
                rec.ats = True
                rec.user_mm, rec.user_va = mm, vpn << PAGE_SHIFT
                rec.user_ptes, rec.user_vpn = mm.ptes, vpn
                pte.page.dev_maps.append(rec)
                self.iotlb[vpn] = rec
                return rec
            if not self._iopf(va, write):
                return None

    def _access(self, va: int, write: bool, value: object) -> object:
        dev = self.dev
        rec = self._translate(va, write)
        dev.nr_accesses += 1
        if rec is None:
            dev._fault("IOMMU", va, va, write, None, False, "PASID page request failed")
            return None
        chk = dev._chk
        page = rec.page
        if chk is not None:
            self.k.event("dma_isolation_check", page.oid, False)  # page R7: the frame's bookkeeping, read
            if not chk.check(rec, write):
                chk.judge(dev, rec, write, va, va, None, False)
        if write:
            page.write(va & (PAGE_SIZE - 1), value)
            return None
        return page.read(va & (PAGE_SIZE - 1))

    def dma_write(self, va: int, value: object) -> None:
        """The device writes ``value`` at user address ``va`` under this PASID (R1, R2)."""
        self._access(va, True, value)

    def dma_read(self, va: int) -> object:
        """The device reads user address ``va`` under this PASID (None on an error response)."""
        return self._access(va, False, None)

    def unbind(self) -> None:
        """``iommu_sva_unbind_device`` (R4): flush, unregister the notifier, free the PASID."""
        if not self.bound and not self.notifier.registered:
            self.iotlb.clear()
            return
        self.bound = False
        self._flush(0, 1 << 57)
        self.notifier.unregister()
        self.mm.pt_walkers -= 1


def iommu_sva_bind_device(dev: Device, mm: MmStruct, *, flush: str = "secondary_tlbs") -> IommuSva:
    """``iommu_sva_bind_device``: bind ``dev`` to ``mm`` (a new PASID, the IOMMU driver's notifier)."""
    k = dev.k
    pasids: dict[str, int] = k.ext.setdefault("iommu.sva_pasids", {})
    pasid = pasids.get(dev.name, 0) + 1
    pasids[dev.name] = pasid
    sva = IommuSva(dev, mm, pasid, flush)
    mm.mmap_lock.down_write()
    try:
        sva.notifier.register(mm)
        mm.pt_walkers += 1
    finally:
        mm.mmap_lock.up_write()
    return sva
