"""The fence-signalling rules as lockdep sees them (fence.py R6, R7; KERNEL.md 1.8), and containers."""

from __future__ import annotations

import errno

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma import DmaResv, DmaResvUsage
from dmabufsim.dma.fence import DmaFence
from dmabufsim.kernel.gfp import GFP_ATOMIC, GFP_KERNEL
from dmabufsim.locking.annotations import dma_fence_begin_signalling, dma_fence_end_signalling, might_alloc
from tests.helpers import run, run_first


def test_gfp_kernel_allocation_in_a_signalling_section_closes_the_reclaim_cycle() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()

        def job_done() -> None:
            cookie = dma_fence_begin_signalling()
            might_alloc(GFP_KERNEL)  # the signalling path allocates: reclaim may wait on f
            f.signal()
            dma_fence_end_signalling(cookie)

        k.spawn(job_done, name="job")

    ex = run_first(scenario)
    assert ex.kinds == ["circular-locking"]
    d = ex.findings[0].details
    assert d["chain"] == ["fs_reclaim", "mmu_notifier_invalidate_range_start", "dma_fence_map"]
    assert d["new_edge"] == ["dma_fence_map", "fs_reclaim"]


def test_gfp_atomic_in_a_signalling_section_is_fine() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        cookie = dma_fence_begin_signalling()
        might_alloc(GFP_ATOMIC)
        f.signal()
        dma_fence_end_signalling(cookie)

    assert run_first(scenario).findings == []


def test_waiting_under_a_lock_the_signalling_path_takes_is_a_cycle_through_dma_fence_map() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        m = ds.Mutex("driver_lock")

        def signaller() -> None:
            cookie = dma_fence_begin_signalling()
            m.lock()
            m.unlock()
            f.signal()
            dma_fence_end_signalling(cookie)

        def waiter() -> None:
            m.lock()
            f.wait(False)
            m.unlock()

        k.spawn(waiter, name="waiter")
        k.spawn(signaller, name="signaller")

    ex = run_first(scenario)  # waiter first: it holds the lock while waiting -> also a real deadlock
    cyc = [f for f in ex.findings if f.kind == "circular-locking"]
    assert cyc and sorted(cyc[0].details["chain"]) == ["dma_fence_map", "driver_lock"]
    assert "deadlock" in ex.kinds


def test_taking_a_resv_lock_in_a_fence_callback_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        resv = DmaResv("bo")
        f.add_callback(lambda fence, cb: (resv.lock(None), resv.unlock()))
        f.signal()

    ex = run_first(scenario)
    # the callback runs under the fence spinlock (sleeping lock in atomic context) and inside
    # the signalling section (resv -> dma_fence_map is primed: resv inside it is a cycle)
    assert "sleep-in-atomic" in ex.kinds
    assert "circular-locking" in ex.kinds


def test_signalled_from_irq_the_callbacks_are_hardirq() -> None:
    seen: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring").create()
        f.add_callback(lambda fence, cb: seen.append(k.current.in_irq))
        k.raise_irq(f.signal, name="gpu-irq")

    assert run_first(scenario).findings == []
    assert seen == [True]


# -- containers


def test_array_signal_on_all_and_first_error() -> None:
    def scenario(k: ds.Kernel) -> None:
        tls = [dma.FenceContext(f"r{i}") for i in range(3)]
        fs = [t.create() for t in tls]
        arr = dma.array_create(fs)
        assert arr.context not in [t.context for t in tls] and arr.seqno == 1
        arr.enable_sw_signaling()
        fs[1].set_error(-errno.EIO)
        fs[1].signal()
        fs[2].set_error(-errno.ENOMEM)
        fs[2].signal()
        assert not arr.is_signaled()
        fs[0].signal()
        assert arr.wait(False) == 0
        assert arr.get_status() == -errno.EIO  # the first member error observed

    assert run_first(scenario).findings == []


def test_array_signal_on_any_and_polling_without_enable() -> None:
    def scenario(k: ds.Kernel) -> None:
        tls = [dma.FenceContext(f"r{i}") for i in range(2)]
        a0, a1 = tls[0].create(), tls[1].create()
        anyf = dma.array_create([a0, a1], signal_on_any=True)
        allf = dma.array_create([a0, a1])
        t = k.spawn(anyf.wait, False, name="w")
        k.msleep(1)
        a1.signal()
        k.join(t)
        assert anyf.signaled_flag and anyf.get_status() == 1
        assert not allf.is_signaled()  # polled: not every member yet
        a0.signal()
        assert allf.is_signaled()  # R4: synchronous decision without enable_signaling

    assert run_first(scenario).findings == []


def test_array_signals_from_an_irq_work_not_inside_the_member_signal() -> None:
    order: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("r").create()
        arr = dma.array_create([f])
        arr.add_callback(lambda fence, cb: order.append(f"array by {k.current.name}"))
        f.signal()
        order.append("member signalled")
        arr.wait(False)

    assert run_first(scenario).findings == []
    assert order == ["member signalled", "array by dma_fence_array_irq_work"]


def test_nested_container_in_an_array_is_a_warning() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("r").create()
        inner = dma.array_create([f])
        dma.array_create([inner])
        f.signal()

    ex = run_first(scenario)
    assert [x.title for x in ex.findings] == ["WARNING: dma_fence_array member is a container"]


def test_chain_context_rules() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("r")
        f1, f2, f3 = tl.create(), tl.create(), tl.create()
        c1 = dma.DmaFenceChain(None, f1, 5)
        c2 = dma.DmaFenceChain(c1, f2, 7)  # later: same context
        c3 = dma.DmaFenceChain(c2, f3, 3)  # not later: fresh context, seqno max(7, 3)
        assert c2.context == c1.context and c2.prev_seqno == 5
        assert c3.context != c2.context and c3.seqno == 7 and c3.prev_seqno == 0
        assert dma.seqno_is_later(1 << 40, 1, True) and c1.ops.use_64bit_seqno
        for f in (f1, f2, f3):
            f.signal()
        assert c3.is_signaled()

    assert run_first(scenario).findings == []


def test_resv_wait_from_several_threads_while_a_chain_completes() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("timeline")
        fs = [tl.create() for _ in range(4)]
        node: DmaFence | None = None
        for i, f in enumerate(fs):
            node = dma.DmaFenceChain(node, f, i + 1)
        assert node is not None
        resv = DmaResv("bo")
        with resv:
            resv.reserve_fences(1)
            resv.add_fence(fs[-1], DmaResvUsage.WRITE)
        ts = [k.spawn(resv.wait_timeout, DmaResvUsage.READ, False, None, name=f"w{i}") for i in range(2)]
        tc = k.spawn(node.wait, False, name="chain-waiter")
        for f in reversed(fs):
            f.signal()
        for t in [*ts, tc]:
            k.join(t)

    for seed in range(5):
        assert run(scenario, seed).findings == []


def test_r8_bookkeeping_stays_bounded_and_still_reports_the_unsignalled_fence() -> None:
    from dmabufsim.dma import fence as fence_mod

    sizes: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("soak")
        forgotten = tl.create()
        forgotten.add_callback(dma.DmaFenceCb(lambda f, cb: None))  # depended on, never signalled
        for _ in range(3 * fence_mod._PRUNE_MIN):
            f = tl.create()
            f.signal()
            f.wait()  # depended on (waited), already signalled
            sizes.append(len(fence_mod.depended_fences(k)))

    ex = ds.Kernel(seed=0).run(scenario)
    assert 100 < max(sizes) <= fence_mod._PRUNE_MIN  # entries accumulate, then signalled ones are pruned
    assert [f.kind for f in ex.findings] == ["fence-never-signalled"]
    assert ex.findings[0].details["seqno"] == 1
