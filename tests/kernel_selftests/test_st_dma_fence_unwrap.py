"""Port of ``drivers/dma-buf/st-dma-fence-unwrap.c`` (group ``dma_fence_unwrap``, KERNEL.md 9.4).

The 6.12 subtests and the four added by newer kernels. Mock fences get a
fresh context and seqno 1 (``__mock_fence(ctx, seqno)`` for the newer
ones); arrays are signal-on-all with a fresh context; every fence has sw
signalling enabled; nothing is signalled unless stated. Teardown signals
every mock fence (so the model's never-signalled rule stays quiet).
"""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma.fence import DmaFence
from dmabufsim.dma.fence_array import DmaFenceArray
from dmabufsim.dma.fence_chain import DmaFenceChain
from dmabufsim.dma.fence_unwrap import merge, unwrap
from tests.helpers import run_first

OPS = dma.NamedFenceOps("mock", "mock")


class Mocks:
    def __init__(self) -> None:
        self.all: list[DmaFence] = []

    def fence(self, ctx: int | None = None, seqno: int = 1) -> DmaFence:
        f = DmaFence(OPS, None, dma.context_alloc(1) if ctx is None else ctx, seqno)
        f.enable_sw_signaling()
        self.all.append(f)
        return f

    def array(self, *fences: DmaFence) -> DmaFenceArray:
        a = DmaFenceArray(list(fences), dma.context_alloc(1), 1, False)
        a.enable_sw_signaling()
        return a

    def chain(self, prev: DmaFence | None, f: DmaFence) -> DmaFenceChain:
        c = DmaFenceChain(prev, f, 1)
        c.enable_sw_signaling()
        return c

    def fini(self) -> None:
        for f in self.all:
            if not f.signaled_flag:
                f.signal()


def _run(body: object) -> None:
    def scenario(k: ds.Kernel) -> None:
        m = Mocks()
        body(m)  # type: ignore[operator]
        m.fini()

    ex = run_first(scenario)
    assert ex.findings == [], [str(f) for f in ex.findings]


def test_sanitycheck() -> None:
    def body(m: Mocks) -> None:
        f = m.fence()
        a = m.array(f)
        c = m.chain(None, a)
        c.put()

    _run(body)


def test_unwrap_array() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        a = m.array(f1, f2)
        got = list(unwrap(a))
        assert sorted(x.oid for x in got) == sorted([f1.oid, f2.oid]) and len(got) == 2

    _run(body)


def test_unwrap_chain() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        c = m.chain(f1, f2)
        assert list(unwrap(c)) == [f2, f1]

    _run(body)


def test_unwrap_chain_array() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        c = m.chain(None, m.array(f1, f2))
        got = list(unwrap(c))
        assert len(got) == 2 and {x.oid for x in got} == {f1.oid, f2.oid}

    _run(body)


def test_unwrap_merge() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        f3 = merge(f1, f2)
        assert list(unwrap(f3)) == [f1, f2]

    _run(body)


def test_unwrap_merge_duplicate() -> None:
    def body(m: Mocks) -> None:
        f1 = m.fence()
        f2 = merge(f1, f1)
        assert f2 is f1
        assert list(unwrap(f2)) == [f1]

    _run(body)


def test_unwrap_merge_seqno() -> None:
    def body(m: Mocks) -> None:
        ctx0 = dma.context_alloc(1)
        ctx1 = dma.context_alloc(1)
        f1 = m.fence(ctx1, 1)
        f2 = m.fence(ctx1, 2)
        f3 = m.fence(ctx0, 1)
        f4 = merge(f1, f2, f3)
        assert list(unwrap(f4)) == [f3, f2]

    _run(body)


def test_unwrap_merge_order() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        a1 = m.array(f1, f2)
        c2 = m.chain(m.chain(None, f1), f2)
        a2 = merge(a1, c2)
        assert list(unwrap(a2)) == [f1, f2]

    _run(body)


def test_unwrap_merge_complex() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        f3 = merge(f1, f2)
        f4 = merge(f2, f1)  # 6.12; newer kernels use array(f2, f1): same leaves
        f5 = merge(f3, f4, dma.get_stub())
        got = list(unwrap(f5))
        assert got == [f1, f2]

    _run(body)


def test_unwrap_merge_complex_array_variant() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        f3 = merge(f1, f2)
        f4 = m.array(f2, f1)
        f5 = merge(f3, f4, dma.get_stub())
        assert list(unwrap(f5)) == [f1, f2]

    _run(body)


def test_unwrap_merge_complex_seqno() -> None:
    def body(m: Mocks) -> None:
        ctx0 = dma.context_alloc(1)
        ctx1 = dma.context_alloc(1)
        f1 = m.fence(ctx0, 2)
        f2 = m.fence(ctx1, 1)
        f3 = m.fence(ctx0, 1)
        f4 = m.fence(ctx1, 2)
        f5 = m.array(f1, f2)
        f6 = m.array(f3, f4)
        f7 = merge(f5, f6)
        assert list(unwrap(f7)) == [f1, f4]

    _run(body)


def test_merge_of_signalled_leaves_is_a_stub_with_the_latest_timestamp() -> None:
    def body(m: Mocks) -> None:
        f1, f2 = m.fence(), m.fence()
        f1.signal_timestamp(7)
        f2.signal_timestamp(3)
        s = merge(f1, f2)
        assert s.signaled_flag and s.context == 0 and s.get_timestamp() == 7

    _run(body)
