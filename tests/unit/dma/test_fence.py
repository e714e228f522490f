"""dma_fence rules (fence.py R1-R9)."""

from __future__ import annotations

import errno

import pytest

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma.fence import FLAG_NAMES, DmaFence, DmaFenceCb, cb_list_oid, flag_oid
from dmabufsim.locking.annotations import DMA_FENCE_MAP
from tests.helpers import run, run_first

MS = ds.NSEC_PER_MSEC


def test_contexts_start_at_one_and_are_consecutive_per_execution() -> None:
    got: list[tuple[int, ...]] = []

    def scenario(k: ds.Kernel) -> None:
        a = dma.context_alloc(3)
        b = dma.context_alloc(1)
        tl = dma.FenceContext("ring")
        got.append((a, b, tl.context, tl.create().seqno, tl.create().seqno, tl.create(10).seqno, tl.create().seqno))

    run_first(scenario)
    run_first(scenario)
    assert got == [(1, 4, 5, 1, 2, 10, 11)] * 2


def test_context_alloc_zero_is_a_usage_error() -> None:
    def scenario(k: ds.Kernel) -> None:
        with pytest.raises(ds.UsageError):
            dma.context_alloc(0)

    assert run_first(scenario).findings == []


def test_is_later_wraps_32bit_unless_64bit_ops() -> None:
    assert dma.seqno_is_later(1, 0xFFFFFFFF, False)
    assert not dma.seqno_is_later(0xFFFFFFFF, 1, False)
    assert dma.seqno_is_later(0xFFFFFFFF, 1, True)
    assert not dma.seqno_is_later(5, 5, False)

    def scenario(k: ds.Kernel) -> None:
        a, b = dma.FenceContext("a"), dma.FenceContext("b")
        f1, f2 = a.create(), a.create()
        assert f2.is_later(f1) and not f1.is_later(f2)
        assert f1.is_later_or_same(f1)
        assert dma.later(f1, f2) is f2
        f2.signal()
        assert dma.later(f1, f2) is None  # the later one is done: both are
        assert not f1.is_later(b.create())  # WARN: different contexts
        f1.signal()

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: dma_fence_is_later on fences of different contexts"


def test_double_signal_is_refused_and_reported_once() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0", driver="gpu").create()
        assert f.signal_timestamp(5) == 0
        assert f.get_timestamp() == 5
        assert f.signal() == -errno.EINVAL
        assert f.get_timestamp() == 5  # nothing changed

    ex = run_first(scenario)
    assert ex.kinds == ["fence-double-signal"]
    d = ex.findings[0].details
    assert (d["driver"], d["timeline"], d["context"], d["seqno"], d["first_signalled_at"]) == ("gpu", "ring0", 1, 1, 5)
    assert ex.findings[0].rule.startswith("dma_fence R2")


class PollOps(dma.NamedFenceOps):
    """A driver whose hardware seqno can be polled (``ops.signaled``)."""

    def __init__(self) -> None:
        super().__init__("gpu", "polled")
        self.hw_seqno = 0

    def signaled(self, fence: DmaFence) -> bool:
        return self.hw_seqno >= fence.seqno


def test_opportunistic_signal_then_driver_signal_is_not_a_double_signal() -> None:
    def scenario(k: ds.Kernel) -> None:
        ops = PollOps()
        tl = dma.FenceContext("polled", ops=ops)
        f = tl.create()
        assert not f.is_signaled()
        ops.hw_seqno = 1
        assert f.is_signaled()  # signalled by the poll
        assert f.signal() == -errno.EINVAL  # the irq handler comes later: refused, not a bug
        assert f.signal() == -errno.EINVAL  # a second explicit signal is

    ex = run_first(scenario)
    assert ex.kinds == ["fence-double-signal"]


def test_callbacks_run_fifo_in_the_signallers_context_with_the_lock_held() -> None:
    order: list[tuple[str, str, list[str]]] = []

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring0")
        f = tl.create()
        for name in ("a", "b", "c"):
            f.add_callback(
                lambda fence, cb, name=name: order.append(
                    (name, k.current.name, [h.map.name for h in k.current.held])
                )
            )
        k.raise_irq(f.signal, name="gpu-irq")

    ex = run_first(scenario)
    assert ex.findings == []
    assert [o[0] for o in order] == ["a", "b", "c"]
    assert {o[1] for o in order} == {"gpu-irq"}
    assert order[0][2][-1] == "ring0.fence_lock"


def test_callback_that_sleeps_in_irq_signal_is_sleep_in_atomic() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        m = ds.Mutex("driver_mutex")
        f.add_callback(lambda fence, cb: (m.lock(), m.unlock()))
        k.raise_irq(f.signal, name="gpu-irq")

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    d = ex.findings[0].details
    assert d["call"] == "mutex_lock"
    assert d["irqs_disabled"] is True
    whats = [(a["what"], a["name"]) for a in d["atomic"]]
    assert whats[0] == ("hardirq", "gpu-irq")
    assert ("spinlock", "ring0.fence_lock") in whats


def test_callback_that_sleeps_from_process_context_is_still_atomic() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        f.add_callback(lambda fence, cb: k.msleep(1))
        f.signal()

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    assert ex.findings[0].details["atomic"][-1] == {
        "what": "spinlock",
        "name": "ring0.fence_lock",
        "site": ex.findings[0].details["atomic"][-1]["site"],
    }


def test_signal_runs_inside_a_signalling_section() -> None:
    held: list[list[tuple[str, int]]] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        f.add_callback(lambda fence, cb: held.append([(h.map.name, h.read) for h in k.current.held]))
        f.signal()
        held.append([(h.map.name, h.read) for h in k.current.held])

    run_first(scenario)
    assert held[0][0] == (DMA_FENCE_MAP, 1)  # non-recursive read: begin_signalling
    assert held[1] == []  # and released afterwards


def test_set_error_rules() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        f.set_error(5)  # WARN: not a negative errno; ignored
        assert f.error == 0
        f.set_error(-errno.EIO)
        f.signal()
        assert f.get_status() == -errno.EIO
        f.set_error(-errno.ENOMEM)  # WARN: already signalled
        assert f.error == -errno.EIO

    ex = run_first(scenario)
    assert [f.title for f in ex.findings] == [
        "WARNING: dma_fence_set_error: error 5 not in [-4095, -1]",
        "WARNING: dma_fence_set_error: already signalled",
    ]


def test_wait_outcomes_remaining_timeout_and_interrupt() -> None:
    got: dict[str, object] = {}

    def waiter(k: ds.Kernel, f: DmaFence, key: str, intr: bool, timeout: int | None) -> None:
        try:
            got[key] = f.wait_timeout(intr, timeout)
        except ds.ERESTARTSYS:
            got[key] = "ERESTARTSYS"

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring0")
        f, g, h = tl.create(), tl.create(), tl.create()
        k.spawn(waiter, k, f, "remaining", False, 10 * MS, name="w1")
        k.spawn(waiter, k, g, "timeout", False, 2 * MS, name="w2")
        ti = k.spawn(waiter, k, h, "intr", True, None, name="w3")
        k.spawn(waiter, k, h, "unintr", False, None, name="w4")
        k.msleep(3)
        f.signal()
        k.send_signal(ti)
        k.msleep(1)
        h.signal()
        g.signal()
        got["after"] = f.wait_timeout(False, 0)
        got["after_inf"] = f.wait(False)

    ex = run(scenario, 3)
    assert ex.findings == []
    assert got == {
        "remaining": 7 * MS,
        "timeout": 0,
        "intr": "ERESTARTSYS",
        "unintr": dma.LONG_MAX,
        "after": 1,
        "after_inf": 0,
    }


def test_negative_timeout_is_einval_and_wait_in_atomic_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        with pytest.raises(ds.EINVAL):
            f.wait_timeout(False, -1)
        s = ds.SpinLock("lru_lock")
        f.signal()
        with s:
            f.wait(False)

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    assert ex.findings[0].details["call"] == "dma_fence_wait_timeout"


def test_wait_registers_a_lockdep_wait_on_dma_fence_map() -> None:
    seen: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        f.signal()
        orig = k.lockdep.acquire

        def spy(map: object, **kw: object) -> object:
            seen.append(f"{map.name}:{kw.get('read', 0)}")  # type: ignore[attr-defined]
            return orig(map, **kw)  # type: ignore[arg-type]

        k.lockdep.acquire = spy  # type: ignore[method-assign]
        f.wait(False)

    run_first(scenario)
    assert seen[0] == f"{DMA_FENCE_MAP}:0"  # dma_fence_might_wait: a write acquisition


def test_wait_any() -> None:
    got: list[tuple[int, int | None]] = []

    def scenario(k: ds.Kernel) -> None:
        tl = [dma.FenceContext(f"r{i}") for i in range(3)]
        fs = [t.create() for t in tl]
        assert dma.wait_any_timeout(fs, False, 0) == (0, None)
        t = k.spawn(lambda: (k.msleep(2), fs[2].signal(), k.msleep(1), fs[1].signal()), name="signaller")
        got.append(dma.wait_any_timeout(fs, False, 10 * MS))
        got.append(dma.wait_any_timeout(fs, False, 0))
        got.append(dma.wait_any_timeout([fs[0]], False, 1 * MS))
        with pytest.raises(ds.EINVAL):
            dma.wait_any_timeout([], False, 1)
        fs[0].signal()
        k.join(t)
        assert all(f.cb_list is None for f in fs)

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == [(8 * MS, 2), (1, 2), (0, None)]


def test_never_signalled_only_when_something_depended() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring0", driver="gpu")
        tl.create()  # nobody cares: not a finding
        f = tl.create()
        f.add_callback(lambda fence, cb: None)
        g = tl.create()
        assert g.wait_timeout(False, 1 * MS) == 0
        done = tl.create()
        done.add_callback(lambda fence, cb: None)
        done.signal()

    ex = run_first(scenario)
    assert ex.kinds == ["fence-never-signalled", "fence-never-signalled"]
    assert [(f.details["seqno"], f.details["callbacks"]) for f in ex.findings] == [(2, 1), (3, 0)]
    assert ex.findings[0].title == "dma_fence gpu:ring0 1:2 never signalled"


def test_release_with_pending_callbacks_signals_edeadlk() -> None:
    got: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        f.add_callback(lambda fence, cb: got.append(fence.error))
        f.put()  # the last reference: the fence is freed after the WARN (R11), not touched again

    ex = run_first(scenario)
    assert got == [-errno.EDEADLK]
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: Fence dmabufsim:ring0:1:1 released with pending signals!"


class ArmOps(dma.NamedFenceOps):
    def __init__(self, done: bool) -> None:
        super().__init__("gpu", "arm")
        self.done = done
        self.calls = 0

    def enable_signaling(self, fence: DmaFence) -> bool:
        self.calls += 1
        if self.done:
            fence.set_error(-errno.EIO)
        return not self.done


def test_enable_signaling_called_once_and_false_signals() -> None:
    def scenario(k: ds.Kernel) -> None:
        arm = ArmOps(False)
        f = DmaFence(arm, None, dma.context_alloc(), 1)
        f.add_callback(lambda fence, cb: None)
        f.add_callback(lambda fence, cb: None)
        f.enable_sw_signaling()
        assert arm.calls == 1
        f.signal()
        done = ArmOps(True)
        g = DmaFence(done, None, dma.context_alloc(), 1)
        with pytest.raises(ds.ENOENT):
            g.add_callback(lambda fence, cb: None)
        assert g.signaled_flag and g.get_status() == -errno.EIO

    assert run_first(scenario).findings == []


def test_callback_slot_on_one_fence_at_a_time() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring0")
        f, g = tl.create(), tl.create()
        cb = DmaFenceCb(lambda fence, cb: None)
        f.add_callback(cb)
        with pytest.raises(ds.UsageError):
            g.add_callback(cb)
        f.signal()
        g.add_callback(cb)  # free again once it ran
        g.signal()

    assert run_first(scenario).findings == []


def test_private_stub_and_get_stub() -> None:
    def scenario(k: ds.Kernel) -> None:
        k.msleep(1)
        s = dma.allocate_private_stub(42)
        assert s.signaled_flag and s.get_timestamp() == 42 and s.context == 0
        g = dma.get_stub()
        assert g.get_timestamp() == 1 * MS and g is dma.get_stub()
        with pytest.raises(ds.ENOENT):
            g.add_callback(lambda fence, cb: None)

    assert run_first(scenario).findings == []


def _parts_of(events: list[ds.Event], oid: int, since: int = 0) -> dict[str, list[tuple[str, bool]]]:
    """The events on each declared part of the fence ``oid`` (R12, R13), in order."""
    parts = {"fence": oid, "list": cb_list_oid(oid)}
    parts.update({name: flag_oid(oid, bit) for bit, name in FLAG_NAMES.items()})
    return {name: [(e.op, e.write) for e in events[since:] if e.obj == p] for name, p in parts.items()}


def test_fence_operations_are_scheduling_points_on_the_fence() -> None:
    oid: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        oid.append(f.oid)
        f.is_signaled()
        f.add_callback(lambda fence, cb: None)
        f.signal()

    ex = run_first(scenario, record_trace=True)
    assert ex.events is not None
    assert _parts_of(ex.events, oid[0]) == {
        # error and timestamp: the signal's point and its timestamp (R12)
        "fence": [("dma_fence_signal", True), ("dma_fence_signal", True)],
        # the callback list, a part of its own: the link, the signal's list_replace
        "list": [("dma_fence_add_callback", True), ("dma_fence_signal", True)],
        # SIGNALED: read by is_signaled, add_callback's lockless test and its enable, written by the
        # fence-lock step's test_and_set_bit (R13)
        "SIGNALED": [("dma_fence_is_signaled", False), ("dma_fence_add_callback", False),
                     ("dma_fence_add_callback", False), ("dma_fence_signal", True)],
        "TIMESTAMP": [("dma_fence_signal", True)],
        # ENABLE_SIGNAL: add_callback's test_and_set_bit, the first one writes it
        "ENABLE_SIGNAL": [("dma_fence_add_callback", False), ("dma_fence_enable_signaling", True)],
        "EXPLICIT": [("dma_fence_signal", True)],  # R2's owner, an explicit signal
    }


def test_add_callback_on_an_enabled_fence_writes_only_its_list() -> None:
    """dma_fence_add_callback on an unsignalled fence whose ENABLE_SIGNAL bit is set reads
    ENABLE_SIGNAL and SIGNALED and writes only the callback list; dma_fence_is_signaled reads only
    SIGNALED; a second enable reads both bits (R12, R13)."""
    oid: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        f = dma.FenceContext("ring0").create()
        oid.append(f.oid)
        f.enable_sw_signaling()
        k.event("mark", 0, False)
        f.add_callback(lambda fence, cb: None)
        f.is_signaled()
        f.enable_sw_signaling()
        f.signal()

    ex = run_first(scenario, record_trace=True)
    assert ex.events is not None
    at = next(i for i, e in enumerate(ex.events) if e.op == "mark")
    assert _parts_of(ex.events, oid[0], at) == {
        "fence": [("dma_fence_signal", True), ("dma_fence_signal", True)],
        "list": [("dma_fence_add_callback", True), ("dma_fence_signal", True)],
        "SIGNALED": [("dma_fence_add_callback", False), ("dma_fence_add_callback", False),
                     ("dma_fence_is_signaled", False),
                     ("dma_fence_enable_signaling", False), ("dma_fence_signal", True)],
        "TIMESTAMP": [("dma_fence_signal", True)],
        "ENABLE_SIGNAL": [("dma_fence_add_callback", False), ("dma_fence_enable_signaling", False)],
        "EXPLICIT": [("dma_fence_signal", True)],
    }


def test_signal_from_timer_via_irq_and_determinism() -> None:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring0")
        fs = [tl.create() for _ in range(4)]
        for i, f in enumerate(fs):
            k.add_timer((i + 1) * MS, lambda f=f: k.raise_irq(f.signal, name="irq"))
        for f in fs:
            k.spawn(f.wait, False, name="w")

    a, b = run(scenario, 7), run(scenario, 7)
    assert a.findings == [] and a.trace_digest == b.trace_digest and a.now == 4 * MS
