"""Models ``drivers/gpu/drm/ttm/`` (``ttm_bo.c``, ``ttm_bo_util.c``; Linux 6.12).

A TTM-like memory manager: buffer objects (BOs) whose backing store lives
in one of a few *placements* -- VRAM (device memory of a limited size), GTT
(system pages the GPU reaches through its GART) or SYSTEM -- and moves
between them when the driver validates a BO somewhere else or when memory
pressure evicts it.

Backing store is always made of the machine's page frames (owned by the
BO), so the isolation checker sees every DMA; a :class:`ResourceManager`
only accounts how many pages of its placement are in use. A resource is
*bound* into the GPU's address space (GPU VM + IOMMU, the GART) when the
GPU needs it (its own jobs, copies); bindings are torn down before the
pages are freed (``ttm_tt_unbind`` before ``ttm_tt_unpopulate``).

Rules (findings cite them as ``ttm Rn``):

* R1 (locking): ``validate``, ``pin``, ``unpin`` and every move need the
  BO's reservation lock; a call without it is an ``assertion`` finding.
  The LRU lists of every manager are protected by the device's
  ``lru_lock`` spinlock: nothing that sleeps may run under it.
* R2 (LRU): a BO with backing store and no pin is on its manager's LRU
  (least recently used first); validating moves it to the tail. Pinned
  BOs are never evicted and never moved (``EINVAL``).
* R3 (eviction, claim C8): to make room, the evictor walks the LRU with
  *trylocks* only; a BO already locked by the caller's own ww acquire
  context (``dma_resv_locking_ctx``) is evicted without locking, unless the
  caller needs it (``OperationCtx.busy``). If that finds nothing and the
  caller holds a ww acquire context, it takes a temporary reference on the
  first candidate, **drops the LRU lock**, and locks the victim's
  reservation with that context; ``EDEADLK`` goes back to the caller, who
  must back off its whole transaction. The variant that locks while still
  holding the LRU spinlock (``TTMDevice(lock_under_lru=True)``) is the bug
  the claim warns about: sleeping in atomic context.
* R4 (pipelined moves, claim C1): a move is a job on the device's copy
  engine that depends on *every* fence already in the reservation object
  (the engine waits for them as job dependencies; the CPU never waits);
  its fence is added to the reservation object with usage KERNEL, so every
  later access waits for it; ``dma_buf_move_notify`` tells the dynamic
  importers. The old pages go to a *ghost* object whose release waits for
  the move fence, then tears down every importer table and GPU binding of
  the old pages, and only then frees them.
* R5 (non-pipelined moves): the CPU waits for every fence, runs the copy,
  waits for it, tells the importers, tears the old mappings down and frees
  the old pages at once. :attr:`TTMStats.cpu_blocked_ns` counts the time
  the CPU spent blocked.
* R6 (reused space): space left by a pipelined move is reusable at once;
  the manager remembers the move's fence (``man->move``, keeping the later
  one) and a BO that gets space from that manager afterwards gets it as a
  KERNEL fence (``ttm_bo_add_move_fence``), or the CPU waits for it when
  not pipelining.
* R7 (importers): a BO exported as a dma-buf with a static attachment is
  pinned by it (dma-buf R4): it is never evicted.

* R8 (extension points, ``struct ttm_device_funcs``): a driver subclasses
  :class:`TTMDevice` and overrides the public hooks, never a private
  method: :meth:`TTMDevice.evict_flags` (where an evicted BO goes),
  :meth:`TTMDevice.eviction_valuable` (may this BO be evicted for that
  caller), :meth:`TTMDevice.tt_populate` (fill a new resource with pages,
  reservation held: a userptr driver of 2016 called ``get_user_pages``
  here) and :meth:`TTMDevice.reclaim_lock` (how the device's shrinker,
  :class:`TTMShrinker`, locks a BO it wants to swap out: ``trylock`` today,
  a blocking driver lock in designs of other years).
* R9 (shrinker, ``ttm_bo_swapout`` / ``ttm_pool`` shrinker): the device's
  shrinker walks the SYSTEM/TT LRUs under ``lru_lock``, takes a reference,
  drops the LRU lock, locks the BO with :meth:`TTMDevice.reclaim_lock`,
  skips it when that fails, and releases an idle BO's backing (it never
  waits for fences: a busy BO is skipped).

Placements, resources and their managers are in
:mod:`~dmabufsim.device.ttm_resource` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ..dma.fence import DmaFence
from ..dma.resv import DmaResv, DmaResvUsage
from ..kernel.errors import EALREADY, EBUSY, EDEADLK, EINVAL, ENOMEM, UsageError
from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import current_kernel
from ..locking.spinlock import SpinLock
from ..locking.ww_mutex import WWAcquireCtx
from ..mm.page import PAGE_SIZE, Page, page_allocator
from ..mm.shrinker import SHRINK_EMPTY, SHRINK_STOP, ShrinkControl, Shrinker
from .device import Device
from .ttm_resource import (
    GTT,
    TTM_PL_SYSTEM,
    TTM_PL_TT,
    TTM_PL_VRAM,
    TTM_VA_BASE,
    GartWindow,
    MemType,
    Resource,
    ResourceManager,
)

if TYPE_CHECKING:
    from ..dma.dma_buf import DmaBuf

__all__ = [
    "COPY_NS_PER_PAGE", "GTT", "LRU_LOCK_CLASS", "TTM_PL_SYSTEM", "TTM_PL_TT", "TTM_PL_VRAM", "TTM_VA_BASE",
    "BufferObject", "CopyEngine", "DeviceCopyEngine", "MemType", "OperationCtx", "Resource", "ResourceManager",
    "TTMDevice", "TTMShrinker", "TTMStats",
]


#: Lock class of the device's LRU spinlock (``ttm_device.lru_lock``).
LRU_LOCK_CLASS = "ttm_device.lru_lock"
#: Virtual time a copy engine needs per page (about 4 KiB at ~4 GB/s).
COPY_NS_PER_PAGE = 1_000


class CopyEngine(Protocol):
    """What TTM needs of a DMA engine: a copy job ordered after ``deps``.

    ``copy(src, dst, deps, name)`` queues a job that waits for every fence
    in ``deps`` (as job dependencies, not on the CPU), then copies the pages
    of ``src`` into those of ``dst`` by DMA, and returns the job's fence.
    It must not block the caller.
    """

    def copy(
        self, src: Resource[BufferObject], dst: Resource[BufferObject], deps: Sequence[DmaFence], name: str
    ) -> DmaFence: ...


class DeviceCopyEngine:
    """A :class:`CopyEngine` on a :class:`Device`'s ``copy`` engine (``amdgpu_copy_buffer``).

    Both resources are bound into the device (GART window) and the job
    copies page by page; ``busy_ns`` sums the virtual time of the copies.
    """

    def __init__(self, dev: Device, *, engine: str = "copy", ns_per_page: int = COPY_NS_PER_PAGE) -> None:
        self.dev = dev
        self.engine = engine
        self.ns_per_page = ns_per_page
        self.busy_ns = 0
        self.nr_copies = 0
        # Start the engine now: ``Device.engine`` starts engines lazily, and two
        # threads asking for the same new engine at once could each start one.
        dev.engine(engine)

    def copy(
        self, src: Resource[BufferObject], dst: Resource[BufferObject], deps: Sequence[DmaFence], name: str
    ) -> DmaFence:
        dev = self.dev
        sva = src.bind(dev)
        dva = dst.bind(dev)
        n = min(src.num_pages, dst.num_pages)
        ops = [("copy", sva + i * PAGE_SIZE, dva + i * PAGE_SIZE) for i in range(n)]
        duration = self.ns_per_page * n
        self.busy_ns += duration
        self.nr_copies += 1
        return dev.submit(ops, engine=self.engine, duration_ns=duration, deps=deps, name=name)


class OperationCtx:
    """``struct ttm_operation_ctx``: how a validate/evict may behave.

    ``no_wait_gpu``: fail with ``EBUSY`` instead of waiting for a fence on
    the CPU; ``ticket``: the caller's ww acquire context (the CS context of
    claim C8), used to block-lock eviction victims; ``busy``: BOs the caller
    needs and which must not be evicted even if its ticket holds them.
    """

    __slots__ = ("busy", "contended", "interruptible", "no_wait_gpu", "ticket")

    def __init__(
        self,
        *,
        interruptible: bool = False,
        no_wait_gpu: bool = False,
        ticket: WWAcquireCtx | None = None,
        busy: Sequence[BufferObject] = (),
    ) -> None:
        self.interruptible = interruptible
        self.no_wait_gpu = no_wait_gpu
        self.ticket = ticket
        self.busy = tuple(busy)
        #: The victim's reservation object whose lock returned ``EDEADLK`` (R3): the
        #: caller takes it first (``lock_slow``) when it retries its transaction.
        self.contended: DmaResv | None = None


class TTMStats:
    """Counters of one :class:`TTMDevice` (:meth:`TTMDevice.statistics` returns them as a dict)."""

    #: Statistics: increments commute and nothing in the model reads them (accesses A3).
    __untracked__ = "*"

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
    on the C8 bug (R3). ``ghost_waits=False`` is the C1 bug: a ghost frees
    the old pages without waiting for the move fence (R4 broken), which the
    isolation checker sees as the copy job reading freed pages. Drivers
    subclass and override :meth:`evict_flags`.
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
        ghost_waits: bool = True,
    ) -> None:
        k = self.k = current_kernel()
        self.oid = k.new_oid()
        self.name = name
        self.engine = engine
        self.pipelined = pipelined
        self.lock_under_lru = lock_under_lru
        self.ghost_waits = ghost_waits
        lru_lock = self.lru_lock = SpinLock(f"{name}.lru_lock", key=LRU_LOCK_CLASS)
        #: The GART window every resource of the device is bound in.
        gart = self.gart = GartWindow()
        self.man: dict[MemType, ResourceManager[BufferObject]] = {
            mt: ResourceManager(mt, size, lru_lock=lru_lock, gart=gart)
            for mt, size in ((MemType.SYSTEM, None), (MemType.TT, gtt_pages), (MemType.VRAM, vram_pages))
        }
        self.stats = TTMStats()
        #: Ghosts whose pages are not freed yet.
        self.ghosts: list[BufferObject] = []

    def evict_flags(self, bo: BufferObject) -> tuple[MemType, ...]:
        """``ttm_device_funcs.evict_flags``: where an evicted BO goes (amdgpu: VRAM -> GTT -> SYSTEM)."""
        if bo.resource is not None and bo.resource.mem_type == MemType.VRAM:
            return (MemType.TT, MemType.SYSTEM)
        return (MemType.SYSTEM,)

    def eviction_valuable(self, bo: BufferObject, ctx: OperationCtx) -> bool:
        """``ttm_device_funcs.eviction_valuable`` (R8): may ``bo`` be evicted for this caller?

        The default is ``ttm_bo_eviction_valuable``'s: not pinned, not a
        ghost, not one of the caller's own busy BOs. Called under ``lru_lock``
        (it must not sleep).
        """
        return bo._listed and bo not in ctx.busy

    def tt_populate(self, bo: BufferObject, res: Resource[BufferObject]) -> None:
        """``ttm_device_funcs.ttm_tt_populate`` (R8): fill ``res.pages`` with ``bo.size`` pages.

        Runs with ``bo``'s reservation held (the order ``dma_resv_lockdep()``
        primes: allocations under resv may reclaim). The default allocates
        with ``GFP_KERNEL``; on ``ENOMEM`` the pages taken so far stay in
        ``res.pages`` and the caller frees them.
        """
        alloc = page_allocator()
        for _ in range(bo.size - len(res.pages)):
            res.pages.append(alloc.alloc_page(GFP_KERNEL, bo))

    def reclaim_lock(self, bo: BufferObject) -> bool:
        """How :class:`TTMShrinker` locks ``bo`` (R8, R9): ``dma_resv_trylock`` (today's rule, claim C5).

        Return True with the BO's reservation held. A design that takes a
        blocking lock here runs inside reclaim (``fs_reclaim`` held):
        lockdep reports it against every allocation made under that lock.
        """
        return bo.resv.trylock()

    def statistics(self) -> dict[str, int]:
        return self.stats.as_dict()

    @property
    def idle(self) -> bool:
        """No ghost waits to be released."""
        self.k.event("ttm_idle", self.oid, False)  # the ghost list, read
        return not self.ghosts

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

    def _ghost_release(
        self, ghost: BufferObject, fences: Sequence[DmaFence], parent: BufferObject | None, generation: int
    ) -> None:
        """The delayed-destroy worker of a ghost (R4): wait, tear the old mappings down, free."""
        if self.ghost_waits:
            for f in fences:
                f.wait(False)
        resv = parent.resv if parent is not None else ghost.resv
        resv.lock(None)
        try:
            buf = parent.dmabuf if parent is not None else None
            if buf is not None and generation:
                buf.teardown_mappings_before(generation)
            ghost._free_resource()
        finally:
            resv.unlock()
        self.stats.ghosts_released += 1
        self.k.event("ttm_ghost_released", self.oid, True)  # the ghost list, written
        self.ghosts.remove(ghost)
        if parent is not None:
            parent.put()


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
            raise UsageError(f"a BufferObject needs a positive size in pages, got {size}")
        k = self.k = current_kernel()
        self.oid = k.new_oid()
        self.tdev = tdev
        self.size = size
        self.name = name
        self.resv: DmaResv = resv if resv is not None else DmaResv(f"{name}.resv")
        self.resource: Resource[BufferObject] | None = None
        self.pin_count = 0
        self.refcount = 1
        self.ghost = ghost
        self.dmabuf: DmaBuf | None = None

    # ------------------------------------------------------------ refcount

    def get(self) -> BufferObject:
        """``ttm_bo_get``."""
        self.k.point("ttm_bo_get", self.oid, True, self.name)
        self.refcount += 1
        return self

    def put(self) -> None:
        """``ttm_bo_put``: the last reference frees the backing store, after its fences (R4)."""
        self.k.point("ttm_bo_put", self.oid, True, self.name)
        if self.refcount <= 0:
            raise UsageError(f"ttm_bo_put of {self.name} with no reference left")
        self.refcount -= 1
        if self.refcount > 0 or self.resource is None:
            return
        # ``ttm_bo_release``: the caller may hold other reservation locks (an
        # evictor dropping its temporary reference): only trylock here, and
        # leave a busy object to the delayed-destroy worker.
        if self.resv.trylock():
            self._release_locked()
        else:
            self.tdev.k.spawn(self._release_worker, name=f"ttm-delayed-destroy-{self.oid}", daemon=True)

    def _release_worker(self) -> None:
        self.resv.lock(None)
        self._release_locked()

    def _release_locked(self) -> None:
        """Release the backing store (resv held; unlocks it): now if idle, else through a ghost (R4)."""
        tdev = self.tdev
        try:
            self._unlink_lru()
            fences = self.resv.get_fences(DmaResvUsage.BOOKKEEP)
            if fences:
                ghost = self._make_ghost(fences)
                tdev.k.spawn(
                    tdev._ghost_release, ghost, fences, None, 0, name=f"ttm-delayed-delete-{ghost.oid}", daemon=True
                )
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

    def _relink_lru(self, res: Resource[BufferObject] | None, *, to_tail: bool) -> None:
        """Under the LRU lock, take ``res`` (default: the BO's resource) off its
        manager's LRU and, if ``to_tail``, put it back at the tail unless the
        BO is pinned or a ghost."""
        res = res if res is not None else self.resource
        if res is None:
            return
        lock = self.tdev.lru_lock
        lock.lock()
        lru = res.manager.lru
        if res in lru:
            lru.remove(res)
        if to_tail and self._listed:
            lru.append(res)
        lock.unlock()

    @property
    def _listed(self) -> bool:
        """R2: the BO's resource belongs on its manager's LRU (evictable: no pin, not a ghost)."""
        return self.pin_count == 0 and not self.ghost

    def _try_alloc(self, man: ResourceManager[BufferObject]) -> Resource[BufferObject] | None:
        """``ttm_resource_alloc`` of this BO's size in ``man``, listed on the LRU if the BO is (R2)."""
        return man.try_alloc(self, self.size, lru=self._listed)

    def _unlink_lru(self, res: Resource[BufferObject] | None = None) -> None:
        self._relink_lru(res, to_tail=False)

    def _lru_tail(self, res: Resource[BufferObject] | None = None) -> None:
        """``ttm_bo_move_to_lru_tail`` (R2)."""
        self._relink_lru(res, to_tail=True)

    def _free_resource(self) -> None:
        """Unbind and free the backing pages (``ttm_resource_free``)."""
        res = self.resource
        if res is None:
            return
        self.resource = None
        res.manager.release(res)
        res.unbind_all()
        alloc = page_allocator()
        for p in res.pages:
            alloc.free_page(p)

    def _make_ghost(self, fences: Sequence[DmaFence]) -> BufferObject:
        """``ttm_buffer_object_transfer``: a ghost takes over the current resource (R4)."""
        tdev = self.tdev
        ghost = BufferObject(tdev, self.size, name=f"ghost:{self.name}", ghost=True)
        res = self.resource
        assert res is not None
        self._unlink_lru(res)
        self.resource = None
        ghost.resource = res
        # A fresh object nobody else can see: the kernel trylocks it (a blocking
        # lock nested in the BO's own reservation lock would be recursive for lockdep).
        if not ghost.resv.trylock():
            raise UsageError(f"the fresh ghost of {self.name} is locked")
        try:
            ghost.resv.reserve_fences(len(fences))
            for f in fences:
                ghost.resv.add_fence(f, DmaResvUsage.KERNEL)
        finally:
            ghost.resv.unlock()
        self.k.event("ttm_ghost", tdev.oid, True)  # the ghost list, written
        tdev.ghosts.append(ghost)
        return ghost

    @property
    def mem_type(self) -> MemType | None:
        return self.resource.mem_type if self.resource is not None else None

    @property
    def pages(self) -> list[Page]:
        """The current backing pages (empty without a resource)."""
        return list(self.resource.pages) if self.resource is not None else []

    def bind(self, dev: Device) -> int:
        """The GPU VA of the current backing store in ``dev`` (bound on first use; resv held)."""
        self._assert_held("ttm_bo_bind")
        res = self.resource
        if res is None:
            raise UsageError(f"{self.name} has no backing store to bind")
        return res.bind(dev)

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
        placement without eviction, pass 2 evicts. Raises ``EDEADLK`` when
        eviction met a transaction the caller must back off from (R3) and
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
            res = self._try_alloc(tdev.man[mt])
            if res is not None:
                self._move_to(res, ctx)
                return
        for mt in placement:
            man = tdev.man[mt]
            while True:
                res = self._try_alloc(man)
                if res is not None:
                    self._move_to(res, ctx)
                    return
                if not self._evict_one(man, ctx):
                    break
        raise ENOMEM(f"ttm_bo_validate: no space for {self.name} ({self.size}p) in {[m.name for m in placement]}")

    # ------------------------------------------------------------ eviction (R3)

    def _evictable(self, res: Resource[BufferObject], ctx: OperationCtx) -> bool:
        bo = res.bo
        return bo is not self and self.tdev.eviction_valuable(bo, ctx)

    def _evict_one(self, man: ResourceManager[BufferObject], ctx: OperationCtx) -> bool:
        """``ttm_bo_evict_alloc`` over ``ttm_lru_walk``: make progress evicting from ``man`` (R3).

        Returns False only when the LRU has no candidate at all; True when a
        BO was evicted or the situation changed while this thread slept
        (the caller re-checks the space).
        """
        tdev = self.tdev
        lru_lock = tdev.lru_lock
        ticket = ctx.ticket
        lru_lock.lock()
        # Pass 1: trylock only (a BO our own ticket holds needs no lock).
        for res in list(man.lru):
            if not self._evictable(res, ctx):
                continue
            bo = res.bo
            ours = ticket is not None and bo.resv.locking_ctx() is ticket
            if not ours and not bo.resv.trylock():
                continue
            if bo.resource is not res:
                if not ours:
                    bo.resv.unlock()
                continue
            bo.get()
            lru_lock.unlock()
            try:
                bo._evict(ctx)
            finally:
                if not ours:
                    bo.resv.unlock()
                bo.put()
            return True
        if ticket is None:
            lru_lock.unlock()
            return False
        # Pass 2: block-lock one candidate with the caller's ticket.
        for res in list(man.lru):
            if not self._evictable(res, ctx):
                continue
            bo = res.bo
            bo.get()  # the temporary reference: the BO cannot go away once the LRU lock is dropped
            if not tdev.lock_under_lru:
                lru_lock.unlock()
            try:
                bo.resv.lock(ticket)
            except (EDEADLK, EALREADY) as e:
                if tdev.lock_under_lru:
                    lru_lock.unlock()
                bo.put()
                if isinstance(e, EDEADLK):
                    ctx.contended = bo.resv
                raise
            if tdev.lock_under_lru:
                lru_lock.unlock()
            try:
                # Re-check: it may have moved, been pinned or freed while we slept.
                if bo.resource is res and not bo.pin_count:
                    bo._evict(ctx)
            finally:
                bo.resv.unlock()
                bo.put()
            return True
        lru_lock.unlock()
        return False

    def _evict(self, ctx: OperationCtx) -> None:
        """``ttm_bo_evict``: move to the driver's eviction placement (resv held)."""
        tdev = self.tdev
        tdev.stats.evictions += 1
        for mt in tdev.evict_flags(self):
            res = self._try_alloc(tdev.man[mt])
            if res is not None:
                self._move_to(res, ctx)
                return
        raise ENOMEM(f"ttm_bo_evict: nowhere to evict {self.name}")

    # ------------------------------------------------------------ moves (R4, R5, R6)

    def _move_to(self, new: Resource[BufferObject], ctx: OperationCtx) -> None:
        """``ttm_bo_handle_move_mem``: populate ``new`` (space already taken) and move the contents there."""
        tdev = self.tdev
        k = self.k
        man = new.manager
        k.point("ttm_bo_move", self.oid, True, f"{self.name}->{man.mem_type.name}")
        old = self.resource
        pages = new.pages
        alloc = page_allocator()
        try:
            # ttm_tt_populate under the reservation lock (GFP_KERNEL: the order dma_resv_lockdep() primes).
            tdev.tt_populate(self, new)
        except BaseException:  # ENOMEM, or what a driver's tt_populate raises (EFAULT from gup)
            man.release(new)
            for p in pages:
                alloc.free_page(p)
            raise
        resv = self.resv
        resv.reserve_fences(2)
        mf = man.move
        if mf is not None and mf.is_signaled():
            mf = None
        if not tdev.pipelined and ctx.no_wait_gpu and (
            mf is not None or (old is not None and resv.get_fences(DmaResvUsage.BOOKKEEP))
        ):
            # R5 with no_wait_gpu: the move would have to wait on the CPU; refuse before changing anything.
            man.release(new)
            for p in pages:
                alloc.free_page(p)
            raise EBUSY(f"{tdev.name}: {self.name} is busy and no_wait_gpu")
        if mf is not None:
            # R6: the space may still be read by an earlier move's copy.
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
        buf = self.dmabuf
        if tdev.pipelined:
            deps = resv.get_fences(DmaResvUsage.BOOKKEEP)
            fence = tdev.engine.copy(old, new, deps, f"{tdev.name}.move:{self.name}")
            resv.add_fence(fence, DmaResvUsage.KERNEL)
            self.resource = new
            generation = buf.move_notify() if buf is not None else 0
            # R6: the old space is reusable now, ordered after the copy.
            old_man = old.manager
            old_man.release(old)
            mf_old = old_man.move
            if mf_old is None or mf_old.is_signaled() or mf_old.context != fence.context or fence.is_later(mf_old):
                old_man.move = fence
            self.resource = old
            ghost = self._make_ghost([fence])
            self.resource = new
            k.spawn(
                tdev._ghost_release, ghost, [fence], self.get(), generation,
                name=f"ttm-ghost-{ghost.oid}", daemon=True,
            )
        else:
            for f in resv.get_fences(DmaResvUsage.BOOKKEEP):
                tdev._cpu_wait(f, ctx)
            fence = tdev.engine.copy(old, new, (), f"{tdev.name}.move:{self.name}")
            # The move's own copy: waited for even with no_wait_gpu (nothing else's work).
            tdev._cpu_wait(fence, OperationCtx(interruptible=ctx.interruptible))
            self.resource = new
            if buf is not None:
                generation = buf.move_notify()
                buf.teardown_mappings_before(generation)
            self.resource = old
            self._free_resource()
            self.resource = new
        self._lru_tail()

    def release_backing(self, *, wait: bool = True, ctx: OperationCtx | None = None) -> None:
        """Drop the backing store now (``ttm_bo_pipeline_gutting`` done synchronously; resv held).

        With ``wait`` the CPU first waits for every fence (R5); without it,
        the pages are freed under jobs that may still use them -- the bug of
        claim C4's "lock, then free". Importers are told (``move_notify``)
        and their tables torn down first. Pinned BOs: ``EBUSY``.
        """
        ctx = ctx or OperationCtx()
        self._assert_held("ttm_bo_release_backing")
        self.k.point("ttm_bo_release_backing", self.oid, True, self.name)
        if self.pin_count:
            raise EBUSY(f"{self.name} is pinned")
        self._release_backing(wait, ctx, include_cached=False)

    def release_backing_ignoring_pins(self, *, wait: bool = True) -> None:
        """The design that frees a pinned BO too (claim C4's second variant): never correct."""
        self._assert_held("ttm_bo_release_backing")
        self.k.point("ttm_bo_release_backing", self.oid, True, self.name)
        self._release_backing(wait, OperationCtx(), include_cached=True)

    def _release_backing(self, wait: bool, ctx: OperationCtx, include_cached: bool) -> None:
        if self.resource is None:
            return
        if wait:
            for f in self.resv.get_fences(DmaResvUsage.BOOKKEEP):
                self.tdev._cpu_wait(f, ctx)
        self._unlink_lru()
        buf = self.dmabuf
        if buf is not None:
            generation = buf.move_notify()
            buf.teardown_mappings_before(generation, include_cached=include_cached)
        self._free_resource()

    def __repr__(self) -> str:
        where = self.mem_type.name if self.mem_type is not None else "-"
        return f"<BufferObject #{self.oid} {self.name} {self.size}p in {where} pin={self.pin_count}>"


class TTMShrinker(Shrinker):
    """The device's shrinker (``ttm_bo_swapout`` driven from reclaim; R9).

    Gives back the backing pages of idle, unpinned BOs in SYSTEM and TT,
    least recently used first, locking each through
    :meth:`TTMDevice.reclaim_lock` (the extension point for designs that
    lock differently). Register it with :meth:`register`.
    """

    def __init__(self, tdev: TTMDevice) -> None:
        super().__init__(f"{tdev.name}.ttm_shrinker")
        self.tdev = tdev

    def _candidates(self) -> list[Resource[BufferObject]]:
        tdev = self.tdev
        return [r for mt in (MemType.SYSTEM, MemType.TT) for r in tdev.man[mt].lru]

    def count_objects(self, sc: ShrinkControl) -> int:
        tdev = self.tdev
        with tdev.lru_lock:
            n = sum(r.bo.size for r in self._candidates() if not r.bo.pin_count)
        return n or SHRINK_EMPTY

    def scan_objects(self, sc: ShrinkControl) -> int:
        tdev = self.tdev
        freed = 0
        tdev.lru_lock.lock()
        for res in self._candidates():
            bo = res.bo
            if not bo._listed:
                continue
            bo.get()
            tdev.lru_lock.unlock()
            try:
                if tdev.reclaim_lock(bo):
                    try:
                        if bo.resource is res and not bo.pin_count and not bo.resv.get_fences(DmaResvUsage.BOOKKEEP):
                            freed += bo.size
                            bo.release_backing(wait=False)
                    finally:
                        bo.resv.unlock()
            finally:
                bo.put()
            if freed >= sc.nr_to_scan:
                break
            tdev.lru_lock.lock()
        else:
            tdev.lru_lock.unlock()
        sc.nr_scanned = max(freed, 1)
        return freed or SHRINK_STOP
