"""Cost of lifetime tracking (kernel/lifetime.py, dma_fence R11), on and off, in one run.

1. Per fence op: create + get + add_callback + signal + put + put (the last
   put frees the fence), off: plain fences (``FenceContext``) in an execution
   where nothing tracked was freed yet; on: fences from a leak-checked
   ``FenceCache`` (every get records its site) with the access hook armed
   (every scheduling point and event looks its object up in the freed ids).
2. Per DMA access: a copy job over 1,000 pages (2,000 translated accesses),
   off: nothing freed; on: the access hook armed by a freed fence, so every
   DMA step's point and events pay the lookup.

Target: on/off <= 1.2x. CPU time of this process, best of a few
interleaved repeats (the machine is shared).

Run: ``.venv/bin/python bench/run.py lifetime``.
"""

from __future__ import annotations

import time
from typing import Any

import dmabufsim as ds
from dmabufsim import dma, mm
from dmabufsim.device import Device
from dmabufsim.dma.fence import DmaFenceCb
from dmabufsim.kernel.gfp import GFP_KERNEL

N_FENCE = 3_000
NPAGES = 1_000
JOBS = 5
REPEATS = 5
SRC, DST = 0x1000_0000, 0x2000_0000


def _cb(*_: Any) -> None:
    return None


def _arm(k: ds.Kernel) -> None:
    """Free one tracked fence: from now on the access hook looks every declared object up."""
    f = dma.FenceCache("arm", leak_check=False).create()
    f.signal()
    f.put()
    assert k.freed_oids is not None


def _fences(on: bool) -> float:
    out: list[float] = []

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("bench")
        cache = dma.FenceCache("bench")
        if on:
            _arm(k)
        t0 = time.process_time()
        for _ in range(N_FENCE):
            f = cache.create(tl.ops, tl.lock, tl.context, 1) if on else tl.create()
            f.get()
            f.add_callback(DmaFenceCb(_cb))
            f.signal()
            f.put()
            f.put()
        out.append(time.process_time() - t0)

    ex = ds.Kernel(strategy=ds.FirstStrategy()).run(scenario)
    assert ex.errors == [], ex.kinds
    return out[0] / N_FENCE


class _Bo:
    name = "bo"
    oid = 0


def _dma(on: bool) -> float:
    out: list[float] = []

    def scenario(k: ds.Kernel) -> None:
        mm.init_memory(2 * NPAGES + 64)
        gpu = Device("gpu")
        bo = _Bo()
        pages = [mm.alloc_page(GFP_KERNEL, bo) for _ in range(2 * NPAGES)]
        gpu.map_pages(SRC, pages[:NPAGES])
        gpu.map_pages(DST, pages[NPAGES:])
        ops = [("copy", SRC + i * mm.PAGE_SIZE, DST + i * mm.PAGE_SIZE) for i in range(NPAGES)]
        if on:
            _arm(k)
        t0 = time.process_time()
        for _ in range(JOBS):
            gpu.submit(ops, engine="copy", duration_ns=100_000).wait()
        out.append(time.process_time() - t0)

    ex = ds.Kernel(strategy=ds.FirstStrategy(), options={"leak_check": False}).run(scenario)
    assert ex.errors == [], ex.kinds
    return out[0] / (2 * NPAGES * JOBS)


def main() -> None:
    for what, fn in (("fence op (create, get, add_callback, signal, put, put)", _fences),
                     ("DMA access (copy job, translated)", _dma)):
        off = on = float("inf")
        for _ in range(REPEATS):
            off = min(off, fn(False))
            on = min(on, fn(True))
        print(f"{what}:")
        print(f"  tracking off: {off * 1e6:8.2f} us/op")
        print(f"  tracking on : {on * 1e6:8.2f} us/op")
        print(f"  ratio on/off: {on / off:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
