"""Models ``drivers/gpu/drm/ttm/ttm_resource.c`` (Linux 6.12): placements, resources, their managers.

A :class:`ResourceManager` accounts the space of one placement (VRAM, TT,
SYSTEM) in pages and keeps the LRU of the resources of evictable buffer
objects; a :class:`Resource` is one BO's backing pages in one placement and
its GPU bindings, made in the device's :class:`GartWindow`. The buffer
objects, moves and eviction that use them are in
:mod:`dmabufsim.device.ttm` (its rules R1, R2 and R6 govern these objects:
the LRU under the device's ``lru_lock``, which BOs are listed, space
reusable at once). A manager is handed the device's ``lru_lock`` and GART
window when the device creates it (``ttm_resource_manager_init``); a
resource points back at the BO it was allocated for (``res->bo``), whatever
type the device's BOs have (the managers are generic in it).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Generic, TypeVar

from ..dma.fence import DmaFence
from ..kernel.runtime import current_kernel
from ..locking.spinlock import SpinLock
from ..mm.page import PAGE_SIZE, Page
from .device import Device

#: Where GPU bindings (the GART window) start in the GPU's address space.
TTM_VA_BASE = 0x40_0000_0000

#: The type of the buffer objects a manager's resources belong to (``res->bo``).
BO = TypeVar("BO")


class MemType(IntEnum):
    """``TTM_PL_*`` memory types."""

    SYSTEM = 0
    TT = 1
    VRAM = 2


TTM_PL_SYSTEM = MemType.SYSTEM
TTM_PL_TT = MemType.TT
TTM_PL_VRAM = MemType.VRAM
#: amdgpu's name for TT.
GTT = MemType.TT


class GartWindow:
    """The range of GPU addresses a device binds resources at (the GART window), handed out in order.

    One per device, shared by its managers; addresses are not reused (the
    window is far larger than any scenario's memory).
    """

    __slots__ = ("next_va",)

    def __init__(self, base: int = TTM_VA_BASE) -> None:
        self.next_va = base

    def alloc(self, npages: int) -> int:
        """The GPU VA of a new binding of ``npages`` pages."""
        va = self.next_va
        self.next_va += npages * PAGE_SIZE
        return va


class Resource(Generic[BO]):
    """``struct ttm_resource`` (+ its ``ttm_tt``): backing pages of one BO in one placement.

    ``binds`` lists the GPU bindings ``(device, va)`` of the pages.
    ``accounted`` is True while the pages count in ``manager.usage`` (R6
    releases the space before the pages).
    """

    __slots__ = ("accounted", "binds", "bo", "manager", "mem_type", "num_pages", "oid", "pages")

    def __init__(self, manager: ResourceManager[BO], pages: list[Page], bo: BO) -> None:
        self.oid = manager.k.new_oid()
        self.manager = manager
        #: The BO the resource was allocated for (a ghost may hold it now).
        self.bo = bo
        self.mem_type = manager.mem_type
        self.pages = pages
        self.num_pages = len(pages)
        self.accounted = True
        self.binds: list[tuple[Device, int]] = []

    def bind(self, dev: Device) -> int:
        """``ttm_tt_bind``/GART binding: the GPU VA at which ``dev`` reaches the pages (bound once)."""
        for d, va in self.binds:
            if d is dev:
                return va
        va = self.manager.gart.alloc(self.num_pages)
        dev.map_pages(va, self.pages)
        self.binds.append((dev, va))
        return va

    def unbind_all(self) -> None:
        """``ttm_tt_unbind``: zap every GPU binding (GPU TLB flushed, IOMMU entries unmapped)."""
        binds = self.binds
        self.binds = []
        for dev, va in binds:
            dev.unmap_pages(va, self.num_pages)

    def __repr__(self) -> str:
        return f"<Resource #{self.oid} {self.mem_type.name} {self.num_pages}p>"


class ResourceManager(Generic[BO]):
    """``struct ttm_resource_manager``: the space of one placement and its LRU.

    ``size`` and ``usage`` are in pages (``size`` None = unlimited);
    ``lru`` lists the resources of evictable BOs, least recently used first,
    from the moment they are allocated (as 6.12's resource LRU: a resource
    whose move is still in progress can be found, and its BO's lock waited
    for); it is protected by the device's ``lru_lock`` (R1); ``move`` is the
    fence of the last pipelined move out of this manager (R6). Resources are
    bound in ``gart``, the device's window.
    """

    __slots__ = ("gart", "k", "lru", "lru_lock", "mem_type", "move", "size", "usage")

    def __init__(self, mem_type: MemType, size: int | None, *, lru_lock: SpinLock, gart: GartWindow) -> None:
        self.k = current_kernel()
        self.lru_lock = lru_lock
        self.gart = gart
        self.mem_type = mem_type
        self.size = size
        self.usage = 0
        self.lru: list[Resource[BO]] = []
        self.move: DmaFence | None = None

    def fits(self, n: int) -> bool:
        return self.size is None or self.usage + n <= self.size

    def try_alloc(self, bo: BO, num_pages: int, *, lru: bool) -> Resource[BO] | None:
        """``ttm_resource_alloc``: take ``num_pages`` pages of space for ``bo``, or None.

        The resource goes on the LRU if ``lru`` (the BO is evictable: ttm
        R2). Space and LRU change together under the device's ``lru_lock``
        (as ``ttm_resource_init`` does): an evictor that sees the space used
        also sees the resource using it. The pages are allocated later, by
        the move.
        """
        lock = self.lru_lock
        lock.lock()
        try:
            if not self.fits(num_pages):
                return None
            res = Resource(self, [], bo)
            res.num_pages = num_pages
            self.usage += num_pages
            if lru:
                self.lru.append(res)
            return res
        finally:
            lock.unlock()

    def release(self, res: Resource[BO]) -> None:
        """Unlist ``res`` and give its space back (``ttm_resource_fini``), under the ``lru_lock``."""
        lock = self.lru_lock
        lock.lock()
        if res in self.lru:
            self.lru.remove(res)
        if res.accounted:
            res.accounted = False
            self.usage -= res.num_pages
        lock.unlock()

    def __repr__(self) -> str:
        return f"<ResourceManager {self.mem_type.name} {self.usage}/{self.size}>"
