"""C6 (Christian), the notifier half: which cycle is left once every allocation under resv is ``GFP_NOIO``.

"For example it would require changing all allocations done while holding
any reservation lock to GFP_NOIO." ``c05_c06_reclaim_locking.py`` shows
that this is enough for a *shrinker* that blocks on the reservation lock
(with the boot-time priming off, since the priming encodes today's rule
that resv holders may use ``GFP_KERNEL``). This module asks the same of an
*MMU notifier* that blocks on it (``drivers/notifier_designs.py``
:class:`ResvLockWait`, the pre-4.16 amdgpu notifier):

* ``noio-notifier``: every allocation the command submission makes under
  the reservation lock is ``GFP_NOIO`` (its GPU page-table pages). A
  ``GFP_NOIO`` allocation can still enter direct reclaim, and reclaim can
  invalidate mappings through MMU notifiers (``try_to_unmap``, migration):
  the allocator annotates that with the ``mmu_notifier_invalidate_range_start``
  map whatever ``__GFP_FS``/``__GFP_IO`` say. So one cycle remains:
  ``reservation_ww_class_mutex -> mmu_notifier_invalidate_range_start ->
  reservation_ww_class_mutex``. GFP_NOIO fixes the shrinker, not the
  notifier: only ``GFP_NOWAIT``/``GFP_ATOMIC`` (no direct reclaim) would.
* ``nowait-notifier``: the same with ``GFP_NOWAIT`` allocations under the
  lock: no cycle is left (the submission must then cope with failures).
"""

from __future__ import annotations

from ..device.device import Device
from ..drivers.notifier_designs import ResvLockWait
from ..drivers.userptr_common import UserptrBo
from ..kernel.gfp import GFP, GFP_NOIO, GFP_NOWAIT
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, alloc_page, free_page
from .catalog import Verdict

NPAGES = 2
#: GPU page-table pages the submission allocates under the reservation lock.
PT_PAGES = 2


def _cs(bo: UserptrBo, gfp: GFP) -> None:
    """Command submission: page-table pages allocated with ``gfp`` under the reservation lock."""
    bo.resv.lock(None)
    try:
        pts = [alloc_page(gfp, bo) for _ in range(PT_PAGES)]
    finally:
        bo.resv.unlock()
    for p in pts:
        free_page(p)


def _munmap(proc: Process, addr: int) -> None:
    proc.munmap(addr, NPAGES * PAGE_SIZE)


def _scenario(k: Kernel, gfp: GFP) -> None:
    dev = Device("gpu0")
    proc = Process("app")
    addr = proc.mmap(NPAGES * PAGE_SIZE)
    proc.populate(addr, NPAGES * PAGE_SIZE, "init")
    drv = ResvLockWait(dev, proc.mm)
    bo = drv.add(UserptrBo(dev, proc.mm, addr, NPAGES, name="userptr"))
    threads = [k.spawn(_cs, bo, gfp, name="cs"), k.spawn(_munmap, proc, addr, name="munmap")]
    for t in threads:
        k.join(t)
    drv.destroy(bo)
    proc.exit()


def noio_notifier(k: Kernel) -> None:
    """Blocking resv lock in the notifier; every allocation under resv GFP_NOIO (priming off)."""
    _scenario(k, GFP_NOIO)


def nowait_notifier(k: Kernel) -> None:
    """Blocking resv lock in the notifier; every allocation under resv GFP_NOWAIT (priming off)."""
    _scenario(k, GFP_NOWAIT)


#: The cycle left, in lockdep's chain order.
NOIO_CHAIN = ("reservation_ww_class_mutex", "mmu_notifier_invalidate_range_start")

CLAIMS = [
    {"id": "C6", "design": "noio-notifier", "scenario": noio_notifier,
     "expected": Verdict(kinds=frozenset({"circular-locking"}), chain=NOIO_CHAIN, only_chain=True), "budget": 100,
     "kernel_options": {"prime_lockdep": False}},
    {"id": "C6", "design": "nowait-notifier", "scenario": nowait_notifier, "expected": "clean", "budget": 200,
     "strategy": "odpor", "kernel_options": {"prime_lockdep": False}},  # every schedule, no bound
]
