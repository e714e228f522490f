"""Reverse mapping: unmapping one page from every address space, as reclaim does.

Models ``try_to_unmap`` / ``try_to_unmap_one`` and ``try_to_migrate`` /
``try_to_migrate_one`` of ``mm/rmap.c`` and the
part of ``shrink_folio_list`` (``mm/vmscan.c``) that reclaims one page:
trylock the page, unmap it everywhere, unlock it, drop the reclaim's
reference. Each unmap is bracketed by the mm's notifiers, so a secondary
MMU's ``invalidate_range_start`` runs *with the page lock held* by the
reclaiming thread -- the context in which a callback that takes the page
lock itself (``set_page_dirty_lock``) never returns (``page_lock`` R3).

Rules:

* R1 (page lock): ``try_to_unmap`` requires the page locked by the caller
  (``VM_BUG_ON_FOLIO(!folio_test_locked)``: a ``UsageError`` in the model).
* R2 (one bracket per mapping): for each ``(mm, address)`` of the page's
  reverse map, in order: ``invalidate_range_start`` over that page with event
  ``CLEAR`` (``try_to_unmap_one``), the PTE is removed and its reference
  dropped, ``invalidate_range_end``. No ``mmap_lock`` is taken: the rmap walk
  holds the address space's ``anon_vma`` lock for read around it (memory
  R12) and the page-table lock.
* R3 (reclaim): ``shrink_page`` takes a reference (the page is isolated from
  the LRU), ``trylock_page`` -- a locked page is skipped, reclaim never
  sleeps on it -- then unmaps, unlocks and drops the reference: a page no one
  else holds is freed. A pinned page (``page_maybe_dma_pinned``) is not
  reclaimed.
* R4 (migration, ``try_to_migrate``): as R2, for a page a migration holds
  locked and referenced: each remaining mapping, in every address space
  that maps it (after ``fork`` a device-private page is mapped by parent
  and child, ``memory`` R13), becomes a migration entry inside its own
  ``CLEAR`` bracket (``try_to_migrate_one``), so every mm's secondary MMUs
  drop the page before the migration can free it. ``remove_migration_ptes``
  walks the migration entries back the same way (``migrate_device`` R6).
"""

from __future__ import annotations

from collections.abc import Callable

from ..kernel.errors import UsageError
from .memory import MmStruct
from .notifier_hooks import MmuNotifierRange, MmuNotifyEvent, invalidate_range_end, invalidate_range_start
from .page import PAGE_SIZE, Page, lock_oid, page_count_observe, page_ref_inc
from .page_lock import trylock_page, unlock_page


def try_to_unmap(page: Page) -> int:
    """``try_to_unmap``: remove every user PTE of the locked ``page`` (R1, R2). Returns how many."""
    k = page.alloc.k
    k.event("PageLocked", lock_oid(page.oid), False)  # the caller's lock (page R8)
    if page.locked_by is not k.current:
        raise UsageError(f"try_to_unmap of {page!r} without holding its page lock")
    k.point("try_to_unmap", page.oid, True)
    n = 0
    for mm, addr in list(page.rmap):
        assert isinstance(mm, MmStruct)
        n += _rmap_one(page, mm, addr, "try_to_unmap_one", mm.zap_page_at)
    return n


def _rmap_one(page: Page, mm: MmStruct, addr: int, name: str, one: Callable[[Page, int], int]) -> int:
    """One mapping of ``page`` in an rmap walk (``rmap_walk_anon`` calling ``rwc->rmap_one``):
    under the anon_vma lock, if ``mm`` still maps the page at ``addr``, ``one`` inside its own
    ``CLEAR`` bracket (R2, R4). Returns what ``one`` returned (0 when the mapping is gone)."""
    k = page.alloc.k
    mm.anon_vma_lock.down_read()  # rmap_walk_anon: anon_vma_lock_read (memory R12)
    try:
        k.point("page_vma_mapped_walk", mm.oid, True)  # under the page-table lock
        if not mm.maps_page_at(page, addr):
            return 0
        rng = MmuNotifierRange(mm, addr, addr + PAGE_SIZE, MmuNotifyEvent.CLEAR)
        invalidate_range_start(rng)
        k.point(name, mm.oid, True)
        n = one(page, addr)
        invalidate_range_end(rng)
        return n
    finally:
        mm.anon_vma_lock.up_read()


def try_to_migrate(page: Page) -> int:
    """``try_to_migrate``: every remaining mapping of the locked ``page`` becomes a migration entry (R4).

    Returns how many were replaced.
    """
    k = page.alloc.k
    k.event("PageLocked", lock_oid(page.oid), False)  # the caller's lock (page R8)
    if page.locked_by is not k.current:
        raise UsageError(f"try_to_migrate of {page!r} without holding its page lock")
    k.point("try_to_migrate", page.oid, True)
    n = 0
    tried: list[tuple[MmStruct, int]] = []
    while True:
        # The walk meets a mapping a concurrent fork adds meanwhile (after its parent's, as the
        # anon_vma chain orders them); every mapping is tried once.
        k.event("rmap_walk", page.oid, False)
        nxt = next(((m, a) for m, a in page.rmap if (m, a) not in tried), None)
        if nxt is None:
            return n
        mm, addr = nxt
        assert isinstance(mm, MmStruct)
        tried.append((mm, addr))
        n += _rmap_one(page, mm, addr, "try_to_migrate_one", mm.try_to_migrate_one)


def shrink_page(page: Page) -> bool:
    """``shrink_folio_list`` for one page: trylock, unmap, unlock, put (R3). True if it was unmapped."""
    k = page.alloc.k
    k.point("shrink_page", page.oid, True)
    page_count_observe(page, "folio_maybe_dma_pinned")  # page R6: a read of the pin count
    if page.owner is None or page.pincount:
        return False
    page_ref_inc(page, "folio_get")  # isolate_lru_folio's reference
    try:
        if not trylock_page(page):
            return False
        try:
            try_to_unmap(page)
        finally:
            unlock_page(page)
    finally:
        page.alloc.put_ref(page)
    return True
