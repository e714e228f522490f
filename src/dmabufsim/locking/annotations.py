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

Rules (the kernel's semantics, ``mm/page_alloc.c``, ``mm/mmu_notifier.c``,
``drivers/dma-buf/dma-fence.c``):

* R1 (fs_reclaim): an allocation that may direct-reclaim (after the
  thread's memalloc scopes; not ``GFP_ATOMIC``/``GFP_NOWAIT``, not while
  the thread itself reclaims, ``PF_MEMALLOC`` = ``KThread.in_reclaim``)
  and may enter the filesystem (``__GFP_FS``: ``GFP_KERNEL``, not
  ``GFP_NOFS``/``GFP_NOIO``) acquires and releases ``fs_reclaim``
  (``might_alloc``); reclaim, and so every shrinker, runs holding it
  (``fs_reclaim_acquire`` ... ``fs_reclaim_release``). So a lock a shrinker
  takes must never be held across a ``GFP_KERNEL`` allocation.
* R2 (reclaim invalidates): every allocation that may direct-reclaim, even
  ``GFP_NOFS``/``GFP_NOIO``, also touches the mmu-notifier map, because
  reclaim can unmap pages and so call notifiers.
* R3 (mmu notifier): notifier callbacks run holding
  ``mmu_notifier_invalidate_range_start`` (:func:`mmu_notifier_callbacks`);
  the paths that can trigger them acquire and release it
  (:func:`mmu_notifier_lockdep_touch`).
* R4 (dma_fence_map): a signalling section holds ``dma_fence_map`` as a
  non-recursive read *trylock*; a fence wait takes it exclusively after
  dropping the section's own read side. Hence: a lock taken inside a
  section and held across a wait elsewhere, an allocation that may
  reclaim inside a section, or a reservation lock taken inside one (with
  the priming), closes a cycle lockdep reports.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..kernel.gfp import GFP, current_gfp_context, gfpflags_allow_blocking
from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.stack import caller_site
from ..kernel.thread import KThread

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
    maps: dict[str, LockdepMap] | None = k.ext.get("pseudo_locks")
    if maps is None:
        maps = k.ext["pseudo_locks"] = {}
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


def _need_reclaim(gfp: GFP) -> GFP | None:
    """``__need_reclaim`` after ``current_gfp_context``: the effective flags, or None.

    None when the allocation cannot direct-reclaim (atomic / nowait) or the
    thread is itself reclaiming (``PF_MEMALLOC``: ``KThread.in_reclaim``).
    """
    g = current_gfp_context(gfp)
    if not gfpflags_allow_blocking(g):
        return None
    if current_kernel().current.in_reclaim:
        return None
    return g


def fs_reclaim_acquire(gfp: GFP) -> bool:
    """``fs_reclaim_acquire``: enter the reclaim an allocation with ``gfp`` may do (R1, R2).

    Takes ``fs_reclaim`` if the flags (after the memalloc scopes) allow
    filesystem reclaim, and touches the mmu-notifier map whenever they
    allow direct reclaim at all (reclaim can unmap pages and so invalidate).
    Returns whether ``fs_reclaim`` was taken.
    """
    g = _need_reclaim(gfp)
    if g is None:
        return False
    took = bool(g & GFP.FS)
    if took:
        fs_reclaim_map().acquire()
    mn = mmu_notifier_map()
    mn.acquire()
    mn.release()
    return took


def fs_reclaim_release(gfp: GFP) -> None:
    """``fs_reclaim_release``: the counterpart of :func:`fs_reclaim_acquire`."""
    g = _need_reclaim(gfp)
    if g is not None and g & GFP.FS:
        fs_reclaim_map().release()


def might_alloc(gfp: GFP) -> None:
    """``might_alloc``: an allocation with ``gfp`` could recurse into reclaim and sleep here (R1)."""
    fs_reclaim_acquire(gfp)
    fs_reclaim_release(gfp)
    if gfpflags_allow_blocking(gfp):
        current_kernel().might_sleep("might_alloc")


def mmu_notifier_lockdep_touch() -> None:
    """Acquire and release the mmu-notifier map (R3).

    What ``mmu_interval_read_begin``, ``mmu_notifier_register`` /
    ``mmu_interval_notifier_remove`` and reclaim do: this path can trigger
    an invalidation, so every lock held here must never be taken inside a
    notifier callback.
    """
    m = mmu_notifier_map()
    m.acquire()
    m.release()


@contextmanager
def mmu_notifier_callbacks() -> Iterator[None]:
    """Hold the mmu-notifier map around notifier callbacks (R3).

    What ``__mmu_notifier_invalidate_range_start`` and ``..._end`` do around
    the ``invalidate_range_start`` / ``invalidate`` / ``invalidate_range_end``
    callbacks: every lock taken inside gets ``mmu_notifier_invalidate_range_start -> lock``.
    """
    m = mmu_notifier_map()
    m.acquire()
    try:
        yield
    finally:
        m.release()


def _held_for_read(k: Kernel, m: LockdepMap) -> bool:
    """``lock_is_held_type(map, 1)`` for the current thread."""
    return any(h.map is m and h.read for h in k.current.held)


def dma_fence_begin_signalling() -> bool:
    """``dma_fence_begin_signalling``: enter a fence-signalling critical section (R4).

    Returns the cookie for :func:`dma_fence_end_signalling`: True when
    nothing was taken (nested in another section, or in atomic context,
    where ``might_sleep`` already guards, or with the lockdep validator off,
    where the kernel's annotation compiles to nothing); otherwise the map is
    taken as a non-recursive *successful read trylock* (``lock_acquire(map,
    0, 1, 1, ...)``): no edge from the locks already held to
    ``dma_fence_map``, but every lock taken inside the section gets
    ``dma_fence_map -> lock``.
    """
    k = current_kernel()
    if not k.config.lockdep:  # CONFIG_LOCKDEP=n: lockdep_map and lock_acquire are no-ops
        return True
    return signalling_enter(k, k.current) is None


def dma_fence_end_signalling(cookie: bool) -> None:
    """``dma_fence_end_signalling``."""
    if not cookie:
        k = current_kernel()
        k.lockdep.lock_release(k.current, _fence_map_of(k))


def signalling_enter(k: Kernel, t: KThread) -> LockdepMap | None:
    """:func:`dma_fence_begin_signalling` for a caller that has the kernel and the running thread.

    The fence room's hot path (``DmaFence.signal``): returns the map taken
    (pass it to :func:`signalling_exit`), or None when nothing was taken.
    """
    if not k.config.lockdep:
        return None
    m = _fence_map_of(k)
    for h in t.held:
        if h.map is m and h.read:
            return None
    if t.atomic or t.in_irq:
        return None
    code, lasti = caller_site(sys._getframe(1))
    k.lockdep.lock_acquire(t, m, 1, True, 0, None, code, lasti)
    return m


def signalling_exit(k: Kernel, t: KThread, m: LockdepMap | None) -> None:
    """:func:`dma_fence_end_signalling` for what :func:`signalling_enter` returned."""
    if m is not None:
        k.lockdep.lock_release(t, m)


def _fence_map_of(k: Kernel) -> LockdepMap:
    """``dma_fence_map`` of ``k`` (one dict lookup on the signalling hot path)."""
    m: LockdepMap | None = k.ext.get(_FENCE_MAP_KEY)
    if m is None:
        m = k.ext[_FENCE_MAP_KEY] = pseudo_lock(DMA_FENCE_MAP, k)
    return m


_FENCE_MAP_KEY = "pseudo_lock:" + DMA_FENCE_MAP


def dma_fence_might_wait() -> None:
    """``__dma_fence_might_wait``: a fence wait could happen here (R4).

    Drops the read side of a signalling section the thread is in, takes and
    releases the map exclusively (``lock_map_acquire``: every lock held gets
    ``lock -> dma_fence_map``), then re-enters the section. A wait inside a
    section is therefore reported only through a lock held in it (the
    section's own read side is not held across the wait), exactly as in the
    kernel.
    """
    k = current_kernel()
    m = dma_fence_map()
    reading = _held_for_read(k, m)
    if reading:
        k.lockdep.release(m)
    m.acquire()
    m.release()
    if reading:
        k.lockdep.acquire(m, read=1, trylock=True)


def might_lock(lock: Any) -> None:
    """``might_lock``: this path may take ``lock`` (acquire and release its map for lockdep)."""
    k = current_kernel()
    m = getattr(lock, "dep_map", lock)
    k.lockdep.acquire(m)
    k.lockdep.release(m)


def might_lock_read(lock: Any) -> None:
    """``might_lock_read``: this path may take ``lock`` for reading (non-recursive)."""
    k = current_kernel()
    m = getattr(lock, "dep_map", lock)
    k.lockdep.acquire(m, read=1)
    k.lockdep.release(m)


def might_lock_nested(lock: Any, subclass: int) -> None:
    """``might_lock_nested``: as :func:`might_lock` with a lockdep subclass."""
    k = current_kernel()
    m = getattr(lock, "dep_map", lock)
    k.lockdep.acquire(m, subclass=subclass)
    k.lockdep.release(m)
