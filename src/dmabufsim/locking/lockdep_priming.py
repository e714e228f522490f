"""Boot-time priming of lockdep with the buffer-sharing lock order, and the validator's installation.

Models ``dma_resv_lockdep()`` in ``drivers/dma-buf/dma-resv.c`` (6.12), a
``subsys_initcall`` that takes, on dummy objects and in one go, every lock
and annotation of the cross-driver contract in its canonical order, so
that lockdep knows the whole order from boot and a single thread doing one
thing in the wrong order is reported at once.

Rules:

* R1: the sequence is the kernel's: ``mmap_read_lock`` -> ``ww_acquire_init``
  -> ``dma_resv_lock`` (under the context) -> ``fs_reclaim_acquire(GFP_KERNEL)``
  (which also touches the mmu-notifier map) -> ``i_mmap_lock_write`` /
  unlock -> hold ``mmu_notifier_invalidate_range_start`` around
  ``__dma_fence_might_wait()`` -> unwind. The orders it leaves are
  ``mmap_lock -> reservation_ww_class_acquire -> reservation_ww_class_mutex
  -> fs_reclaim -> {i_mmap_rwsem, mmu_notifier_invalidate_range_start ->
  dma_fence_map}`` and their transitive closure.
* R2: every primed edge carries the pseudo-site ``dma_resv_lockdep``
  (``drivers/dma-buf/dma-resv.c``) and execution number 0, so reports say
  the order was taught at boot.
* R3: a graph is primed once (``LockGraph.primed``); a graph kept across
  executions keeps its priming.
* R4 (boot once): the kernel primes once per boot. An execution that starts
  from a fresh graph gets a copy (``LockGraph.copy``) of the graph the
  priming leaves, built once per validator class by running
  :func:`dma_resv_lockdep` on an empty graph: the same classes, edges,
  usage bits, chain cache and statistics, so every report is the one a
  replayed priming gives. The priming reads nothing of the execution but
  the validator's own code (its class is the key); a priming that reported
  something is not kept (each execution then primes, and reports, itself).
* R5 (installation): every execution boots with its validator
  (``k.lockdep``, a :class:`~dmabufsim.locking.lockdep.Lockdep`) when
  ``Config.lockdep`` is true: on the graph ``options["lockdep_graph"]``
  hands it (kept across executions, primed once: R3), else, with
  ``Config.prime_lockdep``, on a copy of the booted graph (R4), else on an
  empty one. The priming's acquisitions are no acquisitions of the
  execution's threads (the explorer's lock observer does not see them).
"""

from __future__ import annotations

from ..kernel.errors import UsageError
from ..kernel.runtime import Kernel, register_extension
from ..kernel.stack import Frame
from .annotations import (
    DMA_FENCE_MAP,
    FS_RECLAIM,
    I_MMAP_RWSEM,
    MMAP_LOCK,
    MMU_NOTIFIER_MAP,
    RESV_ACQUIRE_CLASS,
    RESV_MUTEX_CLASS,
)
from .lockdep import BootThread, Lockdep
from .lockdep_graph import LockGraph

#: Where primed edges say they come from (R2).
PRIMING_FRAME = Frame("drivers/dma-buf/dma-resv.c", 0, "dma_resv_lockdep")
PRIMING_STACK: tuple[Frame, ...] = (PRIMING_FRAME,)


class BootMap:
    """A dummy lock of the priming: only its class (name = key) matters."""

    __slots__ = ("key", "name", "oid")

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = name
        self.oid = -1


def dma_resv_lockdep(ld: Lockdep) -> None:
    """``dma_resv_lockdep``: teach ``ld.graph`` the canonical order (R1-R3)."""
    if ld.graph.primed:
        return
    bt = BootThread(PRIMING_STACK)
    mm = BootMap(MMAP_LOCK)
    ctx = BootMap(RESV_ACQUIRE_CLASS)
    obj = BootMap(RESV_MUTEX_CLASS)
    reclaim = BootMap(FS_RECLAIM)
    mapping = BootMap(I_MMAP_RWSEM)
    notifier = BootMap(MMU_NOTIFIER_MAP)
    fence = BootMap(DMA_FENCE_MAP)
    acquire, release = ld.boot_acquire, ld.boot_release

    acquire(bt, mm, read=1)  # mmap_read_lock(mm)
    acquire(bt, ctx)  # ww_acquire_init(&ctx, &reservation_ww_class)
    acquire(bt, obj, nest_lock=ctx)  # dma_resv_lock(&obj, &ctx)
    acquire(bt, reclaim)  # fs_reclaim_acquire(GFP_KERNEL) ...
    acquire(bt, notifier)  # ... which touches the mmu notifier map
    release(bt, notifier)
    acquire(bt, mapping)  # i_mmap_lock_write(&mapping)
    release(bt, mapping)  # i_mmap_unlock_write(&mapping)
    acquire(bt, notifier)  # lock_map_acquire(&__mmu_notifier_invalidate_range_start_map)
    acquire(bt, fence)  # __dma_fence_might_wait()
    release(bt, fence)
    release(bt, notifier)  # lock_map_release(...)
    release(bt, reclaim)  # fs_reclaim_release(GFP_KERNEL)
    release(bt, obj)  # ww_mutex_unlock(&obj.lock)
    release(bt, ctx)  # ww_acquire_fini(&ctx)
    release(bt, mm)  # mmap_read_unlock(mm)
    ld.graph.primed = True


#: R4: per validator class, the graph a priming of an empty graph leaves (never validated on).
_BOOTED: dict[type[Lockdep], LockGraph] = {}


def primed_graph(validator: type[Lockdep], k: Kernel) -> LockGraph:
    """A primed graph of its own for an execution of ``k`` validated by ``validator`` (R4).

    A copy of the booted graph; the first time (per validator class), the
    priming itself runs on an empty graph, which this execution then uses
    and a copy of which is kept unless the priming reported something (its
    findings are ``k``'s, as when an execution primes its own graph).
    """
    booted = _BOOTED.get(validator)
    if booted is not None:
        return booted.copy()
    before = len(k.findings)
    boot = validator(k, LockGraph())
    boot.observer = None  # boot-time priming is no acquisition of the execution's threads
    dma_resv_lockdep(boot)
    g = boot.graph
    g.executions = 0  # the execution that uses it counts itself
    if len(k.findings) == before:
        _BOOTED[validator] = g.copy()
    return g


def setup(k: Kernel) -> None:
    """Per-execution installation (R5): ``k.lockdep = Lockdep(k)`` when ``Config.lockdep``."""
    if not k.config.lockdep:
        return
    graph = k.config.options.get("lockdep_graph")
    if graph is not None and not isinstance(graph, LockGraph):
        raise UsageError(f"options['lockdep_graph'] must be a LockGraph, not {type(graph).__name__}")
    if graph is None and k.config.prime_lockdep:
        graph = primed_graph(Lockdep, k)  # R4: the boot's graph, not a priming per execution
    ld = Lockdep(k, graph)
    k.lockdep = ld
    if k.config.prime_lockdep and not ld.graph.primed:
        ld.observer = None  # boot-time priming is no acquisition of the execution's threads
        dma_resv_lockdep(ld)
        ld.observer = k.lock_observer
    k.at_exit.append(ld.check_held_at_end)


register_extension("lockdep", setup)
