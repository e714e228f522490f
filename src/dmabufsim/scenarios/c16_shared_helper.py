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

``modern-munmap-reuse`` and ``modern-mprotect`` are proved (every schedule
explored) on the smallest configuration in which the other designs still
break: the submission looks the pages up and binds them itself, returns
once its job is queued (the teardown waits for it), and the race runs in
the process's main thread. On the same configuration "wait, free, keep sg"
(C3) lets the faulty device write a frame the other process now owns
(``dma-foreign-page``) and the no-retry driver (C11) writes the page
mprotect made read-only (``user-incoherence``).

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

from typing import Any

from .catalog import Verdict
from .userptr_lab import lab

fork_rogue_broken = lab(
    "fork_rogue_broken", __name__, "helper", "Modern driver: fork + COW break, rogue job, faulty device.",
    race="fork", user="rogue", broken=True,
)
#: The proved rows' configuration: the submission looks the pages up itself (no race-free
#: first job), returns once its job is queued (the teardown waits for it), and the race runs
#: in the process's main thread. Each of the three halves the traces to exhaust or more;
#: none takes away a schedule in which another design breaks (see the module docstring).
_PROVED: dict[str, Any] = {"prebind": False, "wait": False, "inline_race": True}
munmap_reuse_broken = lab(
    "munmap_reuse_broken", __name__, "helper", "Modern driver: munmap, frames reused, faulty device.",
    race="munmap", user="submit", reuse=True, broken=True, linger_ns=100_000, **_PROVED,
)
mprotect_submit = lab(
    "mprotect_submit", __name__, "helper", "Modern driver: mprotect(PROT_READ) racing a submission.",
    race="mprotect", user="submit", **_PROVED,
)

_ISOLATED = Verdict(clean=True, kinds=frozenset({"iommu-fault"}), absent=frozenset({"user-incoherence"}))

CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule in 9 Mazurkiewicz traces, dropping nothing.
    {"id": "C16", "design": "modern-fork-rogue", "scenario": fork_rogue_broken, "expected": _ISOLATED,
     "strategy": "odpor", "budget": 100},
    # Proved: optimal DPOR exhausts every schedule in 2,036 Mazurkiewicz traces, dropping nothing.
    {"id": "C16", "design": "modern-munmap-reuse", "scenario": munmap_reuse_broken, "expected": _ISOLATED,
     "strategy": "odpor", "budget": 4000},
    # Proved: optimal DPOR exhausts every schedule in 638 Mazurkiewicz traces, dropping nothing.
    {"id": "C16", "design": "modern-mprotect", "scenario": mprotect_submit,
     "expected": Verdict(clean=True, absent=frozenset({"user-incoherence"})), "strategy": "odpor",
     "budget": 1300},
]
