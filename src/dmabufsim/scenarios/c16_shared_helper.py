"""C16 (Daniel): userptr handling should be shared code, not re-invented per driver.

"Maybe we should have more shared code in this, it seems to be a source of
endless amounts of fun". The model has one userptr helper
(``drivers/userptr_helper.py``: interval notifier, sequence, notifier lock,
GPU PTE zap + TLB flush, IOMMU unmap, dirty/put strictly after), and the
modern reference driver (``drivers/userptr_modern.py``) is nothing but that
helper. These rows run the modern driver through every race of the bench
that breaks one of the other designs -- the fork/copy-on-write race of C11
and C13 with a rogue job, the unmap and frame reuse of C3/C9 with a faulty
device, mprotect, and reclaim -- and it stays clean (its only findings are
the faults of the broken device: isolation held).

The other half of the claim -- the helper is used by *every* reference
design that passes C11, C13, C14 and C15 -- is decided by the model in
``tests/scenarios/test_c16_helper_everywhere.py``: every design of the
userptr bench runs those races under PCT, and the ones that come out
clean (the helper and i915-2018) are exactly the ones whose teardown goes
through the helper's ``userptr_teardown``; i915-2018 keeps its own
notifier, tree and object lock, and shares the teardown (wait, unbind,
then dirty/put), the part that every other 2018 design got wrong.
"""

from __future__ import annotations

from .catalog import Verdict
from .userptr_lab import lab

fork_rogue_broken = lab(
    "fork_rogue_broken", __name__, "helper", "Modern driver: fork + COW break, rogue job, faulty device.",
    race="fork", user="rogue", broken=True,
)
munmap_reuse_broken = lab(
    "munmap_reuse_broken", __name__, "helper", "Modern driver: munmap, frames reused, faulty device.",
    race="munmap", user="submit", reuse=True, broken=True, linger_ns=100_000,
)
mprotect_submit = lab(
    "mprotect_submit", __name__, "helper", "Modern driver: mprotect(PROT_READ) racing a submission.",
    race="mprotect", user="submit",
)

_ISOLATED = Verdict(clean=True, kinds=frozenset({"iommu-fault"}), absent=frozenset({"user-incoherence"}))

CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule in 9 Mazurkiewicz traces, dropping nothing.
    {"id": "C16", "design": "modern-fork-rogue", "scenario": fork_rogue_broken, "expected": _ISOLATED,
     "strategy": "odpor", "budget": 100},
    {"id": "C16", "design": "modern-munmap-reuse", "scenario": munmap_reuse_broken, "expected": _ISOLATED,
     "budget": 100},
    {"id": "C16", "design": "modern-mprotect", "scenario": mprotect_submit,
     "expected": Verdict(clean=True, absent=frozenset({"user-incoherence"})), "budget": 100},
]
