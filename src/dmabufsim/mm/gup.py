"""get_user_pages and pin_user_pages: kernel references to user memory.

Models ``mm/gup.c`` (``get_user_pages``, ``get_user_pages_fast``,
``pin_user_pages``, ``pin_user_pages_fast``, ``unpin_user_page(s)``,
``unpin_user_pages_dirty_lock``) and the page helpers drivers call on the
frames they got (``put_page``, ``set_page_dirty``, ``set_page_dirty_lock``,
``mark_page_accessed``).

Rules:

* R1 (locking): ``get_user_pages`` / ``pin_user_pages`` require the mm's
  ``mmap_lock`` held (``lockdep_assert_held``); the ``_fast`` variants take
  it for read themselves (the model always walks the slow path, which is
  what lockdep sees when the fast path falls back).
* R2 (faulting): each page is faulted in as a user access would be:
  ``FOLL_WRITE`` breaks copy-on-write first, so the reference is to the
  page the process will keep writing -- until a later fork() makes it
  shared again (claim C11).
* R3 (references): ``FOLL_GET`` (the default of get_user_pages) takes one
  reference per page, released with ``put_page``; ``FOLL_PIN`` (the
  pin_* calls) takes a reference *and* a pin, released only with
  ``unpin_user_page*``. A pinned page is never freed, survives munmap and
  is copied for the child at fork. ``FOLL_LONGTERM`` is only valid with
  ``FOLL_PIN`` (``EINVAL`` otherwise).
* R4 (errors): the first page that cannot be faulted raises ``EFAULT`` if
  no page was taken; otherwise the pages taken so far are returned (the
  kernel's "number of pages pinned", which may be short).
* R5 (device reachability, claim C14): dirtying, unpinning or releasing a
  frame an IOMMU mapping can still reach is ``dirty-while-mapped``
  (see :mod:`dmabufsim.mm.page` R5).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntFlag

from ..kernel.errors import EFAULT, EINVAL, UsageError
from ..kernel.lockdep_map import lockdep_assert_held
from ..kernel.trace import refcount_oid
from . import page_lock
from .memory import MmStruct
from .page import PAGE_SIZE, Page, page_gup_count_add, page_ref_inc


class FOLL(IntFlag):
    """``FOLL_*`` gup flags."""

    WRITE = 0x1  #: the caller will write: break COW, require PROT_WRITE
    GET = 0x2  #: take a page reference (get_user_pages)
    PIN = 0x4  #: take a pin (pin_user_pages)
    LONGTERM = 0x8  #: the pin lasts indefinitely (RDMA, GPU userptr)
    FORCE = 0x10  #: (debuggers) write through read-only mappings: not modelled


FOLL_WRITE = FOLL.WRITE
FOLL_GET = FOLL.GET
FOLL_PIN = FOLL.PIN
FOLL_LONGTERM = FOLL.LONGTERM
#: No flag: a read-only reference.
FOLL_NONE = FOLL(0)


def _gup(mm: MmStruct, start: int, nr_pages: int, flags: FOLL) -> list[Page]:
    if flags & FOLL.FORCE:
        # Valid in the kernel (ptrace, /proc/pid/mem); a limit of the model.
        raise NotImplementedError("FOLL_FORCE is not modelled")
    if flags & FOLL.LONGTERM and not flags & FOLL.PIN:
        raise EINVAL("FOLL_LONGTERM is only valid with FOLL_PIN (use pin_user_pages)")
    if flags & FOLL.PIN and flags & FOLL.GET:
        raise EINVAL("FOLL_PIN and FOLL_GET are mutually exclusive")
    if nr_pages <= 0 or start & (PAGE_SIZE - 1):
        raise EINVAL(f"gup: start {start:#x} nr_pages {nr_pages}")
    write = bool(flags & FOLL.WRITE)
    pin = bool(flags & FOLL.PIN)
    pages: list[Page] = []
    for i in range(nr_pages):
        addr = start + i * PAGE_SIZE
        vma = mm.find_vma(addr)
        if vma is not None and vma.vm_ops is not None:
            # check_vma_flags: a driver mapping is VM_IO | VM_PFNMAP (memory R7).
            if not pages:
                raise EFAULT(f"get_user_pages: {addr:#x} is a driver mapping (VM_IO | VM_PFNMAP)")
            break
        try:
            pte = mm.handle_mm_fault(addr, write)
        except EFAULT:
            if not pages:
                raise
            break
        page = pte.page
        # try_grab_page: increments of the frame's counts, which commute (page R6).
        mm.k.point("gup_page", refcount_oid(page.oid), False, "pin" if pin else "get")
        if not page_ref_inc(page, "gup_page"):
            break
        page_gup_count_add(page, "pincount" if pin else "gup_refs", 1, "gup_page")
        pages.append(page)
    return pages


def get_user_pages(mm: MmStruct, start: int, nr_pages: int, gup_flags: FOLL = FOLL_NONE) -> list[Page]:
    """``get_user_pages`` (``get_user_pages_remote``): references to ``nr_pages`` pages (R1-R4).

    The caller holds ``mm.mmap_lock``.
    """
    lockdep_assert_held(mm.mmap_lock)
    return _gup(mm, start, nr_pages, (gup_flags & ~FOLL.PIN) | FOLL.GET)


def get_user_pages_fast(mm: MmStruct, start: int, nr_pages: int, gup_flags: FOLL = FOLL_NONE) -> list[Page]:
    """``get_user_pages_fast``: takes ``mmap_lock`` for read itself."""
    mm.mmap_lock.down_read()
    try:
        return _gup(mm, start, nr_pages, (gup_flags & ~FOLL.PIN) | FOLL.GET)
    finally:
        mm.mmap_lock.up_read()


def pin_user_pages(mm: MmStruct, start: int, nr_pages: int, gup_flags: FOLL = FOLL_NONE) -> list[Page]:
    """``pin_user_pages`` (``pin_user_pages_remote``): pins; the caller holds ``mmap_lock``."""
    lockdep_assert_held(mm.mmap_lock)
    return _gup(mm, start, nr_pages, gup_flags | FOLL.PIN)


def pin_user_pages_fast(mm: MmStruct, start: int, nr_pages: int, gup_flags: FOLL = FOLL_NONE) -> list[Page]:
    """``pin_user_pages_fast``: pins; takes ``mmap_lock`` for read itself."""
    mm.mmap_lock.down_read()
    try:
        return _gup(mm, start, nr_pages, gup_flags | FOLL.PIN)
    finally:
        mm.mmap_lock.up_read()


def unpin_user_page(page: Page) -> None:
    """``unpin_user_page``: drop one pin and its reference (R3, R5)."""
    k = page.alloc.k
    k.point("unpin_user_page", refcount_oid(page.oid), True)  # page R6: the last-pin test, a decrement
    k.event("unpin_user_page", page.oid, False)  # R5: who can still reach the frame
    if page.pincount <= 0:
        raise UsageError(f"unpin_user_page of a page that is not pinned: {page!r}")
    if page.dev_maps and page.pincount == 1:  # the last pin: a spare one leaves the frame pinned
        page._notify("unpinned")
    page.pincount -= 1
    page.alloc.put_ref(page)


def unpin_user_pages(pages: Sequence[Page]) -> None:
    """``unpin_user_pages``."""
    for p in pages:
        unpin_user_page(p)


def unpin_user_pages_dirty_lock(pages: Sequence[Page], make_dirty: bool) -> None:
    """``unpin_user_pages_dirty_lock``: mark each page dirty (if asked), then unpin it."""
    for p in pages:
        if make_dirty:
            p.set_dirty()
        unpin_user_page(p)


def put_page(page: Page) -> None:
    """``put_page``: drop a reference taken by get_user_pages or get_page."""
    page.put()


def release_pages(pages: Sequence[Page]) -> None:
    """``release_pages``: ``put_page`` on each."""
    for p in pages:
        p.put()


def set_page_dirty(page: Page) -> None:
    """``set_page_dirty`` (R5; ``page_lock`` R6: a page-cache page wants its lock held)."""
    page_lock.set_page_dirty(page)


def set_page_dirty_lock(page: Page) -> None:
    """``set_page_dirty_lock``: under the page lock (``page_lock`` R5)."""
    page_lock.set_page_dirty_lock(page)


def mark_page_accessed(page: Page) -> None:
    """``mark_page_accessed``."""
    page.mark_accessed()
