"""The page lock (``PG_locked``): ``lock_page``, ``trylock_page``, ``unlock_page``.

Models ``folio_lock`` / ``folio_trylock`` / ``folio_unlock`` /
``folio_wait_locked`` of ``mm/filemap.c`` for order-0 pages. Migration
(``migrate_device.py``) holds the lock of every page it moves from the
moment it unmaps it until the new mapping is in place; a CPU fault that
meets the page meanwhile waits for it (``migration_entry_wait``).

The bit is ``Page.lock_holder`` (the holder's tid, -1 when unlocked);
the waiters sleep on one per-execution wait queue (``folio_waitqueue``
hashes pages onto a few queues; one is enough for the model).

Rules:

* R1 (bit lock): at most one holder per page; ``trylock_page`` never
  sleeps, ``lock_page`` may (``might_sleep``) and waits for the holder.
  The page lock is not a lockdep class (as in the kernel).
* R2 (owner): only the holder unlocks; unlocking a page that is not
  locked, or locked by another thread, is an ``assertion`` finding ("BUG:
  unlock_page of an unlocked page") and changes nothing.
* R3 (waiters): ``unlock_page`` wakes every thread waiting for the page;
  ``wait_on_page_locked`` returns once the page is unlocked (it does not
  take the lock).
"""

from __future__ import annotations

from ..kernel.runtime import Kernel
from ..kernel.wait import WaitQueue
from .page import Page


def _wq(k: Kernel) -> WaitQueue:
    """The execution's page-lock wait queue (created on first use)."""
    wq: WaitQueue | None = k.ext.get("mm.page_lock_wq")
    if wq is None:
        wq = k.ext["mm.page_lock_wq"] = WaitQueue("page_lock")
    return wq


def page_locked(page: Page) -> bool:
    """``PageLocked``: is the page locked (by anyone)? Not a scheduling point."""
    return page.lock_holder >= 0


def trylock_page(page: Page) -> bool:
    """``trylock_page`` (R1): True when the lock was free and is now held by the caller."""
    k = page.alloc.k
    k.point("trylock_page", page.oid, True)
    if page.lock_holder >= 0:
        return False
    page.lock_holder = k.current.tid
    return True


def trylock_page_atomic(page: Page) -> bool:
    """``trylock_page`` inside a step that holds a spinlock (the page-table lock of
    ``migrate_vma_collect``): no scheduling point of its own, the step declares the page."""
    k = page.alloc.k
    k.event("trylock_page", page.oid, True)
    if page.lock_holder >= 0:
        return False
    page.lock_holder = k.current.tid
    return True


def lock_page(page: Page) -> None:
    """``lock_page`` (R1): sleep until the lock is free, then take it."""
    k = page.alloc.k
    k.might_sleep("lock_page")
    wq = _wq(k)
    while not trylock_page(page):
        wq.wait_event(lambda: page.lock_holder < 0, reads=page.oid)


def unlock_page(page: Page) -> None:
    """``unlock_page`` (R2, R3)."""
    k = page.alloc.k
    k.point("unlock_page", page.oid, True)
    holder = page.lock_holder
    if holder != k.current.tid:
        k.report(
            "assertion",
            "BUG: unlock_page of an unlocked page" if holder < 0 else "BUG: unlock_page by a non-owner",
            details={"pfn": page.pfn, "holder": holder, "thread": k.current.name},
            rule="page_lock R2: only the holder unlocks",
            signature=f"unlock-page:{'unlocked' if holder < 0 else 'non-owner'}",
        )
        return
    page.lock_holder = -1
    _wq(k).wake_up()


def wait_on_page_locked(page: Page) -> None:
    """``folio_wait_locked`` (R3): wait until nobody holds the page lock."""
    k = page.alloc.k
    k.might_sleep("wait_on_page_locked")
    k.point("wait_on_page_locked", page.oid, False)
    if page.lock_holder >= 0:
        _wq(k).wait_event(lambda: page.lock_holder < 0, reads=page.oid)
