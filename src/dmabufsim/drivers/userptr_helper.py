"""Models the shared userptr helper Daniel asks for (claim C16).

"Maybe we should have more shared code in this, it seems to be a source of
endless amounts of fun": the kernel later grew it in pieces --
``mmu_interval_notifier`` (v5.5), the driver pattern of
``Documentation/mm/hmm.rst``, ``drm_gpusvm`` and xe's userptr code. This
module is that component, written once and used by every reference driver
of the model that passes the coherence claims (``userptr_modern.py``).

One :class:`Userptr` keeps one :class:`~.userptr_common.UserptrBo`
coherent with its process. The submission side (:meth:`Userptr.submit`)::

    again:
        seq = interval.read_begin()
        pages = gup()                      if the object has no pages (no lock held)
        dma_resv_lock(bo.resv); dma_resv_reserve_fences(bo.resv, 1)
        lock(notifier_lock)
        if interval.read_retry(seq): unlock all; put pages; goto again
        bind(pages); fence = push job; dma_resv_add_fence(fence)
        unlock(notifier_lock); dma_resv_unlock(bo.resv)

and the invalidation side (:meth:`Userptr.invalidate`)::

    if not range.blockable: return False
    lock(notifier_lock)
    interval.set_seq(cur_seq)
    wait for every job of the object      (lockless dma_resv wait, BOOKKEEP)
    zap GPU PTEs, flush GPU TLB            (the GPU cannot translate the range)
    dma_unmap_sg, IOTLB sync               (the IOMMU cannot either)
    set_page_dirty, mark_page_accessed, put_page     strictly after the above
    unlock(notifier_lock)

Rules:

* R1 (sequence): a job is published only under the notifier lock, after
  ``read_retry`` said no invalidation touched the range since the pages
  were looked up; otherwise the pages are dropped and looked up again
  (claim C11: ``fork``/``mprotect`` cannot slip between lookup and use).
* R2 (completion, claim C15): when ``invalidate`` returns True no device
  can reach the range's pages: GPU PTEs zapped and the GPU TLB flushed,
  IOMMU entries unmapped and the IOTLB synced.
* R3 (dirtying, claim C14): pages are dirtied, marked accessed and put
  only after R2's teardown.
* R4 (non-blockable): ``invalidate`` of a non-blockable range returns
  False without sleeping (the OOM reaper retries later).
* R5 (no allocation under the notifier lock): the notifier lock is taken
  inside invalidations, which reclaim can trigger; everything that may
  allocate (``gup``, ``dma_resv_reserve_fences``) happens before it is
  taken. Lockdep checks it (``notifier_lock -> fs_reclaim`` would close a
  cycle through ``mmu_notifier_invalidate_range_start``).
* R6 (teardown): :meth:`Userptr.destroy` removes the interval first (no
  invalidation runs after it), then waits, unbinds and releases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..device.device import DmaOp
from ..dma.fence import DmaFence
from ..kernel.errors import UsageError
from ..locking.mutex import Mutex
from ..mm.mmu_notifier import MMUIntervalNotifier, MMUIntervalNotifierOps, MMUNotifierRange
from ..mm.page import PAGE_SIZE, Page
from .userptr_common import UserptrBo

#: Lock class of the helper's notifier lock (``adev->notifier_lock``, ``xe->usm.lock`` ...).
NOTIFIER_LOCK_CLASS = "userptr_notifier_lock"


def userptr_teardown(bo: UserptrBo) -> None:
    """The helper's teardown, shared by every driver that gets userptr right (R3, claim C16).

    Wait for every job on the object (lockless, ``dma_resv_wait_timeout``),
    then take every mapping away -- GPU PTEs zapped and the GPU TLB flushed,
    IOMMU entries unmapped and the IOTLB synced -- and only then dirty, mark
    accessed and put the pages. The caller holds whatever lock its design
    uses to exclude submission (the helper's notifier lock, i915's object
    lock). Counted in ``bo.helper_teardowns``.
    """
    bo.helper_teardowns += 1
    bo.wait_idle()
    bo.unbind()
    if bo.pages is not None:
        bo.release_pages()


def notifier_lock(name: str = NOTIFIER_LOCK_CLASS) -> Mutex:
    """A driver's notifier lock (one per device is usual); every instance shares one lockdep class."""
    return Mutex(name, key=NOTIFIER_LOCK_CLASS)


class Userptr(MMUIntervalNotifierOps):
    """The helper: an interval notifier, a sequence, a notifier lock and the teardown (C16).

    ``Userptr(bo, lock)`` inserts the interval notifier over the object's
    range. Counters: ``nr_invalidations`` (callbacks that tore down or had
    nothing to tear down), ``nr_retries`` (submissions that lost the race
    and looked the pages up again), ``nr_refused`` (non-blockable ranges).
    """

    def __init__(self, bo: UserptrBo, lock: Mutex) -> None:
        self.bo = bo
        self.k = bo.k
        self.lock = lock
        self.nr_invalidations = 0
        self.nr_retries = 0
        self.nr_refused = 0
        self.destroyed = False
        self.interval = MMUIntervalNotifier.insert(bo.mm, bo.start, bo.npages * PAGE_SIZE, self)

    def __repr__(self) -> str:
        return f"<Userptr {self.bo!r} seq={self.interval.invalidate_seq}>"

    # ------------------------------------------------------------------ invalidation side

    def invalidate(self, sub: MMUIntervalNotifier, range: MMUNotifierRange, cur_seq: int) -> bool:
        """``mmu_interval_notifier_ops.invalidate`` (R2-R4)."""
        if not range.blockable:
            self.nr_refused += 1
            return False
        with self.lock:
            sub.set_seq(cur_seq)
            self.nr_invalidations += 1
            self._teardown_locked()
        return True

    def _teardown_locked(self) -> None:
        userptr_teardown(self.bo)

    # ------------------------------------------------------------------ submission side

    def submit(self, ops: Sequence[DmaOp] | Callable[[UserptrBo], Sequence[DmaOp]], **job: Any) -> DmaFence:
        """Command submission naming the object (R1, R5): returns the job's fence.

        ``ops`` are the job's DMA operations (or a function of the object
        returning them); ``job`` keyword arguments go to ``Device.submit``.
        """
        if self.destroyed:
            raise UsageError(f"{self.bo.name}: submit after destroy")
        bo = self.bo
        while True:
            seq = self.interval.read_begin()
            fresh: list[Page] | None = bo.gup() if bo.pages is None else None
            bo.resv.lock(None)
            bo.reserve_fence()
            self.lock.lock()
            if self.interval.read_retry(seq, self.lock):
                self.lock.unlock()
                bo.resv.unlock()
                if fresh is not None:
                    bo.release_pages(fresh, dirty=False)
                self.nr_retries += 1
                continue
            bo.bind_looked_up(fresh)  # unless another submission bound the same range meanwhile
            job_ops = ops(bo) if callable(ops) else ops
            fence = bo.submit_fenced(job_ops, **job)
            self.lock.unlock()
            bo.resv.unlock()
            return fence

    # ------------------------------------------------------------------ teardown

    def destroy(self) -> None:
        """Close the object (R6): remove the interval, then wait, unbind and release."""
        if self.destroyed:
            raise UsageError(f"{self.bo.name}: destroyed twice")
        self.destroyed = True
        self.interval.remove()
        with self.lock:
            self._teardown_locked()
