"""C17 (Daniel): i915 also had a root-only userptr path with no notifier at all.

"Note that there are 2 paths for i915 userptr. One is the mmu notifier,
the other one is the root-only hack we have for dubious reasons."

The unsynchronised userptr (``drivers/userptr_unsync.py``,
``I915_USERPTR_UNSYNCHRONIZED``, ``CAP_SYS_ADMIN`` only) looks its pages up
once and keeps them until close. It is flagged on the first race:

* ``fork``: after the parent's copy-on-write break, the next job writes
  the page now owned by the child (``dma-foreign-page``).
* ``munmap``: the next job writes pages the process no longer maps
  (``user-incoherence``, info: the references keep the kernel intact).
"""

from __future__ import annotations

from .catalog import Verdict
from .userptr_lab import lab

fork = lab("fork", __name__, "unsync", "Unsynchronised userptr; fork + COW break racing a submission.",
           race="fork", user="submit")
munmap = lab("munmap", __name__, "unsync", "Unsynchronised userptr; munmap racing a submission.",
             race="munmap", user="submit")

CLAIMS = [
    {"id": "C17", "design": "root-only-unsync-fork", "scenario": fork,
     "expected": Verdict(kinds=frozenset({"dma-foreign-page"})), "budget": 100},
    # Proved: optimal DPOR exhausts every schedule in 21 Mazurkiewicz traces, dropping nothing.
    {"id": "C17", "design": "root-only-unsync-munmap", "scenario": munmap,
     "expected": Verdict(clean=True, kinds=frozenset({"user-incoherence"})), "strategy": "odpor", "budget": 200},
]
