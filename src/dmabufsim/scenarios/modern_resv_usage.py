"""Modern design M1: ``dma_resv`` usage levels (``KERNEL < WRITE < READ < BOOKKEEP``).

Since v5.19 every fence in a reservation object carries a *usage* saying
who must wait for it (dma_resv R3). Implicit synchronisation between
userspace submissions waits for ``WRITE``/``READ``; fences that take no part
in implicit sync -- page-table updates, compute jobs, preemption fences --
are added as ``BOOKKEEP``, and only the memory manager, which is about to
take the memory away, must wait for them.

The experiment: a compute job (its fence added as ``BOOKKEEP``) writes its
results into a buffer object's two pages while the memory manager evicts
the object: lock the reservation object, wait, copy the contents into new
pages, tear down the device mapping, free the old pages. The scenario
checks the promise of the eviction -- the moved object holds every write
the device made to it -- and reports an ``assertion`` finding ("eviction
lost a device write") when it does not.

* ``evict-waits-bookkeep``: the eviction waits with ``DmaResvUsage.BOOKKEEP``
  (every fence): clean.
* ``evict-waits-read``: the eviction waits like an implicit-sync writer
  (``usage_rw(True)``, i.e. ``READ``) and does not see the compute job: it
  copies the pages before the job wrote them (``assertion``); the job's
  late writes then fault in the IOMMU (``iommu-fault``): isolation held,
  but the job lost its writes and its fence carries ``-EIO``.
"""

from __future__ import annotations

from ..device.device import Device
from ..dma.resv import DmaResv, DmaResvUsage, usage_rw
from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import Kernel
from ..mm.page import PAGE_SIZE, Page, alloc_page, free_page, init_memory
from .catalog import Verdict

#: GPU VA of the buffer object in the device's address space.
BO_VA = 0x40_0000
#: The compute job's duration (virtual ns): long enough to still run when the eviction starts.
JOB_NS = 20_000


class _Bo:
    """A two-page buffer object: its reservation object and its backing pages."""

    def __init__(self) -> None:
        self.resv = DmaResv("bo.resv")
        self.pages: list[Page] = [alloc_page(GFP_KERNEL, self) for _ in range(2)]


def _evict(k: Kernel, dev: Device, bo: _Bo, usage: DmaResvUsage) -> None:
    """The memory manager moves the object out: wait, copy, unmap, free (ttm_bo_evict, non-pipelined)."""
    bo.resv.lock()
    try:
        bo.resv.wait_timeout(usage, False, None)
        moved = [alloc_page(GFP_KERNEL, bo) for _ in bo.pages]
        for old, new in zip(bo.pages, moved, strict=True):
            new.write(0, old.read(0))
        dev.unmap_pages(BO_VA, len(bo.pages))
        for old in bo.pages:
            free_page(old)
        bo.pages = moved
    finally:
        bo.resv.unlock()
    want = [f"result{i}" for i in range(len(bo.pages))]
    got = [p.read(0) for p in bo.pages]
    if got != want:
        k.report(
            "assertion",
            "BUG: eviction lost a device write",
            details={"expected": want, "moved": [str(v) for v in got], "usage_waited": usage.name},
            rule="dma_resv R3: the memory manager must wait for every usage (BOOKKEEP) before moving memory",
            signature="m1:lost-write",
            text=(
                "BUG: eviction lost a device write\n"
                f"the eviction waited for usage {usage.name}: fences of a higher usage (BOOKKEEP) were ignored\n"
                f"moved contents {got}, the device wrote {want}"
            ),
        )
    for p in bo.pages:
        free_page(p)


def _scenario(k: Kernel, usage: DmaResvUsage) -> None:
    init_memory(32)
    dev = Device("gpu0")
    bo = _Bo()
    dev.map_pages(BO_VA, bo.pages)
    bo.resv.lock()
    bo.resv.reserve_fences(1)
    job = dev.submit([("write", BO_VA, "result0"), ("write", BO_VA + PAGE_SIZE, "result1")], duration_ns=JOB_NS)
    bo.resv.add_fence(job, DmaResvUsage.BOOKKEEP)  # a compute job: no implicit sync
    bo.resv.unlock()
    k.spawn(_evict, k, dev, bo, usage, name="evict")


def evict_waits_bookkeep(k: Kernel) -> None:
    """The eviction waits for every fence (usage BOOKKEEP) before copying and freeing."""
    _scenario(k, DmaResvUsage.BOOKKEEP)


def evict_waits_read(k: Kernel) -> None:
    """The eviction waits like an implicit-sync writer (usage READ) and misses the BOOKKEEP job."""
    _scenario(k, usage_rw(True))


CLAIMS = [
    {"id": "M1", "design": "evict-waits-bookkeep", "scenario": evict_waits_bookkeep, "expected": "clean",
     "budget": 200, "strategy": "odpor"},  # every schedule, no bound
    {"id": "M1", "design": "evict-waits-read", "scenario": evict_waits_read,
     "expected": Verdict(kinds=frozenset({"assertion", "iommu-fault"}), asserts=frozenset({"m1:lost-write"})),
     "budget": 100},
]
