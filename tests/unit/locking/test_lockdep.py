"""The lock-dependency validator: chains across threads, pseudo-locks, priming, reports, graph."""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.kernel.gfp import (
    GFP,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOFS,
    GFP_NOIO,
    memalloc_noio,
    memalloc_noreclaim,
    memalloc_noreclaim_restore,
    memalloc_noreclaim_save,
)
from dmabufsim.kernel.held import LockTracker
from dmabufsim.locking.annotations import (
    DMA_FENCE_MAP,
    FS_RECLAIM,
    I_MMAP_RWSEM,
    MMAP_LOCK,
    MMU_NOTIFIER_MAP,
    RESV_ACQUIRE_CLASS,
    RESV_MUTEX_CLASS,
    dma_fence_begin_signalling,
    dma_fence_end_signalling,
    dma_fence_map,
    dma_fence_might_wait,
    fs_reclaim_acquire,
    fs_reclaim_release,
    might_alloc,
    mmu_notifier_callbacks,
)
from dmabufsim.locking.lockdep import Lockdep
from dmabufsim.locking.lockdep_graph import DEP_EN, DEP_SN, LockGraph

CIRCULAR = "WARNING: possible circular locking dependency detected"
RESV = ds.WWClass("reservation_ww_class")


def seq(body: object, **kw: object) -> ds.Execution:
    return ds.Kernel(strategy=ds.FirstStrategy(), **kw).run(body)  # type: ignore[arg-type]


def chains(ex: ds.Execution, kind: str = "circular-locking") -> list[list[str]]:
    return [f.details["chain"] for f in ex.findings if f.kind == kind]


def lu2(a: ds.Mutex, b: ds.Mutex) -> None:
    a.lock()
    b.lock()
    b.unlock()
    a.unlock()


# ---------------------------------------------------------------- installation


def test_installed_per_execution_and_off_switch() -> None:
    seen: list[type] = []

    def body(k: ds.Kernel) -> None:
        seen.append(type(k.lockdep))

    seq(body)
    seq(body, lockdep=False)
    assert seen == [Lockdep, LockTracker]


def test_lockdep_off_reports_no_cycle() -> None:
    def body(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        lu2(a, b)
        lu2(b, a)

    assert seq(body, lockdep=False).findings == []
    assert chains(seq(body)) == [["A", "B"]]


# ---------------------------------------------------------------- chains across threads


def test_chain_split_across_three_threads_without_deadlock() -> None:
    """A->B, B->C, C->A in three threads that never overlap: no execution deadlocks, lockdep reports."""

    def body(k: ds.Kernel) -> None:
        a, b, c = ds.Mutex("A"), ds.Mutex("B"), ds.Mutex("C")
        t1 = k.spawn(lu2, a, b, name="t1")
        k.join(t1)
        t2 = k.spawn(lu2, b, c, name="t2")
        k.join(t2)
        t3 = k.spawn(lu2, c, a, name="t3")
        k.join(t3)

    for seed in range(5):
        ex = ds.Kernel(seed=seed).run(body)
        assert ex.outcome == "completed"
        assert ex.kinds == ["circular-locking"]
        f = ex.findings[0]
        assert f.details["chain"] == ["A", "B", "C"]
        assert f.details["new_edge"] == ["C", "A"]
        assert [(e["from"], e["to"], e["thread"]) for e in f.details["edges"]] == [
            ("A", "B", "t1"),
            ("B", "C", "t2"),
        ]
        assert f.threads[0].name == "t3"


def test_once_per_distinct_cycle() -> None:
    def body(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        lu2(a, b)
        for _ in range(3):
            lu2(b, a)

    assert chains(seq(body)) == [["A", "B"]]


def test_trylock_adds_no_edge_into_it_but_later_locks_depend_on_it() -> None:
    def body(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        a.lock()
        assert b.trylock()  # no A -> B
        b.unlock()
        a.unlock()
        b.lock()
        a.lock()  # B -> A: fine, A -> B was never recorded
        a.unlock()
        b.unlock()
        assert a.trylock()
        b.lock()  # A (trylocked) -> B: recorded, closes the cycle
        b.unlock()
        a.unlock()

    ex = seq(body, prime_lockdep=False)
    assert chains(ex) == [["B", "A"]]
    assert ex.findings[0].details["new_edge"] == ["A", "B"]


def test_subclass_is_its_own_class() -> None:
    def body(k: ds.Kernel) -> None:
        x1, x2 = ds.Mutex("X"), ds.Mutex("X")
        x1.lock()
        x2.lock(1)  # mutex_lock_nested(x2, 1)
        x2.unlock()
        x1.unlock()

    ex = seq(body, prime_lockdep=False, options={"lockdep_graph": (g := LockGraph())})
    assert ex.findings == []
    assert g.edge("X", "X/1") is not None


def test_out_of_order_release_rekeys_the_chain() -> None:
    keys: list[list[int]] = []

    def body(k: ds.Kernel) -> None:
        a, b, c = ds.Mutex("A"), ds.Mutex("B"), ds.Mutex("C")
        a.lock()
        b.lock()
        c.lock()
        b.unlock()
        keys.append([h.chain_key for h in k.current.held])
        c.unlock()
        a.unlock()
        a.lock()
        c.lock()
        keys.append([h.chain_key for h in k.current.held])
        c.unlock()
        a.unlock()

    assert seq(body).findings == []
    assert keys[0] == keys[1]


# ---------------------------------------------------------------- fs_reclaim


def _alloc_under_shrinker_lock(gfp: GFP) -> ds.Execution:
    def allocator(lock: ds.Mutex) -> None:
        with lock:
            might_alloc(gfp)

    def shrinker(lock: ds.Mutex) -> None:
        fs_reclaim_acquire(GFP_KERNEL)  # direct reclaim ...
        with lock:  # ... calls a shrinker that takes the lock
            pass
        fs_reclaim_release(GFP_KERNEL)

    def body(k: ds.Kernel) -> None:
        lock = ds.Mutex("obj_lock")
        k.join(k.spawn(allocator, lock, name="allocator"))
        k.join(k.spawn(shrinker, lock, name="kswapd"))

    return seq(body, prime_lockdep=False)


def test_gfp_kernel_under_a_lock_a_shrinker_takes_is_reported() -> None:
    ex = _alloc_under_shrinker_lock(GFP_KERNEL)
    assert ex.kinds == ["circular-locking"]
    f = ex.findings[0]
    assert f.details["chain"] == ["obj_lock", FS_RECLAIM]
    assert f.details["new_edge"] == [FS_RECLAIM, "obj_lock"]
    assert f.threads[0].name == "kswapd"


def test_gfp_noio_and_nofs_under_that_lock_are_not() -> None:
    assert _alloc_under_shrinker_lock(GFP_NOIO).findings == []
    assert _alloc_under_shrinker_lock(GFP_NOFS).findings == []
    assert _alloc_under_shrinker_lock(GFP_ATOMIC).findings == []


def test_memalloc_noio_scope_protects_gfp_kernel() -> None:
    def body(k: ds.Kernel) -> None:
        lock = ds.Mutex("obj_lock")
        with lock, memalloc_noio():
            might_alloc(GFP_KERNEL)
        fs_reclaim_acquire(GFP_KERNEL)
        with lock:
            pass
        fs_reclaim_release(GFP_KERNEL)

    assert seq(body, prime_lockdep=False).findings == []


def test_reclaiming_thread_does_not_recurse_into_fs_reclaim() -> None:
    """PF_MEMALLOC: allocations made by reclaim itself do not take fs_reclaim again."""

    def body(k: ds.Kernel) -> None:
        fs_reclaim_acquire(GFP_KERNEL)
        flags = memalloc_noreclaim_save()
        might_alloc(GFP_KERNEL)
        memalloc_noreclaim_restore(flags)
        fs_reclaim_release(GFP_KERNEL)

    assert seq(body, prime_lockdep=False).findings == []


def _lock_across_alloc_then_in_reclaim(scoped: bool) -> ds.Execution:
    """M held across a GFP_KERNEL allocation (in a noreclaim scope or not), then M taken in reclaim."""

    def body(k: ds.Kernel) -> None:
        m = ds.Mutex("M")
        with m:
            if scoped:
                with memalloc_noreclaim():
                    might_alloc(GFP_KERNEL)
            else:
                might_alloc(GFP_KERNEL)
        fs_reclaim_acquire(GFP_KERNEL)  # a shrinker taking M
        with m:
            pass
        fs_reclaim_release(GFP_KERNEL)

    return seq(body, prime_lockdep=False)


def test_allocation_under_a_lock_taken_in_reclaim_is_circular() -> None:
    ex = _lock_across_alloc_then_in_reclaim(scoped=False)
    assert [(f.kind, f.details["chain"]) for f in ex.findings] == [("circular-locking", ["M", "fs_reclaim"])]


def test_noreclaim_scope_takes_no_fs_reclaim_so_no_cycle() -> None:
    """memalloc_noreclaim_save: __need_reclaim is false for a PF_MEMALLOC task, so M -> fs_reclaim
    is never recorded and the shrinker's M is fine."""
    assert _lock_across_alloc_then_in_reclaim(scoped=True).findings == []


def test_noio_allocation_still_touches_the_mmu_notifier_map() -> None:
    """A lock held across a GFP_NOIO allocation must not be taken in a notifier callback."""

    def body(k: ds.Kernel) -> None:
        lock = ds.Mutex("notifier_lock")
        with lock:
            might_alloc(GFP_NOIO)
        with mmu_notifier_callbacks(), lock:
            pass

    ex = seq(body, prime_lockdep=False)
    assert chains(ex) == [["notifier_lock", MMU_NOTIFIER_MAP]]


# ---------------------------------------------------------------- dma_fence_map


def test_fence_wait_in_signalling_section_under_a_lock_is_reported() -> None:
    def body(k: ds.Kernel) -> None:
        lock = ds.Mutex("L")
        cookie = dma_fence_begin_signalling()
        with lock:
            dma_fence_might_wait()
        dma_fence_end_signalling(cookie)

    ex = seq(body, prime_lockdep=False)
    assert chains(ex) == [[DMA_FENCE_MAP, "L"]]
    assert ex.findings[0].details["new_edge"] == ["L", DMA_FENCE_MAP]


def test_fence_wait_across_threads_is_reported() -> None:
    """The signalling path takes L; a waiter holds L while it waits for that fence."""

    def signaller(lock: ds.Mutex) -> None:
        cookie = dma_fence_begin_signalling()
        with lock:
            pass
        dma_fence_end_signalling(cookie)

    def waiter(lock: ds.Mutex) -> None:
        with lock:
            dma_fence_might_wait()

    def body(k: ds.Kernel) -> None:
        lock = ds.Mutex("L")
        k.join(k.spawn(signaller, lock, name="signaller"))
        k.join(k.spawn(waiter, lock, name="waiter"))

    ex = seq(body, prime_lockdep=False)
    assert chains(ex) == [[DMA_FENCE_MAP, "L"]]


def test_bare_wait_in_signalling_section_is_not_reported_as_in_the_kernel() -> None:
    """``__dma_fence_might_wait`` drops the section's read side first: nothing else held, nothing to see."""

    def body(k: ds.Kernel) -> None:
        cookie = dma_fence_begin_signalling()
        dma_fence_might_wait()
        ld = k.lockdep
        assert isinstance(ld, Lockdep) and ld.lock_is_held_type(dma_fence_map(), 1)  # re-entered after the wait
        dma_fence_end_signalling(cookie)

    assert seq(body).findings == []


def test_lock_held_before_signalling_gets_no_edge() -> None:
    """begin_signalling is a trylock: L -> dma_fence_map is not recorded, so waiting under L stays clean."""

    def body(k: ds.Kernel) -> None:
        lock = ds.Mutex("L")
        with lock:
            cookie = dma_fence_begin_signalling()
            dma_fence_end_signalling(cookie)
        with lock:
            dma_fence_might_wait()

    g = LockGraph()
    assert seq(body, prime_lockdep=False, options={"lockdep_graph": g}).findings == []
    e = g.edge("L", DMA_FENCE_MAP)
    assert e is not None and e.dep == DEP_EN  # only from the wait


def test_nested_signalling_sections_take_the_map_once() -> None:
    def body(k: ds.Kernel) -> None:
        c1 = dma_fence_begin_signalling()
        c2 = dma_fence_begin_signalling()
        assert (c1, c2) == (False, True)
        assert [h.map.name for h in k.current.held] == [DMA_FENCE_MAP]
        dma_fence_end_signalling(c2)
        dma_fence_end_signalling(c1)
        assert k.current.held == []

    assert seq(body).findings == []


# ---------------------------------------------------------------- priming (dma_resv_lockdep)


def test_priming_teaches_the_canonical_order() -> None:
    g = LockGraph()
    assert seq(lambda k: None, options={"lockdep_graph": g}).findings == []
    assert g.primed
    order = [
        (MMAP_LOCK, RESV_ACQUIRE_CLASS, DEP_SN),
        (RESV_ACQUIRE_CLASS, RESV_MUTEX_CLASS, DEP_EN),
        (RESV_MUTEX_CLASS, FS_RECLAIM, DEP_EN),
        (FS_RECLAIM, MMU_NOTIFIER_MAP, DEP_EN),
        (FS_RECLAIM, I_MMAP_RWSEM, DEP_EN),
        (MMU_NOTIFIER_MAP, DMA_FENCE_MAP, DEP_EN),
    ]
    got = [(e.src.name, e.dst.name, e.dep) for e in g.edges()]
    assert sorted(got) == sorted(order)
    for e in g.edges():
        assert e.execution == 0 and e.stack[0].function == "dma_resv_lockdep"


def test_prime_off_leaves_the_graph_empty() -> None:
    g = LockGraph()
    seq(lambda k: None, prime_lockdep=False, options={"lockdep_graph": g})
    assert not g.primed and g.edges() == []


def test_primed_resv_lock_in_signalling_section_is_reported_once() -> None:
    def body(k: ds.Kernel) -> None:
        obj = ds.WWMutex(RESV, "bo")
        cookie = dma_fence_begin_signalling()
        obj.lock()
        obj.unlock()
        dma_fence_end_signalling(cookie)

    ex = seq(body)
    assert chains(ex) == [[RESV_MUTEX_CLASS, FS_RECLAIM, MMU_NOTIFIER_MAP, DMA_FENCE_MAP]]
    f = ex.findings[0]
    assert f.details["new_edge"] == [DMA_FENCE_MAP, RESV_MUTEX_CLASS]
    assert all(e["execution"] == 0 for e in f.details["edges"])
    assert "(taught at boot by dma_resv_lockdep())" in f.report
    assert "dma_resv_lockdep+0 (dma-resv.c:0)" in f.report
    assert seq(body, prime_lockdep=False).findings == []


def test_primed_blocking_resv_lock_in_notifier_and_shrinker() -> None:
    def notifier(k: ds.Kernel) -> None:
        obj = ds.WWMutex(RESV, "bo")
        with mmu_notifier_callbacks():
            obj.lock()
            obj.unlock()

    def shrinker(k: ds.Kernel) -> None:
        obj = ds.WWMutex(RESV, "bo")
        fs_reclaim_acquire(GFP_KERNEL)
        obj.lock()
        obj.unlock()
        fs_reclaim_release(GFP_KERNEL)

    def shrinker_trylock(k: ds.Kernel) -> None:
        obj = ds.WWMutex(RESV, "bo")
        fs_reclaim_acquire(GFP_KERNEL)
        if obj.trylock():
            obj.unlock()
        fs_reclaim_release(GFP_KERNEL)

    assert chains(seq(notifier)) == [[RESV_MUTEX_CLASS, FS_RECLAIM, MMU_NOTIFIER_MAP]]
    assert chains(seq(shrinker)) == [[RESV_MUTEX_CLASS, FS_RECLAIM]]
    assert seq(shrinker_trylock).findings == []


def test_primed_fault_under_resv_is_reported() -> None:
    def body(k: ds.Kernel) -> None:
        mm = ds.RwSem(MMAP_LOCK)
        obj = ds.WWMutex(RESV, "bo")
        ctx = ds.WWAcquireCtx(RESV)
        obj.lock(ctx)
        mm.down_read()  # get_user_pages under the reservation lock
        mm.up_read()
        obj.unlock()
        ctx.fini()

    ex = seq(body)
    assert chains(ex) == [[MMAP_LOCK, RESV_ACQUIRE_CLASS, RESV_MUTEX_CLASS]]
    assert ex.findings[0].details["new_edge"] == [RESV_MUTEX_CLASS, MMAP_LOCK]


def test_primed_correct_driver_is_clean() -> None:
    def body(k: ds.Kernel) -> None:
        mm = ds.RwSem(MMAP_LOCK)
        a, b = ds.WWMutex(RESV, "a"), ds.WWMutex(RESV, "b")
        mm.down_read()
        ctx = ds.WWAcquireCtx(RESV)
        a.lock(ctx)
        b.lock(ctx)
        might_alloc(GFP_KERNEL)
        dma_fence_might_wait()
        b.unlock()
        a.unlock()
        ctx.fini()
        mm.up_read()

    assert seq(body).findings == []


# ---------------------------------------------------------------- reports


def here() -> int:
    """The line number of the caller (to build the expected report)."""
    return sys._getframe(1).f_lineno


def test_abba_report_layout_line_by_line() -> None:
    ln: dict[str, int] = {}

    def scenario(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        ln["a1"] = here() + 1
        a.lock()
        ln["b1"] = here() + 1
        b.lock()
        b.unlock()
        a.unlock()
        ln["b2"] = here() + 1
        b.lock()
        ln["a2"] = here() + 1
        a.lock()
        a.unlock()
        b.unlock()

    ex = seq(scenario, prime_lockdep=False)
    assert ex.kinds == ["circular-locking"]
    f = ex.findings[0]
    assert f.title == CIRCULAR

    def at(key: str) -> str:
        return f"scenario+{ln[key]} (test_lockdep.py:{ln[key]})"

    expected = [
        "",
        "======================================================",
        "WARNING: possible circular locking dependency detected",
        "dmabufsim (model of Linux 6.12) Not tainted",
        "------------------------------------------------------",
        "scenario/0 is trying to acquire lock:",
        f"(A){{+.+.}}, at: {at('a2')}",
        "",
        "but task is already holding lock:",
        f"(B){{+.+.}}, at: {at('b2')}",
        "",
        "which lock already depends on the new lock.",
        "",
        "",
        "the existing dependency chain (in reverse order) is:",
        "",
        "-> #1 (B){+.+.}:",
        "       [A -> B] (first seen by scenario)",
        f"       {at('b1')}",
        "",
        "-> #0 (A){+.+.}:",
        "       [B -> A] (this acquisition)",
        f"       {at('a2')}",
        "",
        "other info that might help us debug this:",
        "",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        "  lock(B);",
        "                               lock(A);",
        "                               lock(B);",
        "  lock(A);",
        "",
        " *** DEADLOCK ***",
        "",
        "1 lock held by scenario/0:",
        f" #0: (B){{+.+.}}, at: {at('b2')}",
        "",
        "stack backtrace:",
        f"       {at('a2')}",
    ]
    assert f.report.split("\n") == expected
    assert f.details["chain"] == ["A", "B"]
    assert f.details["held"] == ["B"]


def test_longer_chain_report_shows_chain_exists_of() -> None:
    def body(k: ds.Kernel) -> None:
        a, b, c = ds.Mutex("A"), ds.Mutex("B"), ds.Mutex("C")
        lu2(a, b)
        lu2(b, c)
        lu2(c, a)

    (f,) = seq(body, prime_lockdep=False).findings
    assert f.details["chain"] == ["A", "B", "C"]
    lines = f.report.split("\n")
    i = lines.index("Chain exists of:")
    assert lines[i + 1] == "  A --> B --> C"
    assert lines[i + 7 : i + 11] == [
        "  lock(C);",
        "                               lock(B);",
        "                               lock(C);",
        "  lock(A);",
    ]
    assert [ln for ln in lines if ln.startswith("-> #")] == ["-> #2 (C){+.+.}:", "-> #1 (B){+.+.}:", "-> #0 (A){+.+.}:"]


def test_recursive_report() -> None:
    def body(k: ds.Kernel) -> None:
        x1, x2 = ds.Mutex("X"), ds.Mutex("X")
        x1.lock()
        x2.lock()
        x2.unlock()
        x1.unlock()

    (f,) = seq(body, prime_lockdep=False).findings
    assert (f.kind, f.title, f.details["chain"]) == (
        "recursive-locking",
        "WARNING: possible recursive locking detected",
        ["X", "X"],
    )
    assert " May be due to missing lock nesting notation" in f.report.split("\n")


# ---------------------------------------------------------------- leaks and assertions


def test_lock_held_when_the_execution_ends() -> None:
    def holder(m: ds.Mutex, wq: ds.WaitQueue) -> None:
        m.lock()
        wq.wait_event(lambda: False)

    def body(k: ds.Kernel) -> None:
        m = ds.Mutex("M")
        k.spawn(holder, m, ds.WaitQueue(), name="worker", daemon=True)

    ex = seq(body, options={"isolation": False})
    assert [(f.kind, f.title, f.details["locks"], f.details["thread"]) for f in ex.findings] == [
        ("leak", "WARNING: lock held when returning to user space!", ["M"], "worker")
    ]
    # With the isolation checker's leak check on, it alone reports the held lock (one finding).
    ex = seq(body)
    assert [(f.kind, f.details["locks"], f.details["thread"]) for f in ex.findings] == [("leak", ["M"], "worker")]


def test_thread_exit_with_lock_held() -> None:
    def body(k: ds.Kernel) -> None:
        ds.Mutex("M").lock()

    ex = seq(body)
    assert [(f.kind, f.details["locks"]) for f in ex.findings] == [("leak", ["M"])]


def test_might_lock_records_the_dependency() -> None:
    def body(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        with a:
            ds.might_lock(b)
        with b:
            ds.might_lock(a)

    assert chains(seq(body, prime_lockdep=False)) == [["A", "B"]]


def test_lockdep_assert_held() -> None:
    def body(k: ds.Kernel) -> None:
        m = ds.Mutex("M")
        with m:
            ds.lockdep_assert_held(m)
        ds.lockdep_assert_held(m)

    ex = seq(body)
    assert [(f.kind, f.details["lock"]) for f in ex.findings] == [("assertion", "M")]


# ---------------------------------------------------------------- persistent graph and DOT


def test_graph_kept_across_executions_combines_dependencies() -> None:
    def first(k: ds.Kernel) -> None:
        lu2(ds.Mutex("A"), ds.Mutex("B"))

    def second(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        lu2(b, a)

    assert seq(second).findings == []  # alone, the reverse order is fine
    g = LockGraph()
    assert seq(first, options={"lockdep_graph": g}).findings == []
    ex = seq(second, options={"lockdep_graph": g})
    assert chains(ex) == [["A", "B"]]
    assert "(first seen by scenario in execution #1)" in ex.findings[0].report
    assert g.executions == 2
    # The closing edge was not stored: the next execution making the mistake reports it again.
    assert chains(seq(second, options={"lockdep_graph": g})) == [["A", "B"]]
    assert g.cycles == [(("A", "B"), ("B", "A"))]


def test_chain_cache_stops_searching_once_the_graph_is_stable() -> None:
    def body(k: ds.Kernel) -> None:
        ms = [ds.Mutex(f"L{i}") for i in range(4)]
        for _ in range(20):
            for m in ms:
                m.lock()
            for m in reversed(ms):
                m.unlock()

    g = LockGraph()
    seq(body, prime_lockdep=False, options={"lockdep_graph": g})
    searches = g.searches
    hits = g.chain_hits
    assert hits == 20 * 4 - 4  # every chain but the four first ones came from the cache
    seq(body, prime_lockdep=False, options={"lockdep_graph": g})
    assert g.searches == searches
    assert g.chain_hits == hits + 20 * 4


def test_to_dot_highlights_the_cycle() -> None:
    out: list[str] = []

    def body(k: ds.Kernel) -> None:
        a, b, c = ds.Mutex("A"), ds.Mutex("B"), ds.Mutex("C")
        lu2(a, b)
        lu2(b, c)
        lu2(c, a)
        out.append(k.lockdep.to_dot())  # type: ignore[attr-defined]

    seq(body, prime_lockdep=False)
    dot = out[0]
    assert dot.startswith('digraph "lockdep" {')
    assert 'c0 [label="A"];' in dot
    assert 'c0 -> c1 [label="EN", tooltip="lu2+' in dot
    assert "c0 -> c1 [" in dot and "color=red, penwidth=2];" in dot.split("c0 -> c1 [")[1].split("\n")[0]
    assert "c1 -> c2 [" in dot and "color=red" in dot.split("c1 -> c2 [")[1].split("\n")[0]
    assert 'c2 -> c0 [color=red, style=dashed, penwidth=2, label="new"];' in dot


def test_lock_downgrade_rekeys_the_held_entry() -> None:
    keys: list[int] = []

    def body(k: ds.Kernel) -> None:
        ld = k.lockdep
        assert isinstance(ld, Lockdep)
        x = ds.LockdepMap("X")
        x.acquire()
        ld.lock_downgrade(x)
        keys.append(k.current.held[-1].chain_key)
        assert k.current.held[-1].read == 1
        x.release()
        x.acquire_shared()
        keys.append(k.current.held[-1].chain_key)
        x.release()

    assert seq(body).findings == []
    assert keys[0] == keys[1]


# ---------------------------------------------------------------- properties

_N = 5
_section = st.lists(
    st.tuples(st.integers(0, _N - 1), st.sampled_from(["w", "r", "rr", "try"])), min_size=1, max_size=_N
)


@settings(max_examples=60, deadline=None)
@given(
    sections=st.lists(_section, min_size=1, max_size=6),
    reverse=st.none() | st.tuples(st.integers(0, _N - 2), st.integers(1, _N - 1)),
)
def test_one_global_order_is_clean_and_one_inversion_is_reported(
    sections: list[list[tuple[int, str]]], reverse: tuple[int, int] | None
) -> None:
    """Sections that respect one global order (any modes, any trylocks) never report;
    taking two classes against a recorded order reports exactly that pair."""

    def body(k: ds.Kernel) -> None:
        maps = [ds.LockdepMap(f"L{i}") for i in range(_N)]
        for sec in sections:
            taken: list[int] = []
            for i, mode in sorted(set(sec)):
                if i in taken:
                    continue
                m = maps[i]
                if mode == "w":
                    m.acquire()
                elif mode == "r":
                    m.acquire_shared()
                elif mode == "rr":
                    m.acquire_read()
                else:
                    m.acquire(trylock=True)
                taken.append(i)
            for i in reversed(taken):
                maps[i].release()
        if reverse is not None:
            i, j = reverse[0], max(reverse[0] + 1, reverse[1])
            lo, hi = maps[i], maps[j]
            lo.acquire()
            hi.acquire()
            hi.release()
            lo.release()
            hi.acquire()
            lo.acquire()
            lo.release()
            hi.release()

    ex = seq(body, prime_lockdep=False)
    if reverse is None:
        assert ex.findings == []
    else:
        i, j = reverse[0], max(reverse[0] + 1, reverse[1])
        assert [(f.kind, f.details["chain"], f.details["new_edge"]) for f in ex.findings] == [
            ("circular-locking", [f"L{i}", f"L{j}"], [f"L{j}", f"L{i}"])
        ]


def test_graph_pickles_and_reports_statistics() -> None:
    """Explorer workers receive the graph through pickled kernel options."""
    import pickle

    def body(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        lu2(a, b)
        lu2(b, a)

    g = LockGraph()
    seq(body, options={"lockdep_graph": g})
    g2 = pickle.loads(pickle.dumps(g))
    assert [(e.src.name, e.dst.name) for e in g2.edges()] == [(e.src.name, e.dst.name) for e in g.edges()]
    assert g2.cycles == [(("A", "B"), ("B", "A"))]
    st_ = g.statistics()
    assert (st_.classes, st_.edges, st_.cycles, st_.executions, st_.primed) == (9, 7, 1, 1, True)
    assert st_ == g2.statistics()
