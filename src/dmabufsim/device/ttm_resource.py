"""Models ``drivers/gpu/drm/ttm/ttm_resource.c`` (Linux 6.12): placements, resources, their managers.

A :class:`ResourceManager` accounts the space of one placement (VRAM, TT,
SYSTEM) in pages and keeps the LRU of the resources of evictable buffer
objects; a :class:`Resource` is one BO's backing pages in one placement and
its GPU bindings. The buffer objects, moves and eviction that use them are
in :mod:`dmabufsim.device.ttm` (its rules R1, R2 and R6 govern these
objects: the LRU under the device's ``lru_lock``, space reusable at once).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from ..dma.fence import DmaFence
from ..mm.page import Page
from .device import Device

if TYPE_CHECKING:
    from .ttm import BufferObject, TTMDevice


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


class Resource:
    """``struct ttm_resource`` (+ its ``ttm_tt``): backing pages of one BO in one placement.

    ``binds`` lists the GPU bindings ``(device, va)`` of the pages.
    ``accounted`` is True while the pages count in ``manager.usage`` (R6
    releases the space before the pages).
    """

    __slots__ = ("accounted", "binds", "bo", "manager", "mem_type", "num_pages", "oid", "pages")

    def __init__(self, manager: ResourceManager, pages: list[Page], bo: BufferObject) -> None:
        self.oid = manager.tdev.k.new_oid()
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
        va = self.manager.tdev._alloc_va(self.num_pages)
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


class ResourceManager:
    """``struct ttm_resource_manager``: the space of one placement and its LRU.

    ``size`` and ``usage`` are in pages (``size`` None = unlimited);
    ``lru`` lists the resources of evictable BOs, least recently used first,
    from the moment they are allocated (as 6.12's resource LRU: a resource
    whose move is still in progress can be found, and its BO's lock waited
    for); it is protected by the device's ``lru_lock`` (R1); ``move`` is the
    fence of the last pipelined move out of this manager (R6).
    """

    __slots__ = ("lru", "mem_type", "move", "size", "tdev", "usage")

    def __init__(self, tdev: TTMDevice, mem_type: MemType, size: int | None) -> None:
        self.tdev = tdev
        self.mem_type = mem_type
        self.size = size
        self.usage = 0
        self.lru: list[Resource] = []
        self.move: DmaFence | None = None

    def fits(self, n: int) -> bool:
        return self.size is None or self.usage + n <= self.size

    def try_alloc(self, bo: BufferObject) -> Resource | None:
        """``ttm_resource_alloc``: take ``bo.size`` pages of space and list the resource, or None.

        Space and LRU change together under the device's ``lru_lock`` (as
        ``ttm_resource_init`` does): an evictor that sees the space used
        also sees the resource using it. The pages are allocated later,
        by the move.
        """
        lock = self.tdev.lru_lock
        lock.lock()
        try:
            if not self.fits(bo.size):
                return None
            res = Resource(self, [], bo)
            res.num_pages = bo.size
            self.usage += bo.size
            if not bo.pin_count and not bo.ghost:
                self.lru.append(res)
            return res
        finally:
            lock.unlock()

    def release(self, res: Resource) -> None:
        """Unlist ``res`` and give its space back (``ttm_resource_fini``), under the ``lru_lock``."""
        lock = self.tdev.lru_lock
        lock.lock()
        if res in self.lru:
            self.lru.remove(res)
        if res.accounted:
            res.accounted = False
            self.usage -= res.num_pages
        lock.unlock()

    def __repr__(self) -> str:
        return f"<ResourceManager {self.mem_type.name} {self.usage}/{self.size}>"
