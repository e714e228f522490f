"""Dropping a userptr object's pages, and how it marks them dirty: three designs of i915 (2019).

A userptr object holds ``get_user_pages`` references on the process's pages
while the GPU may write them; giving them back (``put_pages``, from the
object's MMU notifier or its shrinker) must mark them dirty, so that the
GPU's writes reach the file behind a shared mapping. ``set_page_dirty`` on a
page-cache page wants the page lock (``page_lock`` R6), but ``put_pages``
can be reached from ``try_to_unmap``, which already holds it (``rmap`` R1):

* ``DIRTY_LOCK``: ``set_page_dirty_lock`` (cb6d7c7dc7): from reclaim's
  ``try_to_unmap`` the callback waits for the page lock its own thread holds.
* ``DIRTY_NOLOCK``: plain ``set_page_dirty`` (its revert 505a8ec7e1): the
  dirty state races with truncation / writeback holding the lock.
* ``DIRTY_TRYLOCK``: ``trylock_page``; when the lock is contended, skip the
  dirtying (0d4bbe3d40; Fixes: 5cc9ed4b9a).

Rules:

* R1: :func:`put_user_pages_dirty` marks each page dirty as its design says,
  marks it accessed, and drops the reference.
* R2: :class:`UserptrObject` takes its references with
  ``get_user_pages_fast(FOLL_WRITE)`` and registers a classic MMU notifier
  over its range whose ``invalidate_range_start`` drops every page (R1).
"""

from __future__ import annotations

from ..kernel.runtime import current_kernel
from ..mm.gup import FOLL_WRITE, get_user_pages_fast
from ..mm.memory import Process
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps
from ..mm.notifier_hooks import MmuNotifierRange
from ..mm.page import PAGE_SIZE, Page
from ..mm.page_lock import set_page_dirty, set_page_dirty_lock, trylock_page, unlock_page

DIRTY_LOCK = "lock"
DIRTY_NOLOCK = "nolock"
DIRTY_TRYLOCK = "trylock"
DIRTY_POLICIES = (DIRTY_LOCK, DIRTY_NOLOCK, DIRTY_TRYLOCK)


def put_user_pages_dirty(pages: list[Page], policy: str) -> None:
    """``i915_gem_userptr_put_pages``' loop: dirty (per ``policy``), mark accessed, put (R1)."""
    if policy not in DIRTY_POLICIES:
        raise ValueError(f"unknown dirtying policy {policy!r}; known: {DIRTY_POLICIES}")
    for page in pages:
        if policy == DIRTY_LOCK:
            set_page_dirty_lock(page)
        elif policy == DIRTY_NOLOCK:
            set_page_dirty(page)
        elif trylock_page(page):
            set_page_dirty(page)
            unlock_page(page)
        page.mark_accessed()
        page.put()


class UserptrObject(MMUNotifierOps):
    """A userptr GEM object over ``[addr, addr + nr_pages pages)`` of ``proc`` (R2)."""

    def __init__(self, proc: Process, addr: int, nr_pages: int, policy: str) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.proc = proc
        self.start = addr
        self.end = addr + nr_pages * PAGE_SIZE
        self.policy = policy
        self.pages: list[Page] = get_user_pages_fast(proc.mm, addr, nr_pages, FOLL_WRITE)
        self.notifier = MMUNotifier(self)
        self.notifier.register(proc.mm)

    def put_pages(self) -> None:
        """``__i915_gem_object_put_pages``: drop the pages (R1)."""
        self.k.point("userptr_put_pages", self.oid, True)
        pages, self.pages = self.pages, []
        put_user_pages_dirty(pages, self.policy)

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        if range.start < self.end and self.start < range.end:
            self.put_pages()
