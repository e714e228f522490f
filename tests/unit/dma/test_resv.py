"""dma_resv rules (resv.py R1-R7)."""

from __future__ import annotations

import errno

import pytest

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma import DmaResv, DmaResvUsage
from dmabufsim.explore.explorer import run_job
from dmabufsim.locking.ww_mutex import WWAcquireCtx
from tests.helpers import run, run_first

K, W, R, B = DmaResvUsage.KERNEL, DmaResvUsage.WRITE, DmaResvUsage.READ, DmaResvUsage.BOOKKEEP
MS = ds.NSEC_PER_MSEC


def entries(resv: DmaResv) -> list[tuple[str, int, str]]:
    assert resv.fences is not None
    return [(f.timeline_name, f.seqno, u.name) for f, u in resv.fences.entries]


def test_usage_order_and_rw() -> None:
    assert K < W < R < B
    assert dma.usage_rw(True) is R and dma.usage_rw(False) is W


def test_add_without_reserved_slot_is_refused_and_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        a = dma.FenceContext("a")
        resv = DmaResv("bo")
        with resv:
            f = a.create()
            resv.add_fence(f, W)  # no list at all
            assert resv.fences is None
            resv.reserve_fences(1)
            resv.add_fence(f, W)
        with resv:  # the reservation did not survive the unlock
            b = dma.FenceContext("b").create()
            resv.add_fence(b, R)
            assert entries(resv) == [("a", 1, "WRITE")]
        f.signal()
        b.signal()

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]  # one signature per object: reported once
    fd = ex.findings[0]
    assert fd.title == "kernel BUG at drivers/dma-buf/dma-resv.c: dma_resv_add_fence without a reserved slot"
    assert (fd.details["num_fences"], fd.details["max_fences"]) == (0, 0)
    assert fd.rule.startswith("dma_resv R2")


def test_reserve_zero_is_einval() -> None:
    def scenario(k: ds.Kernel) -> None:
        resv = DmaResv()
        with resv, pytest.raises(ds.EINVAL):
            resv.reserve_fences(0)

    ex = run_first(scenario)
    assert [f.title for f in ex.findings] == ["WARNING: dma_resv_reserve_fences(0)"]


def test_writers_assert_the_lock() -> None:
    def scenario(k: ds.Kernel) -> None:
        resv = DmaResv("bo")
        f = dma.FenceContext("a").create()
        resv.reserve_fences(1)
        resv.add_fence(f, W)
        list(resv.for_each_fence(B))
        f.signal()

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]  # one signature: lockdep_assert_held(reservation_ww_class_mutex)
    assert ex.findings[0].title == "WARNING: lockdep_assert_held(reservation_ww_class_mutex) failed"


def test_add_fence_replaces_same_context_with_stronger_or_equal_usage() -> None:
    def scenario(k: ds.Kernel) -> None:
        a, b = dma.FenceContext("a"), dma.FenceContext("b")
        resv = DmaResv()
        fs = []
        with resv:
            resv.reserve_fences(8)
            a1, a2, a3, a4 = a.create(), a.create(), a.create(), a.create()
            b1 = b.create()
            fs = [a1, a2, a3, a4, b1]
            resv.add_fence(a1, R)
            resv.add_fence(a2, W)  # same context, READ >= WRITE, later: replaces
            assert entries(resv) == [("a", 2, "WRITE")]
            resv.add_fence(a3, R)  # a READ does not replace a WRITE: both stay
            resv.add_fence(b1, B)
            assert entries(resv) == [("a", 2, "WRITE"), ("a", 3, "READ"), ("b", 1, "BOOKKEEP")]
            resv.add_fence(a1, R)  # an older fence never replaces a newer one
            assert entries(resv)[-1] == ("a", 1, "READ")
            a2.signal()
            resv.add_fence(a4, K)  # the signalled entry is reused
            assert entries(resv)[0] == ("a", 4, "KERNEL")
            assert [f.seqno for f in resv.get_fences(W)] == [4]
            assert [f.timeline_name for f in resv.get_fences(R)] == ["a", "a", "a"]
            assert [(f.timeline_name, u) for f, u in resv.for_each_fence(K)] == [("a", K)]
        for f in fs:
            if not f.signaled_flag:
                f.signal()

    assert run_first(scenario).findings == []


def test_reserve_growth_compacts_signalled_fences() -> None:
    def scenario(k: ds.Kernel) -> None:
        tls = [dma.FenceContext(f"t{i}") for i in range(5)]
        fs = [t.create() for t in tls]
        resv = DmaResv()
        with resv:
            resv.reserve_fences(4)
            for f in fs[:4]:
                resv.add_fence(f, R)
            assert resv.fences is not None and resv.fences.max_fences == 4
            fs[0].signal()
            fs[2].signal()
            resv.reserve_fences(1)  # 4 + 1 > 4: a new list of max(5, 8) without t0, t2
            assert resv.fences.max_fences == 8
            assert entries(resv) == [("t1", 1, "READ"), ("t3", 1, "READ")]
            resv.add_fence(fs[4], W)
        for f in fs:
            if not f.signaled_flag:
                f.signal()

    assert run_first(scenario).findings == []


def test_replace_and_copy_fences() -> None:
    def scenario(k: ds.Kernel) -> None:
        a, b, c = dma.FenceContext("a"), dma.FenceContext("b"), dma.FenceContext("pt")
        src = DmaResv("src")
        dst = DmaResv("dst")
        a1, a2, b1, pt = a.create(), a.create(), b.create(), c.create()
        with src:
            src.reserve_fences(3)
            src.add_fence(a1, W)
            src.add_fence(a2, R)
            src.add_fence(b1, B)
            src.replace_fences(a.context, pt, B)
            assert entries(src) == [("pt", 1, "BOOKKEEP"), ("pt", 1, "BOOKKEEP"), ("b", 1, "BOOKKEEP")]
        b1.signal()
        with dst:
            dst.reserve_fences(1)
            dst.add_fence(a2, K)
            dst.copy_fences(src)
            assert entries(dst) == [("pt", 1, "BOOKKEEP"), ("pt", 1, "BOOKKEEP")]
        for f in (a1, a2, pt):
            f.signal()

    assert run_first(scenario).findings == []


def test_get_singleton() -> None:
    def scenario(k: ds.Kernel) -> None:
        a, b = dma.FenceContext("a"), dma.FenceContext("b")
        resv = DmaResv()
        a1, b1 = a.create(), b.create()
        assert resv.get_singleton(B) is None
        with resv:
            resv.reserve_fences(2)
            resv.add_fence(a1, W)
            assert resv.get_singleton(B) is a1
            resv.add_fence(b1, R)
        s = resv.get_singleton(B)
        assert isinstance(s, dma.DmaFenceArray) and list(s.fences) == [a1, b1]
        assert resv.get_singleton(W) is a1
        a1.signal()
        b1.signal()
        assert s.is_signaled()

    assert run_first(scenario).findings == []


def test_container_is_a_warning() -> None:
    def scenario(k: ds.Kernel) -> None:
        a = dma.FenceContext("a")
        arr = dma.array_create([a.create(), a.create()])
        resv = DmaResv()
        with resv:
            resv.reserve_fences(1)
            resv.add_fence(arr, W)
        for f in arr.fences:
            f.signal()
        assert arr.is_signaled()  # nobody enabled its signalling: it signals when polled

    ex = run_first(scenario)
    assert [f.title for f in ex.findings] == ["WARNING: dma_resv_add_fence with a container fence"]


def test_wait_timeout_outcomes() -> None:
    got: dict[str, object] = {}

    def waiter(resv: DmaResv, key: str, usage: DmaResvUsage, intr: bool, timeout: int | None) -> None:
        try:
            got[key] = resv.wait_timeout(usage, intr, timeout)
        except ds.ERESTARTSYS:
            got[key] = "ERESTARTSYS"

    def scenario(k: ds.Kernel) -> None:
        w, r = dma.FenceContext("writer"), dma.FenceContext("reader")
        resv = DmaResv()
        fw, fr = w.create(), r.create()
        with resv:
            resv.reserve_fences(2)
            resv.add_fence(fw, W)
            resv.add_fence(fr, R)
        got["poll_busy"] = resv.wait_timeout(W, False, 0)
        k.spawn(waiter, resv, "write", W, False, 10 * MS, name="w1")
        k.spawn(waiter, resv, "read", R, False, 10 * MS, name="w2")
        k.spawn(waiter, resv, "short", R, False, 1 * MS, name="w3")
        t = k.spawn(waiter, resv, "intr", R, True, None, name="w4")
        k.msleep(2)
        fw.signal()
        k.send_signal(t)
        k.msleep(2)
        fr.signal()
        got["poll_idle"] = resv.wait_timeout(B, False, 0)
        got["unbounded"] = resv.wait_timeout(B, False, None)
        got["rcu_2018"] = dma.reservation_object_wait_timeout_rcu(resv, True, False, 5)

    ex = run(scenario, 2)
    assert ex.findings == []
    assert got == {
        "poll_busy": 0,
        "write": 8 * MS,
        "read": 6 * MS,
        "short": 0,
        "intr": "ERESTARTSYS",
        "poll_idle": 1,
        "unbounded": dma.LONG_MAX,
        "rcu_2018": 5,
    }


def test_published_fence_that_never_signals_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        resv = DmaResv()
        with resv:
            resv.add_excl_fence(dma.FenceContext("ring", driver="gpu").create())

    ex = run_first(scenario)
    assert ex.kinds == ["fence-never-signalled"]
    assert ex.findings[0].title == "dma_fence gpu:ring 1:1 never signalled"


def test_2018_aliases() -> None:
    def scenario(k: ds.Kernel) -> None:
        w, r = dma.FenceContext("excl"), dma.FenceContext("shared")
        resv = dma.ReservationObject()
        e, s = w.create(), r.create()
        with resv:
            resv.add_excl_fence(e)
            resv.reserve_shared()
            resv.add_shared_fence(s)
            assert resv.get_excl() is e
        assert resv.get_excl_rcu() is e
        assert resv.get_fences_rcu() == (e, [s])
        assert not resv.test_signaled_rcu(False) and not resv.test_signaled_rcu(True)
        e.signal()
        assert resv.test_signaled_rcu(False) and not resv.test_signaled_rcu(True)
        s.signal()
        assert resv.test_signaled_rcu(True)

    assert run_first(scenario).findings == []


def test_ww_locking_backoff_between_two_contexts() -> None:
    order: list[str] = []
    backoffs: list[int] = []

    def worker(name: str, first: DmaResv, second: DmaResv) -> None:
        ctx = WWAcquireCtx(dma.reservation_ww_class)
        contended: DmaResv | None = None
        while True:  # the kernel's drm_exec-style backoff loop
            locked: list[DmaResv] = []
            try:
                if contended is not None:
                    contended.lock_slow(ctx)
                    locked.append(contended)
                for obj in (first, second):
                    if obj is not contended:
                        cur = obj
                        obj.lock(ctx)
                        locked.append(obj)
                break
            except ds.EDEADLK:
                for obj in locked:
                    obj.unlock()
                contended = cur
                order.append(f"{name}-backoff")
        with pytest.raises(ds.EALREADY):
            first.lock(ctx)
        assert first.locking_ctx() is ctx and second.is_held()
        order.append(name)
        first.unlock()
        second.unlock()
        ctx.fini()

    def scenario(k: ds.Kernel) -> None:
        x, y = DmaResv("x"), DmaResv("y")
        a = k.spawn(worker, "a", x, y, name="a")
        b = k.spawn(worker, "b", y, x, name="b")
        k.join(a)
        k.join(b)
        assert x.trylock()
        x.unlock()

    for seed in range(10):
        order.clear()
        ex = run(scenario, seed)
        assert ex.findings == [], [str(f) for f in ex.findings]
        assert sorted(o for o in order if "-" not in o) == ["a", "b"]
        backoffs.append(len(order) - 2)
    assert max(backoffs) > 0  # some schedule really contended


def test_lockless_reader_restarts_when_a_writer_changes_the_list() -> None:
    seen: list[tuple[list[int], int]] = []

    def scenario(k: ds.Kernel) -> None:
        tls = [dma.FenceContext(f"t{i}") for i in range(3)]
        fs = [t.create() for t in tls]
        resv = DmaResv()
        with resv:
            resv.reserve_fences(3)
            resv.add_fence(fs[0], R)
            resv.add_fence(fs[1], R)
        it = resv.iter_unlocked(B)
        got = []
        for f in it:
            if it.is_restarted:
                got = []
            got.append(f.context)
            if len(seen) == 0 and len(got) == 1:
                # a writer gets in between two steps of the reader
                with resv:
                    resv.reserve_fences(1)
                    resv.add_fence(fs[2], W)
                seen.append(([], 0))
        it.end()
        seen.append((got, it.restarts))
        for f in fs:
            f.signal()

    ex = run_first(scenario)
    assert ex.findings == []
    assert seen[-1] == ([1, 2, 3], 1)


def test_error_propagation_through_get_singleton_array() -> None:
    def scenario(k: ds.Kernel) -> None:
        a, b = dma.FenceContext("a"), dma.FenceContext("b")
        resv = DmaResv()
        fa, fb = a.create(), b.create()
        with resv:
            resv.reserve_fences(2)
            resv.add_fence(fa, W)
            resv.add_fence(fb, W)
        s = resv.get_singleton(W)
        assert s is not None
        s.enable_sw_signaling()
        fb.set_error(-errno.EIO)
        fb.signal()
        fa.signal()
        assert s.wait(False) == 0
        assert s.get_status() == -errno.EIO

    assert run_first(scenario).findings == []


def test_lock_interruptible_is_eintr_and_trylock_fails_while_held() -> None:
    got: list[str] = []

    def contender(resv: DmaResv) -> None:
        assert not resv.trylock()
        try:
            resv.lock_interruptible(None)
            got.append("locked")
            resv.unlock()
        except ds.EINTR:
            got.append("EINTR")

    def scenario(k: ds.Kernel) -> None:
        resv = DmaResv("bo")
        resv.lock(None)
        assert resv.is_locked() and resv.locking_ctx() is None
        t = k.spawn(contender, resv, name="contender")
        k.msleep(1)
        k.send_signal(t)
        k.join(t)
        resv.unlock()
        assert not resv.is_locked()

    assert run_first(scenario).findings == []
    assert got == ["EINTR"]


class SleepyPollOps(dma.NamedFenceOps):
    """A ``signaled`` op that takes a mutex: forbidden (FenceOps contract)."""

    def __init__(self, m: ds.Mutex) -> None:
        super().__init__("gpu", "sleepy")
        self.m = m

    def signaled(self, fence: dma.DmaFence) -> bool:
        self.m.lock()
        self.m.unlock()
        return False


def test_lockless_walk_is_an_rcu_read_section() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("sleepy", ops=SleepyPollOps(ds.Mutex("hw_lock")))
        f = tl.create()
        resv = DmaResv()
        with resv:
            resv.reserve_fences(1)
            resv.add_fence(f, W)
        assert resv.test_signaled(W) is False
        f.signal()

    ex = run_first(scenario)
    assert "sleep-in-atomic" in ex.kinds
    atomic = ex.by_kind("sleep-in-atomic")[0].details["atomic"]
    assert [a["what"] for a in atomic] == ["rcu_read_lock"]


def _one_writer_one_waiter(k: ds.Kernel) -> None:
    """A writer adds one fence under the lock while a waiter waits locklessly for the object."""
    resv = DmaResv("bo")
    fence = dma.FenceContext("ring").create()

    def writer() -> None:
        resv.lock(None)
        resv.reserve_fences(1)
        resv.add_fence(fence, W)
        resv.unlock()

    threads = [k.spawn(writer, name="writer"), k.spawn(dma.reservation_object_wait_timeout_rcu, resv, True, False,
                                                        None, name="waiter")]
    k.join(threads[0])
    fence.signal()
    k.join(threads[1])


def test_lockless_reader_declares_the_published_list_not_the_lock() -> None:
    """dma_resv R6: the reader's loads declare the published list field by field (the pointer,
    num_fences, each slot) and the seqcount, never the ww_mutex; the writer's lock, unlock and
    locked scan declare the lock, its stores the fields it writes."""
    ex = run(_one_writer_one_waiter, record_trace=True)
    assert ex.findings == []
    events = ex.events
    assert events is not None
    resv_oid = next(e.obj for e in events if e.op == "ww_mutex_lock")
    list_oid = ds.kernel.trace.published_oid(resv_oid)
    num_oid, slot0 = (ds.kernel.trace.part_oid(resv_oid, i) for i in (0, 1))
    by_op: dict[str, set[tuple[int, bool]]] = {}
    for e in events:
        by_op.setdefault(e.op, set()).add((e.obj, e.write))
    assert by_op["dma_resv_iter_restart"] <= {(list_oid, False), (num_oid, False)}
    assert by_op["dma_resv_iter_walk"] == {(slot0, False)}
    assert by_op["ww_mutex_unlock"] == {(resv_oid, True)}
    assert by_op["dma_resv_reserve_fences"] == {(resv_oid, True)}
    assert by_op["dma_resv_publish"] == {(list_oid, True)}  # the first reservation allocates the list
    assert {(slot0, True), (num_oid, True)} <= by_op["dma_resv_add_fence"]  # an append: its slot, num_fences
    waiter = {e.tid for e in events if e.op == "dma_resv_iter_walk"}
    assert not any(e.obj == resv_oid for e in events if e.tid in waiter)


@pytest.mark.slow
def test_one_writer_against_the_lockless_waiter_is_exhausted() -> None:
    """With the lock declared apart from the list (R6) optimal DPOR exhausts one writer against
    reservation_object_wait_timeout_rcu; when the reader's loads declared the lock's object, every
    lock, reserve and unlock of the writer raced with every load (9,267 traces in 30 s, not done)."""
    odpor = ds.explore.OptimalDPOR()
    run_job(_one_writer_one_waiter, [(odpor, 8000)], stop_on_first=False, coverage=False)
    assert odpor.complete and odpor.deviations == 0 and odpor.redundant == 0


def test_an_in_place_replacement_writes_only_its_slot() -> None:
    """dma_resv R6: replacing the fence of a context in place stores slot i alone, so a lockless
    reader's loads of the pointer, num_fences and the other slots commute with it."""

    def scenario(k: ds.Kernel) -> None:
        resv = DmaResv("bo")
        a, b = dma.FenceContext("a"), dma.FenceContext("b")
        with resv:
            resv.reserve_fences(2)
            resv.add_fence(a.create(), W)
            resv.add_fence(b.create(), W)
        k.point("replace", -1, False)  # the replacement's events follow this marker
        with resv:
            resv.reserve_fences(1)
            resv.add_fence(b.create(), W)  # same context, later: replaces slot 1 in place
        with resv:
            for f, _ in resv.for_each_fence(dma.DmaResvUsage.BOOKKEEP):
                f.signal()

    ex = run(scenario, record_trace=True)
    events = ex.events
    assert events is not None
    resv_oid = next(e.obj for e in events if e.op == "ww_mutex_lock")
    mark = next(i for i, e in enumerate(events) if e.op == "replace")
    stores = {(e.obj, e.write) for e in events[mark:] if e.op == "dma_resv_add_fence" and e.obj != resv_oid}
    assert stores == {(ds.kernel.trace.part_oid(resv_oid, 2), True)}
    # the reservation reallocated the list first (debug: max_fences drops to num_fences at unlock)
    assert (ds.kernel.trace.published_oid(resv_oid), True) in {
        (e.obj, e.write) for e in events[mark:] if e.op == "dma_resv_publish"}
