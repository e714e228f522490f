"""The TTM-like memory manager: placements, LRU, eviction, pipelined and CPU-waited moves."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
import dmabufsim.check
from dmabufsim.device import Device
from dmabufsim.device.ttm import GTT, BufferObject, DeviceCopyEngine, MemType, OperationCtx, TTMDevice
from dmabufsim.dma.resv import DmaResvUsage, reservation_ww_class
from dmabufsim.locking.ww_mutex import WWAcquireCtx
from tests.helpers import run, run_first

VRAM = MemType.VRAM


def _tdev(vram: int = 4, *, pipelined: bool = True, copy_ns: int = 1_000) -> tuple[Device, TTMDevice]:
    dev = Device("gpu")
    return dev, TTMDevice("gpu", DeviceCopyEngine(dev, ns_per_page=copy_ns), vram_pages=vram, pipelined=pipelined)


def _bo(tdev: TTMDevice, size: int, name: str, placement: tuple[MemType, ...] = (VRAM,), value: Any = None
        ) -> BufferObject:
    bo = BufferObject(tdev, size, name=name)
    with bo.resv:
        bo.validate(placement)
        if value is not None:
            for p in bo.pages:
                p.write(0, value)
    return bo


def _drain(k: ds.Kernel, tdev: TTMDevice) -> None:
    while tdev.ghosts:
        k.msleep(1)


def test_validate_places_and_keeps_lru_order() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev(vram=8)
        a, b = _bo(tdev, 2, "a"), _bo(tdev, 2, "b")
        man = tdev.man[VRAM]
        out["lru"] = [r.bo.name for r in man.lru]
        with a.resv:
            a.validate((VRAM,))  # already there: only the LRU position changes
        out["lru2"] = [r.bo.name for r in man.lru]
        out["usage"] = man.usage
        out["where"] = (a.mem_type, b.mem_type)
        for bo in (a, b):
            bo.put()
        out["after"] = man.usage

    assert run_first(scenario).findings == []
    assert out == {"lru": ["a", "b"], "lru2": ["b", "a"], "usage": 4, "where": (VRAM, VRAM), "after": 0}


def test_pressure_evicts_the_lru_head_and_keeps_its_contents() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev(vram=4)
        a = _bo(tdev, 2, "a", value="A")
        b = _bo(tdev, 2, "b", value="B")
        c = _bo(tdev, 2, "c", value="C")
        _drain(k, tdev)
        out["where"] = [bo.mem_type for bo in (a, b, c)]
        out["contents"] = [[p.read(0) for p in bo.pages] for bo in (a, b, c)]
        out["stats"] = tdev.statistics()
        for bo in (a, b, c):
            bo.put()
        _drain(k, tdev)

    assert run_first(scenario).findings == []
    assert out["where"] == [GTT, VRAM, VRAM]
    assert out["contents"] == [["A", "A"], ["B", "B"], ["C", "C"]]
    assert out["stats"]["evictions"] == 1 and out["stats"]["cpu_waits"] == 0


def test_pipelined_move_never_waits_and_frees_old_pages_after_the_fence() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev, tdev = _tdev(vram=8, copy_ns=50_000)
        bo = _bo(tdev, 2, "bo", placement=(GTT,), value="x")
        # A job using the buffer: the move must queue behind it.
        busy = dev.submit([], engine="gfx", duration_ns=100_000)
        with bo.resv:
            bo.resv.reserve_fences(1)
            bo.resv.add_fence(busy, DmaResvUsage.WRITE)
            old = bo.pages
            t0 = k.now
            bo.validate((VRAM,))
            out["cpu_ns"] = k.now - t0
            kernel = bo.resv.get_fences(DmaResvUsage.KERNEL)
        move = kernel[0]
        out["kernel_fences"] = len(kernel)
        out["old_free_before"] = [p.is_free for p in old]
        busy.wait()
        out["move_pending_after_busy"] = not move.is_signaled()
        move.wait()
        out["order"] = busy.timestamp <= move.timestamp
        _drain(k, tdev)
        out["old_free_after"] = [p.is_free for p in old]
        out["contents"] = [p.read(0) for p in bo.pages]
        out["stats"] = tdev.statistics()
        bo.put()

    assert run_first(scenario).findings == []
    assert out["cpu_ns"] == 0
    assert out["kernel_fences"] == 1
    assert out["old_free_before"] == [False, False]
    assert out["move_pending_after_busy"] is True
    assert out["order"] is True
    assert out["old_free_after"] == [True, True]
    assert out["contents"] == ["x", "x"]
    assert out["stats"]["cpu_waits"] == 0 and out["stats"]["ghosts_released"] == 1


def test_non_pipelined_move_blocks_the_cpu_and_frees_at_once() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev, tdev = _tdev(vram=8, pipelined=False, copy_ns=50_000)
        bo = _bo(tdev, 2, "bo", placement=(GTT,), value="y")
        busy = dev.submit([], engine="gfx", duration_ns=100_000)
        with bo.resv:
            bo.resv.reserve_fences(1)
            bo.resv.add_fence(busy, DmaResvUsage.WRITE)
            old = bo.pages
            t0 = k.now
            bo.validate((VRAM,))
            out["cpu_ns"] = k.now - t0
        out["old_free"] = [p.is_free for p in old]
        out["ghosts"] = len(tdev.ghosts)
        out["contents"] = [p.read(0) for p in bo.pages]
        out["stats"] = tdev.statistics()
        bo.put()

    assert run_first(scenario).findings == []
    assert out["cpu_ns"] == 100_000 + 2 * 50_000
    assert out["old_free"] == [True, True] and out["ghosts"] == 0
    assert out["contents"] == ["y", "y"]
    assert out["stats"]["cpu_waits"] == 2 and out["stats"]["cpu_blocked_ns"] == 200_000


def test_space_of_a_pipelined_eviction_carries_its_fence() -> None:
    """R6: the next BO placed in the space left by a pipelined move gets the move fence (KERNEL)."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev(vram=2, copy_ns=50_000)
        a = _bo(tdev, 2, "a", value="A")
        b = _bo(tdev, 2, "b")  # evicts a (pipelined)
        move = tdev.man[VRAM].move
        assert move is not None
        out["b_kernel"] = b.resv.get_fences(DmaResvUsage.KERNEL) == [move]
        _drain(k, tdev)
        for bo in (a, b):
            bo.put()

    assert run_first(scenario).findings == []
    assert out["b_kernel"] is True


def test_pinned_bo_is_never_evicted_or_moved() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev(vram=2)
        a = _bo(tdev, 2, "a")
        with a.resv:
            a.pin()
            try:
                a.validate((GTT,))
            except ds.EINVAL:
                out["move"] = "EINVAL"
        b = BufferObject(tdev, 2, name="b")
        with b.resv:
            try:
                b.validate((VRAM,))
            except ds.ENOMEM:
                out["evict"] = "ENOMEM"
        with a.resv:
            a.unpin()
        with b.resv:
            b.validate((VRAM,))
        out["where"] = (a.mem_type, b.mem_type)
        _drain(k, tdev)
        for bo in (a, b):
            bo.put()

    assert run_first(scenario).findings == []
    assert out == {"move": "EINVAL", "evict": "ENOMEM", "where": (GTT, VRAM)}


def test_validate_without_the_reservation_lock_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev()
        bo = BufferObject(tdev, 1, name="naked")
        bo.validate((GTT,))
        with bo.resv:
            pass
        bo.put()

    ex = run_first(scenario)
    # TTM's own check, then dma_resv's on the fence slot the move reserves.
    assert [f.title for f in ex.findings] == [
        "WARNING: ttm_bo_validate without the BO's reservation lock",
        "WARNING: lockdep_assert_held(reservation_ww_class_mutex) failed",
    ]
    assert ex.findings[0].rule == "ttm R1: BO state changes need the reservation lock"


def test_eviction_under_a_ticket_backs_off_with_the_victims_resv() -> None:
    """R3: a victim held by an older transaction makes the younger one back off (wait-die)."""
    out: dict[str, Any] = {}

    def older(k: ds.Kernel, a: BufferObject, gate: ds.Completion, go: ds.Completion) -> None:
        ctx = WWAcquireCtx(reservation_ww_class)  # the older stamp
        a.resv.lock(ctx)
        gate.complete()
        go.wait_for_completion()
        a.resv.unlock()
        ctx.fini()

    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev(vram=2)
        a = _bo(tdev, 2, "a")
        b = BufferObject(tdev, 2, name="b")
        gate, go = ds.Completion("gate"), ds.Completion("go")
        t = k.spawn(older, k, a, gate, go, name="older")
        gate.wait_for_completion()
        ctx = WWAcquireCtx(reservation_ww_class)
        b.resv.lock(ctx)
        octx = OperationCtx(ticket=ctx, busy=[b])
        try:
            b.validate((VRAM,), octx)
        except ds.EDEADLK:
            out["edeadlk"] = True
        out["contended"] = octx.contended is a.resv
        b.resv.unlock()
        go.complete()
        a.resv.lock_slow(ctx)  # the contended lock first, then ours again
        b.resv.lock(ctx)
        b.validate((VRAM,), octx)
        out["where"] = (a.mem_type, b.mem_type)
        b.resv.unlock()
        a.resv.unlock()
        ctx.fini()
        k.join(t)
        _drain(k, tdev)
        for bo in (a, b):
            bo.put()

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {"edeadlk": True, "contended": True, "where": (GTT, VRAM)}


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["VRAM", "TT", "SYSTEM"])), min_size=1,
                    max_size=12))
def test_accounting_and_contents_survive_any_sequence_of_moves(ops: list[tuple[int, str]]) -> None:
    """Usage equals the listed resources, never exceeds VRAM, and every BO keeps its contents."""
    bad: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev(vram=4)
        bos = [_bo(tdev, 1 + i % 2, f"bo{i}", placement=(GTT,), value=f"v{i}") for i in range(4)]
        for i, where in ops:
            bo = bos[i]
            with bo.resv:
                try:
                    bo.validate((MemType[where],))
                except ds.ENOMEM:
                    pass
            for man in tdev.man.values():
                listed = sum(r.num_pages for r in man.lru if r.accounted)
                if man.usage != listed or (man.size is not None and man.usage > man.size):
                    bad.append(f"{man!r} listed={listed}")
        _drain(k, tdev)
        for i, bo in enumerate(bos):
            if [p.read(0) for p in bo.pages] != [f"v{i}"] * bo.size:
                bad.append(f"{bo.name} lost its contents")
        for bo in bos:
            bo.put()

    ex = run(scenario, seed=len(ops))
    assert ex.findings == []
    assert bad == []


def test_last_put_while_the_resv_is_held_defers_to_a_worker() -> None:
    """``ttm_bo_release`` only trylocks: a busy BO is released by the delayed-destroy worker."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        _, tdev = _tdev(vram=4)
        bo = _bo(tdev, 2, "bo")
        pages = bo.pages
        bo.resv.lock(None)
        bo.put()  # we hold the lock ourselves: cannot release inline
        out["inline"] = [p.is_free for p in pages]
        bo.resv.unlock()
        k.msleep(1)
        out["later"] = [p.is_free for p in pages]
        out["usage"] = tdev.man[VRAM].usage

    assert run_first(scenario).findings == []
    assert out == {"inline": [False, False], "later": [True, True], "usage": 0}


def test_no_wait_gpu_refuses_to_block_on_a_busy_bo() -> None:
    """``ctx.no_wait_gpu``: a CPU-waited move of a busy BO is ``EBUSY`` instead of a wait (R5)."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev, tdev = _tdev(vram=8, pipelined=False)
        bo = _bo(tdev, 1, "bo", placement=(GTT,))
        busy = dev.submit([], engine="gfx", duration_ns=100_000)
        with bo.resv:
            bo.resv.reserve_fences(1)
            bo.resv.add_fence(busy, DmaResvUsage.READ)
            try:
                bo.validate((VRAM,), OperationCtx(no_wait_gpu=True))
            except ds.EBUSY:
                out["first"] = "EBUSY"
        busy.wait()
        with bo.resv:
            bo.validate((VRAM,), OperationCtx(no_wait_gpu=True))
        out["where"] = bo.mem_type
        out["now"] = k.now
        bo.put()

    assert run_first(scenario).findings == []
    assert out == {"first": "EBUSY", "where": VRAM, "now": 100_000 + 1_000}
