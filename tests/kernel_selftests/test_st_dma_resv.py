"""Port of ``drivers/dma-buf/st-dma-resv.c`` (group ``dma_resv``, 6.12, KERNEL.md 9.2).

The five subtests run once per usage (KERNEL, WRITE, READ, BOOKKEEP): 20
runs. Fences: stub-like ops, one shared spinlock, context 0, seqno 0. The
older exclusive/shared variant (v5.14-v5.18) is ported too, through the 2018
aliases.
"""

from __future__ import annotations

import pytest

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma import DmaResv, DmaResvUsage
from dmabufsim.dma.fence import DmaFence
from tests.helpers import run_first

USAGES = list(DmaResvUsage)
OPS = dma.NamedFenceOps("selftest", "selftest")


def alloc_fence(lock: ds.SpinLock) -> DmaFence:
    f = DmaFence(OPS, lock, 0, 0)
    f.enable_sw_signaling()
    return f


def test_sanitycheck() -> None:
    def scenario(k: ds.Kernel) -> None:
        lock = ds.SpinLock("fence_lock")
        f = alloc_fence(lock)
        f.signal()
        f.put()
        resv = DmaResv()
        resv.lock(None)  # "Resv locking failed" if it raised
        resv.unlock()
        resv.fini()

    assert run_first(scenario).findings == []


@pytest.mark.parametrize("usage", USAGES, ids=[u.name for u in USAGES])
def test_signaling(usage: DmaResvUsage) -> None:
    def scenario(k: ds.Kernel) -> None:
        f = alloc_fence(ds.SpinLock("fence_lock"))
        resv = DmaResv()
        resv.lock(None)
        resv.reserve_fences(1)
        resv.add_fence(f, usage)
        assert resv.test_signaled(usage) is False, "Resv unexpectedly signaled"
        f.signal()
        assert resv.test_signaled(usage) is True, "Resv not reporting signaled"
        resv.unlock()
        resv.fini()
        f.put()

    assert run_first(scenario).findings == []


@pytest.mark.parametrize("usage", USAGES, ids=[u.name for u in USAGES])
def test_for_each(usage: DmaResvUsage) -> None:
    def scenario(k: ds.Kernel) -> None:
        f = alloc_fence(ds.SpinLock("fence_lock"))
        resv = DmaResv()
        resv.lock(None)
        resv.reserve_fences(1)
        resv.add_fence(f, usage)
        got = list(resv.for_each_fence(usage))
        assert len(got) == 1, "More than one fence found"
        assert got[0][0] is f, "Unexpected fence"
        assert got[0][1] == usage, "Unexpected fence usage"
        f.signal()
        resv.unlock()
        resv.fini()

    assert run_first(scenario).findings == []


@pytest.mark.parametrize("usage", USAGES, ids=[u.name for u in USAGES])
def test_for_each_unlocked(usage: DmaResvUsage) -> None:
    def scenario(k: ds.Kernel) -> None:
        f = alloc_fence(ds.SpinLock("fence_lock"))
        resv = DmaResv()
        resv.lock(None)
        resv.reserve_fences(1)
        resv.add_fence(f, usage)
        resv.unlock()
        it = resv.iter_unlocked(usage)
        count = 0
        for fence in it:
            count += 1
            assert count <= 2, "More than one fence found"
            assert it.is_restarted, "No restart flag"
            assert fence is f, "Unexpected fence"
            assert it.fence_usage == usage, "Unexpected fence usage"
            if count == 1:
                it.fences = None  # corrupt the snapshot: the next step must restart
        it.end()
        assert count == 2, "the corrupted snapshot did not force a restart"
        f.signal()
        resv.fini()

    assert run_first(scenario).findings == []


@pytest.mark.parametrize("usage", USAGES, ids=[u.name for u in USAGES])
def test_get_fences(usage: DmaResvUsage) -> None:
    def scenario(k: ds.Kernel) -> None:
        f = alloc_fence(ds.SpinLock("fence_lock"))
        resv = DmaResv()
        resv.lock(None)
        resv.reserve_fences(1)
        resv.add_fence(f, usage)
        resv.unlock()
        fences = resv.get_fences(usage)
        assert fences == [f], "get_fences returned the wrong fences"
        for x in fences:
            x.put()
        f.signal()
        resv.fini()

    assert run_first(scenario).findings == []


# -- the v5.14-v5.18 exclusive/shared variant, through the 2018 aliases


@pytest.mark.parametrize("shared", [False, True], ids=["excl", "shared"])
def test_old_signaling_and_get_fences(shared: bool) -> None:
    def scenario(k: ds.Kernel) -> None:
        f = alloc_fence(ds.SpinLock("fence_lock"))
        resv = DmaResv()
        resv.lock(None)
        if shared:
            resv.reserve_shared(1)
            resv.add_shared_fence(f)
        else:
            resv.add_excl_fence(f)
        assert resv.test_signaled_rcu(shared) is False
        excl = resv.get_excl()
        assert (excl is None) == shared
        resv.unlock()
        excl2, shared_list = resv.get_fences_rcu()
        assert (excl2 is f, shared_list == [f]) == ((not shared), shared)
        it = resv.iter_unlocked(DmaResvUsage.READ)
        got = [(fence, it.fence_usage > DmaResvUsage.WRITE) for fence in it]
        assert got == [(f, shared)]  # is_exclusive == not shared
        f.signal()
        assert resv.test_signaled_rcu(shared) is True
        resv.fini()

    assert run_first(scenario).findings == []
