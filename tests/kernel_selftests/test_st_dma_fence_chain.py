"""Port of ``drivers/dma-buf/st-dma-fence-chain.c`` (group ``dma_fence_chain``, KERNEL.md 9.3).

``fence_chains_init(n, seqno_fn)`` builds n mock fences and n chain nodes,
sw signalling enabled on every node as it is created. ``wait_forward`` uses
the kernel's ``CHAIN_SZ`` (4096) in the default run. ``wait_backward`` and
``wait_random`` run at 128 nodes there and at ``CHAIN_SZ`` in the huge run
(``-m huge``, too long for CI): with signalling enabled on every node, each signal re-arms
every later node through its own irq_work, O(n^2) interrupt threads in all
(8 million at 4096; 4.7 million scheduling points were measured at 1024,
so about 75 million at 4096; ``wait_backward`` completed in 9 min 21 s on
the project's machine), all with the default ``Config``: every signal is progress, so the livelock window never closes,
and the runaway cap (100 million) is above it. ``find_race`` runs
two threads for a bounded number of lookups (the kernel runs one per CPU
for up to 5 s) over several seeds.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma.fence import DmaFence
from dmabufsim.dma.fence_chain import DmaFenceChain, find_seqno
from tests.helpers import run, run_first

CHAIN_SZ = 4096
OPS = dma.NamedFenceOps("mock", "mock")


def mock_fence() -> DmaFence:
    return DmaFence(OPS, None, 0, 0)


class Chains:
    def __init__(self, n: int, seqno_fn: Callable[[int], int]) -> None:
        self.fences: list[DmaFence] = []
        self.chains: list[DmaFenceChain] = []
        for i in range(n):
            f = mock_fence()
            prev = self.chains[i - 1] if i else None
            c = DmaFenceChain(prev, f, seqno_fn(i))
            c.enable_sw_signaling()
            self.fences.append(f)
            self.chains.append(c)

    @property
    def tail(self) -> DmaFenceChain:
        return self.chains[-1]

    def fini(self) -> None:
        for f in self.fences:
            if not f.signaled_flag:
                f.signal()


def seqno_inc(i: int) -> int:
    return i + 1


def seqno_inc2(i: int) -> int:
    return 2 * i + 2


def test_sanitycheck() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        c = DmaFenceChain(None, f, 1)
        c.enable_sw_signaling()
        f.signal()
        c.put()

    ex = run_first(scenario)
    assert ex.findings == []


def test_find_seqno() -> None:
    def scenario(k: ds.Kernel) -> None:
        fc = Chains(64, seqno_inc)
        assert find_seqno(fc.tail, 0) is fc.tail  # seqno 0: unchanged
        for i in range(64):
            assert find_seqno(fc.tail, i + 1) is fc.chains[i]
            assert find_seqno(fc.chains[i], i + 1) is fc.chains[i]
            with pytest.raises(ds.EINVAL):
                find_seqno(fc.chains[i], i + 2)  # future seqno
            if i > 0:
                assert find_seqno(fc.chains[i], i) is fc.chains[i - 1]
        fc.fini()

    assert run_first(scenario).findings == []


def test_find_signaled() -> None:
    def scenario(k: ds.Kernel) -> None:
        fc = Chains(2, seqno_inc)
        fc.fences[0].signal()
        got = find_seqno(fc.tail, 1)
        assert got is None or got is fc.chains[0]
        fc.fini()

    assert run_first(scenario).findings == []


def test_find_out_of_order() -> None:
    def scenario(k: ds.Kernel) -> None:
        fc = Chains(3, seqno_inc)
        fc.fences[1].signal()
        # node 2 is collected during the walk: waiting for seqno 2 is waiting for the pending seqno 1
        assert find_seqno(fc.tail, 2) is fc.chains[0]
        fc.fini()

    assert run_first(scenario).findings == []


def test_find_gap() -> None:
    def scenario(k: ds.Kernel) -> None:
        fc = Chains(64, seqno_inc2)
        for i in range(64):
            node = find_seqno(fc.tail, 2 * i + 1)
            assert node is fc.chains[i]
            assert find_seqno(node, 2 * i + 2) is node
        fc.fini()

    assert run_first(scenario).findings == []


def _find_race_thread(k: ds.Kernel, fc: Chains, n: int, loops: int, errors: list[str]) -> None:
    for _ in range(loops):
        seqno = k.random(n) + 1
        try:
            node = find_seqno(fc.tail, seqno)
        except ds.KernelError as e:
            errors.append(f"find_seqno({seqno}) failed: {e}")
            return
        if node is not None and node.seqno == seqno:
            try:
                find_seqno(node, seqno)
            except ds.KernelError as e:
                errors.append(f"find_seqno({seqno}) from the found node failed: {e}")
                return
        idx = k.random(n - 1)  # never the last fence
        fc.fences[idx].is_signaled() or fc.fences[idx].signal()


def test_find_race() -> None:
    n = 128
    errors: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        fc = Chains(n, seqno_inc)
        ts = [k.spawn(_find_race_thread, k, fc, n, 40, errors, name=f"find{i}") for i in range(2)]
        for t in ts:
            k.join(t)
        fc.fini()

    for seed in range(4):
        ex = run(scenario, seed)
        assert errors == []
        assert ex.kinds in ([], ["fence-double-signal"])  # both threads may pick one index: the kernel ignores it


def test_signal_forward() -> None:
    def scenario(k: ds.Kernel) -> None:
        fc = Chains(64, seqno_inc)
        for i in range(64):
            fc.fences[i].signal()
            assert fc.chains[i].is_signaled(), f"chain[{i}] not signaled"
            if i + 1 < 64:
                assert not fc.chains[i + 1].is_signaled(), f"chain[{i + 1}] is signaled"
        fc.fini()

    assert run_first(scenario).findings == []


def test_signal_backward() -> None:
    def scenario(k: ds.Kernel) -> None:
        fc = Chains(64, seqno_inc)
        for i in range(63, 0, -1):
            fc.fences[i].signal()
            assert not fc.chains[i].is_signaled(), f"chain[{i}] is signaled"
        fc.fences[0].signal()
        for i in range(64):
            assert fc.chains[i].is_signaled(), f"chain[{i}] was not signaled"
        fc.fini()

    assert run_first(scenario).findings == []


def _wait_scenario(order: str, n: int, results: list[int]) -> Callable[[ds.Kernel], None]:
    def waiter(tail: DmaFence) -> None:
        results.append(tail.wait(False))

    def scenario(k: ds.Kernel) -> None:
        fc = Chains(n, seqno_inc)
        t = k.spawn(waiter, fc.tail, name="wait")
        k.msleep(1)  # the waiter is asleep on the tail
        idx = list(range(n))
        if order == "backward":
            idx.reverse()
        elif order == "random":
            for i in range(n - 1, 0, -1):  # Fisher-Yates with the schedule's randomness
                j = k.random(i + 1)
                idx[i], idx[j] = idx[j], idx[i]
        for i in idx:
            fc.fences[i].signal()
        k.join(t)
        assert fc.tail.signaled_flag

    return scenario


@pytest.mark.parametrize(("order", "n"), [("forward", CHAIN_SZ), ("backward", 128), ("random", 128)])
def test_wait(order: str, n: int) -> None:
    results: list[int] = []
    ex = run(_wait_scenario(order, n, results), 1)
    assert (ex.outcome, ex.findings) == ("completed", [])
    assert results == [0]


@pytest.mark.huge  # ~10 minutes of CPU each: not in CI's bounded slow run (pytest -m huge)
@pytest.mark.parametrize("order", ["backward", "random"])
def test_wait_at_chain_sz(order: str) -> None:
    """``wait_backward`` / ``wait_random`` at the kernel's own size, with the default limits:
    far more work than the livelock window, and never a window without progress."""
    results: list[int] = []
    ex = run(_wait_scenario(order, CHAIN_SZ, results), 1)
    assert (ex.outcome, ex.findings) == ("completed", [])
    assert ex.steps > ds.Config().max_steps
    assert results == [0]


@pytest.mark.slow
def test_wait_backward_256_crosses_the_old_step_budget() -> None:
    """256 links in reverse: ~288,000 scheduling points, more than the whole-execution budget
    that used to be the livelock limit (200,000), yet no window without progress."""
    results: list[int] = []
    ex = run(_wait_scenario("backward", 256, results), 1)
    assert (ex.outcome, ex.findings, ex.steps) == ("completed", [], 287_340)
    assert results == [0]
