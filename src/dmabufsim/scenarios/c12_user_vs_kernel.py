"""C12 (Daniel): userspace racing itself may keep the pieces; the kernel must stay intact.

"Userspace racing stuff with itself gets to keep all the pieces. This is
like racing DIRECT_IO against mprotect and fork."

The isolation checker separates the two (``check/isolation.py`` R2/R3):
a device access to a frame the process still owns but no longer maps that
way is *userspace-visible incoherence* (``user-incoherence``, info); an
access to a frame another owner holds, or a free one, is a *kernel
integrity violation* (an error). One design, two races:

* ``mprotect``: the no-retry driver (C11) binds pages looked up before
  ``mprotect(PROT_READ)``; the GPU writes a page userspace made read-only.
  Info only: clean.
* ``fork``: the unsynchronised userptr (C17) writes the page copy-on-write
  gave to the child: ``dma-foreign-page``, an error. This is C17's fork
  experiment, so the row names it (``same_as``).
"""

from __future__ import annotations

from ..kernel.runtime import Kernel
from .c11_userptr_fork import run_userptr_race
from .catalog import Verdict


def userspace_race(k: Kernel) -> None:
    """No-retry userptr (C11): its first submission races mprotect(PROT_READ)."""
    run_userptr_race(k, "noretry", "mprotect")


CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule in 496 Mazurkiewicz traces (~2 s), dropping nothing.
    {"id": "C12", "design": "userspace-race", "scenario": userspace_race,
     "expected": Verdict(clean=True, kinds=frozenset({"user-incoherence"})), "budget": 1500,
     "strategy": "odpor"},
    # C17's fork experiment: one exploration answers both rows (catalog R6).
    {"id": "C12", "design": "kernel-integrity", "same_as": "C17/root-only-unsync-fork"},
]
