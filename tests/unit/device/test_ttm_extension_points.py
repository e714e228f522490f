"""The memory manager's public extension points (ttm R8, R9) and the legacy shrinker API (shrinker R5)."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.device import Device
from dmabufsim.device.ttm import BufferObject, DeviceCopyEngine, MemType, OperationCtx, TTMDevice, TTMShrinker
from dmabufsim.device.ttm_resource import Resource
from dmabufsim.kernel.errors import ENOMEM
from dmabufsim.kernel.gfp import GFP_KERNEL
from dmabufsim.mm.gup import FOLL_WRITE, get_user_pages
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE, alloc_page, init_memory, kswapd_reclaim
from dmabufsim.mm.shrinker import LegacyShrinker, ShrinkControl
from tests.helpers import run_first

SYSTEM, TT, VRAM = MemType.SYSTEM, MemType.TT, MemType.VRAM


def _dev(cls: type[TTMDevice] = TTMDevice, **kw: Any) -> TTMDevice:
    dev = Device("gpu")
    return cls("gpu", DeviceCopyEngine(dev), vram_pages=2, **kw)


def test_eviction_valuable_is_asked_and_can_protect_a_bo() -> None:
    asked: list[str] = []

    class KeepScanout(TTMDevice):
        def eviction_valuable(self, bo: BufferObject, ctx: OperationCtx) -> bool:
            asked.append(bo.name)
            return bo.name != "scanout" and super().eviction_valuable(bo, ctx)

    def scenario(k: ds.Kernel) -> None:
        tdev = _dev(KeepScanout)
        a = BufferObject(tdev, 2, name="scanout")
        with a.resv:
            a.validate((VRAM,))
        b = BufferObject(tdev, 2, name="texture")
        with b.resv, pytest.raises(ENOMEM):
            b.validate((VRAM,))  # the only candidate is protected: no space can be made
        assert (a.mem_type, b.mem_type) == (VRAM, None)

    ex = run_first(scenario)
    assert ex.findings == []
    assert asked == ["scanout"]


def test_tt_populate_can_be_a_2016_userptr_calling_gup_under_the_reservation() -> None:
    class UserptrTT(TTMDevice):
        """amdgpu_ttm_tt_pin_userptr of 2016: get_user_pages inside the reserved validate path."""

        proc: Process
        addr: int

        def tt_populate(self, bo: BufferObject, res: Resource) -> None:
            mm = self.proc.mm
            mm.mmap_lock.down_read()
            try:
                res.pages.extend(get_user_pages(mm, self.addr, bo.size, FOLL_WRITE))
            finally:
                mm.mmap_lock.up_read()

    def scenario(k: ds.Kernel) -> None:
        tdev = _dev(UserptrTT, pipelined=False)
        proc = tdev.proc = Process("app")
        tdev.addr = proc.mmap(PAGE_SIZE)
        proc.write(tdev.addr, "user")
        bo = BufferObject(tdev, 1, name="userptr")
        with bo.resv:
            bo.validate((TT,))
        assert bo.pages[0] is proc.mm.lookup(tdev.addr)

    ex = run_first(scenario, prime_lockdep=True)
    # resv -> mmap_lock against the boot-time mmap_lock -> resv: H12's report, written with the hook.
    # (and the gup references the BO keeps at the end are a leak)
    assert ex.kinds == ["circular-locking", "leak"]
    chain = ["mmap_lock", "reservation_ww_class_acquire", "reservation_ww_class_mutex"]
    assert ex.findings[0].details["chain"] == chain


def _idle_system_bo(tdev: TTMDevice) -> BufferObject:
    bo = BufferObject(tdev, 2, name="idle")
    with bo.resv:
        bo.validate((SYSTEM,))
    return bo


def test_ttm_shrinker_releases_idle_backing_with_a_trylock() -> None:
    def scenario(k: ds.Kernel) -> None:
        init_memory(64)
        tdev = _dev()
        TTMShrinker(tdev).register()
        bo = _idle_system_bo(tdev)
        busy = _idle_system_bo(tdev)
        busy.resv.lock()
        assert kswapd_reclaim(8) == 2
        busy.resv.unlock()
        assert bo.resource is None and busy.resource is not None

    assert run_first(scenario).findings == []


def test_reclaim_lock_hook_writes_the_old_blocking_design() -> None:
    class BlockingReclaim(TTMDevice):
        def reclaim_lock(self, bo: BufferObject) -> bool:
            bo.resv.lock()  # a design that blocks in reclaim (claim C5)
            return True

    def scenario(k: ds.Kernel) -> None:
        init_memory(64)
        tdev = _dev(BlockingReclaim)
        TTMShrinker(tdev).register()
        _idle_system_bo(tdev)
        kswapd_reclaim(8)

    ex = run_first(scenario)
    assert ex.kinds == ["circular-locking"]
    assert set(ex.findings[0].details["chain"]) == {"fs_reclaim", "reservation_ww_class_mutex"}


def test_legacy_shrinker_counts_and_scans_through_one_callback() -> None:
    calls: list[int] = []

    class Old(LegacyShrinker):
        def __init__(self) -> None:
            super().__init__("old")
            self.objs = [alloc_page(GFP_KERNEL, self) for _ in range(3)]

        def shrink(self, sc: ShrinkControl) -> int:
            calls.append(sc.nr_to_scan)
            for _ in range(min(sc.nr_to_scan, len(self.objs))):
                page = self.objs.pop()
                page.alloc.free_page(page)
            return len(self.objs)

    def scenario(k: ds.Kernel) -> None:
        init_memory(64)
        old = Old()
        old.register()
        assert kswapd_reclaim(2) == 2
        assert len(old.objs) == 1

    assert run_first(scenario).findings == []
    assert calls[0] == 0 and 2 in calls
