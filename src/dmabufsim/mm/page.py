"""Page frames and the page allocator.

Models ``struct page`` (``include/linux/mm_types.h``: ``_refcount``,
``_mapcount``, the FOLL_PIN count, ``PG_dirty``, ``PG_referenced``) and the
allocator of ``mm/page_alloc.c`` (``alloc_pages``, watermarks, the slow path
that enters direct reclaim, ``should_fail_alloc_page`` fault injection).

A frame is owned by a process's address space (an :class:`~dmabufsim.mm.MmStruct`),
by a kernel object (any Python object: a buffer object, a shmem file), or
is free. Every free and every reuse bumps the frame's *generation*, so a
reference taken at generation ``g`` that meets a frame at another generation
is stale: the isolation checker uses that to tell a DMA that lands in memory
now belonging to someone else.

Rules:

* R1 (lifetime): a frame is freed exactly when its reference count drops to
  zero; freeing clears dirty/accessed/data, sets the owner to free and bumps
  the generation. Dropping a reference of a free frame is reported
  (``assertion``: "put_page on a free page") and changes nothing.
* R2 (allocation context): ``alloc_page`` calls ``might_alloc(gfp)``: an
  allocation that may sleep (``GFP_KERNEL``/``GFP_NOFS``/``GFP_NOIO``) in
  atomic context is ``sleep-in-atomic``; ``GFP_ATOMIC``/``GFP_NOWAIT`` never
  sleep and never reclaim.
* R3 (watermarks): above the low watermark an allocation succeeds at once.
  At or below it, an allocation allowed to direct-reclaim (after the
  thread's memalloc scopes, and not already inside reclaim: PF_MEMALLOC)
  runs the shrinkers (:mod:`dmabufsim.mm.shrinker`) inside
  ``fs_reclaim_acquire(gfp)`` ... ``fs_reclaim_release(gfp)`` with
  ``current.in_reclaim`` raised, retrying while reclaim makes progress (once
  only with ``__GFP_NORETRY``). Ordinary allocations may not take the last
  ``min`` frames; ``GFP_ATOMIC`` (``__GFP_HIGH``) may, and so may a
  ``PF_MEMALLOC`` thread (reclaim itself, or a ``memalloc_noreclaim_save``
  scope) outside interrupt context. When nothing can be had: ``ENOMEM``.
* R4 (fault injection): ``fail_nth=n`` makes the n-th allocation of the
  execution fail with ``ENOMEM``; ``fail_probability=p`` fails each
  allocation with probability ``p`` drawn through ``Kernel.random`` (so the
  schedule seed decides, and a replay repeats it).
* R5 (device reachability, claim C14): a frame that an IOMMU mapping can
  still reach (``page.dev_maps`` non-empty, maintained by the device room)
  must not be dirtied, unpinned, released or freed; the isolation checker
  (when installed as ``k.ext["isolation"]``) is told at each of those
  points and reports ``dirty-while-mapped``.
* R6 (what a reference touches, for the explorers: ``kernel/counter.py``):
  a frame's reference counts -- ``_refcount``, its FOLL_GET and its FOLL_PIN
  counts -- are declared on their own pseudo-object
  (``refcount_oid(page.oid)``), apart from the frame (owner, contents,
  mappings). Increments of ``_refcount`` commute (counter C3, ``up``, a floor
  of 1): ``get_page``, a lookup's reference, fork's and a fault's reference of
  a mapped frame each declare a read; an increment of a free frame's zero
  count is a bad page (R1) and a write. The FOLL_GET and FOLL_PIN counts
  decide nothing by themselves (counter C2): their updates are reads.
  Every ``_refcount`` decrement (``put_page``, ``unpin_user_page``: the one
  that reaches zero frees the frame, which also writes the frame and the
  allocator), every step that reads a count (``page_maybe_dma_pinned``,
  the last-reference tests of put and unpin) and the allocation of a reused
  frame (which sets its count) write it.
* R7 (contents apart from bookkeeping, for the explorers): a frame's
  *contents* -- the data a CPU or DMA load or store reads or writes
  (``data``) -- are declared on their own pseudo-object
  (:func:`contents_oid`), apart from its *bookkeeping*, declared on the
  frame itself (``page.oid``: owner, generation, ``PG_dirty`` /
  ``PG_referenced``, the reverse map and migration entries, the list of
  device mappings), from its page lock (R8) and from its counts (R6).
  Each path declares what it touches: a CPU load or store through a PTE
  (``copy_from_user`` / ``copy_to_user``, a user access) reads or writes the
  contents only; a device's DMA reads or writes the contents and reads the
  frame's bookkeeping, the owner, generation and reverse map the isolation
  checker judges it by (``device`` R4), when that checker is installed;
  ``iommu_map`` / ``dma_map_page`` write the IOMMU's page table, never the
  page (``iommu_dma_map_page`` needs only ``page_to_phys``; it takes no
  reference): in the model the frame's list of device mappings, written,
  and its owner and reverse map, read -- bookkeeping only, and so is
  ``iommu_unmap``; the free (``free_pages_prepare``: poisoning,
  ``init_on_free``) and the allocation of a reused frame
  (``post_alloc_hook``: ``init_on_alloc``, ``__GFP_ZERO``; a reused frame
  reads back as zero here) write both, so a DMA through a stale entry stays
  ordered with the free and with the reuse (``isolation`` R1, R2); a copy
  (``copy_user_highpage`` of a copy-on-write break or of fork's copy of a
  pinned page, a migration's ``folio_migrate_copy``, a copy engine) reads
  the source's contents and writes the destination's, while the flags and
  the mappings move on the bookkeeping (``folio_migrate_flags``,
  ``remove_migration_ptes``).
* R8 (the page lock apart, for the explorers): ``PG_locked`` is a bit of
  its own in ``page->flags``, set and cleared by atomic bitops
  (``folio_trylock``: ``test_and_set_bit_lock``; ``folio_unlock``:
  ``clear_bit_unlock_is_negative_byte``), and its sleepers are on a hashed
  wait queue (``folio_waitqueue``), not in ``struct page``. So the lock's
  holder and its waiters (``locked_by``, ``lock_waiters``,
  ``lock_watchers``) are declared on their own pseudo-object
  (:func:`lock_oid`), apart from the bookkeeping, the contents and the
  counts: ``trylock_page``, ``lock_page``, ``unlock_page``,
  ``wait_on_page_locked`` and a fault's or a walk's queueing on a migration
  entry (``migration_entry_wait_on_locked``) declare the lock only
  (``mm/page_lock.py``), so an ``iommu_map`` of the frame (its list of
  device mappings) and an ``unlock_page`` commute. What the lock protects
  stays ordered: a holder's critical section runs between two writes of
  the lock, and every step of it declares the state it touches on that
  state's own object (the bookkeeping, the contents, the page tables).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..kernel.counter import CounterRule, counter_add, counter_observe
from ..kernel.errors import ENOMEM, UsageError
from ..kernel.gfp import GFP, GFP_KERNEL, current_gfp_context, gfp_name
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.trace import part_oid, refcount_oid
from ..locking.annotations import fs_reclaim_acquire, fs_reclaim_release, might_alloc
from .shrinker import ShrinkerRegistry, shrinker_registry

PAGE_SHIFT = 12
#: Bytes per page; addresses (user VAs, IOVAs, GPU VAs) are byte addresses.
PAGE_SIZE = 1 << PAGE_SHIFT
#: Reclaim passes before giving up while each pass still frees something
#: (``MAX_RECLAIM_RETRIES`` in mm/page_alloc.c).
MAX_RECLAIM_RETRIES = 16
#: Frames of a machine when a scenario does not configure memory.
DEFAULT_NR_PAGES = 4096


class PageWatcher(Protocol):
    """What the mm room tells the isolation checker (installed as ``k.ext["isolation"]``).

    Contract: called synchronously on the thread doing the operation; it may
    report findings but must never block, switch threads or raise.
    """

    def page_event(self, page: Page, event: str) -> None:
        """``page`` is being dirtied/unpinned/released/freed (``event``) while ``page.dev_maps`` is non-empty."""


#: The part of a frame declared apart for its contents (R7, ``part_oid``).
_CONTENTS_PART = 0
#: The part of a frame declared apart for ``PG_locked`` and its wait queue (R8, ``part_oid``).
_LOCK_PART = 1


def contents_oid(oid: int) -> int:
    """The pseudo-object of the contents (``data``) of the frame ``oid``, apart from its bookkeeping (R7)."""
    return part_oid(oid, _CONTENTS_PART)


def lock_oid(oid: int) -> int:
    """The pseudo-object of the page lock (``PG_locked``, its waiters) of the frame ``oid`` (R8)."""
    return part_oid(oid, _LOCK_PART)


#: ``_refcount`` (R6): increments commute; zero frees, an increment from zero is a bad page.
PAGE_REFCOUNT = CounterRule("page _refcount", threshold=1, up=True)
#: The FOLL_GET and FOLL_PIN counts (R6): only observers act on them.
PAGE_GUP_COUNT = CounterRule("page gup count", threshold=None)


def page_ref_inc(page: Page, op: str) -> bool:
    """``page_ref_inc`` / ``get_page`` / ``folio_get``: one more reference of an allocated
    frame, declared on the frame's count (R6). A free frame (count zero) is a bad page (R1):
    False, nothing taken."""
    k = page.alloc.k
    if counter_add(k, page, "refcount", 1, PAGE_REFCOUNT, op, refcount_oid(page.oid), refuse=0) == 0:
        page.alloc.bad_page(page, f"{op} on a free page")
        return False
    return True


def page_gup_count_add(page: Page, attr: str, delta: int, op: str) -> None:
    """The FOLL_GET (``gup_refs``) or FOLL_PIN (``pincount``) count of ``page`` changes by
    ``delta`` (R6: an update that commutes; the steps that read the count write it)."""
    counter_add(page.alloc.k, page, attr, delta, PAGE_GUP_COUNT, op, refcount_oid(page.oid))


def page_count_observe(page: Page, op: str) -> None:
    """The running step reads ``page``'s counts (``page_count``, ``page_maybe_dma_pinned``):
    a write of the frame's count (R6, counter C4)."""
    counter_observe(page.alloc.k, op, refcount_oid(page.oid))


def owner_name(owner: object) -> str:
    """A printable name for a page owner (``mm:proc#12``, ``bo#7``, ``free``)."""
    if owner is None:
        return "free"
    name = getattr(owner, "name", None) or type(owner).__name__
    oid = getattr(owner, "oid", None)
    return f"{name}#{oid}" if oid is not None else str(name)


class Page:
    """``struct page``: one page frame.

    Invariants: ``owner is None`` iff the frame is free iff ``refcount == 0``;
    ``refcount >= len(rmap) + pincount``; ``gen`` changes on every free and
    every allocation; ``dev_maps`` lists the device mappings (IOMMU entries,
    including stale IOTLB entries) through which a device can reach the frame.
    """

    __slots__ = (
        "accessed",
        "alloc",
        "data",
        "dev_maps",
        "dirty",
        "gen",
        "gup_refs",
        "lock_waiters",
        "lock_watchers",
        "locked_by",
        "migration_ptes",
        "oid",
        "owner",
        "pfn",
        "pincount",
        "refcount",
        "rmap",
    )

    def __init__(self, alloc: PageAllocator, pfn: int, oid: int) -> None:
        self.alloc = alloc
        self.pfn = pfn
        self.oid = oid
        self.refcount = 0
        #: FOLL_PIN references (``page_maybe_dma_pinned``); each also holds a reference.
        self.pincount = 0
        #: FOLL_GET references taken by get_user_pages and not yet put.
        self.gup_refs = 0
        self.dirty = False
        self.accessed = False
        self.owner: object | None = None
        self.gen = 0
        #: Page contents: offset within the page -> value (None = all zero).
        self.data: dict[int, object] | None = None
        #: Reverse map: (mm, user address) of every PTE mapping the frame.
        self.rmap: list[tuple[Any, int]] = []
        #: (mm, user address) of every migration entry that names the frame (the entries
        #: ``rmap_walk`` + ``page_vma_mapped_walk(PVMW_MIGRATION)`` finds through the anon_vma;
        #: they are not in ``rmap`` and hold no reference: ``migrate_device.py`` R6).
        self.migration_ptes: list[tuple[Any, int]] = []
        #: Device mappings that can reach the frame (maintained by the device room).
        self.dev_maps: list[Any] = []
        #: ``PG_locked``: the thread holding the page lock (``mm/page_lock.py``), or None.
        self.locked_by: Any = None
        #: Threads sleeping in ``lock_page`` (``folio_wait_table``), in arrival order.
        self.lock_waiters: list[Any] = []
        #: Threads sleeping in ``folio_wait_locked`` (they wait for the bit, not to take it).
        self.lock_watchers: list[Any] = []

    @property
    def is_free(self) -> bool:
        return self.owner is None

    @property
    def mapcount(self) -> int:
        """``page_mapcount``: how many user PTEs map the frame."""
        return len(self.rmap)

    @property
    def phys(self) -> int:
        """``page_to_phys``: the frame's physical address."""
        return self.pfn << PAGE_SHIFT

    def read(self, offset: int = 0) -> object:
        """The value stored at ``offset`` (0 if never written); the step reads the frame's contents (R7)."""
        self.alloc.k.event("page_read", contents_oid(self.oid), False)
        d = self.data
        return 0 if d is None else d.get(offset, 0)

    def write(self, offset: int, value: object) -> None:
        """Store ``value`` at ``offset``; the step writes the frame's contents, not its bookkeeping (R7)."""
        self.alloc.k.event("page_write", contents_oid(self.oid), True)
        d = self.data
        if d is None:
            d = self.data = {}
        d[offset] = value

    def get(self) -> None:
        """``get_page``: take a reference (the frame must be allocated; R1, R6)."""
        self.alloc.k.point("get_page", refcount_oid(self.oid), False)
        page_ref_inc(self, "get_page")

    def _notify(self, event: str) -> None:
        w: PageWatcher | None = self.alloc.k.ext.get("isolation")
        if w is not None:
            w.page_event(self, event)

    def set_dirty(self) -> None:
        """``set_page_dirty``: the contents changed and must be written back (R5)."""
        self.alloc.k.point("set_page_dirty", self.oid, True)
        if self.dev_maps:
            self._notify("dirty")
        self.dirty = True

    def mark_accessed(self) -> None:
        """``mark_page_accessed``: set the referenced bit (LRU ageing)."""
        self.alloc.k.point("mark_page_accessed", self.oid, True)
        self.accessed = True

    def put(self) -> None:
        """``put_page``: a driver drops its reference (R1, R5, R6)."""
        k = self.alloc.k
        k.point("put_page", refcount_oid(self.oid), True)
        k.event("put_page", self.oid, False)  # R5: who can still reach the frame
        if self.dev_maps and self.owner is not None and self.gup_refs <= 1:
            # Only the last get_user_pages reference matters: dropping a spare
            # one (a lookup overtaken by an invalidation) leaves the frame held.
            self._notify("released")
        if self.gup_refs > 0:
            self.gup_refs -= 1
        self.alloc.put_ref(self)

    def __repr__(self) -> str:
        return (
            f"<Page pfn={self.pfn} gen={self.gen} owner={owner_name(self.owner)} ref={self.refcount} "
            f"pin={self.pincount} map={len(self.rmap)}{' dirty' if self.dirty else ''}>"
        )


class AllocStats:
    """Counters of one allocator (``/proc/vmstat``-like)."""

    #: Statistics: increments commute and nothing in the model reads them (accesses A3).
    __untracked__ = "*"

    __slots__ = ("allocs", "direct_reclaims", "failed", "frees", "injected", "reclaimed")

    def __init__(self) -> None:
        self.allocs = 0
        self.frees = 0
        self.failed = 0
        self.injected = 0
        self.direct_reclaims = 0
        self.reclaimed = 0

    def as_dict(self) -> dict[str, int]:
        return {s: getattr(self, s) for s in self.__slots__}


class PageAllocator:
    """The buddy allocator of one machine, reduced to order-0 pages (``alloc_page``).

    Frames are created lazily (a machine of a million frames costs nothing
    until they are used); freed frames are reused last-freed-first, as the
    per-cpu free lists do, which makes use-after-free reuse likely -- the
    case the isolation checker is for.
    """

    def __init__(
        self,
        nr_pages: int = DEFAULT_NR_PAGES,
        *,
        low: int | None = None,
        min: int | None = None,
        fail_nth: int = 0,
        fail_probability: float = 0.0,
    ) -> None:
        if nr_pages <= 0:
            raise UsageError(f"nr_pages must be positive, got {nr_pages}")
        self.k: Kernel = current_kernel()
        self.oid = self.k.new_oid()
        self.nr_pages = nr_pages
        #: Low watermark: at or below it, allocations that may reclaim do so (R3).
        self.low = low if low is not None else max(1, nr_pages // 32)
        #: Min watermark: frames only __GFP_HIGH (atomic) allocations may take.
        self.min = min if min is not None else self.low // 2
        if not 0 <= self.min <= self.low < nr_pages:
            raise UsageError(f"need 0 <= min ({self.min}) <= low ({self.low}) < nr_pages ({nr_pages})")
        self.fail_nth = fail_nth
        self.fail_probability = fail_probability
        self._nr_allocs = 0
        self._free: list[Page] = []
        self._never_used = 0
        #: Every frame created so far, by pfn (index = pfn).
        self.frames: list[Page] = []
        self.stats = AllocStats()

    # ------------------------------------------------------------------ state

    @property
    def nr_free(self) -> int:
        """Free frames (``NR_FREE_PAGES``); the step reads the allocator."""
        self.k.event("nr_free_pages", self.oid, False)
        return len(self._free) + (self.nr_pages - self._never_used)

    @property
    def shrinkers(self) -> ShrinkerRegistry:
        """The machine's registered shrinkers (``shrinker_list``, :func:`~dmabufsim.mm.shrinker.shrinker_registry`)."""
        return shrinker_registry(self.k)

    def pfn_to_page(self, pfn: int) -> Page | None:
        """``pfn_to_page``: the frame, or None for a pfn never handed out or out of range."""
        return self.frames[pfn] if 0 <= pfn < len(self.frames) else None

    def bad_page(self, page: Page, what: str) -> None:
        """``bad_page``: report a refcount misuse (R1)."""
        self.k.report(
            "assertion",
            f"BUG: Bad page state: {what}",
            details={"pfn": page.pfn, "gen": page.gen, "refcount": page.refcount},
            rule="page_alloc R1: references of a free frame",
            signature=f"bad-page:{what}:{page.pfn}",
        )

    # ------------------------------------------------------------------ allocation

    def _should_fail(self) -> bool:
        self._nr_allocs += 1
        if self.fail_nth and self._nr_allocs == self.fail_nth:
            return True
        p = self.fail_probability
        return p > 0.0 and self.k.random(1_000_000) < int(p * 1_000_000)

    def _take(self, owner: object) -> Page:
        if self._free:
            page = self._free.pop()
            # R6: the count of a reused frame is set (a stale reference may still reach it); R7:
            # so are its owner and generation, and its contents read back as zero (post_alloc_hook).
            # A frame never handed out before is reachable by no one else.
            k = self.k
            k.event("alloc_page", refcount_oid(page.oid), True)
            k.event("alloc_page", page.oid, True)
            k.event("alloc_page", contents_oid(page.oid), True)
        else:
            pfn = self._never_used
            self._never_used += 1
            page = Page(self, pfn, self.k.new_oid())
            self.frames.append(page)
        page.owner = owner
        page.refcount = 1
        page.gen += 1
        self.stats.allocs += 1
        return page

    def alloc_page(self, gfp: GFP, owner: object) -> Page:
        """``alloc_page(gfp)``: a frame owned by ``owner`` with one reference (R2-R4)."""
        if owner is None:
            raise UsageError("alloc_page needs an owner (an MmStruct or a kernel object)")
        k = self.k
        might_alloc(gfp)
        g = current_gfp_context(gfp)
        t = k.current
        may_reclaim = bool(g & GFP.DIRECT_RECLAIM) and t.in_reclaim == 0
        k.point("alloc_page", self.oid, True, gfp_name(gfp))
        if self._should_fail():
            self.stats.injected += 1
            self.stats.failed += 1
            raise ENOMEM(f"alloc_page({gfp_name(gfp)}): injected failure (allocation #{self._nr_allocs})")
        if self.nr_free > self.low:
            return self._take(owner)
        if may_reclaim:
            tries = 1 if g & GFP.NORETRY else MAX_RECLAIM_RETRIES
            for _ in range(tries):
                freed = self.direct_reclaim(gfp, 2 * self.low + 1 - self.nr_free)
                if self.nr_free > self.low or freed == 0:
                    break
        # __GFP_HIGH, or PF_MEMALLOC outside interrupts (gfp_pfmemalloc_allowed: the task is
        # reclaiming, or in a memalloc_noreclaim scope), may use the reserves.
        reserve = 0 if g & GFP.HIGH or (t.in_reclaim and not t.in_irq) else self.min
        if self.nr_free > reserve:
            return self._take(owner)
        self.stats.failed += 1
        raise ENOMEM(f"alloc_page({gfp_name(gfp)}): out of memory ({self.nr_free} free, reserve {reserve})")

    def direct_reclaim(self, gfp: GFP, nr_to_reclaim: int) -> int:
        """``__perform_reclaim``: run the shrinkers inside fs_reclaim (R3). Returns frames freed."""
        k = self.k
        t = k.current
        self.stats.direct_reclaims += 1
        before = self.nr_free
        took = fs_reclaim_acquire(gfp)
        t.in_reclaim += 1
        try:
            shrinkers: ShrinkerRegistry | None = k.ext.get("mm.shrinkers")  # none registered yet: none to run
            if shrinkers is not None:
                shrinkers.shrink_slab(gfp, max(1, nr_to_reclaim))
        finally:
            t.in_reclaim -= 1
            if took:
                fs_reclaim_release(gfp)
        k.event("direct_reclaim", self.oid, True)  # the free count, read again after the shrinkers ran
        freed = max(0, self.nr_free - before)
        self.stats.reclaimed += freed
        return freed

    # ------------------------------------------------------------------ freeing

    def put_ref(self, page: Page) -> None:
        """Drop one reference; free the frame at zero (R1). Not a scheduling point."""
        k = self.k
        k.event("put_page", refcount_oid(page.oid), True)  # R6: a decrement-and-test, in the caller's step
        if page.refcount <= 0:
            self.bad_page(page, "put_page on a free page")
            return
        page.refcount -= 1
        if page.refcount == 0:
            k.event("free_pages_prepare", page.oid, True)  # R1: the frame's owner, generation, flags
            k.event("free_pages_prepare", contents_oid(page.oid), True)  # R7: its contents (poisoned, zeroed)
            self._free_page(page)

    def _free_page(self, page: Page) -> None:
        if page.dev_maps:
            page._notify("freed")
        if page.pincount:
            self.bad_page(page, "freeing a pinned page")
            page.pincount = 0
        page.owner = None
        page.gen += 1
        page.dirty = False
        page.accessed = False
        page.data = None
        page.gup_refs = 0
        self.stats.frees += 1
        self.k.event("free_page", self.oid, True)  # the free list, written in the putter's step
        self._free.append(page)

    def free_page(self, page: Page) -> None:
        """``__free_page``: drop the owner's reference (a kernel object freeing its frame)."""
        self.k.point("free_page", page.oid, True)
        self.put_ref(page)

    def statistics(self) -> dict[str, int]:
        """Counters plus the current number of free frames."""
        d = self.stats.as_dict()
        d["nr_free"] = self.nr_free
        d["nr_pages"] = self.nr_pages
        return d


def init_memory(nr_pages: int = DEFAULT_NR_PAGES, **kw: Any) -> PageAllocator:
    """Configure this machine's memory (call once, early in the scenario).

    Keyword arguments are those of :class:`PageAllocator` (``low``, ``min``,
    ``fail_nth``, ``fail_probability``).
    """
    k = current_kernel()
    if "mm.alloc" in k.ext:
        raise UsageError("init_memory() called twice, or after the first allocation of this execution")
    a = k.ext["mm.alloc"] = PageAllocator(nr_pages, **kw)
    return a


def page_allocator(k: Kernel | None = None) -> PageAllocator:
    """The machine's allocator; created on first use from ``Config.options["mm"]`` (a dict of
    :class:`PageAllocator` keyword arguments, ``nr_pages`` included) when the scenario did not
    call :func:`init_memory`."""
    k = k or current_kernel()
    a: PageAllocator | None = k.ext.get("mm.alloc")
    if a is None:
        opts = dict(k.config.options.get("mm", {}))
        a = k.ext["mm.alloc"] = PageAllocator(**opts)
    return a


def alloc_page(gfp: GFP, owner: object) -> Page:
    """``alloc_page(gfp)`` on the running machine; see :meth:`PageAllocator.alloc_page`."""
    return page_allocator().alloc_page(gfp, owner)


def free_page(page: Page) -> None:
    """``__free_page`` on the running machine."""
    page.alloc.free_page(page)


def kswapd_reclaim(nr_to_reclaim: int) -> int:
    """``balance_pgdat`` (kswapd): one background reclaim pass running the shrinkers (R3).

    kswapd reclaims as a ``GFP_KERNEL`` allocation would, inside
    ``fs_reclaim_acquire`` with ``PF_MEMALLOC``, but on its own thread: the
    shrinkers run holding no lock of an allocating thread. Returns frames freed.
    """
    return page_allocator().direct_reclaim(GFP_KERNEL, nr_to_reclaim)
