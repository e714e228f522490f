"""C9 (Daniel): sg tables that outlive the memory defeat IOMMU isolation.

"One reason for an IOMMU is that you have device access isolation, and a
broken device can't access memory it shouldn't be able to access [...]
let's not pretend hw is perfect, especially GPUs."

A device that keeps writing after it was told it was done
(``Device(broken=True)``: every job's writes are repeated a microsecond
later) meets a process that unmaps the userptr range while another process
allocates the freed frames:

* ``torn-down``: the shared helper zapped the GPU PTEs and unmapped the
  IOMMU entries in the notifier: the stray writes fault (``iommu-fault``,
  info: isolation held). Clean.
* ``stale-sg``: the "wait, free, keep sg" design of C3: the stray write
  goes through the stale entry into a frame now owned by the other process
  (``dma-foreign-page``: isolation violated), after the pages were released
  while mapped (``dirty-while-mapped``) and the mapping survived the
  invalidation (``stale-mapping``). This is C3's experiment, so the row
  names it (``same_as``) rather than running a copy of it.
"""

from __future__ import annotations

from .catalog import Verdict
from .userptr_lab import lab

torn_down = lab(
    "torn_down", __name__, "helper",
    "Mappings torn down by the helper's notifier; a faulty device keeps writing.",
    race="munmap", user="none", reuse=True, broken=True, linger_ns=100_000,
)
CLAIMS = [
    {"id": "C9", "design": "torn-down", "scenario": torn_down,
     # Proved: optimal DPOR exhausts every schedule in 9 Mazurkiewicz traces (~0.1 s), dropping nothing.
     "expected": Verdict(clean=True, kinds=frozenset({"iommu-fault"})), "strategy": "odpor", "budget": 200},
    # The same experiment as C3's: one exploration answers both rows (catalog R6).
    {"id": "C9", "design": "stale-sg", "same_as": "C3/wait-free-keep-sg"},
]
