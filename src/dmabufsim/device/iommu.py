"""IOMMU domains: what a device may reach, and the IOTLB that remembers.

Models ``drivers/iommu/iommu.c`` (``iommu_map``, ``iommu_unmap``,
``iommu_unmap_fast`` + ``iommu_iotlb_sync``, ``iommu_flush_iotlb_all``,
``iommu_iova_to_phys``), the DMA API on top of it (``dma_map_page``,
``dma_map_sg``, ``dma_unmap_*`` in ``kernel/dma/``) and passthrough
(identity) domains.

Rules:

* R1 (translation): a device address (IOVA) reaches a frame only through
  an entry of its domain: first the IOTLB, then the page table (a hit in
  the page table fills the IOTLB). No entry: the access is an IOMMU fault
  (``iommu-fault``, severity info: isolation held) and does nothing. A write
  through a read-only entry faults the same way.
* R2 (IOTLB): ``unmap(..., sync=False)`` (``iommu_unmap_fast``) removes
  the page-table entry but an IOTLB entry filled earlier keeps translating
  until ``flush_iotlb`` (``iommu_iotlb_sync`` / ``iommu_flush_iotlb_all``);
  ``unmap`` with ``sync=True`` (the default, ``iommu_unmap``) flushes the
  range. ``map`` over an IOVA whose stale IOTLB entry survives does not
  hide the stale entry: devices see the old frame until the flush.
* R3 (reachability): every entry a device can still use (page table or
  IOTLB) is listed in its frame's ``dev_maps``; the frame's owner and
  generation are recorded at map time so the isolation checker can tell a
  stale entry from a live one.
* R4 (passthrough): a passthrough domain (``iommu=False`` device, or
  ``iommu.passthrough``) translates every address to the frame of the same
  physical address: ``dma_map_page`` returns ``page_to_phys`` and records
  the mapping for the checker, but an unmapped address still reaches RAM --
  nothing is isolated.
* R6 (for whom): a driver mapping a user page may say which address space
  the mapping is for (``mm=``: the process whose range it mirrors; the
  kernel's ``iommu_map`` is not told, the checker is). The entry then
  records that mm and the address it maps the frame at, even when the frame
  is copy-on-write shared and owned by another process (after ``fork``, the
  parent, memory R3), so the isolation checker judges an access by that
  process: the frame is its while it maps it (``isolation`` R2). Without
  ``mm`` the entry is for the frame's owner at map time.
* R5 (usage): mapping an IOVA that the page table already maps raises
  ``EBUSY`` (``-EEXIST`` in the kernel); unaligned addresses raise
  ``EINVAL``; unmapping an unmapped IOVA returns 0 pages unmapped. Mapping
  a free frame is a driver bug: an ``assertion`` finding, and the mapping
  is made so that accesses through it are judged (``dma-freed-page``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..kernel.errors import EBUSY, EINVAL
from ..kernel.runtime import Kernel, current_kernel
from ..mm.memory import MmStruct
from ..mm.page import PAGE_SHIFT, PAGE_SIZE, Page, PageAllocator, page_allocator

#: First IOVA the domain's DMA-API allocator hands out (0 stays unmapped to catch NULL DMA).
IOVA_BASE = 0x1_0000_0000

MAPPED = 0  #: in the page table (and maybe the IOTLB)
STALE = 1  #: unmapped, but an IOTLB entry still translates to it
GONE = 2  #: unreachable


class DmaMapping:
    """One IOMMU page-table entry: IOVA page -> frame, as it was when mapped.

    ``owner``/``gen`` are the frame's owner and generation at map time;
    ``user_mm``/``user_va`` the user address the frame was mapped at in its
    owner's address space (a userptr), found through the frame's rmap --
    or, when the driver said which address space the mapping is for
    (``mm``, R6), in that one.
    """

    __slots__ = ("ats", "domain", "gen", "iova", "mm", "owner", "page", "state", "user_mm", "user_ptes", "user_va",
                 "user_vpn", "writable")

    def __init__(self, domain: IommuDomain, iova: int, page: Page, writable: bool,
                 mm: MmStruct | None = None) -> None:
        self.domain = domain
        self.iova = iova
        self.page = page
        self.writable = writable
        self.owner = page.owner
        self.gen = page.gen
        #: The address space the mapping is for, when the driver said (R6); else None.
        self.mm = mm
        self.user_mm: MmStruct | None = None
        self.user_va = 0
        #: The user mapping's page table and page number, for the checker's hot path.
        self.user_ptes: dict[int, Any] | None = None
        self.user_vpn = 0
        whose = mm if mm is not None else page.owner
        if isinstance(whose, MmStruct):
            for m, va in page.rmap:
                if m is whose:
                    self.user_mm, self.user_va = m, va
                    # The isolation checker's handle on the page table, not a read of its entries:
                    # taken past the access checker (accesses A3), which would count the table's
                    # later changes as this step's read.
                    self.user_ptes, self.user_vpn = object.__getattribute__(m, "ptes"), va >> PAGE_SHIFT
                    break
        self.state = MAPPED
        #: An ATS translation of an SVA device (``sva.py``): it mirrors a CPU PTE.
        self.ats = False

    def describe(self) -> dict[str, object]:
        """JSON-able details for findings."""
        d: dict[str, object] = {
            "device": self.domain.name,
            "iova": f"{self.iova:#x}",
            "pfn": self.page.pfn,
            "gen_at_map": self.gen,
            "writable": self.writable,
            "state": ("mapped", "stale-iotlb", "gone")[self.state],
        }
        if self.user_mm is not None:
            d["user_va"] = f"{self.user_va:#x}"
            d["user_mm"] = self.user_mm.name
        return d

    def __repr__(self) -> str:
        return f"<DmaMapping {self.domain.name} iova={self.iova:#x} pfn={self.page.pfn} gen={self.gen}>"


class IommuDomain:
    """``struct iommu_domain``: one device's view of memory (one domain per device)."""

    def __init__(self, name: str, *, passthrough: bool = False, alloc: PageAllocator | None = None) -> None:
        self.k: Kernel = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.passthrough = passthrough
        self.alloc = alloc or page_allocator(self.k)
        #: Page table: IOVA page number -> entry.
        self.pt: dict[int, DmaMapping] = {}
        #: IOTLB: IOVA page number -> entry it caches (possibly no longer in ``pt``).
        self.iotlb: dict[int, DmaMapping] = {}
        self._next_iova = IOVA_BASE
        self.nr_faults = 0
        self.nr_flushes = 0

    def __repr__(self) -> str:
        return f"<IommuDomain {self.name} {len(self.pt)} mapped{' passthrough' if self.passthrough else ''}>"

    # ------------------------------------------------------------------ map / unmap

    def map(self, iova: int, page: Page, writable: bool = True, *, mm: MmStruct | None = None) -> DmaMapping:
        """``iommu_map``: make ``page`` reachable at ``iova`` (R3, R5); ``mm``: the address space it is for (R6)."""
        if iova & (PAGE_SIZE - 1):
            raise EINVAL(f"iommu_map: unaligned iova {iova:#x}")
        self.k.point("iommu_map", self.oid, True, f"{iova:#x}")
        if page.owner is None:
            # A driver mapping a frame it no longer owns: a kernel bug, reported; the
            # mapping is made (owner "free"), so any access through it is judged too.
            self.k.report(
                "assertion",
                "BUG: IOMMU mapping of a free page",
                details={"device": self.name, "iova": f"{iova:#x}", "pfn": page.pfn, "gen": page.gen},
                rule="iommu R5: only allocated frames may be mapped",
                signature=f"iommu-map-free:{self.name}",
            )
        key = iova >> PAGE_SHIFT
        if key in self.pt:
            raise EBUSY(f"iommu_map: iova {iova:#x} already mapped in {self.name}")
        rec = DmaMapping(self, iova, page, writable, mm)
        self.pt[key] = rec
        self.k.event("iommu_map", page.oid, True)  # the frame's list of device mappings, written
        page.dev_maps.append(rec)
        return rec

    def _drop(self, rec: DmaMapping) -> None:
        rec.state = GONE
        self.k.event("iommu_unmap", rec.page.oid, True)  # the frame's list of device mappings, written
        dm = rec.page.dev_maps
        for i, r in enumerate(dm):
            if r is rec:
                del dm[i]
                break

    def unmap(self, iova: int, npages: int = 1, *, sync: bool = True) -> int:
        """``iommu_unmap`` (``sync=True``) or ``iommu_unmap_fast`` (R2). Returns pages unmapped."""
        if iova & (PAGE_SIZE - 1):
            raise EINVAL(f"iommu_unmap: unaligned iova {iova:#x}")
        self.k.point("iommu_unmap", self.oid, True, f"{iova:#x}")
        n = 0
        key0 = iova >> PAGE_SHIFT
        for key in range(key0, key0 + npages):
            rec = self.pt.pop(key, None)
            if rec is None:
                continue
            n += 1
            if self.iotlb.get(key) is rec:
                rec.state = STALE
            else:
                self._drop(rec)
        if sync:
            self._flush_range(key0, npages)
        return n

    def _flush_range(self, key0: int, npages: int) -> None:
        self.nr_flushes += 1
        iotlb = self.iotlb
        for key in range(key0, key0 + npages):
            rec = iotlb.pop(key, None)
            if rec is not None and rec.state == STALE:
                self._drop(rec)

    def flush_iotlb(self, iova: int | None = None, npages: int = 1) -> None:
        """``iommu_flush_iotlb_all`` (no ``iova``) or ``iommu_iotlb_sync`` of a range (R2)."""
        self.k.point("iommu_flush_iotlb", self.oid, True)
        if iova is not None:
            self._flush_range(iova >> PAGE_SHIFT, npages)
            return
        self.nr_flushes += 1
        for key in sorted(self.iotlb):
            rec = self.iotlb.pop(key)
            if rec.state == STALE:
                self._drop(rec)

    # ------------------------------------------------------------------ DMA API

    def dma_map_page(self, page: Page, writable: bool = True, *, mm: MmStruct | None = None) -> int:
        """``dma_map_page``: a device address for ``page`` (an allocated IOVA, or its physical address);
        ``mm``: the address space the mapping is for (R6)."""
        if self.passthrough:
            iova = page.phys
        else:
            iova = self._next_iova
            self._next_iova += PAGE_SIZE
        self.map(iova, page, writable, mm=mm)
        return iova

    def dma_map_sg(self, pages: Sequence[Page], writable: bool = True, *, mm: MmStruct | None = None) -> list[int]:
        """``dma_map_sg``: device addresses of ``pages`` (contiguous IOVAs behind an IOMMU); ``mm`` as R6."""
        return [self.dma_map_page(p, writable, mm=mm) for p in pages]

    def dma_unmap_page(self, iova: int) -> None:
        """``dma_unmap_page``: unmap and sync one page."""
        self.unmap(iova, 1, sync=True)

    def dma_unmap_sg(self, iovas: Sequence[int]) -> None:
        """``dma_unmap_sg``."""
        for a in iovas:
            self.unmap(a, 1, sync=True)

    # ------------------------------------------------------------------ translation (hot path)

    def translate(self, iova: int) -> DmaMapping | None:
        """The entry a device access to ``iova`` uses: IOTLB, else page table (R1, R2)."""
        key = iova >> PAGE_SHIFT
        rec = self.iotlb.get(key)
        if rec is None:
            rec = self.pt.get(key)
            if rec is not None:
                self.iotlb[key] = rec
        return rec

    def iova_to_phys(self, iova: int) -> int | None:
        """``iommu_iova_to_phys``: the page-table translation (not the IOTLB)."""
        rec = self.pt.get(iova >> PAGE_SHIFT)
        if rec is None:
            return iova if self.passthrough else None
        return rec.page.phys | (iova & (PAGE_SIZE - 1))

    def live_mappings(self) -> list[DmaMapping]:
        """Every entry a device can still use (page table and stale IOTLB), by IOVA."""
        recs = list(self.pt.values()) + [r for r in self.iotlb.values() if r.state == STALE]
        return sorted(recs, key=lambda r: (r.iova, r.state))
