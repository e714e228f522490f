"""amdgpu userptr of 2016: ``get_user_pages`` inside the reserved validate path, and its fix.

Before commit 2f568dbd6b94 ("drm/amdgpu: move get_user_pages out of
amdgpu_ttm_tt_pin_userptr v6", Christian König, 2016), a command submission
reserved its buffers and, when it validated a userptr buffer into GPU
memory, looked up the user pages there (``amdgpu_ttm_tt_pin_userptr`` ->
``get_user_pages`` under ``mmap_lock``): ``reservation -> mmap_lock``. The
notifier of the time (``amdgpu_mn_invalidate_range_start``) reserved the
buffer blockingly to move it back to the CPU domain, under the unmapping
path's ``mmap_lock``: ``mmap_lock -> notifier -> reservation``. The fix
looks the pages up *before* reserving, remembers the buffer's invalidation
count, and after reserving checks that no invalidation came in between; if
one did, it drops the pages and the reservations and tries again, a bounded
number of times (v5: "Add maximum number of tries"; ``-EDEADLK`` when they
run out).

Rules:

* R1 (notifier): for a buffer overlapping the range: reserve it (blocking,
  the 2016 code), count the invalidation, drop its pages, unreserve.
* R2 (``gup_under_reservation``): reserve, ``get_user_pages`` with
  ``mmap_lock`` held for read, bind, unreserve.
* R3 (``gup_before_reservation``): ``get_user_pages_fast`` and the
  invalidation count, reserve, compare the count: equal -> bind; changed ->
  put the pages, unreserve, retry (at most ``MAX_TRIES``; then ``EDEADLK``).
* R4: a range that is no longer mapped ends the submission (``-EFAULT``).
"""

from __future__ import annotations

from ..dma.resv import DmaResv
from ..kernel.errors import EDEADLK, EFAULT
from ..kernel.runtime import current_kernel
from ..mm.gup import FOLL_WRITE, get_user_pages, get_user_pages_fast
from ..mm.memory import Process
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps
from ..mm.notifier_hooks import MmuNotifierRange
from ..mm.page import PAGE_SIZE, Page

#: How often the CS retries after an invalidation before giving up (v5 of the fix).
MAX_TRIES = 3


class AmdgpuUserptrBo2016(MMUNotifierOps):
    """A userptr buffer with its 2016 notifier (R1) and both validate paths (R2, R3)."""

    def __init__(self, proc: Process, addr: int, nr_pages: int) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.proc = proc
        self.start, self.nr_pages = addr, nr_pages
        self.end = addr + nr_pages * PAGE_SIZE
        self.resv = DmaResv("amdgpu_userptr_bo.resv")
        self.pages: list[Page] = []
        #: ``invalidated``: how many invalidations hit the buffer (read by R3).
        self.invalidated = 0
        self.bound = False
        MMUNotifier(self).register(proc.mm)

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        if not (range.start < self.end and self.start < range.end):
            return
        self.resv.lock()  # amdgpu_bo_reserve(bo, true): blocking (R1)
        try:
            self.k.point("amdgpu_mn_invalidate", self.oid, True)
            self.invalidated += 1
            self.bound = False
            pages, self.pages = self.pages, []
            for p in pages:
                p.put()
        finally:
            self.resv.unlock()

    def gup_under_reservation(self) -> None:
        """``amdgpu_cs_ioctl`` -> validate -> ``amdgpu_ttm_tt_pin_userptr`` (R2)."""
        self.resv.lock()
        try:
            mm = self.proc.mm
            mm.mmap_lock.down_read()
            try:
                pages = get_user_pages(mm, self.start, self.nr_pages, FOLL_WRITE)
            except EFAULT:
                return  # the range is gone: the ioctl returns -EFAULT
            finally:
                mm.mmap_lock.up_read()
            self._bind(pages)
        finally:
            self.resv.unlock()

    def gup_before_reservation(self) -> None:
        """``amdgpu_cs_parser_bos`` after 2f568dbd6b94 (R3)."""
        for _ in range(MAX_TRIES):
            self.k.point("amdgpu_userptr_seq", self.oid, False)
            seen = self.invalidated
            try:
                pages = get_user_pages_fast(self.proc.mm, self.start, self.nr_pages, FOLL_WRITE)
            except EFAULT:
                return  # the range is gone: the ioctl returns -EFAULT
            self.resv.lock()
            try:
                self.k.point("amdgpu_userptr_check", self.oid, True)
                if self.invalidated == seen:
                    self._bind(pages)
                    return
            finally:
                self.resv.unlock()
            for p in pages:  # invalidated meanwhile: drop them and try again
                p.put()
        raise EDEADLK("amdgpu_cs: userptr invalidated on every try")

    def _bind(self, pages: list[Page]) -> None:
        """Bind the pages for the GPU (reservation held)."""
        self.k.point("amdgpu_ttm_bind", self.oid, True)
        old, self.pages = self.pages, pages
        for p in old:
            p.put()
        self.bound = True
