"""C7 (Daniel): mmu and slab callbacks trylock and skip, and once locked they clean up everything.

"Yeah mmu and slab can only trylock, and they need to skip to the next
object when the trylock fails. But once you have the lock you imo should
be able to clean up the entire mess still. We definitely do that for the
i915 shrinkers [...] So there's completely feasible ways to make sure the
sg list is all properly released, all DMA gone and the IOMMU mappings torn
down."

The i915-style design: the userptr notifier of ``drivers/userptr_i915_2018.py``
(its own object lock, never held while allocating: wait, unbind, then
dirty and put) and the shrinker of ``drivers/shrinker_designs.py``
(trylock the reservation object, skip a busy one, otherwise the same
teardown). A job naming the object, kswapd's reclaim running the shrinker,
and the process unmapping the range (``munmap``) or forking and breaking
copy-on-write (``fork``) all race. (Dynamic dma-buf importers, the
remaining step of "invalidate importers", are the dma-buf room's
``move_notify``; the userptr objects here are not exported.)

Verdict: clean -- lockdep is silent, no DMA reaches a page it must not, no
page is dirtied or released while mapped, and no mapping survives an
invalidation or the end.
"""

from __future__ import annotations

from .userptr_lab import lab

munmap = lab("munmap", __name__, "i915-2018", "i915-style notifier and shrinker; munmap, job and kswapd race.",
             race="munmap", user="submit", reclaim=True)
fork = lab("fork", __name__, "i915-2018", "i915-style notifier and shrinker; fork + COW, job and kswapd race.",
           race="fork", user="submit", reclaim=True)

CLAIMS = [
    {"id": "C7", "design": "i915-munmap", "scenario": munmap, "expected": "clean", "budget": 150},
    {"id": "C7", "design": "i915-fork", "scenario": fork, "expected": "clean", "budget": 150},
]
