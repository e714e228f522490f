"""Boot-time priming once per validator class: every execution starts from a copy (priming R4, graph R7)."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.locking.annotations import (
    DMA_FENCE_MAP,
    FS_RECLAIM,
    MMAP_LOCK,
    MMU_NOTIFIER_MAP,
    RESV_ACQUIRE_CLASS,
    RESV_MUTEX_CLASS,
    dma_fence_begin_signalling,
    dma_fence_end_signalling,
    mmu_notifier_callbacks,
)
from dmabufsim.locking.lockdep import Lockdep
from dmabufsim.locking.lockdep_graph import LockGraph
from dmabufsim.locking.lockdep_priming import _BOOTED, BootThread, primed_graph

RESV = ds.WWClass("reservation_ww_class")


def fingerprint(g: LockGraph) -> tuple[Any, ...]:
    """Everything a graph validates and reports with, in the order its searches walk it."""
    classes = tuple(
        (c.idx, c.key, c.subclass, c.name, c.hid, c.usage, tuple(c.usage_sites.items()),
         tuple(c.chained.items()),
         tuple((j, e.src.idx, e.dst.idx, e.dep, e.stack, e.thread, e.execution) for j, e in c.after.items()),
         tuple((j, e.src.idx, e.dst.idx, e.dep) for j, e in c.before.items()))
        for c in g.classes
    )
    return (classes, tuple(g._by_key), frozenset(g.chains), tuple(g.cycles), g.primed, g.executions, g.chain_hits,
            g.searches)


def run(body: Any, **kw: Any) -> tuple[ds.Kernel, ds.Execution]:
    k = ds.Kernel(strategy=ds.FirstStrategy(), **kw)
    return k, k.run(body)


def signalling(k: ds.Kernel) -> None:
    obj = ds.WWMutex(RESV, "bo")
    cookie = dma_fence_begin_signalling()
    obj.lock()
    obj.unlock()
    dma_fence_end_signalling(cookie)


def notifier(k: ds.Kernel) -> None:
    obj = ds.WWMutex(RESV, "bo")
    with mmu_notifier_callbacks():
        obj.lock()
        obj.unlock()


def fault_under_resv(k: ds.Kernel) -> None:
    mm = ds.RwSem(MMAP_LOCK)
    obj = ds.WWMutex(RESV, "bo")
    ctx = ds.WWAcquireCtx(RESV)
    obj.lock(ctx)
    mm.down_read()
    mm.up_read()
    obj.unlock()
    ctx.fini()


def new_order(k: ds.Kernel) -> None:
    """Teaches the primed resv class a dependency of its own: resv -> extra."""
    obj = ds.WWMutex(RESV, "bo")
    extra = ds.Mutex("extra")
    obj.lock()
    extra.lock()
    extra.unlock()
    obj.unlock()


def test_an_execution_starts_from_the_graph_a_priming_in_place_leaves() -> None:
    k, _ = run(lambda k: None)
    in_place = LockGraph()
    run(lambda k: None, options={"lockdep_graph": in_place})
    assert k.lockdep.graph is not in_place  # type: ignore[attr-defined]
    assert fingerprint(k.lockdep.graph) == fingerprint(in_place)  # type: ignore[attr-defined]
    assert [(e.src.name, e.dst.name) for e in in_place.edges()] == [
        (MMAP_LOCK, RESV_ACQUIRE_CLASS), (RESV_ACQUIRE_CLASS, RESV_MUTEX_CLASS), (RESV_MUTEX_CLASS, FS_RECLAIM),
        (FS_RECLAIM, MMU_NOTIFIER_MAP), (FS_RECLAIM, "i_mmap_rwsem"), (MMU_NOTIFIER_MAP, DMA_FENCE_MAP)]


def test_reports_and_digests_are_those_of_a_priming_in_place() -> None:
    for body in (signalling, notifier, fault_under_resv, new_order):
        for _ in range(2):  # the first run may boot the copy; the second certainly uses it
            _, copied = run(body)
            _, primed = run(body, options={"lockdep_graph": LockGraph()})
            assert [(f.kind, f.details, f.report, f.signature) for f in copied.findings] == \
                [(f.kind, f.details, f.report, f.signature) for f in primed.findings]
            assert copied.trace_digest == primed.trace_digest
    _, ex = run(notifier)
    assert [f.details["chain"] for f in ex.findings] == [[RESV_MUTEX_CLASS, FS_RECLAIM, MMU_NOTIFIER_MAP]]


def test_executions_do_not_share_the_primed_state() -> None:
    run(lambda k: None)
    booted = fingerprint(_BOOTED[Lockdep])
    k1, _ = run(new_order)
    k2, _ = run(lambda k: None)
    g1, g2 = k1.lockdep.graph, k2.lockdep.graph  # type: ignore[attr-defined]
    assert g1 is not g2 and not set(map(id, g1.classes)) & set(map(id, g2.classes))
    assert g1.edge(RESV_MUTEX_CLASS, "extra") is not None
    assert g2.edge(RESV_MUTEX_CLASS, "extra") is None and g2.find("extra") is None
    assert fingerprint(_BOOTED[Lockdep]) == booted  # what an execution learns stays in its own graph
    assert g1.executions == g2.executions == 1


def test_prime_off_and_a_passed_graph_do_not_get_the_booted_copy() -> None:
    run(lambda k: None)
    k, _ = run(lambda k: None, prime_lockdep=False)
    assert k.lockdep.graph.classes == [] and not k.lockdep.graph.primed  # type: ignore[attr-defined]
    g = LockGraph()
    k, _ = run(lambda k: None, options={"lockdep_graph": g})
    assert k.lockdep.graph is g and g.primed  # type: ignore[attr-defined]
    k, _ = run(lambda k: None, prime_lockdep=False, options={"lockdep_graph": (g2 := LockGraph())})
    assert k.lockdep.graph is g2 and not g2.primed  # type: ignore[attr-defined]


class NoReclaimLockdep(Lockdep):
    """A validator whose priming leaves fs_reclaim out: its booted graph must be its own."""

    def boot_acquire(self, bt: BootThread, map: Any, read: int = 0, nest_lock: Any = None) -> None:
        if map.name != FS_RECLAIM:
            super().boot_acquire(bt, map, read, nest_lock)

    def boot_release(self, bt: BootThread, map: Any) -> None:
        if map.name != FS_RECLAIM:
            super().boot_release(bt, map)


class ReportingLockdep(Lockdep):
    """A validator whose priming reports: nothing of it may be kept for the next execution."""

    def boot_acquire(self, bt: BootThread, map: Any, read: int = 0, nest_lock: Any = None) -> None:
        super().boot_acquire(bt, map, read, nest_lock)
        if map.name == MMAP_LOCK:
            self.k.report("assertion", "priming saw something", signature="priming-report")


def test_each_validator_class_boots_its_own_graph() -> None:
    k = ds.Kernel()

    def body(k: ds.Kernel) -> None:
        plain, other = primed_graph(Lockdep, k), primed_graph(NoReclaimLockdep, k)
        assert plain.find(FS_RECLAIM) is not None and other.find(FS_RECLAIM) is None
        assert fingerprint(primed_graph(NoReclaimLockdep, k)) == fingerprint(other)

    assert k.run(body).findings == []
    assert _BOOTED[NoReclaimLockdep] is not _BOOTED[Lockdep]


def test_a_priming_that_reports_is_not_kept() -> None:
    def body(k: ds.Kernel) -> None:
        g = primed_graph(ReportingLockdep, k)
        assert g.primed and g.find(MMAP_LOCK) is not None

    for _ in range(2):
        ex = ds.Kernel().run(body)
        assert [f.signature for f in ex.findings] == ["priming-report"]  # every execution primes and reports
    assert ReportingLockdep not in _BOOTED
