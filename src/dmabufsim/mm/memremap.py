"""Device-private memory: ``struct dev_pagemap`` of type ``MEMORY_DEVICE_PRIVATE``.

Models ``mm/memremap.c`` (``devm_memremap_pages``, ``memunmap_pages``)
and ``include/linux/memremap.h`` (``struct dev_pagemap_ops``:
``page_free``, ``migrate_to_ram``): memory a device owns (its VRAM) that the
CPU cannot address but that still has ``struct page`` s, so process page
tables can refer to it through *device-private entries*
(``memory.py`` R11) and HMM can hand it to the device that owns it.

Rules:

* R1 (own frames): a pagemap has its own frames (its own
  :class:`~dmabufsim.mm.page.PageAllocator`, ``pgmap.pool``), distinct from
  system memory; :func:`is_device_private_page` tells them apart. The
  pool never reclaims: an allocation with no free frame fails with
  ``ENOMEM`` at once (the driver evicts and retries).
* R2 (owner): ``owner`` is the cookie HMM and migration compare with
  ``dev_private_owner`` / ``pgmap_owner`` (``hmm.py``, ``migrate_device.py``):
  only the owner's device may use the pages directly.
* R3 (CPU fault): a CPU access to a device-private entry calls
  ``ops.migrate_to_ram(mm, addr, page)`` with ``mmap_lock`` held and the
  page locked by the fault (``do_swap_page``); the callback must migrate
  the page back to system memory (``migrate_device.py``) or leave the entry
  for the fault to retry.
* R4 (free): when a device page's last reference goes, ``ops.page_free``
  is called (``free_zone_device_folio``) and the frame returns to the pool.
"""

from __future__ import annotations

from typing import Any

from ..kernel.gfp import GFP_NOWAIT
from ..kernel.runtime import current_kernel
from .page import Page, PageAllocator


class DevPagemapOps:
    """``struct dev_pagemap_ops`` (extension contract)."""

    def migrate_to_ram(self, pgmap: DevicePagemap, mm: Any, addr: int, page: Page) -> None:
        """``migrate_to_ram(vmf)``: move the page at ``addr`` of ``mm`` back to system memory (R3)."""
        raise NotImplementedError(f"{type(self).__name__} must implement migrate_to_ram")

    def page_free(self, pgmap: DevicePagemap, page: Page) -> None:
        """``page_free``: the device page's last reference went (R4)."""


class DevicePagemap:
    """``struct dev_pagemap`` (``MEMORY_DEVICE_PRIVATE``): ``nr_pages`` frames of device memory."""

    def __init__(self, name: str, nr_pages: int, owner: object, ops: DevPagemapOps) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.owner = owner
        self.ops = ops
        #: The device memory's frames (R1): no watermarks, no reclaim.
        self.pool = PageAllocator(nr_pages, low=0, min=0)
        self.pool.pgmap = self  # type: ignore[attr-defined]  # page->pgmap, through the frame's allocator
        self._base_free = self.pool._free_page
        self.pool._free_page = self._free_page  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"<DevicePagemap {self.name} {self.pool.nr_pages} pages>"

    def alloc_page(self, owner: object) -> Page:
        """A free device frame for ``owner`` (the driver's VRAM allocator); ``ENOMEM`` when full (R1)."""
        return self.pool.alloc_page(GFP_NOWAIT, owner)

    @property
    def nr_free(self) -> int:
        return self.pool.nr_free

    def migrate_to_ram(self, mm: Any, addr: int, page: Page) -> None:
        """The CPU fault's call (R3)."""
        self.ops.migrate_to_ram(self, mm, addr, page)

    def _free_page(self, page: Page) -> None:
        self.ops.page_free(self, page)
        self._base_free(page)


def is_device_private_page(page: Page) -> bool:
    """``is_device_private_page``: does the frame belong to a device-private pagemap?"""
    return getattr(page.alloc, "pgmap", None) is not None


def page_pgmap(page: Page) -> DevicePagemap | None:
    """``page->pgmap`` of a device-private frame, or None for system memory."""
    pg: DevicePagemap | None = getattr(page.alloc, "pgmap", None)
    return pg
