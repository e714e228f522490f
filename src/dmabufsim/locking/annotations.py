"""Lockdep annotations of waits that are not locks.

The kernel teaches lockdep about dependencies that no lock carries by
acquiring *pseudo-locks* around the code that can wait or be waited for.
This module holds those maps (one of each per execution) and the calls that
take them, with the kernel's names:

* ``fs_reclaim`` (``mm/page_alloc.c``): an allocation that may enter
  filesystem reclaim acquires and releases it (``might_alloc``); direct
  reclaim, and so every shrinker, runs holding it (``fs_reclaim_acquire``).
* ``mmu_notifier_invalidate_range_start`` (``mm/mmu_notifier.c``): held
  around the notifier callbacks; the paths that can trigger an invalidation
  (reclaim, page-table teardown) acquire and release it.
* ``dma_fence_map`` (``drivers/dma-buf/dma-fence.c``): a fence-signalling
  critical section (``dma_fence_begin_signalling`` ... ``end``) holds it for
  reading; every wait on a fence (``dma_fence_might_wait``) acquires it. So
  a wait, or a GFP_KERNEL allocation, inside a signalling section closes a
  cycle lockdep reports.

The class names are what lockdep reports show. Other rooms name their locks
to match the boot-time priming of ``dma_resv_lockdep()``: ``mmap_lock``,
``reservation_ww_class_acquire``, ``reservation_ww_class_mutex``,
``i_mmap_rwsem``.
"""

from __future__ import annotations

from ..kernel.gfp import GFP, enters_fs_reclaim, gfpflags_allow_blocking
from ..kernel.runtime import Kernel, current_kernel
from .lockdep_map import LockdepMap

FS_RECLAIM = "fs_reclaim"
MMU_NOTIFIER_MAP = "mmu_notifier_invalidate_range_start"
DMA_FENCE_MAP = "dma_fence_map"
#: Lock class names shared with the priming of dma_resv_lockdep().
MMAP_LOCK = "mmap_lock"
RESV_ACQUIRE_CLASS = "reservation_ww_class_acquire"
RESV_MUTEX_CLASS = "reservation_ww_class_mutex"
I_MMAP_RWSEM = "i_mmap_rwsem"


def pseudo_lock(name: str, k: Kernel | None = None) -> LockdepMap:
    """The execution's single map of the pseudo-lock ``name`` (created on first use)."""
    k = k or current_kernel()
    maps: dict[str, LockdepMap] = k.ext.setdefault("pseudo_locks", {})
    m = maps.get(name)
    if m is None:
        m = maps[name] = LockdepMap(name)
    return m


def fs_reclaim_map() -> LockdepMap:
    return pseudo_lock(FS_RECLAIM)


def mmu_notifier_map() -> LockdepMap:
    return pseudo_lock(MMU_NOTIFIER_MAP)


def dma_fence_map() -> LockdepMap:
    return pseudo_lock(DMA_FENCE_MAP)


def fs_reclaim_acquire(gfp: GFP) -> bool:
    """``fs_reclaim_acquire``: take ``fs_reclaim`` if ``gfp`` enters fs reclaim. Returns whether it did."""
    if enters_fs_reclaim(gfp):
        fs_reclaim_map().acquire()
        return True
    return False


def fs_reclaim_release(gfp: GFP) -> None:
    """``fs_reclaim_release``: the counterpart of :func:`fs_reclaim_acquire`."""
    if enters_fs_reclaim(gfp):
        fs_reclaim_map().release()


def might_alloc(gfp: GFP) -> None:
    """``might_alloc``: an allocation with ``gfp`` could sleep and recurse into reclaim here."""
    k = current_kernel()
    if gfpflags_allow_blocking(gfp):
        k.might_sleep("might_alloc")
    if fs_reclaim_acquire(gfp):
        fs_reclaim_release(gfp)


def dma_fence_begin_signalling() -> bool:
    """``dma_fence_begin_signalling``: enter a fence-signalling critical section.

    Returns the cookie for :func:`dma_fence_end_signalling` (True when this
    call was nested in another section and took nothing).
    """
    k = current_kernel()
    m = dma_fence_map()
    if k.lockdep.is_held(m):
        return True
    m.acquire_shared()
    return False


def dma_fence_end_signalling(cookie: bool) -> None:
    """``dma_fence_end_signalling``."""
    if not cookie:
        dma_fence_map().release()


def dma_fence_might_wait() -> None:
    """``__dma_fence_might_wait``: a fence wait could happen here."""
    m = dma_fence_map()
    m.acquire()
    m.release()
