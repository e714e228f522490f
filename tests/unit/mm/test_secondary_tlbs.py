"""The secondary-TLB hook: clear PTE -> flush secondary TLBs -> free page (memory R10, notifier_hooks R5)."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.kernel.gfp import GFP_KERNEL
from dmabufsim.mm.memory import PTE_MIGRATION, MmStruct, Process
from dmabufsim.mm.migrate_device import (
    MIGRATE_PFN_MIGRATE,
    MIGRATE_VMA_SELECT_SYSTEM,
    MigrateVma,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
)
from dmabufsim.mm.mmu_notifier import MMUNotifier, MMUNotifierOps
from dmabufsim.mm.notifier_hooks import MmuNotifierRange
from dmabufsim.mm.page import PAGE_SHIFT, PAGE_SIZE, Page, owner_name
from dmabufsim.mm.page_lock import trylock_page
from tests.helpers import run


class Recorder(MMUNotifierOps):
    """A secondary MMU that records, at each callback, what the core mm has done so far."""

    def __init__(self, watch: dict[str, Page]) -> None:
        self.watch = watch
        self.log: list[tuple[Any, ...]] = []

    def _state(self, mm: MmStruct) -> tuple[Any, ...]:
        out = []
        for name in sorted(self.watch):
            page = self.watch[name]
            mapped = any(pte.page is page and pte.swp == 0 for pte in mm.ptes.values())
            out.append((name, "mapped" if mapped else "unmapped", "free" if page.is_free else "allocated"))
        return tuple(out)

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        self.log.append(("start", range.event.value, *self._state(range.mm)))

    def invalidate_range_end(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        self.log.append(("end", range.event.value, *self._state(range.mm)))

    def arch_invalidate_secondary_tlbs(self, sub: MMUNotifier, mm: Any, start: int, end: int) -> None:
        self.log.append(("secondary_tlbs", f"{start:#x}", *self._state(mm)))


def _register(mm: MmStruct, rec: Recorder) -> None:
    MMUNotifier(rec).register(mm)


def test_munmap_clears_then_flushes_then_frees() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, 1)
        rec = Recorder({"old": p.mm.lookup(a)})  # type: ignore[dict-item]
        _register(p.mm, rec)
        p.munmap(a, PAGE_SIZE)
        out["log"] = rec.log
        p.exit()

    assert run(scenario).findings == []
    assert out["log"] == [
        ("start", "unmap", ("old", "mapped", "allocated")),
        ("secondary_tlbs", "0x100000", ("old", "unmapped", "allocated")),
        ("end", "unmap", ("old", "unmapped", "free")),
    ]


def test_cow_break_flushes_the_old_page_before_it_goes_to_the_child() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, 1)
        old = p.mm.lookup(a)
        assert old is not None
        child = p.fork("child")
        rec = Recorder({"old": old})
        _register(p.mm, rec)
        p.write(a, 2)  # wp_page_copy: the parent gets a new page, the old one is left to the child
        out["log"] = rec.log
        out["owner"] = owner_name(old.owner)
        child.exit()
        p.exit()

    assert run(scenario).findings == []
    assert out["log"] == [
        ("start", "clear", ("old", "mapped", "allocated")),
        ("secondary_tlbs", "0x100000", ("old", "unmapped", "allocated")),
        ("end", "clear", ("old", "unmapped", "allocated")),
    ]
    assert out["owner"].startswith("child#")


def test_mprotect_and_fork_flush_the_secondary_tlbs_too() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, 1)
        rec = Recorder({})
        _register(p.mm, rec)
        child = p.fork("child")
        p.mprotect(a, PAGE_SIZE, ds.PROT_READ)
        out["log"] = [e[:2] for e in rec.log]
        child.exit()
        p.exit()

    assert run(scenario).findings == []
    assert out["log"] == [
        ("start", "protection_page"), ("secondary_tlbs", "0x100000"), ("end", "protection_page"),
        ("start", "protection_vma"), ("secondary_tlbs", "0x100000"), ("end", "protection_vma"),
    ]


def test_migration_flushes_at_setup_and_frees_the_source_at_finalize() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, "data")
        src = p.mm.lookup(a)
        assert src is not None
        rec = Recorder({"src": src})
        _register(p.mm, rec)
        mm = p.mm
        mm.mmap_lock.down_read()
        args = MigrateVma(mm, a, a + PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM)
        migrate_vma_setup(args)
        out["entry"] = mm.ptes[a >> PAGE_SHIFT].swp
        out["migrate"] = bool(args.src_flags[0] & MIGRATE_PFN_MIGRATE)
        dst = mm.alloc.alloc_page(GFP_KERNEL, mm)
        trylock_page(dst)
        dst.data = dict(src.data or {})
        args.dst[0] = dst
        migrate_vma_pages(args)
        rec.log.append(("before finalize", *rec._state(mm)))
        migrate_vma_finalize(args)
        rec.log.append(("after finalize", *rec._state(mm)))
        mm.mmap_lock.up_read()
        out["log"] = rec.log
        out["read"] = p.read(a)
        out["new"] = mm.lookup(a) is dst
        p.exit()

    assert run(scenario).findings == []
    assert out["entry"] == PTE_MIGRATION and out["migrate"]
    assert out["log"] == [
        ("start", "migrate", ("src", "mapped", "allocated")),
        ("secondary_tlbs", "0x100000", ("src", "unmapped", "allocated")),
        ("end", "migrate", ("src", "unmapped", "allocated")),
        ("before finalize", ("src", "unmapped", "allocated")),
        ("after finalize", ("src", "unmapped", "free")),
    ]
    assert out["read"] == "data" and out["new"]


def test_no_hook_no_scheduling_point() -> None:
    """Without a subscriber the hook costs nothing: munmap's trace is the same step count as before."""

    def scenario(k: ds.Kernel) -> None:
        p = Process("app")
        a = p.mmap(2 * PAGE_SIZE)
        p.populate(a, 2 * PAGE_SIZE, 1)
        p.munmap(a, 2 * PAGE_SIZE)
        p.exit()

    assert run(scenario).steps == run(scenario, seed=3).steps
