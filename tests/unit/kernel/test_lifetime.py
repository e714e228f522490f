"""Object lifetimes (kernel/lifetime.py L1-L6, dma/fence.py R11): kref, refcount_t, use-after-free, leak."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma.fence import DmaFence, NamedFenceOps
from tests.helpers import run, run_first


def _stack_functions(info: ds.ThreadInfo) -> list[str]:
    return [fr.function for fr in info.stack]


# ---------------------------------------------------------------------- kref (L1, L2)


def test_kref_release_runs_exactly_once_at_the_last_put() -> None:
    released: list[str] = []
    got: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        ref = ds.Kref("obj", lambda r: released.append(r.name))
        ref.get()
        got.append(ref.put())
        got.append(list(released))
        got.append(ref.put())
        got.append(ref.get_unless_zero())

    ex = run_first(scenario)
    assert got == [False, [], True, False]
    assert released == ["obj"]
    # get_unless_zero on a freed kref is itself a read of freed memory (L4): not a type-safe object.
    assert ex.kinds == ["use-after-free"]
    assert ex.findings[0].details["op"] == "kref_get_unless_zero"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_kref_release_once_for_any_balanced_sequence(ops: list[bool]) -> None:
    """Any interleaving of gets and puts that never drops to zero early releases exactly once, at the end."""
    released: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        ref = ds.Kref("obj", lambda r: released.append(r.count))
        held = 1
        for get in ops:
            if get:
                ref.get()
                held += 1
            elif held > 1:
                assert not ref.put()
                held -= 1
        for _ in range(held - 1):
            assert not ref.put()
        assert released == []
        assert ref.put()

    ex = run_first(scenario)
    assert ex.findings == []
    assert released == [0]


def test_kref_put_after_release_is_a_use_after_free_with_both_stacks() -> None:
    def freer(ref: ds.Kref) -> None:
        ref.put()

    def toucher(ref: ds.Kref) -> None:
        ref.put()

    def scenario(k: ds.Kernel) -> None:
        ref = ds.Kref("job")
        k.join(k.spawn(freer, ref, name="freer"))
        k.join(k.spawn(toucher, ref, name="toucher"))

    ex = run_first(scenario)
    assert ex.kinds == ["use-after-free"]
    f = ex.findings[0]
    assert f.title == "BUG: KASAN: slab-use-after-free in kref_put"
    assert f.details["object"].startswith("job#")
    assert f.details["freed_by"] == "freer" and f.details["touched_by"] == "toucher"
    assert [t.name for t in f.threads] == ["toucher", "freer"]
    assert _stack_functions(f.threads[0])[0] == "toucher"
    assert _stack_functions(f.threads[1])[0] == "freer"
    assert "Freed by task freer/" in f.report and "Access of job#" in f.report


def test_refcount_underflow_is_reported_the_kernels_way() -> None:
    class KeepOps(NamedFenceOps):
        def release(self, fence: DmaFence) -> None:
            """A driver release that keeps the memory (never frees): a later put underflows."""

    def scenario(k: ds.Kernel) -> None:
        f = DmaFence(KeepOps("drv", "tl"), None, dma.context_alloc(), 1)
        f.signal()
        f.put()
        f.put()

    ex = run_first(scenario)
    assert ex.kinds == ["use-after-free"]
    assert ex.findings[0].title == "refcount_t: underflow; use-after-free."


def test_refcount_saturates_and_leaks() -> None:
    def scenario(k: ds.Kernel) -> None:
        ref = ds.Kref("obj")
        ref.count = ds.REFCOUNT_SATURATED - 1
        ref.get()
        ref.get()
        assert ref.count == ds.REFCOUNT_SATURATED
        ref.put()
        assert ref.count == ds.REFCOUNT_SATURATED  # never moves again: never freed

    ex = run_first(scenario)
    assert [(f.kind, f.title) for f in ex.findings] == [("leak", "refcount_t: saturated; leaking memory.")]


# ---------------------------------------------------------------------- use-after-free on each path (L4)


def _uaf(touch: Any) -> ds.Finding:
    def freer(f: DmaFence) -> None:
        f.signal()
        f.put()

    def toucher(f: DmaFence) -> None:
        touch(f)

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        own = DmaFence(None, None, dma.context_alloc(), 1)  # a fence with a lock of its own
        k.ext["fences"] = (f, own)
        target = own if touch is _lock else f
        k.join(k.spawn(freer, target, name="freer"))
        k.join(k.spawn(toucher, target, name="toucher"))

    ex = run_first(scenario)
    assert ex.kinds == ["use-after-free"], ex.findings
    f = ex.findings[0]
    assert [t.name for t in f.threads] == ["toucher", "freer"]
    assert "toucher" in _stack_functions(f.threads[0])
    assert _stack_functions(f.threads[1])[0] == "freer"
    assert f.details["freed_in"] == "dma_fence_free"
    return f


def _lock(f: DmaFence) -> None:
    f.lock.lock()
    f.lock.unlock()


def test_use_after_free_on_read() -> None:
    f = _uaf(lambda f: f.is_signaled())
    assert f.title == "BUG: KASAN: slab-use-after-free in dma_fence_is_signaled"


def test_use_after_free_on_lock() -> None:
    f = _uaf(_lock)
    assert f.title == "BUG: KASAN: slab-use-after-free in spin_lock"


def test_use_after_free_on_signal() -> None:
    f = _uaf(lambda f: f.signal())
    assert f.title == "BUG: KASAN: slab-use-after-free in dma_fence_signal"


def test_use_after_free_on_put() -> None:
    f = _uaf(lambda f: f.put())
    assert f.title == "BUG: KASAN: slab-use-after-free in dma_fence_put"


def test_use_after_free_on_get() -> None:
    f = _uaf(lambda f: f.get())
    assert f.title == "BUG: KASAN: slab-use-after-free in dma_fence_get"


def test_fences_nobody_puts_are_never_freed_nor_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        f.get()
        f.put()
        f.signal()
        assert f.is_signaled()

    assert run_first(scenario).findings == []


def test_a_callback_dropping_the_last_reference_after_a_scheduling_point_is_no_use_after_free() -> None:
    """The only reference was handed to the callback, which takes a lock (a scheduling point) and
    puts it: the signalling touches the fence no more after the callback (dma_fence R11)."""
    lock = []

    def put_after_a_lock(fence: DmaFence, cb: Any) -> None:
        lock[0].lock()
        lock[0].unlock()
        fence.put()

    def scenario(k: ds.Kernel) -> None:
        lock[:] = [ds.SpinLock("driver.lock")]
        f = dma.FenceContext("ring0").create()
        f.add_callback(put_after_a_lock)
        f.signal()

    for seed in range(5):
        ex = run(scenario, seed=seed)
        assert ex.findings == []


# ---------------------------------------------------------------------- type-safe by RCU (L5) and get_rcu_safe


def _recycling_load(cache: dma.FenceCache, ctx: dma.FenceContext, slot: list[DmaFence | None],
                    log: list[str]) -> Any:
    """``rcu_dereference(*slot)``; on the first call a writer runs right after the read: it replaces
    the published fence, puts the old one (freed) and allocates two fences, the first of which
    recycles the old fence's memory."""

    def load() -> DmaFence | None:
        p = slot[0]
        log.append("load")
        if len(log) == 1:
            assert p is not None
            nxt = cache.create(ctx.ops, ctx.lock, ctx.context, 3)
            slot[0] = nxt
            p.signal()
            p.put()  # freed: back on the cache's free list
            recycled = cache.create(ctx.ops, ctx.lock, ctx.context, 2)
            assert recycled is p  # the same memory, a new fence
            log.append(f"recycled as seqno {recycled.seqno}")
        return p

    return load


def test_get_rcu_safe_retries_when_the_fence_was_recycled() -> None:
    got: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        cache = dma.FenceCache("fences", typesafe_by_rcu=True)
        ctx = dma.FenceContext("ring0")
        slot: list[DmaFence | None] = [cache.create(ctx.ops, ctx.lock, ctx.context, 1)]
        log: list[str] = []
        ds.rcu_read_lock()
        f = ds.get_rcu_safe(_recycling_load(cache, ctx, slot, log))
        ds.rcu_read_unlock()
        assert f is not None
        got.extend([f.seqno, f is slot[0], list(log)])
        f.signal()
        f.put()  # the reference get_rcu_safe took
        f.put()  # the slot's
        # the recycled fence (seqno 2) is held by nobody but its allocator
        for g in cache.free_list:
            got.append(g.seqno)

    ex = run_first(scenario)
    assert got[:3] == [3, True, ["load", "recycled as seqno 2", "load", "load", "load"]]
    # the recycled fence was never put by its allocator: a leak, with where it was taken
    assert ex.kinds == ["leak"]
    assert "seqno" not in ex.findings[0].details
    # allocated, then got by get_rcu_safe's first try (which put it back): both sites listed
    assert ex.findings[0].details["taken_by"] == ["scenario", "scenario"]


def test_get_rcu_without_recheck_returns_the_recycled_fence() -> None:
    got: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        cache = dma.FenceCache("fences", typesafe_by_rcu=True, leak_check=False)
        ctx = dma.FenceContext("ring0")
        slot: list[DmaFence | None] = [cache.create(ctx.ops, ctx.lock, ctx.context, 1)]
        load = _recycling_load(cache, ctx, slot, [])
        p = load()
        assert p is not None
        f = p.get_rcu()  # succeeds: the memory is a live fence again, but not the one that was read
        assert f is not None
        got.append(f.seqno)

    ex = run_first(scenario)
    assert got == [2]
    assert ex.findings == []  # legal memory-wise (L5): the bug is logical, the caller's to catch


# ---------------------------------------------------------------------- leak (L6)


def test_leak_names_the_object_and_where_the_reference_was_taken() -> None:
    def taker(f: DmaFence) -> None:
        f.get()

    def scenario(k: ds.Kernel) -> None:
        cache = dma.FenceCache("fences")
        f = cache.create(dma.NamedFenceOps("drv", "tl"), None, dma.context_alloc(), 1)
        k.join(k.spawn(taker, f, name="taker"))
        f.signal()
        f.put()

    ex = run_first(scenario)
    assert ex.kinds == ["leak"]
    leak = ex.findings[0]
    assert leak.title.startswith("kmemleak: unreferenced object dma_fence drv:tl #")
    assert leak.details["refcount"] == 1
    assert leak.details["taken_by"] == ["scenario", "taker"]
    assert "taker+" in leak.details["taken_at"][1]


def test_tracked_kref_leak_and_no_leak_when_balanced() -> None:
    def leaky(k: ds.Kernel) -> None:
        ds.Kref("obj", track=True).get().put()

    def balanced(k: ds.Kernel) -> None:
        ds.Kref("obj", track=True).put()

    ex = run_first(leaky)
    got = [(f.kind, f.details["refcount"], f.details["taken_by"]) for f in ex.findings]
    assert got == [("leak", 1, ["scenario", "scenario"])]
    assert run_first(balanced).findings == []


def test_lifetime_tracking_is_deterministic() -> None:
    def scenario(k: ds.Kernel) -> None:
        cache = dma.FenceCache("fences", typesafe_by_rcu=True)
        ctx = dma.FenceContext("ring0")
        fs = [cache.create(ctx.ops, ctx.lock, ctx.context, i) for i in range(3)]

        def putter(f: DmaFence) -> None:
            f.signal()
            f.put()

        for t in [k.spawn(putter, f, name=f"p{i}") for i, f in enumerate(fs)]:
            k.join(t)

    a = ds.Kernel(seed=3).run(scenario)
    b = ds.Kernel(seed=3).run(scenario)
    assert a.trace_digest == b.trace_digest
    assert a.findings == b.findings == []


def test_kfree_rcu_keeps_the_fence_valid_for_the_read_sections_in_progress() -> None:
    """L3a: a reader inside the RCU section the free waits for reads a count of zero (legal);
    after leaving it, the same access is a use-after-free."""
    got: list[Any] = []

    def reader(k: ds.Kernel, f: DmaFence) -> None:
        ds.rcu_read_lock()
        k.ext["inside"] = True
        while not k.ext.get("freed"):
            k.point("poll", -1, False)
        got.append(f.get_rcu())  # the memory is still a fence: count 0, no reference
        ds.rcu_read_unlock()
        f.get_rcu()  # a new section, or none: the memory is gone

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        t = k.spawn(reader, k, f, name="reader")
        while not k.ext.get("inside"):
            k.point("poll", -1, False)
        f.signal()
        f.put()
        k.ext["freed"] = True
        k.join(t)

    ex = run(scenario)  # a random schedule: the polls hand over
    assert got == [None]
    assert [(f.kind, f.details["op"]) for f in ex.findings] == [("use-after-free", "dma_fence_get_rcu")]
    assert [t.name for t in ex.findings[0].threads] == ["reader", "scenario"]


def test_a_callback_may_drop_the_last_reference_of_the_fence_it_is_called_for() -> None:
    """dma_fence_signal_timestamp_locked walks the detached callback list, never the fence again:
    a callback that puts the fence's last reference (a waiter's, handed to it) while a later
    callback still runs, after a scheduling point of its own, touches no freed fence."""
    log: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        f.get()  # the waiter's reference, handed to its callback

        def put_it(fence: DmaFence, cb: Any) -> None:
            fence.put()
            fence.put()  # the creator's reference too: the fence is freed here
            k.point("think", -1, False)
            log.append("first")

        f.add_callback(put_it)
        f.add_callback(lambda fence, cb: log.append("second"))
        f.signal()

    ex = run_first(scenario)
    assert ex.findings == [] and log == ["first", "second"]


def test_a_deadlocked_execution_reports_the_hang_not_the_references_its_threads_hold() -> None:
    """L6: kmemleak reports an object only once nothing points to it; a thread blocked forever
    still holds its reference (its stack points to the object). The hang is the report."""
    def holder(obj: ds.Kref, m: ds.Mutex) -> None:
        obj.get()
        m.lock()
        m.lock()  # waits for itself: AA deadlock, the reference is never put
        obj.put()

    def scenario(k: ds.Kernel) -> None:
        obj = ds.Kref("obj", track=True)
        k.join(k.spawn(holder, obj, ds.Mutex("m"), name="holder"))
        obj.put()

    ex = run_first(scenario)
    assert sorted(set(ex.kinds)) == ["deadlock", "recursive-locking"]
