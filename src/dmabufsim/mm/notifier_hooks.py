"""The hook points through which page-table changes reach secondary MMUs.

Models the core-mm side of ``include/linux/mmu_notifier.h``:
``struct mmu_notifier_range``, ``enum mmu_notifier_event`` and
``mmu_notifier_invalidate_range_start[_nonblock]`` /
``mmu_notifier_invalidate_range_end`` as called by ``mm/memory.c``,
``mm/mmap.c``, ``mm/mprotect.c`` and ``mm/madvise.c``. The subscribers
themselves (``mmu_notifier``, ``mmu_interval_notifier``) are built on this
interface by the userptr code.

Subscriber interface (tiny on purpose)::

    class MySubscriber:
        def invalidate_range_start(self, range: MmuNotifierRange) -> None: ...
        def invalidate_range_end(self, range: MmuNotifierRange) -> None: ...
        def release(self, mm: MmStruct) -> None: ...        # optional

The hooks see the address space only as a :class:`NotifierMm` (the
subscriber list and the bookkeeping of ranges in flight), so they sit below
``memory.py``, which calls them.

Rules:

* R1 (bracketing): every change that removes or downgrades user PTEs
  (munmap: ``UNMAP``, madvise(DONTNEED) and copy-on-write breaking:
  ``CLEAR``, mprotect: ``PROTECTION_VMA``, fork write-protecting the
  parent: ``PROTECTION_PAGE``, exit: ``RELEASE``) calls
  ``invalidate_range_start(range)`` while the pages are still mapped and
  referenced, changes the PTEs (pages may be freed), then
  ``invalidate_range_end(range)``. The mm's ``mmap_lock`` is held (read or
  write) across the whole bracket.
* R2 (lockdep): the ``mmu_notifier_invalidate_range_start`` map is held
  across the start callbacks and, separately, across the end callbacks: a
  lock taken inside a callback gets ``map -> lock``.
* R3 (blocking): a blockable range (the normal case) calls ``might_sleep``;
  its callbacks may sleep and must succeed (raising ``EAGAIN`` there is an
  ``assertion`` finding, "WARN: blockable invalidate_range_start failed").
  In a non-blockable range (the OOM reaper) a callback that would have to
  sleep raises ``EAGAIN``: the callbacks that succeeded get their
  ``invalidate_range_end``, and ``EAGAIN`` propagates to the caller, which
  must leave the PTEs alone and must not call ``invalidate_range_end``.
* R4 (subscriber contract): a callback must not allocate memory with
  direct reclaim (reclaim can invalidate too: it re-acquires the map), must
  not take ``mmap_lock`` and must, by the time ``invalidate_range_start``
  returns, have stopped every secondary access to the range (claim C15).
* R5 (secondary TLBs): a page-table change that clears or replaces PTEs
  calls :func:`arch_invalidate_secondary_tlbs` (``mmu_notifier_arch_invalidate_secondary_tlbs``,
  before 6.6 ``mmu_notifier_invalidate_range``) *after* the PTEs are cleared
  and the CPU TLB flushed and *before* the old pages are freed or reused:
  the order is clear PTE -> flush CPU TLB and secondary TLBs -> free page.
  A secondary MMU that walks the CPU page table itself (an IOMMU with ATS
  and PASID, ``device/sva.py``) can refill its TLB any time between
  ``invalidate_range_start`` and ``_end``; only this hook flushes it late
  enough. Subscribers without an ``arch_invalidate_secondary_tlbs`` method
  are not called, and with none the hook costs no scheduling point.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from ..kernel.errors import EAGAIN
from ..kernel.runtime import Kernel
from ..locking.annotations import mmu_notifier_map


class MmuNotifyEvent(Enum):
    """``enum mmu_notifier_event``: why the range is invalidated."""

    UNMAP = "unmap"  #: munmap / exit: the range is gone
    CLEAR = "clear"  #: PTEs cleared, the vma stays (madvise DONTNEED, COW break)
    PROTECTION_VMA = "protection_vma"  #: mprotect changed the vma's protection
    PROTECTION_PAGE = "protection_page"  #: per-page write protection (fork's COW)
    SOFT_DIRTY = "soft_dirty"  #: soft-dirty tracking reset
    RELEASE = "release"  #: the whole address space is being torn down
    MIGRATE = "migrate"  #: pages migrate
    EXCLUSIVE = "exclusive"  #: device-exclusive access


class NotifierMm(Protocol):
    """An address space as the hook points see it: the notifier side of ``struct mm_struct``.

    The machine, the mm's identity, its subscribers in registration order
    (what ``mm->notifier_subscriptions`` leads to), the ranges between their
    start and end, and a counter of invalidations: all the hooks read or
    write. :class:`~dmabufsim.mm.memory.MmStruct` is one; a unit test may
    drive the hooks with a bare one, without page tables.
    """

    k: Kernel
    oid: int
    subscribers: list[Any]
    active_ranges: list[MmuNotifierRange]
    stats_invalidations: int


@dataclass(frozen=True, slots=True)
class MmuNotifierRange:
    """``struct mmu_notifier_range``: the half-open range ``[start, end)`` of ``mm``."""

    mm: NotifierMm
    start: int
    end: int
    event: MmuNotifyEvent
    blockable: bool = True
    #: ``range->owner``: lets a subscriber skip invalidations it caused itself.
    owner: object | None = None

    def overlaps(self, start: int, end: int) -> bool:
        """Does ``[start, end)`` intersect the range?"""
        return start < self.end and self.start < end


class MmuSubscriber(Protocol):
    """What the mm calls on a subscriber (see the module docstring)."""

    def invalidate_range_start(self, range: MmuNotifierRange) -> None: ...

    def invalidate_range_end(self, range: MmuNotifierRange) -> None: ...


def _call_end(subs: list[Any], range: MmuNotifierRange) -> None:
    for sub in subs:
        sub.invalidate_range_end(range)


def invalidate_range_start(range: MmuNotifierRange) -> None:
    """``mmu_notifier_invalidate_range_start`` (``_nonblock`` when ``range.blockable`` is False).

    Raises ``EAGAIN`` (after ending the subscribers that succeeded) when a
    non-blockable range meets a subscriber that cannot proceed (R3).
    """
    mm = range.mm
    k = mm.k
    if range.blockable:
        k.might_sleep("mmu_notifier_invalidate_range_start")
    k.point("invalidate_range_start", mm.oid, True, range.event.value)
    mm.stats_invalidations += 1
    m = mmu_notifier_map()
    m.acquire()
    done: list[Any] = []
    try:
        for sub in list(mm.subscribers):
            try:
                sub.invalidate_range_start(range)
            except EAGAIN:
                if range.blockable:
                    k.report(
                        "assertion",
                        "WARNING: blockable mmu_notifier invalidate_range_start failed",
                        details={"subscriber": type(sub).__name__, "event": range.event.value},
                        rule="notifier_hooks R3: blockable callbacks must succeed",
                        signature=f"notifier-eagain-blockable:{type(sub).__name__}",
                    )
                    done.append(sub)
                    continue
                # The successful ones are ended, then EAGAIN goes to the caller.
                _call_end(done, range)
                raise
            done.append(sub)
    finally:
        m.release()
    mm.active_ranges.append(range)


def arch_invalidate_secondary_tlbs(mm: NotifierMm, start: int, end: int) -> None:
    """``mmu_notifier_arch_invalidate_secondary_tlbs(mm, start, end)`` (R5).

    Called by the core mm between clearing PTEs of ``[start, end)`` (and
    flushing the CPU TLB) and freeing the pages they mapped. Must not sleep
    (the kernel calls it under the page-table lock).
    """
    for sub in mm.subscribers:
        hook = getattr(sub, "arch_invalidate_secondary_tlbs", None)
        if hook is not None:
            hook(mm, start, end)


def invalidate_range_end(range: MmuNotifierRange) -> None:
    """``mmu_notifier_invalidate_range_end``."""
    mm = range.mm
    k = mm.k
    if range.blockable:
        k.might_sleep("mmu_notifier_invalidate_range_end")
    k.point("invalidate_range_end", mm.oid, True, range.event.value)
    m = mmu_notifier_map()
    m.acquire()
    try:
        _call_end(list(mm.subscribers), range)
    finally:
        m.release()
    if range in mm.active_ranges:
        mm.active_ranges.remove(range)
