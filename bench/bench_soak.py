"""Soak: many buffers, many jobs on 4 engines, under memory pressure; RSS must stay flat.

10,000 single-page buffers share a machine with fewer frames than buffers,
so allocating a buffer's backing page keeps running direct reclaim: a
shrinker evicts idle buffers (GPU PTE zap + TLB flush, IOMMU unmap, free;
busy buffers are skipped with a trylock-style check of their last fence)
and the next job that names an evicted buffer brings it back. Jobs go
round-robin to 4 engines; every job writes its buffer through the GPU VM
and the IOMMU with the isolation checker on. The scenario throttles itself
the way a driver's submitter does: at most ``WINDOW`` jobs in flight, it
waits (``dma_fence_wait``) for the oldest job's fence before the next.

The issue's size, 1,000,000 jobs, is the default (pass a smaller count on
the command line for a quick run). RSS is read from ``/proc/self/status``
at 10% and at 100% of the run.

Measured (2-core shared machine): 1,000,000 jobs in ~43 s, RSS 33.6 ->
38.2 MiB from 10% to 100%; 100,000 jobs in ~4 s, 28.9 -> 31.9 MiB. The
10%-to-100% growth does not scale with the jobs (it is the tables
filling up: frames, IOMMU entries, PTEs, all bounded); the replay log
costs half a byte a choice once compacted (kernel.choices R1: 7.5 million
choices, ~4 MB; the token is 5.3 million characters). Before the runtime compacted its log and dropped
returned interrupt threads from its table, 1,000,000 jobs grew RSS from
41 to 141 MiB (~110 bytes per job).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any

import dmabufsim as ds
from dmabufsim import mm
from dmabufsim.device import Device
from dmabufsim.dma.fence import DmaFence
from dmabufsim.kernel.gfp import GFP_KERNEL

BUFFERS = 10_000
FRAMES = 6_000
ENGINES = ("gfx", "copy", "compute", "video")
WINDOW = 64
JOBS = 1_000_000
#: Interrupt moderation of the engines: one completion interrupt per engine per 20 us.
IRQ_COALESCE_NS = 20_000
VA0 = 0x1_0000_0000


def rss_kib() -> int:
    """Resident set size of this process now (``VmRSS``), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Buffer:
    """A one-page buffer object, resident or evicted."""

    __slots__ = ("fence", "idx", "name", "oid", "page", "va")

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.name = "bo"
        self.oid = idx
        self.va = VA0 + idx * mm.PAGE_SIZE
        self.page: mm.Page | None = None
        self.fence: DmaFence | None = None


class Evictor(mm.Shrinker):
    """Evicts idle resident buffers, oldest first (R4 of the shrinker contract: never blocks)."""

    def __init__(self, gpu: Device, lru: dict[int, Buffer]) -> None:
        super().__init__("bo_evictor")
        self.gpu = gpu
        self.lru = lru
        self.evicted = 0

    def count_objects(self, sc: mm.ShrinkControl) -> int:
        return len(self.lru) or mm.SHRINK_EMPTY

    def scan_objects(self, sc: mm.ShrinkControl) -> int:
        freed = 0
        for idx in list(self.lru)[: 4 * sc.nr_to_scan]:
            bo = self.lru[idx]
            if bo.fence is not None and not bo.fence.is_signaled():
                continue  # busy: skip, as a trylock would
            del self.lru[idx]
            self.gpu.unmap_pages(bo.va, 1)
            assert bo.page is not None
            mm.free_page(bo.page)
            bo.page = None
            bo.fence = None
            freed += 1
            if freed >= sc.nr_to_scan:
                break
        sc.nr_scanned = freed
        self.evicted += freed
        return freed if freed else mm.SHRINK_STOP


def _scenario(jobs: int, marks: dict[str, Any]) -> Any:
    def sc(k: ds.Kernel) -> None:
        mm.init_memory(FRAMES, low=64, min=16)
        gpu = Device("gpu", irq_coalesce_ns=IRQ_COALESCE_NS)
        lru: dict[int, Buffer] = {}
        ev = Evictor(gpu, lru)
        ev.register()
        bos = [Buffer(i) for i in range(BUFFERS)]
        inflight: deque[DmaFence] = deque()
        tenth = max(1, jobs // 10)
        x = 12345  # buffer choice: a fixed LCG, so the replay log holds only scheduling decisions
        for j in range(jobs):
            x = (x * 1103515245 + 12345) & 0x7FFF_FFFF
            bo = bos[x % BUFFERS]
            if bo.page is None:
                bo.page = mm.alloc_page(GFP_KERNEL, bo)
                gpu.map_pages(bo.va, [bo.page])
            else:
                del lru[bo.idx]
            lru[bo.idx] = bo
            bo.fence = gpu.submit([("write", bo.va, j)], engine=ENGINES[j % 4], duration_ns=1_000, slices=1)
            inflight.append(bo.fence)
            if len(inflight) >= WINDOW:
                inflight.popleft().wait()
            if j + 1 == tenth:
                marks["rss10"] = rss_kib()
                marks["t10"] = time.perf_counter()
        while inflight:
            inflight.popleft().wait()
        k.nsleep(2 * IRQ_COALESCE_NS)  # the last moderated interrupts
        marks["rss100"] = rss_kib()
        marks["evicted"] = ev.evicted
        marks["reclaims"] = mm.page_allocator().stats.direct_reclaims
        marks["threads"] = len(k.threads)
        marks["retired"] = k.irq_threads_retired
        for bo in bos:
            if bo.page is not None:
                gpu.unmap_pages(bo.va, 1)
                mm.free_page(bo.page)
        ev.unregister()
    return sc


def main(argv: list[str] | None = None) -> None:
    jobs = int(argv[0]) if argv else JOBS
    marks: dict[str, Any] = {}
    rss0 = rss_kib()
    t0 = time.perf_counter()
    ex = ds.Kernel(seed=1, max_steps=100 * jobs + 10_000).run(_scenario(jobs, marks))
    t = time.perf_counter() - t0
    scaled = " (the issue's size is 1,000,000 jobs)" if jobs < 1_000_000 else ""
    print(f"soak: {BUFFERS} buffers, {FRAMES} frames, {jobs} jobs on {len(ENGINES)} engines{scaled}")
    print(f"  {t:.1f} s, {jobs / t:,.0f} jobs/s, steps {ex.steps}, outcome {ex.outcome}, findings {ex.kinds}")
    print(f"  evictions {marks['evicted']}, direct reclaims {marks['reclaims']}, "
          f"kthreads {marks['threads']} in the table (+{marks['retired']:,} returned irq handlers retired), "
          f"replay choices recorded {len(ex.choices)} ({len(ex.token):,} token characters)")
    print(f"  RSS at start {rss0 / 1024:.1f} MiB, at 10% {marks['rss10'] / 1024:.1f} MiB, "
          f"at 100% {marks['rss100'] / 1024:.1f} MiB "
          f"(growth 10%->100%: {(marks['rss100'] - marks['rss10']) / 1024:.1f} MiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
