"""C10 (Christian): destroying sg tables from ``mmu_invalidate_range`` gives a "lockdep horror".

"When we would try to destroy the sg tables in an mmu_invalidate_range or
shrink_slab callback we would run into a lockdep horror." Daniel: "Can you
please paste the lockdeps you've seen with amdgpu when trying to do that?"

* ``unmap-under-resv``: the notifier of ``drivers/notifier_designs.py``
  :class:`ResvUnmap` takes the object's reservation lock (blocking), waits,
  zaps the GPU PTEs, unmaps the sg table and puts the pages -- isolation
  is perfect, but the callback runs holding
  ``mmu_notifier_invalidate_range_start``, and reservation-lock holders
  allocate with ``GFP_KERNEL`` (the submission reserves its fence slot
  under the lock; the boot-time ``dma_resv_lockdep()`` teaches the same
  order), so lockdep reports the cycle
  ``reservation_ww_class_mutex -> fs_reclaim ->
  mmu_notifier_invalidate_range_start -> reservation_ww_class_mutex``.
  The exact splat is kept in ``docs/golden/c10_lockdep_splat.txt``
  (:func:`splat` rebuilds it).
* ``i915-style``: the design of C7 (its own object lock, which nobody holds
  while allocating) tears down the same things from the same callback
  and is clean: the horror comes from *which* lock, not from unmapping.

(The dma-buf importers' own teardown under the exporter's reservation lock
is the dma-buf room's; this row unmaps the userptr object's sg table and
IOMMU entries directly with the device room, which is the same lock
pattern.)
"""

from __future__ import annotations

from ..kernel.runtime import Kernel
from ..kernel.strategy import FirstStrategy
from .catalog import Verdict
from .userptr_lab import lab

#: The lock cycle lockdep reports, in the order of its ``chain`` (the lock being taken first).
CHAIN = ("reservation_ww_class_mutex", "fs_reclaim", "mmu_notifier_invalidate_range_start")

#: The submission returns once its job is queued (as the CS ioctl does; the teardown
#: waits for it), the configuration of C14: the cycle does not depend on it, and the
#: clean design's run is then C14/i915-2018's experiment, proved there.
unmap_under_resv = lab(
    "unmap_under_resv", __name__, "resv-unmap",
    "Notifier locks the reservation object, waits, unmaps the sg table; munmap races a submission.",
    race="munmap", user="submit", wait=False,
)


def splat() -> str:
    """The lockdep report of ``unmap-under-resv`` in its first (non-preemptive) schedule."""
    ex = Kernel(strategy=FirstStrategy()).run(unmap_under_resv)
    found = ex.by_kind("circular-locking")
    if len(found) != 1:
        raise AssertionError(f"expected one circular-locking report, got {ex.kinds}")
    return found[0].report.rstrip() + "\n"


CLAIMS = [
    {"id": "C10", "design": "unmap-under-resv", "scenario": unmap_under_resv,
     "expected": Verdict(kinds=frozenset({"circular-locking"}), chain=CHAIN), "budget": 60},
    # The C7 design tearing down the same mappings under its own object lock, munmap racing a
    # submission: exactly C14/i915-2018's experiment (catalog R6), proved there.
    {"id": "C10", "design": "i915-style", "same_as": "C14/i915-2018"},
]
