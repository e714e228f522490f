"""Cost of the isolation checker on the DMA path.

A copy job over 1,000 pages (1,000 source reads + 1,000 destination writes,
every one translated through the GPU VM and the IOMMU) is run ``JOBS``
times with the checker on and off, in the same process; the ratio of the
two is the checker's cost. Two shapes: buffers owned by a kernel object (the
fast check: owner and generation) and userptr buffers of a process (the
check also looks the user address up in the process's page table).

Target: checking costs at most 1.5x.
"""

from __future__ import annotations

import time
from typing import Any

import dmabufsim as ds
from dmabufsim import mm
from dmabufsim.device import Device
from dmabufsim.kernel.gfp import GFP_KERNEL

NPAGES = 1_000
JOBS = 20
REPEATS = 5
SRC, DST = 0x1000_0000, 0x2000_0000


class _Bo:
    name = "bo"
    oid = 0


def _scenario(userptr: bool, timing: dict[str, float]) -> Any:
    def sc(k: ds.Kernel) -> None:
        mm.init_memory(4 * NPAGES + 64)
        gpu = Device("gpu")
        if userptr:
            proc = mm.Process("app")
            a = proc.mmap(2 * NPAGES * mm.PAGE_SIZE)
            pages = mm.pin_user_pages_fast(proc.mm, a, 2 * NPAGES, mm.FOLL_WRITE | mm.FOLL_LONGTERM)
        else:
            bo = _Bo()
            pages = [mm.alloc_page(GFP_KERNEL, bo) for _ in range(2 * NPAGES)]
        for i, p in enumerate(pages[:NPAGES]):
            p.write(0, i)
        gpu.map_pages(SRC, pages[:NPAGES])
        gpu.map_pages(DST, pages[NPAGES:])
        ops = [("copy", SRC + i * mm.PAGE_SIZE, DST + i * mm.PAGE_SIZE) for i in range(NPAGES)]
        t0 = time.perf_counter()
        for _ in range(JOBS):
            gpu.submit(ops, engine="copy", duration_ns=100_000).wait()
        timing["t"] = time.perf_counter() - t0
        assert pages[NPAGES + 7].read(0) == 7
    return sc


def _once(userptr: bool, checker: bool) -> float:
    timing: dict[str, float] = {}
    ex = ds.Kernel(strategy=ds.FirstStrategy(), options={"isolation": checker, "leak_check": False}).run(
        _scenario(userptr, timing))
    assert ex.errors == [], ex.kinds
    return timing["t"]


def measure(userptr: bool) -> tuple[float, float]:
    """Best-of-``REPEATS`` times (off, on), the two interleaved so that machine load hits both alike."""
    off = on = float("inf")
    for _ in range(REPEATS):
        off = min(off, _once(userptr, False))
        on = min(on, _once(userptr, True))
    return off, on


def main() -> None:
    accesses = 2 * NPAGES * JOBS
    for userptr in (False, True):
        off, on = measure(userptr)
        shape = "userptr (pinned user pages)" if userptr else "kernel-object buffers"
        print(f"{shape}: {accesses} DMA accesses per run")
        print(f"  checker off: {accesses / off:12,.0f} accesses/s")
        print(f"  checker on : {accesses / on:12,.0f} accesses/s checked")
        print(f"  ratio on/off: {on / off:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
