"""Claims C5 and C6: reservation locks in reclaim and in MMU-notifier callbacks (lockdep level).

C5 (Christian): "an MMU-notifier callback can never take a reservation
lock; a shrinker may only trylock". C6 (Christian): taking it blockingly
would need every allocation made under any reservation lock to be
``GFP_NOIO``.

These designs model the locking of a driver's buffer objects, which is
all the two claims are about: a command-submission thread that allocates
with ``GFP_KERNEL`` while holding a buffer's ``dma_resv`` lock (the
kernel's rule since ``dma_resv_lockdep()``: resv holders may allocate), a
shrinker that runs inside another thread's direct reclaim (under
``fs_reclaim``, mm/shrinker R1), and an MMU notifier whose
``invalidate_range_start`` runs when a process unmaps memory. The
allocations, the reclaim and the invalidation are the mm room's own; the
verdicts are lockdep's.

* C5 ``shrinker-blocking-lock``: the shrinker takes the resv lock
  blockingly. fs_reclaim -> resv closes a cycle with resv -> fs_reclaim:
  ``circular-locking`` through ``fs_reclaim``; and in the schedules where
  the submitting thread itself falls into direct reclaim while holding the
  lock, the deadlock lockdep predicts happens (``recursive-locking`` on
  the resv class, then ``deadlock``).
* C5 ``shrinker-trylock``: trylock and skip busy objects: clean.
* C5 ``notifier-blocking-lock``: ``dma_resv_lock`` in
  ``invalidate_range_start``: the notifier map -> resv closes a cycle with
  the boot-time order resv -> fs_reclaim -> notifier map.
* C6 ``gfp-noio-unprimed``: every allocation under resv is ``GFP_NOIO``
  and the boot-time priming is off (it encodes today's rule that resv
  holders may use ``GFP_KERNEL``): the resv -> fs_reclaim edge never
  appears and the shrinker's blocking lock is clean.
* C6 ``one-gfp-kernel-left``: the same with one ``GFP_KERNEL`` allocation
  left under resv: the report comes back (and the self-deadlock with it).

The shrinker, like the filesystems' ones, does nothing for a reclaim that
may not recurse into filesystems (``sc.gfp_mask`` without ``__GFP_FS``):
that is what makes C6's ``GFP_NOIO`` rule sufficient, in the kernel as in
the model.
"""

from __future__ import annotations

from ..dma.resv import DmaResv
from ..kernel.gfp import GFP, GFP_KERNEL, GFP_NOIO
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps
from ..mm.notifier_hooks import MmuNotifierRange
from ..mm.page import Page, alloc_page, free_page, init_memory
from ..mm.shrinker import SHRINK_EMPTY, SHRINK_STOP, ShrinkControl, Shrinker
from .catalog import Verdict

#: Frames of memory of the machine, and the watermark under which an
#: allocation enters direct reclaim (so the other process's allocations run
#: the driver's shrinker). The smallest machine that still reclaims: two of
#: the other process's allocations run the shrinker, so every schedule of
#: the clean designs is explored (optimal DPOR: 388 traces for the trylock
#: shrinker, 38 for GFP_NOIO; with 24 frames and 12 pages the trylock
#: design was not exhausted after 2,259 traces) and the blocking siblings
#: still show their cycle and self-deadlock.
NR_PAGES = 20
LOW = 16
MIN = 4
#: Pages the command submission allocates under the reservation lock.
CS_PAGES = 3
#: Pages the other process allocates (enough to fall under the watermark).
OTHER_PAGES = 4


class BoCache(Shrinker):
    """A driver's buffer object with a shrinker for its idle backing pages.

    ``blocking``: the shrinker takes the resv lock with ``dma_resv_lock``
    (the design under test) or with ``dma_resv_trylock`` and skips a busy
    object (``SHRINK_STOP``).
    """

    def __init__(self, blocking: bool) -> None:
        super().__init__("bo_cache")
        self.resv = DmaResv("bo.resv")
        self.blocking = blocking
        self.pages: list[Page] = []

    def submit(self, gfps: tuple[GFP, ...]) -> None:
        """Command submission: allocate backing pages while holding the resv lock."""
        self.resv.lock()
        try:
            for gfp in gfps:
                page = alloc_page(gfp, self)
                self.k.event("bo_cache_add", self.oid, True)  # the cache's list, written
                self.pages.append(page)
        finally:
            self.resv.unlock()

    def count_objects(self, sc: ShrinkControl) -> int:
        self.k.event("bo_cache_count", self.oid, False)  # a lockless look at the cache's list
        return len(self.pages) or SHRINK_EMPTY

    def scan_objects(self, sc: ShrinkControl) -> int:
        if not sc.gfp_mask & GFP.FS:
            # Like the filesystems' shrinkers: no work for a reclaim that may
            # not recurse into filesystems (GFP_NOFS / GFP_NOIO). This is
            # what makes C6's GFP_NOIO rule sufficient.
            return SHRINK_STOP
        if self.blocking:
            self.resv.lock()  # C5: never block on resv in reclaim
        elif not self.resv.trylock():
            return SHRINK_STOP  # busy: skip it this time
        freed = 0
        try:
            while self.pages and freed < sc.nr_to_scan:
                self.k.event("bo_cache_scan", self.oid, True)  # the cache's list, written
                free_page(self.pages.pop())
                freed += 1
        finally:
            self.resv.unlock()
        sc.nr_scanned = max(freed, 1)
        return freed


def _allocate(n: int) -> None:
    owner = object()
    for _ in range(n):
        alloc_page(GFP_KERNEL, owner)


def _reclaim_scenario(k: Kernel, blocking: bool, gfps: tuple[GFP, ...]) -> None:
    init_memory(NR_PAGES, low=LOW, min=MIN)
    bo = BoCache(blocking)
    bo.register()
    # The buffer already has idle pages the shrinker can give back.
    bo.pages.extend(alloc_page(GFP_KERNEL, bo) for _ in range(2))
    k.spawn(bo.submit, gfps, name="cs")
    k.spawn(_allocate, OTHER_PAGES, name="other-process")


def shrinker_blocking_lock(k: Kernel) -> None:
    """The shrinker takes the buffer's resv lock blockingly inside reclaim."""
    _reclaim_scenario(k, True, (GFP_KERNEL,) * CS_PAGES)


def shrinker_trylock(k: Kernel) -> None:
    """The shrinker trylocks the resv lock and skips a busy buffer."""
    _reclaim_scenario(k, False, (GFP_KERNEL,) * CS_PAGES)


def gfp_noio_unprimed(k: Kernel) -> None:
    """Every allocation under resv is GFP_NOIO (boot-time priming off); the shrinker blocks on resv."""
    _reclaim_scenario(k, True, (GFP_NOIO,) * CS_PAGES)


def one_gfp_kernel_left(k: Kernel) -> None:
    """As the GFP_NOIO design, with one GFP_KERNEL allocation left under resv."""
    _reclaim_scenario(k, True, (GFP_NOIO,) * (CS_PAGES - 1) + (GFP_KERNEL,))


class _ResvNotifier(MMUNotifierOps):
    """A userptr-like subscriber that locks the buffer's resv in ``invalidate_range_start``."""

    def __init__(self, resv: DmaResv) -> None:
        self.resv = resv

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        self.resv.lock()  # C5: never take resv in a notifier callback
        self.resv.unlock()


def _unmapper(proc: Process, addr: int, length: int) -> None:
    proc.mm.munmap(addr, length)


def notifier_blocking_lock(k: Kernel) -> None:
    """``invalidate_range_start`` takes the buffer's resv lock while a process unmaps its memory."""
    resv = DmaResv("userptr_bo.resv")
    proc = Process("app")
    addr = proc.mmap(2 * 4096)
    proc.populate(addr, 2 * 4096)
    MMUNotifier(_ResvNotifier(resv)).register(proc.mm)
    k.spawn(_unmapper, proc, addr, 2 * 4096, name="munmap")


_RESV_FS_RECLAIM = ("reservation_ww_class_mutex", "fs_reclaim")
#: Lockdep's cycle, and, in the schedules where the submitting thread itself
#: enters direct reclaim while holding the resv lock, the real self-deadlock
#: it predicts: the shrinker blocks on the lock its own thread holds
#: (lockdep: "possible recursive locking detected"; the scheduler: deadlock).
_CYCLE_AND_SELF_DEADLOCK = Verdict(
    kinds=frozenset({"circular-locking", "recursive-locking", "deadlock"}), chain=_RESV_FS_RECLAIM
)

CLAIMS = [
    {
        "id": "C5",
        "design": "shrinker-blocking-lock",
        "scenario": shrinker_blocking_lock,
        "expected": _CYCLE_AND_SELF_DEADLOCK,
        "budget": 200,
    },
    {
        "id": "C5",
        "design": "shrinker-trylock",
        "scenario": shrinker_trylock,
        "expected": "clean",
        # Proved: optimal DPOR exhausts every schedule in 696 Mazurkiewicz traces (~1 s), dropping
        # nothing (the allocator's free list is declared: which frame an allocation gets depends on the frees).
        "strategy": "odpor",
        "budget": 4000,
    },
    {
        "id": "C5",
        "design": "notifier-blocking-lock",
        "scenario": notifier_blocking_lock,
        "expected": Verdict(
            kinds=frozenset({"circular-locking"}),
            chain=("reservation_ww_class_mutex", "fs_reclaim", "mmu_notifier_invalidate_range_start"),
        ),
        "budget": 50,
    },
    {
        "id": "C6",
        "design": "gfp-noio-unprimed",
        "scenario": gfp_noio_unprimed,
        "expected": "clean",
        # Proved: optimal DPOR exhausts every schedule in 46 Mazurkiewicz traces, dropping nothing.
        "strategy": "odpor",
        "budget": 400,
        "kernel_options": {"prime_lockdep": False},
    },
    {
        "id": "C6",
        "design": "one-gfp-kernel-left",
        "scenario": one_gfp_kernel_left,
        # C6: "the model says exactly which cycles remain": this one, and no other.
        "expected": Verdict(
            kinds=frozenset({"circular-locking", "recursive-locking", "deadlock"}),
            chain=_RESV_FS_RECLAIM,
            only_chain=True,
        ),
        "budget": 200,
        "kernel_options": {"prime_lockdep": False},
    },
]
