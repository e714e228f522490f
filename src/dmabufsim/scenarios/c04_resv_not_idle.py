"""Claim C4 (Daniel): holding the reservation lock only stops *new* fences.

  "reservation_object only prevents adding new fences, you still have to
  wait for all the current ones to signal. Also, we have dma-access
  without fences in i915. 'I hold the reservation_object' does not imply
  you can just go and nuke the backing storage."

The experiment: an amdgpu-like exporter owns two buffers in GTT.

* ``shared`` is used by a dynamic importer whose read jobs (100 us each)
  are fenced in the reservation object;
* ``scanout`` is shown by a display-like static importer
  (:class:`~dmabufsim.drivers.dma_buf_importers.StaticImporter`): its
  attachment pins the buffer and it reads it every 10 us *without any
  fence* (the "dma-access without fences").

Both importers' devices sit behind no IOMMU (passthrough), so a late
access is not turned into a fault. A memory-freeing thread then walks both
buffers: it locks each reservation object and drops the backing store
(tearing down every importer table it frees first, so no mapping to freed
memory is left behind). The designs differ in what it does with the lock:

* ``lock-then-free``: lock, free. The importer's job in flight reads the
  freed pages: ``dma-freed-page``.
* ``wait-ignore-pinned``: lock, wait for every fence, free -- pinned or
  not. The fenced job is safe; the scanout, which has no fence to wait
  for, reads freed pages: ``dma-freed-page``.
* ``lock-wait-refuse-pinned``: lock, refuse pinned buffers (``EBUSY``),
  wait for every fence, free. Clean.
"""

from __future__ import annotations

from typing import Any

from ..device.ttm import GTT, BufferObject
from ..drivers.amdgpu_exporter import AmdgpuExporter
from ..drivers.dma_buf_importers import DynamicImporter, StaticImporter
from ..kernel.errors import EBUSY
from ..kernel.runtime import Kernel
from .catalog import Verdict

#: The importer's job length and how many it runs. One job is the smallest
#: configuration that still shows both bugs (the job in flight when the lock is
#: taken; the scanout still reading after the wait) and keeps the clean row
#: within an exhaustive search: optimal DPOR proves it in 792 Mazurkiewicz
#: traces (with three jobs and 40 frames it reached 1,113 traces in 30 s and
#: did not exhaust).
JOB_NS = 100_000
JOBS = 1
#: The scanout's refresh period and frame count: it outlives the job (and so the wait).
FRAME_NS = 10_000
FRAMES = 15
#: When the freeing thread starts (the first job and frames are running).
FREE_AT_NS = 5_000


def _user(imp: DynamicImporter, att: Any) -> None:
    for _ in range(JOBS):
        fence = imp.access(att, write=False, duration_ns=JOB_NS)
        if fence is not None:
            fence.wait()


def _freer(k: Kernel, bos: list[BufferObject], design: str) -> None:
    k.nsleep(FREE_AT_NS)
    for bo in bos:
        bo.resv.lock(None)
        try:
            if design == "lock-then-free":
                bo.release_backing(wait=False)
            elif design == "wait-ignore-pinned":
                bo.release_backing_ignoring_pins(wait=True)
            else:
                bo.release_backing(wait=True)
        except EBUSY:
            pass  # pinned: someone may be using it without a fence; leave it
        finally:
            bo.resv.unlock()


def run_c4(k: Kernel, design: str) -> None:
    """The C4 experiment (see the module docstring)."""
    drv = AmdgpuExporter("amdgpu", vram_pages=8)
    shared = drv.create_bo(2, name="shared", placement=(GTT,), value="texture")
    scanout = drv.create_bo(2, name="scanout", placement=(GTT,), value="pixels")
    sbuf, obuf = drv.export(shared), drv.export(scanout)
    user = DynamicImporter("render-gpu", iommu=False)
    uatt = user.attach(sbuf)
    display = StaticImporter("display", iommu=False)
    datt, dsgt = display.attach(obuf)
    display.scanout(dsgt, frames=FRAMES, period_ns=FRAME_NS)
    threads = [
        k.spawn(_user, user, uatt, name="render"),
        # The scanout buffer first: pages freed last are reused first, so the
        # user's re-mapping takes its own freed pages back, not the display's.
        k.spawn(_freer, k, [scanout, shared], design, name="freer"),
    ]
    for t in threads:
        k.join(t)
    display.stop_scanout()
    k.nsleep(2 * FRAME_NS)
    user.release(uatt)
    display.release(datt, dsgt)
    for buf, bo in ((sbuf, shared), (obuf, scanout)):
        buf.put()
        drv.destroy(bo)
    drv.wait_idle()


def lock_then_free(k: Kernel) -> None:
    """Lock the reservation object and free: the job in flight reads freed pages."""
    run_c4(k, "lock-then-free")


def wait_ignore_pinned(k: Kernel) -> None:
    """Lock, wait for the fences, free even pinned buffers: the unfenced scanout reads freed pages."""
    run_c4(k, "wait-ignore-pinned")


def lock_wait_refuse_pinned(k: Kernel) -> None:
    """Lock, refuse pinned buffers, wait for the fences, free: clean."""
    run_c4(k, "lock-wait-refuse-pinned")


_FREED = Verdict(kinds=frozenset({"dma-freed-page"}))

CLAIMS = [
    {"id": "C4", "design": "lock-then-free", "scenario": lock_then_free, "expected": _FREED, "budget": 100},
    {"id": "C4", "design": "wait-ignore-pinned", "scenario": wait_ignore_pinned, "expected": _FREED,
     "budget": 100},
    # Proved: optimal DPOR exhausts every schedule in 792 Mazurkiewicz traces, dropping nothing.
    {"id": "C4", "design": "lock-wait-refuse-pinned", "scenario": lock_wait_refuse_pinned, "expected": "clean",
     "strategy": "odpor", "budget": 2000},
]
