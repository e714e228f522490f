"""H12: amdgpu looked up userptr pages inside the reserved validate path (2016).

Source: commit 2f568dbd6b94, "drm/amdgpu: move get_user_pages out of
amdgpu_ttm_tt_pin_userptr v6" (Christian König, 2016).

The bug, in our words: the command submission reserved its buffers and, while
validating a userptr buffer, called ``get_user_pages`` -- which needs the
process's ``mmap_lock`` and may fault pages in. The reverse order exists on
every unmap: ``munmap`` holds ``mmap_lock``, invalidates the range, and
amdgpu's notifier of the time reserved the buffer to move it out. The commit
names the inversion between the reservation lock and the anon_vma lock that
the fault path takes; the model shows it through ``mmap_lock``, which the
validate path held around ``get_user_pages`` too. It is a real deadlock,
not only a report: the CS waits for ``mmap_lock`` while ``munmap``, holding
it for writing, waits in the notifier for the CS's reservation. The fix
looks the pages up before reserving and retries, a bounded number of times,
when an invalidation slipped in between (``drivers/userptr_amdgpu2016.py``).

The rows run without the boot-time lockdep priming (it came in 2019).

Designs:

* ``gup-under-reservation``: ``circular-locking`` (reservation ->
  ``mmap_lock`` -> the notifier map -> reservation) and the ``deadlock`` it
  predicts.
* ``gup-before-reservation`` (2f568dbd6b94): clean in every schedule of a CS
  against the process's ``munmap`` of the buffer's range.
"""

from __future__ import annotations

from ..drivers.userptr_amdgpu2016 import AmdgpuUserptrBo2016
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, init_memory


def _scenario(k: Kernel, fixed: bool) -> None:
    init_memory(64)
    proc = Process("app")
    addr = proc.mmap(PAGE_SIZE)
    proc.populate(addr, PAGE_SIZE, "data")
    bo = AmdgpuUserptrBo2016(proc, addr, 1)
    k.spawn(bo.gup_before_reservation if fixed else bo.gup_under_reservation, name="amdgpu_cs")
    k.spawn(proc.munmap, addr, PAGE_SIZE, name="munmap")


def gup_under_reservation(k: Kernel) -> None:
    """The CS calls get_user_pages with the buffer reserved."""
    _scenario(k, False)


def gup_before_reservation(k: Kernel) -> None:
    """The CS gets the pages first, reserves, and retries when invalidated meanwhile."""
    _scenario(k, True)


_UNPRIMED = {"prime_lockdep": False}

CLAIMS = [
    {
        "id": "H12",
        "design": "gup-under-reservation",
        "scenario": gup_under_reservation,
        "expected": {
            "kinds": ["circular-locking", "deadlock"],
            "chain": ["reservation_ww_class_mutex", "mmap_lock", "mmu_notifier_invalidate_range_start"],
        },
        "budget": 200,
        "kernel_options": _UNPRIMED,
    },
    {
        "id": "H12",
        "design": "gup-before-reservation",
        "scenario": gup_before_reservation,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 16 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 500,
        "kernel_options": _UNPRIMED,
    },
]
