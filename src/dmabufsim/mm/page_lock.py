"""The page lock: ``PG_locked`` and the calls that take it.

Models ``include/linux/pagemap.h`` (``lock_page``, ``trylock_page``,
``unlock_page``, ``PageLocked``) with ``folio_lock`` / ``__folio_lock`` /
``folio_unlock`` of ``mm/filemap.c``, and ``set_page_dirty_lock`` of
``mm/page-writeback.c``, with ``folio_wait_locked`` (``wait_on_page_locked``).
The page lock is a sleeping bit lock in ``struct page``: reclaim
(``shrink_folio_list``) trylocks a page before ``try_to_unmap``
(``mm/rmap.py``), truncation and writeback lock it, a driver that dirties a
page it got from ``get_user_pages`` should hold it, and migration
(``migrate_device.py``) holds the lock of every page it moves from the moment
it unmaps it until the new mapping is in place; a CPU fault or
``hmm_range_fault`` that meets such a page meanwhile waits for it
(``migration_entry_wait``).

Rules:

* R1 (sleeping lock): ``lock_page`` may sleep (``might_sleep``: in atomic
  context it is a ``sleep-in-atomic`` finding); ``trylock_page`` never sleeps
  and fails while anyone holds the lock.
* R2 (one holder): one thread holds a page's lock at a time; waiters sleep in
  arrival order and one is woken per ``unlock_page`` (another thread arriving
  first may take the lock: ``folio_trylock`` in ``__folio_lock``).
  ``unlock_page`` of a page that is not locked is the kernel's
  ``VM_BUG_ON_FOLIO(!folio_test_locked)``: an ``assertion`` finding
  (signature ``unlock_page-unlocked``), nothing changes. Any thread may unlock
  (I/O completion unlocks pages it did not lock).
* R3 (not recursive): ``PG_locked`` is a bit, not an owner-aware lock: a
  thread calling ``lock_page`` on a page it holds locked sleeps forever. The
  model reports it as ``recursive-locking`` ("possible recursive locking
  detected", what lockdep says for an annotated lock; the kernel's lockdep
  does not track ``PG_locked``, so there the machine just hangs), and the
  thread then sleeps as the kernel's does (the scheduler sees the deadlock).
* R4 (no lockdep class): the kernel gives ``PG_locked`` no lockdep map; the
  model adds no lock-order edge for it either (only R3's self-wait is
  reported, because it is certain, not predicted).
* R5 (set_page_dirty_lock): lock, ``set_page_dirty``, unlock.
* R6 (dirtying a page-cache page unlocked): ``set_page_dirty`` of a page that
  belongs to a page-cache object (an owner with ``is_page_cache``, e.g. a
  shmem file) without holding its lock races with whoever holds the lock
  (truncation may detach the page from its mapping and free the mapping;
  writeback may clear the dirty bit it just set): when another thread holds
  the lock at that moment it is an ``assertion`` finding (signature
  ``set_page_dirty-unlocked``). Anonymous pages are exempt, as in the kernel.
* R7 (waiting for the bit): ``wait_on_page_locked`` (``folio_wait_locked``)
  may sleep, sleeps while the page is locked and returns once it is unlocked,
  without taking the lock; ``unlock_page`` wakes every such waiter as well
  as the first ``lock_page`` waiter (``folio_wake_bit``: the non-exclusive
  waiters and one exclusive). Every wait is a blocked thread the scheduler
  sees (never a polling loop), so a page locked forever is a deadlock.
* R9 (waiting on a migration entry, ``migration_entry_wait_on_locked``):
  a fault (or ``hmm_range_fault``) that finds a migration entry queues
  itself on the page's wait queue in the same step that found the entry
  (the kernel does it under the page-table lock, which the migration needs
  to remove the entry, so the page is the one the migration holds locked
  and referenced); it takes no page reference of its own, sleeps once and
  returns when woken (``WQ_FLAG_WOKEN``) without looking at the bit again:
  by then the frame may be free, or locked by its next user. A page
  already unlocked at that point is not waited for.
* R8 (under a spinlock): ``trylock_page`` inside a step that holds a
  spinlock (the page-table lock of ``migrate_vma_collect`` or of
  ``do_swap_page``) is no scheduling point of its own: the step declares
  the page lock (``trylock_page_atomic``).
* R10 (what a lock step declares): ``PG_locked`` and its wait queue are
  declared on the frame's lock pseudo-object (``page`` R8, ``lock_oid``),
  never on the frame: ``trylock_page`` / ``lock_page`` / ``unlock_page``
  write it (a wake-up included), ``PageLocked``, ``wait_on_page_locked``'s
  test and ``migration_entry_wait_on_locked``'s test read it, and a sleep on
  the bit writes it (the wait queue). A lock step thus commutes with steps
  that touch only the frame's bookkeeping (an ``iommu_map`` of the frame),
  contents or counts, as the kernel's separate bit and hashed wait queue do.
"""

from __future__ import annotations

from ..kernel.runtime import current_kernel
from .page import Page, lock_oid


def PageLocked(page: Page) -> bool:
    """``PageLocked`` (``folio_test_locked``): is the page lock held (by anyone)? The step reads the lock
    (page R8)."""
    page.alloc.k.event("PageLocked", lock_oid(page.oid), False)
    return page.locked_by is not None


def trylock_page(page: Page) -> bool:
    """``trylock_page`` (``folio_trylock``): take the page lock if it is free; never sleeps (R1)."""
    k = page.alloc.k
    k.point("trylock_page", lock_oid(page.oid), True)
    if page.locked_by is not None:
        return False
    page.locked_by = k.current
    return True


def trylock_page_atomic(page: Page) -> bool:
    """``trylock_page`` under a spinlock (R8): as :func:`trylock_page`, without a scheduling point."""
    k = page.alloc.k
    k.event("trylock_page", lock_oid(page.oid), True)
    if page.locked_by is not None:
        return False
    page.locked_by = k.current
    return True


def wait_on_page_locked(page: Page) -> None:
    """``folio_wait_locked`` (R7): sleep until nobody holds the page lock; does not take it."""
    k = page.alloc.k
    t = k.current
    k.might_sleep("wait_on_page_locked")
    k.point("wait_on_page_locked", lock_oid(page.oid), False)
    while page.locked_by is not None:
        page.lock_watchers.append(t)
        k.block("wait_on_page_locked", lock_oid(page.oid), name=f"PG_locked pfn {page.pfn}")
        page.lock_watchers.remove(t)


def migration_entry_wait_on_locked(page: Page) -> None:
    """``migration_entry_wait_on_locked`` (R9): wait for the migration holding ``page`` to unlock it.

    Called in the step that found the migration entry; it declares the page
    lock (R10): a read of the bit, and the wait a write. No reference is
    taken and the thread returns once woken, whoever holds the frame then.
    """
    k = page.alloc.k
    k.might_sleep("migration_entry_wait_on_locked")
    k.event("migration_entry_wait", lock_oid(page.oid), False)  # R10: the lock bit (the wait writes it)
    if page.locked_by is None:
        return  # folio_trylock_flag: the migration already unlocked it; the caller faults again
    t = k.current
    page.lock_watchers.append(t)
    k.block("migration_entry_wait", lock_oid(page.oid), name=f"PG_locked pfn {page.pfn}")
    page.lock_watchers.remove(t)


def lock_page(page: Page) -> None:
    """``lock_page`` (``folio_lock`` / ``__folio_lock``): sleep until the page lock is ours (R1-R3)."""
    k = page.alloc.k
    t = k.current
    k.might_sleep("lock_page")
    k.point("lock_page", lock_oid(page.oid), True)
    if page.locked_by is t:
        _report_recursion(page)
    while page.locked_by is not None:
        page.lock_waiters.append(t)
        k.block("lock_page", lock_oid(page.oid), name=f"PG_locked pfn {page.pfn}")
        page.lock_waiters.remove(t)
    page.locked_by = t


def unlock_page(page: Page) -> None:
    """``unlock_page`` (``folio_unlock``): drop the page lock, wake one locker and every watcher (R2, R7)."""
    k = page.alloc.k
    k.point("unlock_page", lock_oid(page.oid), True)
    if page.locked_by is None:
        k.report(
            "assertion",
            "kernel BUG: unlock_page of a page that is not locked",
            details={"pfn": page.pfn},
            rule="page_lock R2: VM_BUG_ON_FOLIO(!folio_test_locked(folio))",
            signature="unlock_page-unlocked",
            text=f"page:pfn {page.pfn} VM_BUG_ON_FOLIO(!folio_test_locked(folio)) in folio_unlock",
        )
        return
    page.locked_by = None
    for w in page.lock_watchers:
        k.wake(w)
    for w in page.lock_waiters:
        if k.wake(w):
            break


def set_page_dirty_lock(page: Page) -> None:
    """``set_page_dirty_lock``: ``lock_page``, ``set_page_dirty``, ``unlock_page`` (R5)."""
    lock_page(page)
    try:
        page.set_dirty()
    finally:
        unlock_page(page)


def set_page_dirty(page: Page) -> None:
    """``set_page_dirty``: without the page lock, racing its holder for a page-cache page (R6)."""
    k = page.alloc.k
    k.event("set_page_dirty_check", lock_oid(page.oid), False)  # reads PG_locked (page R8)
    holder = page.locked_by
    if holder is not None and holder is not k.current and getattr(page.owner, "is_page_cache", False):
        k.point("set_page_dirty", page.oid, True)
        k.report(
            "assertion",
            "set_page_dirty() on an unlocked page-cache page while another thread holds its lock",
            details={"pfn": page.pfn, "holder": holder.name},
            rule="page_lock R6: dirty a page-cache page under its page lock (set_page_dirty_lock)",
            signature="set_page_dirty-unlocked",
            text=(f"set_page_dirty(pfn {page.pfn}) without the page lock, while {holder.name} holds it "
                  "(truncation or writeback may be working on the page: the dirty state races with it)"),
        )
    page.set_dirty()


def _report_recursion(page: Page) -> None:
    k = current_kernel()
    t = k.current
    k.report(
        "recursive-locking",
        "possible recursive locking detected",
        details={"lock": "PG_locked", "pfn": page.pfn, "thread": t.name},
        rule="page_lock R3: lock_page on a page the thread already holds locked never returns",
        signature=f"recursive-page-lock:{t.name}",
        text=(f"WARNING: possible recursive locking detected\n{t.name}/{t.tid} is trying to acquire lock:\n"
              f"  (PG_locked){{+.+.}}, page pfn {page.pfn}\nbut task is already holding lock:\n"
              f"  (PG_locked){{+.+.}}, page pfn {page.pfn}\n\n *** DEADLOCK ***\n"
              "(the kernel's lockdep does not track PG_locked: there the task just hangs)"),
    )
