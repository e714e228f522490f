"""Models ``drivers/gpu/drm/ttm/`` (``ttm_bo.c``, ``ttm_resource.c``, ``ttm_bo_util.c``; Linux 6.12).

A TTM-like memory manager: buffer objects (BOs) whose backing store lives
in one of a few *placements* -- VRAM (device memory of a limited size), GTT
(system pages the GPU reaches through its GART) or SYSTEM -- and moves
between them when the driver validates a BO somewhere else or when memory
pressure evicts it.

Backing store is always made of the machine's page frames (owned by the
BO), so the isolation checker sees every DMA; a :class:`ResourceManager`
only accounts how many pages of its placement are in use.

Rules (findings cite them as ``ttm Rn``):

* R1 (locking): ``validate``, ``pin``, ``unpin`` and every move need the
  BO's reservation lock; a call without it is an ``assertion`` finding.
  The LRU lists of every manager are protected by the device's
  ``lru_lock`` spinlock: nothing that sleeps may run under it.
* R2 (LRU): a BO with backing store and no pin is on its manager's LRU
  (least recently used first); validating moves it to the tail. Pinned
  BOs are never evicted and never moved (``EINVAL``).
* R3 (eviction, claim C8): to make room, the evictor first walks the LRU
  with *trylocks* only. If that finds nothing and the caller holds a ww
  acquire context, it takes a temporary reference on the first candidate,
  **drops the LRU lock**, and locks the victim's reservation with that
  context; ``EDEADLK`` goes back to the caller, who must back off its whole
  transaction; ``EALREADY`` (a BO of the caller's own) is skipped. The
  variant that locks while still holding the LRU spinlock (``ttm_lock_under_lru``)
  is the bug the claim warns about: sleeping in atomic context.
* R4 (pipelined moves, claim C1): a move is a job on the device's copy
  engine that depends on *every* fence already in the reservation object
  (it waits for them as job dependencies, never on the CPU); its fence is
  added to the reservation object with usage KERNEL, so every later access
  waits for it. The old pages go to a *ghost* object released only when
  the move fence signals. Then ``dma_buf_move_notify`` tells dynamic
  importers (reservation lock still held).
* R5 (non-pipelined moves): the CPU waits for every fence, runs the copy,
  waits for it and frees the old pages at once. The time the CPU spent
  blocked is counted in :attr:`TTMStats.cpu_blocked_ns`.
* R6 (reused space): space freed by a pipelined eviction is reusable at
  once; the manager remembers the eviction's fence (``man->move``) and
  every BO that gets space from that manager afterwards gets the fence as
  a KERNEL fence, so it cannot touch the space before the copy-out ended.
* R7 (importers): a BO exported as a dma-buf with a static attachment is
  pinned by it (dma-buf R4): it can never be evicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from ..dma.fence import DmaFence
from ..dma.resv import DmaResv, DmaResvUsage
from ..kernel.errors import EALREADY, EBUSY, EDEADLK, EINVAL, ENOMEM, UsageError
from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import current_kernel
from ..locking.spinlock import SpinLock
from ..locking.ww_mutex import WWAcquireCtx
from ..mm.page import Page, page_allocator

if TYPE_CHECKING:
    from ..dma.dma_buf import DmaBuf


class MemType(IntEnum):
    """``TTM_PL_*`` memory types."""

    SYSTEM = 0
    TT = 1
    VRAM = 2


TTM_PL_SYSTEM = MemType.SYSTEM
TTM_PL_TT = MemType.TT
TTM_PL_VRAM = MemType.VRAM
#: amdgpu's name for TT.
GTT = MemType.TT

#: Lock class of the device's LRU spinlock (``ttm_device.lru_lock``).
LRU_LOCK_CLASS = "ttm_device.lru_lock"


class CopyEngine(Protocol):
    """What TTM needs of a DMA engine: a copy job ordered after ``deps``.

    ``copy(src, dst, deps, name)`` queues a job that waits for every fence
    in ``deps`` (as job dependencies, not on the CPU), then copies ``src[i]``
    into ``dst[i]`` by DMA, and returns the job's fence. It must not block
    the caller.
    """

    def copy(self, src: Sequence[Page], dst: Sequence[Page], deps: Sequence[DmaFence], name: str) -> DmaFence: ...


class OperationCtx:
    """``struct ttm_operation_ctx``: how a validate/evict may behave.

    ``no_wait_gpu``: fail with ``EBUSY`` instead of waiting for a fence;
    ``allow_res_evict``: BOs sharing the caller's locked reservation may be
    evicted; ``ticket``: the caller's ww acquire context (the CS context of
    claim C8), used to block-lock eviction victims.
    """

    __slots__ = ("allow_res_evict", "interruptible", "no_wait_gpu", "ticket")

    def __init__(
        self,
        *,
        interruptible: bool = False,
        no_wait_gpu: bool = False,
        allow_res_evict: bool = False,
        ticket: WWAcquireCtx | None = None,
    ) -> None:
        self.interruptible = interruptible
        self.no_wait_gpu = no_wait_gpu
        self.allow_res_evict = allow_res_evict
        self.ticket = ticket


class Resource:
    """``struct ttm_resource``: backing pages of one BO in one placement."""

    __slots__ = ("accounted", "manager", "mem_type", "num_pages", "oid", "pages")

    def __init__(self, manager: ResourceManager, pages: list[Page]) -> None:
        self.oid = manager.tdev.k.new_oid()
        self.manager = manager
        self.mem_type = manager.mem_type
        self.pages = pages
        self.num_pages = len(pages)
        #: True while the pages count in ``manager.usage`` (R6 releases the space early).
        self.accounted = True

    def __repr__(self) -> str:
        return f"<Resource #{self.oid} {self.mem_type.name} {self.num_pages}p>"


class ResourceManager:
    """``struct ttm_resource_manager``: the space of one placement and its LRU.

    ``size`` and ``usage`` are in pages (``size`` None = unlimited);
    ``lru`` is protected by the device's ``lru_lock`` (R1); ``move`` is the
    fence of the last pipelined eviction out of this manager (R6).
    """

    __slots__ = ("lru", "mem_type", "move", "size", "tdev", "usage")

    def __init__(self, tdev: TTMDevice, mem_type: MemType, size: int | None) -> None:
        self.tdev = tdev
        self.mem_type = mem_type
        self.size = size
        self.usage = 0
        self.lru: list[BufferObject] = []
        self.move: DmaFence | None = None

    def fits(self, n: int) -> bool:
        return self.size is None or self.usage + n <= self.size

    def __repr__(self) -> str:
        return f"<ResourceManager {self.mem_type.name} {self.usage}/{self.size}>"


class TTMStats:
    """Counters of one :class:`TTMDevice` (``statistics()`` returns a copy as a dict)."""

    __slots__ = ("cpu_blocked_ns", "cpu_waits", "evictions", "ghosts_released", "moves")

    def __init__(self) -> None:
        self.moves = 0
        self.evictions = 0
        #: Fence waits the move/evict paths did on the CPU (0 when pipelined).
        self.cpu_waits = 0
        #: Virtual time the CPU spent blocked in those waits.
        self.cpu_blocked_ns = 0
        self.ghosts_released = 0

    def as_dict(self) -> dict[str, int]:
        return {s: getattr(self, s) for s in self.__slots__}


class TTMDevice:
    """``struct ttm_device``: the managers of one GPU, its LRU lock, its copy engine.

    ``pipelined`` selects R4 (True) or R5 (False). ``lock_under_lru`` turns
    on the C8 bug (R3). Drivers subclass and override :meth:`evict_flags`.
    """

    def __init__(
        self,
        name: str,
        engine: CopyEngine,
        *,
        vram_pages: int,
        gtt_pages: int | None = None,
        pipelined: bool = True,
        lock_under_lru: bool = False,
    ) -> None:
        k = self.k = current_kernel()
        self.oid = k.new_oid()
        self.name = name
        self.engine = engine
        self.pipelined = pipelined
        self.lock_under_lru = lock_under_lru
        self.lru_lock = SpinLock(f"{name}.lru_lock", key=LRU_LOCK_CLASS)
        self.man: dict[MemType, ResourceManager] = {
            MemType.SYSTEM: ResourceManager(self, MemType.SYSTEM, None),
            MemType.TT: ResourceManager(self, MemType.TT, gtt_pages),
            MemType.VRAM: ResourceManager(self, MemType.VRAM, vram_pages),
        }
        self.stats = TTMStats()
        self.ghosts: list[BufferObject] = []

    def evict_flags(self, bo: BufferObject) -> tuple[MemType, ...]:
        """``ttm_device_funcs.evict_flags``: where an evicted BO goes (amdgpu: VRAM -> GTT -> SYSTEM)."""
        if bo.resource is not None and bo.resource.mem_type == MemType.VRAM:
            return (MemType.TT, MemType.SYSTEM)
        return (MemType.SYSTEM,)

    def statistics(self) -> dict[str, int]:
        return self.stats.as_dict()

    # ------------------------------------------------------------ waits (R5)

    def _cpu_wait(self, f: DmaFence, ctx: OperationCtx) -> None:
        if f.is_signaled():
            return
        if ctx.no_wait_gpu:
            raise EBUSY(f"{self.name}: fence {f!r} pending and no_wait_gpu")
        t0 = self.k.now
        self.stats.cpu_waits += 1
        f.wait(ctx.interruptible)
        self.stats.cpu_blocked_ns += self.k.now - t0

    def _ghost_release(self, ghost: BufferObject, fences: Sequence[DmaFence]) -> None:
        """The delayed-destroy worker of a ghost: free its pages once its fences signalled (R4)."""
        for f in fences:
            f.wait(False)
        ghost.resv.lock(None)
        try:
            ghost._free_resource()
        finally:
            ghost.resv.unlock()
        self.stats.ghosts_released += 1
        self.ghosts.remove(ghost)


class BufferObject:
    """``struct ttm_buffer_object``: ``size`` pages, a reservation object, a resource.

    ``pin_count`` counts ``ttm_bo_pin``; ``dmabuf`` is the dma-buf it is
    exported as (importers are told about moves through it, R4). A *ghost*
    holds the old pages of a pipelined move until the move fence signals.
    """

    def __init__(
        self,
        tdev: TTMDevice,
        size: int,
        *,
        name: str = "bo",
        resv: DmaResv | None = None,
        ghost: bool = False,
    ) -> None:
        if size <= 0:
            raise UsageError(f"a BufferObject needs a positive size, got {size}")
        k = self.k = current_kernel()
        self.oid = k.new_oid()
        self.tdev = tdev
        self.size = size
        self.name = name
        self.resv: DmaResv = resv if resv is not None else DmaResv()
        self.resource: Resource | None = None
        self.pin_count = 0
        self.refcount = 1
        self.ghost = ghost
        self.dmabuf: DmaBuf | None = None

    # ------------------------------------------------------------ refcount

    def get(self) -> BufferObject:
        """``ttm_bo_get``."""
        self.refcount += 1
        return self

    def put(self) -> None:
        """``ttm_bo_put``: the last reference frees the backing store (after its fences)."""
        self.refcount -= 1
        if self.refcount > 0:
            return
        if self.resource is not None:
            tdev = self.tdev
            self.resv.lock(None)
            try:
                self._unlink_lru()
                fences = self.resv.get_fences(DmaResvUsage.BOOKKEEP)
                if fences:
                    ghost = self._make_ghost(fences)
                    tdev.ghosts.append(ghost)
                    tdev.k.spawn(tdev._ghost_release, ghost, fences, name=f"ttm-ghost-{ghost.oid}", daemon=True)
                else:
                    self._free_resource()
            finally:
                self.resv.unlock()

    # ------------------------------------------------------------ helpers

    def _assert_held(self, fn: str) -> None:
        if not self.resv.is_held():
            self.k.report(
                "assertion",
                f"WARNING: {fn} without the BO's reservation lock",
                details={"function": fn, "bo": self.name},
                rule="ttm R1: BO state changes need the reservation lock",
                signature=f"ttm-unlocked:{fn}:{self.name}",
            )

    def _unlink_lru(self) -> None:
        res = self.resource
        if res is None:
            return
        lock = self.tdev.lru_lock
        lock.lock()
        lru = res.manager.lru
        if self in lru:
            lru.remove(self)
        lock.unlock()

    def _lru_tail(self) -> None:
        """``ttm_bo_move_to_lru_tail`` (R2)."""
        res = self.resource
        if res is None:
            return
        lock = self.tdev.lru_lock
        lock.lock()
        lru = res.manager.lru
        if self in lru:
            lru.remove(self)
        if self.pin_count == 0 and not self.ghost:
            lru.append(self)
        lock.unlock()

    def _free_resource(self) -> None:
        res = self.resource
        if res is None:
            return
        self.resource = None
        if res.accounted:
            res.accounted = False
            res.manager.usage -= res.num_pages
        alloc = page_allocator()
        for p in res.pages:
            alloc.free_page(p)

    def _make_ghost(self, fences: Sequence[DmaFence]) -> BufferObject:
        """``ttm_buffer_object_transfer``: a ghost takes over the old resource (R4)."""
        ghost = BufferObject(self.tdev, self.size, name=f"ghost:{self.name}", ghost=True)
        res = self.resource
        assert res is not None
        self.resource = None
        ghost.resource = res
        for p in res.pages:
            p.owner = ghost
        ghost.resv.lock(None)
        try:
            ghost.resv.reserve_fences(len(fences))
            for f in fences:
                ghost.resv.add_fence(f, DmaResvUsage.KERNEL)
        finally:
            ghost.resv.unlock()
        return ghost

    @property
    def mem_type(self) -> MemType | None:
        return self.resource.mem_type if self.resource is not None else None

    @property
    def pages(self) -> list[Page]:
        """The current backing pages (empty without a resource)."""
        return list(self.resource.pages) if self.resource is not None else []

    # ------------------------------------------------------------ pin (R2)

    def pin(self) -> None:
        """``ttm_bo_pin``: never evicted or moved while pinned."""
        self._assert_held("ttm_bo_pin")
        self.k.point("ttm_bo_pin", self.oid, True, self.name)
        self.pin_count += 1
        if self.pin_count == 1:
            self._unlink_lru()

    def unpin(self) -> None:
        """``ttm_bo_unpin``."""
        self._assert_held("ttm_bo_unpin")
        self.k.point("ttm_bo_unpin", self.oid, True, self.name)
        if self.pin_count <= 0:
            raise UsageError(f"ttm_bo_unpin of unpinned {self.name}")
        self.pin_count -= 1
        if self.pin_count == 0:
            self._lru_tail()

    # ------------------------------------------------------------ validate

    def validate(self, placement: Sequence[MemType], ctx: OperationCtx | None = None) -> None:
        """``ttm_bo_validate``: make the BO live in one of ``placement`` (first preferred).

        Already placed in one of them: only the LRU position changes.
        Pinned and elsewhere: ``EINVAL``. Otherwise pass 1 tries every
        placement without eviction, pass 2 evicts (never into SYSTEM,
        which is unlimited anyway). Raises ``EDEADLK`` when eviction met a
        younger/older transaction the caller must back off from (R3) and
        ``ENOMEM`` when no space can be made.
        """
        ctx = ctx or OperationCtx()
        self._assert_held("ttm_bo_validate")
        if not placement:
            raise EINVAL("ttm_bo_validate: empty placement")
        k = self.k
        k.point("ttm_bo_validate", self.oid, True, self.name)
        if self.resource is not None and self.resource.mem_type in placement:
            self._lru_tail()
            return
        if self.pin_count:
            raise EINVAL(f"ttm_bo_validate: {self.name} is pinned in {self.mem_type}")
        tdev = self.tdev
        for mt in placement:
            if tdev.man[mt].fits(self.size):
                self._move_to(tdev.man[mt], ctx, evict=False)
                return
        for mt in placement:
            man = tdev.man[mt]
            while not man.fits(self.size):
                if not self._evict_one(man, ctx):
                    break
            if man.fits(self.size):
                self._move_to(man, ctx, evict=False)
                return
        raise ENOMEM(f"ttm_bo_validate: no space for {self.name} ({self.size}p) in {[m.name for m in placement]}")

    # ------------------------------------------------------------ eviction (R3)

    def _evict_one(self, man: ResourceManager, ctx: OperationCtx) -> bool:
        """``ttm_bo_evict_alloc``/``ttm_lru_walk``: evict one BO from ``man``. False if none could be."""
        tdev = self.tdev
        lru_lock = tdev.lru_lock
        lru_lock.lock()
        # Pass 1: trylock only.
        for bo in list(man.lru):
            if bo is self or bo.pin_count:
                continue
            if ctx.allow_res_evict and ctx.ticket is not None and bo.resv.locking_ctx() is ctx.ticket:
                bo.get()
                lru_lock.unlock()
                try:
                    bo._evict(ctx)
                finally:
                    bo.put()
                return True
            if bo.resv.trylock():
                bo.get()
                lru_lock.unlock()
                try:
                    bo._evict(ctx)
                finally:
                    bo.resv.unlock()
                    bo.put()
                return True
        ticket = ctx.ticket
        if ticket is None:
            lru_lock.unlock()
            return False
        # Pass 2: block-lock one candidate with the caller's ticket.
        for bo in list(man.lru):
            if bo is self or bo.pin_count:
                continue
            bo.get()  # temporary reference: the BO cannot go away once the lock is dropped
            if tdev.lock_under_lru:
                # The C8 bug: sleeping on the victim's reservation under the LRU spinlock.
                try:
                    bo.resv.lock(ticket)
                except (EDEADLK, EALREADY) as e:
                    lru_lock.unlock()
                    bo.put()
                    if isinstance(e, EALREADY):
                        return False
                    raise
                lru_lock.unlock()
            else:
                lru_lock.unlock()
                try:
                    bo.resv.lock(ticket)
                except EALREADY:
                    bo.put()
                    lru_lock.lock()
                    continue
                except EDEADLK:
                    bo.put()
                    raise
            try:
                # Re-check: it may have moved, been pinned or freed while we slept.
                if bo.resource is not None and bo.resource.manager is man and not bo.pin_count:
                    bo._evict(ctx)
                    return True
                return man.fits(self.size)
            finally:
                bo.resv.unlock()
                bo.put()
        lru_lock.unlock()
        return False

    def _evict(self, ctx: OperationCtx) -> None:
        """``ttm_bo_evict``: move to the driver's eviction placement (resv held)."""
        tdev = self.tdev
        tdev.stats.evictions += 1
        for mt in tdev.evict_flags(self):
            man = tdev.man[mt]
            if man.fits(self.size):
                self._move_to(man, ctx, evict=True)
                return
        raise ENOMEM(f"ttm_bo_evict: nowhere to evict {self.name}")

    # ------------------------------------------------------------ moves (R4, R5, R6)

    def _move_to(self, man: ResourceManager, ctx: OperationCtx, *, evict: bool) -> None:
        """``ttm_bo_handle_move_mem``: allocate in ``man`` and copy the contents over."""
        tdev = self.tdev
        k = self.k
        k.point("ttm_bo_move", self.oid, True, f"{self.name}->{man.mem_type.name}")
        old = self.resource
        # Allocate the new space (GFP_KERNEL under resv is the primed, legal order).
        man.usage += self.size
        alloc = page_allocator()
        try:
            pages = [alloc.alloc_page(GFP_KERNEL, self) for _ in range(self.size)]
        except ENOMEM:
            man.usage -= self.size
            raise
        new = Resource(man, pages)
        resv = self.resv
        resv.reserve_fences(2)
        # R6: the space may still be read by an eviction copy.
        mf = man.move
        if mf is not None and not mf.is_signaled():
            if tdev.pipelined:
                resv.add_fence(mf, DmaResvUsage.KERNEL)
            else:
                tdev._cpu_wait(mf, ctx)
        self._unlink_lru()
        tdev.stats.moves += 1
        if old is None:
            self.resource = new
            self._lru_tail()
            return
        if tdev.pipelined:
            deps = resv.get_fences(DmaResvUsage.BOOKKEEP)
            fence = tdev.engine.copy(old.pages, new.pages, deps, f"move:{self.name}")
            resv.add_fence(fence, DmaResvUsage.KERNEL)
            ghost = self._make_ghost([fence])
            tdev.ghosts.append(ghost)
            k.spawn(tdev._ghost_release, ghost, [fence], name=f"ttm-ghost-{ghost.oid}", daemon=True)
            old_man = old.manager
            # R6: the old range is reusable now, ordered by the move fence (keep the later one).
            if old_man.move is None or old_man.move.is_signaled() or fence.is_later(old_man.move):
                old_man.move = fence
            # The ghost's pages stay allocated; the space is reusable now (R6).
            old.accounted = False
            old.manager.usage -= old.num_pages
        else:
            for f in resv.get_fences(DmaResvUsage.BOOKKEEP):
                tdev._cpu_wait(f, ctx)
            fence = tdev.engine.copy(old.pages, new.pages, (), f"move:{self.name}")
            tdev._cpu_wait(fence, ctx)
            self.resource = old
            self._free_resource()
        self.resource = new
        self._lru_tail()
        buf = self.dmabuf
        if buf is not None:
            buf.move_notify()

    def __repr__(self) -> str:
        where = self.mem_type.name if self.mem_type is not None else "-"
        return f"<BufferObject #{self.oid} {self.name} {self.size}p in {where} pin={self.pin_count}>"


__all__ = [
    "GTT", "LRU_LOCK_CLASS", "TTM_PL_SYSTEM", "TTM_PL_TT", "TTM_PL_VRAM", "BufferObject", "CopyEngine",
    "MemType", "OperationCtx", "Resource", "ResourceManager", "TTMDevice", "TTMStats",
]
