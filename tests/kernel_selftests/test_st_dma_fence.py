"""Port of ``drivers/dma-buf/st-dma-fence.c`` (group ``dma_fence``, KERNEL.md 9.1).

Each kernel subtest is one test with the kernel's expected outcome. Time:
one jiffy is one virtual millisecond. The mock fence is the kernel's: context
0, seqno 0, its own spinlock, and a custom ``wait`` op that answers
``-ETIME`` on timeout.
"""

from __future__ import annotations

import errno

import pytest

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma.fence import SIGNALED, DmaFence, DmaFenceCb
from tests.helpers import run, run_first

JIFFY = ds.NSEC_PER_MSEC
ETIME = -errno.ETIME
EINVAL = -errno.EINVAL


class _Wake:
    __slots__ = ("k", "t")

    def __init__(self, k: ds.Kernel, t: ds.KThread) -> None:
        self.k, self.t = k, t

    def __call__(self, f: DmaFence, cb: DmaFenceCb) -> None:
        self.k.wake(self.t)


class MockOps(dma.FenceOps):
    """``mock_ops`` with ``mock_wait``."""

    def get_driver_name(self, fence: DmaFence) -> str:
        return "mock"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "mock"

    def wait(self, f: DmaFence, intr: bool, timeout: int | None) -> int:
        k = f.k
        me = k.current
        cb = DmaFenceCb(_Wake(k, me))
        try:
            f.add_callback(cb)
        except ds.ENOENT:
            return dma.LONG_MAX if timeout is None else timeout
        deadline = None if timeout is None else k.now + timeout
        left = timeout
        while left is None or left > 0:
            if f.flags & SIGNALED:
                break
            if intr and me.signal_pending:
                break
            k.block("mock_wait", f.oid, interruptible=intr, timeout=left, name="mock")
            left = None if deadline is None else max(0, deadline - k.now)
        if not f.remove_callback(cb):
            return dma.LONG_MAX if left is None else left
        if intr and me.signal_pending:
            raise ds.ERESTARTSYS("mock_wait interrupted")
        return ETIME


MOCK = MockOps()


def mock_fence() -> DmaFence:
    return DmaFence(MOCK, None, 0, 0)


def test_sanitycheck() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.enable_sw_signaling()
        assert f.signal() == 0
        f.put()

    ex = run_first(scenario)
    assert ex.findings == []


def test_signaling() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.enable_sw_signaling()
        assert not f.is_signaled()
        assert f.signal() == 0
        assert f.is_signaled()
        assert f.signal() == EINVAL  # "Fence reported being already signaled"
        f.put()

    ex = run_first(scenario)
    # The model also records the refused second signal as a finding (dma_fence R2).
    assert ex.kinds == ["fence-double-signal"]


def test_add_callback() -> None:
    seen: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.add_callback(lambda fence, cb: seen.append(True))
        f.signal()
        assert seen == [True], "callback must have run by the time signal returns"
        f.put()

    assert run_first(scenario).findings == []
    assert seen == [True]


def test_late_add_callback() -> None:
    seen: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.enable_sw_signaling()
        f.signal()
        with pytest.raises(ds.ENOENT):
            f.add_callback(lambda fence, cb: seen.append(True))
        f.signal()  # the kernel signals again (ignored; refused)
        assert seen == []
        f.put()

    ex = run_first(scenario)
    assert seen == []
    assert ex.kinds == ["fence-double-signal"]


def test_rm_callback() -> None:
    seen: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        cb = f.add_callback(lambda fence, cb: seen.append(True))
        assert f.remove_callback(cb) is True
        f.signal()
        assert seen == []
        f.put()

    assert run_first(scenario).findings == []
    assert seen == []


def test_late_rm_callback() -> None:
    seen: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        cb = f.add_callback(lambda fence, cb: seen.append(True))
        f.signal()
        assert seen == [True]
        assert f.remove_callback(cb) is False
        f.put()

    assert run_first(scenario).findings == []


def test_status() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.enable_sw_signaling()
        assert f.get_status() == 0
        f.signal()
        assert f.get_status() == 1
        f.put()

    assert run_first(scenario).findings == []


def test_error() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.enable_sw_signaling()
        f.set_error(-errno.EIO)
        assert f.get_status() == 0
        f.signal()
        assert f.get_status() == -errno.EIO
        f.put()

    assert run_first(scenario).findings == []


def test_wait() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.enable_sw_signaling()
        assert f.wait_timeout(False, 0) == ETIME
        f.signal()
        assert f.wait_timeout(False, 0) == 0
        f.put()

    assert run_first(scenario).findings == []


def test_wait_timeout() -> None:
    fired: list[int] = []

    def timer_fn(k: ds.Kernel, f: DmaFence) -> None:
        fired.append(k.now)
        k.raise_irq(f.signal, name="wait_timer")

    def scenario(k: ds.Kernel) -> None:
        f = mock_fence()
        f.enable_sw_signaling()
        assert f.wait_timeout(False, 1 * JIFFY) == ETIME
        k.add_timer(k.now + 1 * JIFFY, timer_fn, k, f)
        ret = f.wait_timeout(False, 2 * JIFFY)
        assert ret != ETIME, "wait_timeout timed out although the timer signalled after 1 jiffy"
        assert ret == 1 * JIFFY  # remaining of the 2-jiffy budget
        assert f.signaled_flag
        f.put()

    for seed in range(5):
        fired.clear()
        ex = run(scenario, seed)
        assert ex.findings == []
        assert fired == [2 * JIFFY]


def test_stub() -> None:
    def scenario(k: ds.Kernel) -> None:
        stubs = [dma.get_stub() for _ in range(64)]
        assert all(s.is_signaled() for s in stubs)
        assert all(s is stubs[0] for s in stubs)
        assert (stubs[0].context, stubs[0].seqno) == (0, 0)
        for s in stubs:
            s.put()

    assert run_first(scenario).findings == []


class _Race:
    """Shared state of ``race_signal_callback``: the two published fence slots."""

    def __init__(self, k: ds.Kernel) -> None:
        self.oid = k.new_oid()
        self.slots: list[DmaFence | None] = [None, None]
        self.stop = False
        self.errors: list[str] = []
        self.passes = [0, 0]


def _race_thread(k: ds.Kernel, r: _Race, me: int, before: bool, passes: int) -> None:
    while not r.stop and r.passes[me] < passes:
        f1 = mock_fence()
        f1.enable_sw_signaling()
        k.point("rcu_assign_pointer", r.oid, True)
        r.slots[me] = f1
        f2 = None
        while f2 is None and not r.stop:
            ds.rcu_read_lock()  # the selftest's lookup is an RCU read section: the fence is kfree_rcu'd
            k.point("dma_fence_get_rcu_safe", r.oid, False)
            cand = r.slots[1 - me]
            f2 = cand.get_rcu() if cand is not None else None
            ds.rcu_read_unlock()
        if before:
            f1.signal()
        seen = [False]

        def cb_fn(fence: DmaFence, cb: DmaFenceCb, seen: list[bool] = seen) -> None:
            seen[0] = True

        if f2 is None:
            seen[0] = True
        else:
            try:
                f2.add_callback(cb_fn)
            except ds.ENOENT:
                seen[0] = True
        if not before:
            f1.signal()
        if not seen[0]:
            assert f2 is not None
            f2.wait(False)
            f2.lock.lock_irqsave()  # __wait_for_callbacks
            f2.lock.unlock_irqrestore()
        if not seen[0]:
            r.errors.append(f"callback not seen on thread {me}, pass {r.passes[me]}")
            r.stop = True
        if f2 is not None:
            f2.put()
        k.point("rcu_assign_pointer", r.oid, True)
        r.slots[me] = None
        f1.put()
        r.passes[me] += 1
    r.stop = True


@pytest.mark.parametrize("before", [False, True])
def test_race_signal_callback(before: bool) -> None:
    results: list[_Race] = []

    def scenario(k: ds.Kernel) -> None:
        r = _Race(k)
        results.append(r)
        ts = [k.spawn(_race_thread, k, r, i, before, 30, name=f"race{i}") for i in range(2)]
        for t in ts:
            k.join(t)

    for seed in range(8):
        results.clear()
        ex = run(scenario, seed)
        assert ex.findings == [], [str(f) for f in ex.findings]
        assert results[0].errors == []
        assert max(results[0].passes) == 30
