"""Claim C2 (Chris): the non-pipelined revoke needs a completion the CPU can wait on.

  "the situation I have in mind is the non-pipelined case: revoking dma-buf
  for mmu_invalidate_range or shrink_slab. I would need a completion event
  that can be waited on the cpu for all the invalidate callbacks.
  (Essentially an atomic_t counter plus struct completion; a lighter
  version of dma_fence ...)"

The experiment: an amdgpu-like exporter shares a buffer in GTT with two
dynamic importers -- a fast one (20 us jobs) and a slow one (200 us jobs)
-- whose devices sit behind no IOMMU (passthrough, as on many machines:
nothing turns a late access into a fault). Each reads the buffer with
``FAST_JOBS`` / ``SLOW_JOBS`` jobs, waiting for one before it submits the
next (the last one is waited for by the importer's teardown).
Meanwhile another thread allocates memory until the machine runs short;
its direct reclaim calls ``shrink_slab``, and the exporter's
:class:`DmaBufShrinker` trylocks the buffer's reservation object (a
shrinker may only trylock, claim C5), revokes the buffer
(:meth:`~dmabufsim.dma.dma_buf.DmaBuf.revoke`, dma-buf R11) and frees its
backing store *without waiting for fences* -- it trusts the revocation to
mean "no importer touches the pages any more".

Designs:

* ``counted-completion`` (the claim): :class:`~dmabufsim.dma.dma_buf.DmaBufRevocation`
  is a counter plus a completion; each importer's worker tears its table
  down and puts its count once its last job finished; the revoker's wait
  returns at the last put. Clean.
* ``first-completion``: one plain completion every importer completes:
  the wait returns when the *fast* importer is done, the revoker frees
  while the slow importer's job still reads -- ``dma-freed-page``. (Behind
  an IOMMU the same early return shows as an IOMMU fault instead: isolation
  held, the job's data lost.)

The configuration is the smallest that still shows first-completion's bug
(catalog R8): one job per importer (the fast one's ends at 20 us, the slow
one's reads until 200 us, the revocation comes at 5 us, in between) and a
machine of ``NR_PAGES`` = 6 pages, the buffer's 2 plus the low watermark's
4, so that the allocating thread's first allocation enters direct reclaim.
In it optimal DPOR proves counted-completion (every schedule). The earlier
configuration (20 fast jobs and 3 slow, 32 pages: some thirty allocations
and frees by the allocating thread, each a step on the allocator) and the
readers waiting for their last job (a second waiter on the fence the
revoke worker waits for) were not exhausted: 16,343 traces in 60 s.
"""

from __future__ import annotations

from typing import Any

from ..device.ttm import GTT, BufferObject
from ..dma.dma_buf import DmaBuf
from ..dma.fence import DmaFence
from ..drivers.amdgpu_exporter import AmdgpuExporter
from ..drivers.dma_buf_importers import DynamicImporter
from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import Kernel
from ..mm.page import Page, init_memory, page_allocator
from ..mm.shrinker import SHRINK_EMPTY, SHRINK_STOP, ShrinkControl, Shrinker
from .catalog import Verdict

#: Job lengths of the two importers (virtual ns).
FAST_NS = 20_000
SLOW_NS = 200_000
#: Jobs each importer submits (the smallest configuration that shows the early return).
FAST_JOBS = 1
SLOW_JOBS = 1
#: When memory runs short (the first jobs are in flight by then).
REVOKE_AT_NS = 5_000
#: The machine's memory: the buffer's 2 pages and the low watermark, so that the
#: allocating thread's first allocation enters direct reclaim.
NR_PAGES = 6
LOW_WATERMARK = 4


def _reader(imp: DynamicImporter, att: Any, duration_ns: int, jobs: int) -> None:
    """Read ``jobs`` times, one job in flight at a time; the teardown waits for the last (importer R4)."""
    fence: DmaFence | None = None
    for _ in range(jobs):
        if fence is not None:
            fence.wait()
        fence = imp.access(att, write=False, duration_ns=duration_ns)
        if fence is None:
            return  # revoked


class DmaBufShrinker(Shrinker):
    """The exporter's shrinker: revoke shared buffers and free their backing store (``shrink_slab``).

    Only trylocks (shrinker R4); a buffer whose lock is busy is skipped. The
    revocation is non-pipelined: the shrinker waits (on the CPU, inside
    reclaim) for every importer, then frees at once.
    """

    name = "amdgpu-dmabuf"

    def __init__(self, counted: bool) -> None:
        super().__init__()
        self.counted = counted
        self.buffers: list[tuple[BufferObject, DmaBuf]] = []
        self.revoked_at: list[int] = []

    def count_objects(self, sc: ShrinkControl) -> int:
        n = sum(bo.size for bo, _ in self.buffers if bo.resource is not None)
        return n if n else SHRINK_EMPTY

    def scan_objects(self, sc: ShrinkControl) -> int:
        freed = 0
        for bo, buf in self.buffers:
            if bo.resource is None or not bo.resv.trylock():
                continue
            try:
                buf.revoke(counted=self.counted)
                self.revoked_at.append(self.k.now)
                n = bo.size
                bo.release_backing(wait=False)  # "no importer touches the pages any more"
                freed += n
            finally:
                bo.resv.unlock()
        sc.nr_scanned = freed
        return freed if freed else SHRINK_STOP


def _allocator(k: Kernel, hog: list[Page]) -> None:
    """Allocate until the machine enters direct reclaim once, then give everything back."""
    k.nsleep(REVOKE_AT_NS)
    alloc = page_allocator()
    while alloc.stats.direct_reclaims == 0:
        hog.append(alloc.alloc_page(GFP_KERNEL, "hog"))
    for p in hog:
        alloc.free_page(p)
    hog.clear()


def run_c2(k: Kernel, *, counted: bool) -> None:
    """The C2 experiment (see the module docstring)."""
    init_memory(NR_PAGES, low=LOW_WATERMARK)
    drv = AmdgpuExporter("amdgpu", vram_pages=8)
    bo = drv.create_bo(2, name="shared", placement=(GTT,), value="data")
    buf = drv.export(bo)
    fast = DynamicImporter("fast-gpu", iommu=False)
    slow = DynamicImporter("slow-gpu", iommu=False)
    fa, sa = fast.attach(buf), slow.attach(buf)
    shrinker = DmaBufShrinker(counted)
    shrinker.buffers.append((bo, buf))
    shrinker.register()
    hog: list[Page] = []
    threads = [
        k.spawn(_reader, fast, fa, FAST_NS, FAST_JOBS, name="fast-user"),
        k.spawn(_reader, slow, sa, SLOW_NS, SLOW_JOBS, name="slow-user"),
        k.spawn(_allocator, k, hog, name="allocator"),
    ]
    for t in threads:
        k.join(t)
    shrinker.unregister()
    k.ext.setdefault("c2.revoked_at", []).extend(shrinker.revoked_at)
    fast.release(fa)
    slow.release(sa)
    buf.put()
    drv.destroy(bo)
    drv.wait_idle()


def counted_completion(k: Kernel) -> None:
    """Revoke waits on a counter plus completion: returns after the slowest importer. Clean."""
    run_c2(k, counted=True)


def first_completion(k: Kernel) -> None:
    """Revoke waits on one plain completion: returns after the fastest importer; the slow one's DMA hits freed pages."""
    run_c2(k, counted=False)


CLAIMS = [
    {"id": "C2", "design": "counted-completion", "scenario": counted_completion, "expected": "clean",
     "strategy": "odpor", "budget": 1000},
    {
        "id": "C2",
        "design": "first-completion",
        "scenario": first_completion,
        "expected": Verdict(kinds=frozenset({"dma-freed-page"})),
        "budget": 100,
    },
]
