"""Models a userptr driver with a notifier but without the sequence retry (claim C11's broken design).

What Christian warns about: "for coherent usage you need to install some
lock to prevent concurrent get_user_pages(), command submission and
invalidate_range_start/invalidate_range_end". This design has an MMU
notifier that tears everything down (like the helper of
``userptr_helper.py``) and a per-object lock that keeps teardown and
binding from overlapping, but nothing that ties the *lookup* of the pages
to their *use*: the command submission looks the pages up, then binds and
submits them, whether or not an invalidation ran in between. Nothing in
the kernel ever shipped exactly this; it is the common shape of the bugs
the thread talks about (a driver that re-invents the helper and forgets
``read_retry``).

Rules:

* R1 (teardown): ``invalidate`` waits for the object's jobs, unbinds and
  releases the pages under the object lock (the helper's R2/R3).
* R2 (the gap): :meth:`NoRetryUserptr.submit` binds the pages it looked up
  before taking the object lock, without checking whether an invalidation
  (``fork``'s write-protection, the copy-on-write break, ``mprotect``) ran
  since. A job then reaches pages the process no longer maps that way:
  ``user-incoherence`` when the process still owns them, ``dma-foreign-page``
  when copy-on-write moved them to the child.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import DmaOp
from ..dma.fence import DmaFence
from ..locking.mutex import Mutex
from ..mm.mmu_notifier import MMUIntervalNotifier, MMUIntervalNotifierOps, MMUNotifierRange
from ..mm.page import PAGE_SIZE
from .userptr_common import UserptrBo


class NoRetryUserptr(MMUIntervalNotifierOps):
    """A userptr with a tearing-down notifier and no lookup/use serialisation (R1, R2)."""

    def __init__(self, bo: UserptrBo) -> None:
        self.bo = bo
        self.lock = Mutex("userptr_obj_lock")
        self.interval = MMUIntervalNotifier.insert(bo.mm, bo.start, bo.npages * PAGE_SIZE, self)

    def invalidate(self, sub: MMUIntervalNotifier, range: MMUNotifierRange, cur_seq: int) -> bool:
        """Tear down under the object lock (R1)."""
        if not range.blockable:
            return False
        with self.lock:
            sub.set_seq(cur_seq)
            self.bo.wait_idle()
            self.bo.unbind()
            if self.bo.pages is not None:
                self.bo.release_pages()
        return True

    def submit(self, ops: Sequence[DmaOp], **job: Any) -> DmaFence:
        """Look the pages up, then bind and submit them -- no retry (R2)."""
        bo = self.bo
        fresh = bo.gup() if bo.pages is None else None
        bo.resv.lock(None)
        bo.reserve_fence()
        with self.lock:
            bo.bind_looked_up(fresh)
            fence = bo.submit_fenced(ops, **job)
        bo.resv.unlock()
        return fence

    def destroy(self) -> None:
        """Remove the notifier, then wait, unbind and release."""
        self.interval.remove()
        with self.lock:
            self.bo.destroy_pages()
