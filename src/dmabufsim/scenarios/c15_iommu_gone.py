"""C15 (Daniel): for virtual machines the IOMMU mapping must really be gone when the notifier says so.

"[...] handling virtual machines where you really have to make sure the
IOMMU mapping is gone before you claim it's gone, because there's no 2nd
level of device checks (like GPU PTEs, or command checker) catching stray
writes."

The invariant is checked by ``mm/mmu_notifier.py`` R8 at the end of every
blockable invalidation (when every callback returned): no IOMMU entry made
for the mm at an address of the range may still reach a page of it
(``stale-mapping``). Each row forks (write-protecting every page, then the
copy-on-write break) while a job naming the object runs:

* ``helper`` and ``i915-2018``: the mapping is gone when the callback
  returns. Clean.
* ``amdgpu-2018``: it is not (``stale-mapping``), and the pages were dirtied
  while mapped (``dirty-while-mapped``).

The clean rows are not proved (``proofs.NOT_PROVED`` has the figures): the
fork races twice against a submission that may look the pages up three
times, and even the configuration that proves C14 and C16 (no race-free
first job, no wait, the fork in the main thread; amdgpu-2018 still breaks
on it) meets thousands of Mazurkiewicz traces without exhausting them. The
races that keep adding traces are the lookups' ``mmap_lock`` read
acquisitions against fork's write lock and the copy-on-write fault's read
lock, and page reference counts: each a write of one model object, though
rwsem readers and reference count changes commute in the kernel.
"""

from __future__ import annotations

from .catalog import Verdict
from .userptr_lab import lab

_DOC = "fork + copy-on-write break racing a job naming the object"
helper = lab("helper", __name__, "helper", f"The shared helper; {_DOC}.", race="fork", user="submit")
i915_2018 = lab("i915_2018", __name__, "i915-2018", f"i915-2018 userptr; {_DOC}.", race="fork", user="submit")
amdgpu_2018 = lab("amdgpu_2018", __name__, "amdgpu-2018", f"amdgpu-2018 userptr; {_DOC}.", race="fork",
                  user="submit")

CLAIMS = [
    # Not provable yet (proofs.NOT_PROVED): DPOR deepening exhausts every schedule within 1 preemption in
    # 299 (i915-2018: 280) executions; the budget leaves a quarter more, so the row earns that bound, not a sample.
    {"id": "C15", "design": "helper", "scenario": helper, "expected": "clean", "strategy": "dpor", "budget": 375},
    {"id": "C15", "design": "i915-2018", "scenario": i915_2018, "expected": "clean", "strategy": "dpor",
     "budget": 350},
    {"id": "C15", "design": "amdgpu-2018", "scenario": amdgpu_2018,
     "expected": Verdict(kinds=frozenset({"stale-mapping", "dirty-while-mapped"})), "budget": 100},
]
