"""Models the i915-style shrinker of userptr objects: trylock, skip, and then clean up everything (claim C7).

Daniel: "mmu and slab can only trylock, and they need to skip to the next
object when the trylock fails. But once you have the lock you imo should
be able to clean up the entire mess still. We definitely do that for the
i915 shrinkers". :class:`I915UserptrShrinker` follows
``i915_gem_shrink()`` (``i915_gem_shrinker.c``) over the userptr objects of
``userptr_i915_2018.py``: for each object with pages, trylock its
reservation object, and if that fails skip it (counted, ``SHRINK_STOP``
when nothing could be done); with the lock held, take it out of the
notifier's tree and run the same teardown as the notifier: wait for the
GPU, unbind (GPU PTEs and IOMMU entries), and only then dirty, mark
accessed and put the pages.

(The C5/C6 shrinkers that block on the reservation lock, or trylock a
plain buffer cache, are in ``scenarios/c05_c06_reclaim_locking.py``.)

Rules:

* R1 (trylock only): the reservation lock is only trylocked (the thread
  that entered reclaim may hold it, or hold locks ordered before it).
* R2 (skip): a busy object is skipped; a pass that skipped everything it
  looked at returns ``SHRINK_STOP``.
* R3 (clean up everything): a locked object leaves the shrinker with no
  GPU PTE, IOMMU entry or page reference left, and its pages were dirtied
  only after the mappings were gone (claims C7, C14).
* R4 (count): ``count_objects`` is lock-free: pages of bound objects.
* R5 (importers, claim C7): :class:`I915ExportedUserptrShrinker`, for
  objects exported as dma-bufs, also invalidates the importers with the
  lock held before the teardown of R3: wait idle (every fence, the
  importers' included), ``move_notify``, tear their tables down.
"""

from __future__ import annotations

from ..mm.shrinker import SHRINK_EMPTY, SHRINK_STOP, ShrinkControl, Shrinker
from .userptr_export import ExportedI915Userptr
from .userptr_i915_2018 import I915Userptr


class I915UserptrShrinker(Shrinker):
    """``i915->mm.shrinker`` over userptr objects (R1-R4)."""

    name = "i915_gem_shrinker"

    def __init__(self, objects: list[I915Userptr]) -> None:
        super().__init__()
        self.objects = objects
        self.nr_skipped = 0

    def count_objects(self, sc: ShrinkControl) -> int:
        n = 0
        for o in self.objects:
            bo = o.bo
            bo.k.event("userptr_peek_bound", bo.oid, False)  # a lockless look (count_objects takes no lock)
            if bo.bound:
                n += bo.npages
        return n or SHRINK_EMPTY

    def cleanup_locked(self, obj: I915Userptr) -> None:
        """R3, reservation lock held: ``cancel_userptr`` (wait, unbind, then dirty/accessed/put)."""
        obj.cancel(deactivate=True)

    def scan_objects(self, sc: ShrinkControl) -> int:
        freed = 0
        skipped = 0
        for obj in list(self.objects):
            if freed >= sc.nr_to_scan:
                break
            bo = obj.bo
            bo.k.event("userptr_peek_bound", bo.oid, False)  # a lockless look before the trylock
            if not bo.bound:
                continue
            if not bo.resv.trylock():  # R1, R2
                skipped += 1
                continue
            try:
                self.cleanup_locked(obj)  # R3
                freed += bo.npages
            finally:
                bo.resv.unlock()
        self.nr_skipped += skipped
        sc.nr_scanned = max(freed, 1)
        if freed == 0 and skipped:
            return SHRINK_STOP
        return freed


class I915ExportedUserptrShrinker(I915UserptrShrinker):
    """The same shrinker over userptr objects that may be exported as dma-bufs (claim C7, R5).

    Once the trylock succeeded it also invalidates the importers, in
    Daniel's order: wait for every fence of the reservation object (the
    importers' jobs included), ``dma_buf_move_notify`` (importers drop
    their tables and re-map before their next access), tear every importer
    table down (``dma_buf_teardown_mappings``: no importer IOMMU entry
    left), then unbind its own GPU PTEs and IOMMU entries and only then
    dirty and put the pages (``userptr_export.ExportedI915Userptr``).
    """

    def cleanup_locked(self, obj: I915Userptr) -> None:
        if isinstance(obj, ExportedI915Userptr):
            obj.invalidate_importers_locked()
        obj.cancel(deactivate=True)
