"""Models i915's root-only unsynchronised userptr: ``I915_USERPTR_UNSYNCHRONIZED`` (claim C17).

``i915_gem_userptr_ioctl`` with ``I915_USERPTR_UNSYNCHRONIZED`` skips the
MMU notifier entirely (``i915_gem_userptr_init__mmu_notifier`` returns
early) and is allowed only with ``CAP_SYS_ADMIN``: the pages are looked up
once, bound, and kept until the object is closed, whatever the process
does to its address space. Daniel: "the root-only hack we have for dubious
reasons". The model flags it on the first ``fork``/``munmap`` race.

Rules:

* R1 (privileged only): creating one without ``capable=True``
  (``CAP_SYS_ADMIN``) raises ``EPERM``.
* R2 (no notifier): nothing ever invalidates the object: after ``fork`` and
  the parent's copy-on-write break, jobs write the page now owned by the
  child (``dma-foreign-page``); after ``munmap`` they write a page the
  process no longer maps (``user-incoherence``).
* R3 (teardown): closing the object waits, unbinds, then dirties and puts
  the pages (the order is right; only the coherence is given up).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import DmaOp
from ..dma.fence import DmaFence
from ..kernel.errors import EPERM
from .userptr_common import UserptrBo


class UnsyncUserptr:
    """An unsynchronised userptr object (R1-R3): no notifier, pages held until close."""

    #: The design is only reachable by a privileged process.
    privileged_only = True

    def __init__(self, bo: UserptrBo, *, capable: bool) -> None:
        if not capable:
            raise EPERM("I915_USERPTR_UNSYNCHRONIZED requires CAP_SYS_ADMIN")
        self.bo = bo

    def submit(self, ops: Sequence[DmaOp], **job: Any) -> DmaFence:
        """execbuf: look the pages up on first use, then reuse them for ever (R2)."""
        bo = self.bo
        fresh = bo.gup() if bo.pages is None else None
        bo.resv.lock(None)
        try:
            bo.reserve_fence()
            bo.bind_looked_up(fresh)
            fence = bo.submit_fenced(ops, **job)
        finally:
            bo.resv.unlock()
        return fence

    def destroy(self) -> None:
        """Close (R3)."""
        self.bo.destroy_pages()
