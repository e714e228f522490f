"""The shared userptr helper (drivers/userptr_helper.py, claim C16) in isolation."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.device.device import Device
from dmabufsim.dma.resv import DmaResvUsage
from dmabufsim.drivers.userptr_common import UserptrBo
from dmabufsim.drivers.userptr_helper import Userptr, notifier_lock
from dmabufsim.kernel.errors import EAGAIN
from dmabufsim.mm import notifier_hooks as hooks
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE
from tests.helpers import run_first


def _setup(npages: int = 2) -> tuple[Process, int, Userptr]:
    dev = Device("gpu0")
    proc = Process("app")
    addr = proc.mmap(npages * PAGE_SIZE)
    proc.populate(addr, npages * PAGE_SIZE, "init")
    return proc, addr, Userptr(UserptrBo(dev, proc.mm, addr, npages, name="up"), notifier_lock())


def test_submit_binds_and_the_job_writes_the_process_pages() -> None:
    seen: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        proc, addr, up = _setup()
        up.submit(up.bo.job_ops("gpu")).wait()
        seen.append((up.bo.bound, proc.read(addr), proc.read(addr + PAGE_SIZE), up.nr_retries))
        up.destroy()
        proc.exit()

    ex = run_first(scenario)
    assert ex.findings == []
    assert seen == [(True, "gpu", "gpu", 0)]


def test_invalidation_waits_then_tears_down_then_dirties() -> None:
    """R2/R3: after munmap's invalidation nothing can reach the pages; dirtying came after the unmap."""
    state: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        proc, addr, up = _setup()
        up.submit(up.bo.job_ops("gpu"))  # the job is still running when munmap comes
        pages = list(up.bo.pages or [])
        proc.munmap(addr, 2 * PAGE_SIZE)
        state.append((up.bo.bound, up.bo.pages, [p.dev_maps for p in pages], [p.dirty or p.is_free for p in pages],
                      up.nr_invalidations, up.bo.resv.test_signaled(DmaResvUsage.BOOKKEEP)))
        up.destroy()
        proc.exit()

    ex = run_first(scenario)
    assert ex.findings == []
    assert state == [(False, None, [[], []], [True, True], 1, True)]


def test_nonblockable_range_is_refused_without_sleeping() -> None:
    got: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        proc, addr, up = _setup()
        up.submit(up.bo.job_ops("gpu")).wait()
        r = hooks.MmuNotifierRange(proc.mm, addr, addr + PAGE_SIZE, hooks.MmuNotifyEvent.UNMAP, blockable=False)
        try:
            hooks.invalidate_range_start(r)
        except EAGAIN:
            got.append("EAGAIN")
        got.append((up.nr_refused, up.bo.bound))
        up.destroy()
        proc.exit()

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == ["EAGAIN", (1, True)]


def test_helper_is_lockdep_clean_against_reclaim_and_fork_over_seeds() -> None:
    """R5: nothing allocates under the notifier lock; fork, munmap and CS together stay clean."""

    def cs(up: Userptr) -> None:
        for v in ("a", "b"):
            up.submit(up.bo.job_ops(v)).wait()

    def scenario(k: ds.Kernel) -> None:
        proc, addr, up = _setup()
        t = k.spawn(cs, up, name="cs")
        child = proc.fork("child")
        proc.write(addr, "cpu")
        k.join(t)
        up.destroy()
        child.exit()
        proc.exit()

    for seed in range(25):
        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.errors == [], (seed, [f.title for f in ex.errors])
        assert "user-incoherence" not in ex.kinds


def test_allocating_under_the_notifier_lock_is_a_lockdep_cycle() -> None:
    """R5 is enforced: a helper variant that allocates under the notifier lock closes
    userptr_notifier_lock -> fs_reclaim -> mmu_notifier_invalidate_range_start -> userptr_notifier_lock."""
    from dmabufsim.kernel.gfp import GFP_KERNEL
    from dmabufsim.mm.page import alloc_page, free_page

    class AllocatingUserptr(Userptr):
        def submit(self, ops: Any, **job: Any) -> Any:
            with self.lock:
                free_page(alloc_page(GFP_KERNEL, self.bo))  # e.g. a page-table page, under the lock
            return super().submit(ops, **job)

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        proc = Process("app")
        addr = proc.mmap(2 * PAGE_SIZE)
        proc.populate(addr, 2 * PAGE_SIZE, "init")
        up = AllocatingUserptr(UserptrBo(dev, proc.mm, addr, 2, name="up"), notifier_lock())
        up.submit(up.bo.job_ops("gpu")).wait()
        proc.munmap(addr, 2 * PAGE_SIZE)
        up.destroy()
        proc.exit()

    ex = run_first(scenario)
    cyc = ex.by_kind("circular-locking")
    assert [f.details["chain"] for f in cyc] == [
        ["userptr_notifier_lock", "fs_reclaim", "mmu_notifier_invalidate_range_start"]
    ]
    assert ex.errors == cyc
