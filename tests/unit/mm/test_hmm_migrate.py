"""hmm_range_fault, the page lock, device-private pages and migrate_vma (mm/hmm.py, page_lock.py,
memremap.py, migrate_device.py), and the interval-notifier fixes they needed."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.kernel.errors import EBUSY
from dmabufsim.kernel.gfp import GFP_KERNEL
from dmabufsim.mm import notifier_hooks as hooks
from dmabufsim.mm.hmm import (
    HMM_PFN_REQ_FAULT,
    HMM_PFN_REQ_WRITE,
    HMM_PFN_VALID,
    HMM_PFN_WRITE,
    HmmRange,
    hmm_range_fault,
)
from dmabufsim.mm.memory import PTE_DEVICE_PRIVATE, Process
from dmabufsim.mm.memremap import DevicePagemap, DevPagemapOps, is_device_private_page
from dmabufsim.mm.migrate_device import (
    MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    MIGRATE_VMA_SELECT_SYSTEM,
    MigrateVma,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
)
from dmabufsim.mm.mmu_notifier import MMUIntervalNotifier, MMUIntervalNotifierOps
from dmabufsim.mm.page import PAGE_SHIFT, PAGE_SIZE, Page
from dmabufsim.mm.page_lock import PageLocked, lock_page, trylock_page, unlock_page
from tests.helpers import run


class SeqOps(MMUIntervalNotifierOps):
    def __init__(self, lock: ds.Mutex) -> None:
        self.lock = lock

    def invalidate(self, sub: MMUIntervalNotifier, range: hooks.MmuNotifierRange, cur_seq: int) -> bool:
        with self.lock:
            sub.set_seq(cur_seq)
        return True


def test_hmm_range_fault_faults_in_and_reports_write() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(2 * PAGE_SIZE)
        p.write(a, 1)  # page 0 present and writable, page 1 never touched
        sub = MMUIntervalNotifier.insert(p.mm, a, 2 * PAGE_SIZE, SeqOps(ds.Mutex("nl")))
        r = HmmRange(sub, a, a + 2 * PAGE_SIZE, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)
        r.notifier_seq = sub.read_begin()
        p.mm.mmap_lock.down_read()
        hmm_range_fault(r)
        p.mm.mmap_lock.up_read()
        out["pfns"] = r.hmm_pfns
        out["same"] = [r.pages[i] is p.mm.lookup(a + i * PAGE_SIZE) for i in range(2)]
        sub.remove()
        p.exit()

    assert run(scenario).findings == []
    assert out["pfns"] == [HMM_PFN_VALID | HMM_PFN_WRITE] * 2
    assert out["same"] == [True, True]


def test_hmm_range_fault_is_ebusy_after_a_collision_and_needs_mmap_lock() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, 1)
        sub = MMUIntervalNotifier.insert(p.mm, a, PAGE_SIZE, SeqOps(ds.Mutex("nl")))
        r = HmmRange(sub, a, a + PAGE_SIZE)
        r.notifier_seq = sub.read_begin()
        p.madvise(a, PAGE_SIZE)  # an invalidation of the interval: the sequence moves
        p.mm.mmap_lock.down_read()
        try:
            hmm_range_fault(r)
        except EBUSY:
            out["busy"] = True
        p.mm.mmap_lock.up_read()
        r2 = HmmRange(sub, a, a + PAGE_SIZE)
        r2.notifier_seq = sub.read_begin()
        hmm_range_fault(r2)  # without mmap_lock
        sub.remove()
        p.exit()

    ex = run(scenario)
    assert out["busy"] is True
    assert [(f.kind, f.signature) for f in ex.findings] == [("assertion", "assert-held:mmap_lock")]


def test_page_lock_rules() -> None:
    out: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, 1)
        page = p.mm.lookup(a)
        assert page is not None
        out.append(trylock_page(page))
        out.append(trylock_page(page))

        def other() -> None:
            lock_page(page)  # sleeps until the holder unlocks
            out.append(("other locked", PageLocked(page)))
            unlock_page(page)

        t = k.spawn(other, name="other")
        k.msleep(1)
        out.append(("still waiting", PageLocked(page)))
        unlock_page(page)
        k.join(t)
        unlock_page(page)  # R2: not locked any more
        p.exit()

    ex = run(scenario)
    assert out == [True, False, ("still waiting", True), ("other locked", True)]
    assert [(f.kind, f.signature) for f in ex.findings] == [("assertion", "unlock_page-unlocked")]


class Vram(DevPagemapOps):
    """A device that moves a faulted page back with migrate_vma (a minimal migrate_to_ram)."""

    def migrate_to_ram(self, pgmap: DevicePagemap, mm: Any, addr: int, page: Page) -> None:
        args = MigrateVma(mm, addr, addr + PAGE_SIZE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmap_owner=self,
                          fault_page=page)
        migrate_vma_setup(args)
        src = args.src[0]
        if src is not None:
            dst = mm.alloc.alloc_page(GFP_KERNEL, mm)
            trylock_page(dst)
            dst.data = dict(src.data or {})
            args.dst[0] = dst
        migrate_vma_pages(args)
        migrate_vma_finalize(args)


def test_migrate_to_device_memory_and_fault_back() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(2 * PAGE_SIZE)
        p.write(a, "cpu")  # page 1 stays a hole
        ops = Vram()
        pgmap = DevicePagemap("vram", 2, owner=ops, ops=ops)
        mm = p.mm
        mm.mmap_lock.down_read()
        args = MigrateVma(mm, a, a + 2 * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM, pgmap_owner=ops)
        migrate_vma_setup(args)
        out["cpages"] = args.cpages
        for i in range(2):
            dst = pgmap.alloc_page(mm)
            trylock_page(dst)
            src = args.src[i]
            dst.data = dict(src.data) if src is not None and src.data else None
            args.dst[i] = dst
        migrate_vma_pages(args)
        migrate_vma_finalize(args)
        mm.mmap_lock.up_read()
        ptes = [mm.ptes[(a >> PAGE_SHIFT) + i] for i in range(2)]
        out["in_vram"] = [pte.swp == PTE_DEVICE_PRIVATE and is_device_private_page(pte.page) for pte in ptes]
        out["vram_free"] = pgmap.nr_free
        dev_page = ptes[0].page
        dev_page.write(0, "device")  # the device writes its own memory
        out["read"] = p.read(a)  # a CPU fault: migrate_to_ram
        out["back"] = not is_device_private_page(mm.ptes[a >> PAGE_SHIFT].page)
        out["freed"] = dev_page.is_free
        p.exit()
        out["vram_free_end"] = pgmap.nr_free

    assert run(scenario).findings == []
    assert out == {"cpages": 2, "in_vram": [True, True], "vram_free": 0, "read": "device", "back": True,
                   "freed": True, "vram_free_end": 2}


def test_interval_inserted_during_an_invalidation_does_not_unbalance_its_end() -> None:
    """An invalidation started before the mm's first interval insertion ends without uncounting.

    Before the fix, ``invalidate_range_end`` raised ``UsageError`` (a negative active-range count).
    """

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, 1)
        rng = hooks.MmuNotifierRange(p.mm, a, a + PAGE_SIZE, hooks.MmuNotifyEvent.CLEAR)
        from dmabufsim.mm.mmu_notifier import subscriptions

        subscriptions(p.mm, create=True)
        hooks.invalidate_range_start(rng)
        sub = MMUIntervalNotifier.insert(p.mm, a, PAGE_SIZE, SeqOps(ds.Mutex("nl")))
        hooks.invalidate_range_end(rng)
        seq = sub.read_begin()
        assert not sub.check_retry(seq)
        sub.remove()
        p.exit()

    assert run(scenario).findings == []


def test_remove_from_its_own_callback_is_a_recursion_and_a_hang() -> None:
    class Remover(MMUIntervalNotifierOps):
        def invalidate(self, sub: MMUIntervalNotifier, range: hooks.MmuNotifierRange, cur_seq: int) -> bool:
            sub.set_seq(cur_seq)
            sub.remove()
            return True

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, 1)
        MMUIntervalNotifier.insert(p.mm, a, PAGE_SIZE, Remover())
        p.munmap(a, PAGE_SIZE)

    ex = run(scenario)
    assert sorted(f.kind for f in ex.findings) == ["deadlock", "recursive-locking"]
    rec = ex.by_kind("recursive-locking")[0]
    assert "mmu_notifier_invalidate_range_start" in rec.report
