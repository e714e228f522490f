"""Modern design M4: fence-signalling critical sections (``dma_fence_begin_signalling``).

The kernel later made the fence cross-driver contract executable: the code
that must run for a published fence to signal (a job's retire path, the
completion interrupt's bottom half) is bracketed by
``dma_fence_begin_signalling()`` / ``dma_fence_end_signalling()``, which
hold the ``dma_fence_map`` pseudo-lock for reading; every fence wait
acquires it. Because ``dma_resv_lockdep()`` teaches at boot that reclaim
(``fs_reclaim``) and the MMU notifiers may wait for fences, an allocation
that can recurse into reclaim *inside* a signalling section closes a cycle
at once: reclaim may wait for the very fence whose signalling is waiting
for reclaim.

* ``alloc-in-signalling``: the retire path allocates with ``GFP_KERNEL``
  between ``begin_signalling`` and ``signal()``: ``circular-locking``,
  chain ``fs_reclaim -> mmu_notifier_invalidate_range_start ->
  dma_fence_map``.
* ``prealloc``: the same path allocates before entering the section (the
  kernel's fix: preallocate in the submission path): clean.
* ``gfp-nowait``: allocates inside the section with ``GFP_NOWAIT``, which
  never enters reclaim (and may fail): clean.
"""

from __future__ import annotations

from ..dma.fence import DmaFence, FenceContext
from ..kernel.gfp import GFP, GFP_KERNEL, GFP_NOWAIT
from ..kernel.runtime import Kernel
from ..locking.annotations import dma_fence_begin_signalling, dma_fence_end_signalling
from ..mm.page import Page, alloc_page, free_page, init_memory
from .catalog import Verdict


def _retire(fence: DmaFence, gfp: GFP, before: bool) -> None:
    """The job's retire path: bookkeeping that needs a page, then the fence signals."""
    pages: list[Page] = []
    if before:
        pages.append(alloc_page(gfp, "retire"))  # preallocated outside the section
    cookie = dma_fence_begin_signalling()
    if not before:
        pages.append(alloc_page(gfp, "retire"))
    fence.signal()
    dma_fence_end_signalling(cookie)
    for p in pages:
        free_page(p)


def _wait(fence: DmaFence) -> None:
    fence.wait()  # dma_fence_wait: a waiter the signalling path must not depend on


def _scenario(k: Kernel, gfp: GFP, before: bool) -> None:
    init_memory(32)
    fence = FenceContext("ring0").create()
    k.spawn(_retire, fence, gfp, before, name="retire")
    k.spawn(_wait, fence, name="waiter")


def alloc_in_signalling(k: Kernel) -> None:
    """The retire path allocates with GFP_KERNEL inside its fence-signalling critical section."""
    _scenario(k, GFP_KERNEL, before=False)


def prealloc(k: Kernel) -> None:
    """The retire path allocates before ``dma_fence_begin_signalling``."""
    _scenario(k, GFP_KERNEL, before=True)


def gfp_nowait(k: Kernel) -> None:
    """The retire path allocates inside the section with GFP_NOWAIT (never enters reclaim)."""
    _scenario(k, GFP_NOWAIT, before=False)


CLAIMS = [
    {
        "id": "M4",
        "design": "alloc-in-signalling",
        "scenario": alloc_in_signalling,
        "expected": Verdict(
            kinds=frozenset({"circular-locking"}),
            chain=("fs_reclaim", "mmu_notifier_invalidate_range_start", "dma_fence_map"),
        ),
        "budget": 50,
    },
    {"id": "M4", "design": "prealloc", "scenario": prealloc, "expected": "clean", "budget": 200,
     "strategy": "odpor"},  # every schedule, no bound: 33 executions
    {"id": "M4", "design": "gfp-nowait", "scenario": gfp_nowait, "expected": "clean", "budget": 200,
     "strategy": "odpor"},
]
