"""C3 (Christian): a lockless fence wait is all an MMU-notifier or shrinker callback needs.

"When you need to unmap a DMA-buf because of mmu_invalidate_range or
shrink_slab you need to wait for its reservation object anyway [...] The
sg tables pointing to the now released memory might live a bit longer, but
that is unproblematic and actually intended."

Design "wait, free, keep sg" (``drivers/notifier_designs.py``
:class:`WaitFreeKeepSg`): the notifier waits for the object's fences
without the reservation lock, releases the pages, and leaves the sg table,
IOMMU entries and GPU PTEs until the next submission. The process unmaps
the range, another process allocates right after (the frames are reused),
and the object stays open a little longer on a device that, like real
hardware sometimes does, repeats its last writes (``broken``).

Verdict: lockdep is clean (no reservation lock is taken), but the
isolation checker reports the pages released while the IOMMU still reaches
them (``dirty-while-mapped``), the mapping that survives the invalidation
(``stale-mapping``, C15), and the faulty write through the stale entry
landing in the other process's page (``dma-foreign-page``, see C9).
"""

from __future__ import annotations

from .catalog import Verdict
from .userptr_lab import lab

wait_free_keep_sg = lab(
    "wait_free_keep_sg", __name__, "wait-free-keep-sg",
    "Lockless wait, pages released, sg/IOMMU/GPU mappings kept; munmap, frames reused, faulty device.",
    race="munmap", user="none", reuse=True, broken=True, linger_ns=100_000,
)

CLAIM = {
    "id": "C3",
    "design": "wait-free-keep-sg",
    "scenario": wait_free_keep_sg,
    "expected": Verdict(kinds=frozenset({"dirty-while-mapped", "stale-mapping", "dma-foreign-page"})),
    "budget": 100,
}
