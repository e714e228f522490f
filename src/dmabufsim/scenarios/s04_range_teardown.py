"""S4: an unmapped range is torn down by the garbage collector, never from the notifier callback.

``drm_gpusvm``: an ``UNMAP`` invalidation zaps the range's GPU PTEs and
DMA mappings under the notifier lock, marks the range unmapped and queues
it for the garbage collector (``xe_svm_garbage_collector``), which later
calls ``mmu_interval_notifier_remove`` and frees the range.
``mmu_interval_notifier_remove`` waits for the invalidation in progress to
end, so calling it from that invalidation's own callback never returns.

Every row: the SVM GPU (system memory only; in this small configuration
faults are serviced on the faulting thread and the garbage is collected
by the next fault or by ``drm_gpusvm_fini`` -- the collector thread of the
full configuration does the same work, see ``tests/unit/drivers/test_svm.py``)
has written a page of the process (its range is bound); then thread
``munmap`` unmaps it while thread ``gpu-job2`` writes it again.

* ``garbage-collector``: the range is queued for the collector: no finding
  in any schedule (proved); the second write either lands before the
  unmap or faults and gets ``EFAULT``; the range is gone at the end.
* ``teardown-in-notifier``: the callback removes the range itself:
  lockdep reports the recursive acquisition of
  ``mmu_notifier_invalidate_range_start`` (``recursive-locking``) and the
  unmapping thread then waits forever for the end of its own invalidation
  (``deadlock``).
"""

from __future__ import annotations

from ..device.device import Device
from ..drivers.svm import NotifierTeardownSvmDriver, SvmDriver
from ..kernel.errors import EFAULT
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE
from .catalog import Verdict


def run_unmap_bound_range(k: Kernel, cls: type[SvmDriver]) -> SvmDriver:
    """The scenario body: munmap of a bound range racing a second GPU write."""
    dev = Device("gpu0")
    proc = Process("app")
    addr = proc.mmap(PAGE_SIZE)
    proc.write(addr, "cpu")
    svm = cls(dev, proc.mm, vram_pages=1, migrate=False, threads=False)
    first = k.spawn(svm.gpu_write, addr, "gpu", name="gpu-job")
    k.join(first)

    def again() -> None:
        try:
            svm.gpu_write(addr, "gpu2")
        except EFAULT:
            pass

    t_unmap = k.spawn(proc.munmap, addr, PAGE_SIZE, name="munmap")
    t_gpu = k.spawn(again, name="gpu-job2")
    k.join(t_unmap)
    k.join(t_gpu)
    svm.fini()
    if svm.ranges:
        k.report("assertion", f"SVM ranges left after fini: {svm.ranges!r}", rule="S4: every range is removed",
                 signature="svm-range-left")
    proc.exit()
    return svm


def garbage_collector(k: Kernel) -> None:
    """UNMAP queues the range for the garbage-collector thread, which removes its notifier: clean."""
    run_unmap_bound_range(k, SvmDriver)


def teardown_in_notifier(k: Kernel) -> None:
    """The UNMAP callback removes the range's notifier itself: recursion on the notifier map, then a hang."""
    run_unmap_bound_range(k, NotifierTeardownSvmDriver)


CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule (200 Mazurkiewicz traces, about 2 s).
    {"id": "S4", "design": "garbage-collector", "scenario": garbage_collector, "expected": Verdict(clean=True),
     "strategy": "odpor", "budget": 2000},
    {"id": "S4", "design": "teardown-in-notifier", "scenario": teardown_in_notifier,
     "expected": Verdict(kinds=frozenset({"recursive-locking", "deadlock"})), "strategy": "odpor", "budget": 200},
]
