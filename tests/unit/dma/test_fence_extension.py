"""Public extension points of the containers (fence_array / fence_chain ``ops=``) and their lifetimes (R11)."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma.fence import DmaFence
from dmabufsim.dma.fence_array import DmaFenceArrayOps
from dmabufsim.dma.fence_chain import DmaFenceChainOps
from tests.helpers import run_first


class PollingArrayOps(DmaFenceArrayOps):
    """A hypothetical array that never arms member callbacks: it only polls (public methods only)."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def enable_signaling(self, fence: DmaFence) -> bool:
        self.log.append("enable_signaling")
        return True

    def signaled(self, fence: DmaFence) -> bool:
        assert isinstance(fence, dma.DmaFenceArray)
        return all(f.is_signaled() for f in fence.fences)

    def release(self, fence: DmaFence) -> None:
        self.log.append("release")
        super().release(fence)


def test_an_array_design_of_ones_own_through_public_ops() -> None:
    log: list[Any] = []
    got: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring")
        a, b = tl.create(), tl.create()
        arr = dma.DmaFenceArray.create([a, b], dma.context_alloc(), 1, ops=PollingArrayOps(log))
        arr.enable_sw_signaling()
        a.signal()
        b.signal()
        got.append(arr.is_signaled())  # its signaled() polls the members
        arr.put()  # the array's release puts the members' references it took over: both freed

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == [True]
    assert log == ["enable_signaling", "release"]


def test_a_member_put_after_its_array_released_it_is_a_use_after_free() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring")
        a = tl.create()
        a.signal()
        arr = dma.DmaFenceArray.create([a], dma.context_alloc(), 1)  # takes over a's only reference
        arr.signal()
        arr.put()
        a.put()  # the caller forgot it gave its reference away

    ex = run_first(scenario)
    assert ex.kinds == ["use-after-free"]
    assert ex.findings[0].title == "BUG: KASAN: slab-use-after-free in dma_fence_put"


def test_a_chain_with_ops_of_ones_own() -> None:
    released: list[int] = []

    class Ops(DmaFenceChainOps):
        def release(self, fence: DmaFence) -> None:
            released.append(fence.seqno)
            super().release(fence)

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring")
        f = tl.create()
        f.signal()
        node = dma.DmaFenceChain(None, f, 1, ops=Ops())
        node.put()

    ex = run_first(scenario)
    assert ex.findings == []
    assert released == [1]
