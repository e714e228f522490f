"""fork() of device-private and migration entries (memory R13) and migration through the rmap
(migrate_device R6, rmap R4): parent and child share a VRAM page until a write breaks the sharing."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.device.device import Device
from dmabufsim.drivers.svm import SvmDriver
from dmabufsim.kernel.errors import ENOMEM
from dmabufsim.mm import migrate_device
from dmabufsim.mm.memory import PTE_DEVICE_PRIVATE, PTE_MIGRATION, PTE_PRESENT, MmStruct, Process
from dmabufsim.mm.page import PAGE_SHIFT, PAGE_SIZE, Page
from tests.helpers import run


def _gpu_written() -> tuple[Process, int, SvmDriver]:
    """A process with one page the GPU wrote: it lives in VRAM, a device-private entry in the mm."""
    p = Process("app")
    a = p.mmap(PAGE_SIZE)
    svm = SvmDriver(Device("gpu0"), p.mm, vram_pages=1, threads=False)
    svm.gpu_write(a, "gpu")
    return p, a, svm


def _entry(mm: MmStruct, va: int) -> tuple[int, bool]:
    pte = mm.ptes[va >> PAGE_SHIFT]
    return pte.swp, pte.writable


def test_fork_shares_the_device_page_read_only_and_a_child_write_breaks_cow() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p, a, svm = _gpu_written()
        vram = p.mm.lookup(a)
        assert vram is not None
        c = p.fork("child")
        out["fork"] = [_entry(p.mm, a), _entry(c.mm, a), c.mm.lookup(a) is vram, (vram.refcount, len(vram.rmap))]
        out["gpu_read"] = svm.gpu_read(a)  # the owner's device reads its VRAM page (bound read-only)
        out["child_read"] = c.read(a)  # do_swap_page -> migrate_to_ram: unmaps parent and child
        out["back"] = [_entry(p.mm, a), _entry(c.mm, a), p.mm.lookup(a) is c.mm.lookup(a),
                       svm.pgmap.nr_free, vram.is_free]
        c.write(a, "child")  # the RAM page is COW-shared: the child gets its own copy
        out["after_write"] = [p.read(a), c.read(a), p.mm.lookup(a) is not c.mm.lookup(a),
                              _entry(p.mm, a), _entry(c.mm, a)]
        out["gpu_read2"] = svm.gpu_read(a)
        svm.fini()
        c.exit()
        p.exit()

    for seed in range(3):
        assert run(scenario, seed=seed).findings == []
        assert out == {
            "fork": [(PTE_DEVICE_PRIVATE, False), (PTE_DEVICE_PRIVATE, False), True, (2, 2)],
            "gpu_read": "gpu",
            "child_read": "gpu",
            "back": [(PTE_PRESENT, False), (PTE_PRESENT, False), True, 1, True],
            "after_write": ["gpu", "child", True, (PTE_PRESENT, False), (PTE_PRESENT, True)],
            "gpu_read2": "gpu",
        }


def test_a_parent_write_breaks_cow_and_the_child_keeps_its_copy() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p, a, svm = _gpu_written()
        c = p.fork("child")
        p.write(a, "parent")  # migrate back (both mms), then break COW in the parent
        out["reads"] = [p.read(a), c.read(a), c.mm.lookup(a) is not p.mm.lookup(a)]
        child_page = c.mm.lookup(a)
        assert child_page is not None
        out["child_page"] = (child_page.owner is c.mm, len(child_page.rmap), _entry(c.mm, a))
        svm.fini()
        c.exit()
        p.exit()

    assert run(scenario).findings == []
    assert out == {"reads": ["parent", "gpu", True], "child_page": (True, 1, (PTE_PRESENT, False))}


def test_eviction_of_a_shared_device_page_updates_both_mms() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p, a, svm = _gpu_written()
        c = p.fork("child")
        svm.evict(svm.ranges[0])  # migrate_vma on the parent's mm; try_to_migrate finds the child's entry
        out["entries"] = [_entry(p.mm, a), _entry(c.mm, a)]
        page = p.mm.lookup(a)
        assert page is not None
        out["shared"] = (c.mm.lookup(a) is page, page.refcount, len(page.rmap), page.migration_ptes)
        out["counts"] = (svm.nr_evictions, svm.pgmap.nr_free)
        out["reads"] = [c.read(a), p.read(a)]
        svm.fini()
        c.exit()
        p.exit()

    assert run(scenario).findings == []
    assert out == {"entries": [(PTE_PRESENT, False), (PTE_PRESENT, False)], "shared": (True, 2, 2, []),
                   "counts": (1, 1), "reads": ["gpu", "gpu"]}


def _no_bracket_try_to_migrate(page: Page) -> int:
    """A planted mistake: the rmap walk clears the other mms' entries without their notifier bracket."""
    n = 0
    for mm, addr in list(page.rmap):
        page.alloc.k.point("try_to_migrate_one", mm.oid, True)
        n += mm.try_to_migrate_one(page, addr)
    return n


def _parent_gpu_reads_after_child_fault(k: ds.Kernel, out: dict[str, Any]) -> None:
    p, a, svm = _gpu_written()
    c = p.fork("child")
    out["gpu_read"] = svm.gpu_read(a)  # the parent's GPU maps its VRAM page again (read-only)
    out["child_read"] = c.read(a)  # the child's fault migrates the page back, for both mms
    out["gpu_read2"] = svm.gpu_read(a)
    svm.fini()
    c.exit()
    p.exit()


def test_the_migration_tells_the_other_mms_gpu_and_isolation_stays_quiet() -> None:
    out: dict[str, Any] = {}
    assert run(lambda k: _parent_gpu_reads_after_child_fault(k, out)).findings == []
    assert out == {"gpu_read": "gpu", "child_read": "gpu", "gpu_read2": "gpu"}


def test_planted_migration_without_the_other_mms_bracket_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's GPU keeps its VRAM mapping while the child's fault frees the page."""
    monkeypatch.setattr(migrate_device, "try_to_migrate", _no_bracket_try_to_migrate)
    out: dict[str, Any] = {}
    ex = run(lambda k: _parent_gpu_reads_after_child_fault(k, out))
    assert [(f.kind, f.title) for f in ex.findings] == [
        ("dirty-while-mapped", "BUG: page freed while a device can still reach it"),
        ("dma-freed-page", "BUG: DMA read to freed page"),
    ]
    assert ex.findings[0].details["devices"] == ["gpu0.vram"]
    assert ex.findings[1].details["cause"] == "freed"
    assert ex.findings[1].details["user_mm"] == "app"
    assert out == {"gpu_read": "gpu", "child_read": "gpu", "gpu_read2": 0}


def _fork_during_migration(k: ds.Kernel, seen: set[int]) -> None:
    p, a, svm = _gpu_written()
    c = p.fork("child")
    got: dict[str, object] = {}
    t = k.spawn(lambda: got.update(child=c.read(a)), name="child")
    forked: list[Process] = []

    def fork() -> None:
        g = p.fork("grandchild")
        k.event("peek", g.mm.oid, False)  # the test's look at the new page table, declared
        seen.add(g.mm.ptes[a >> PAGE_SHIFT].swp)
        forked.append(g)

    f = k.spawn(fork, name="fork")
    k.join(t)
    k.join(f)
    g = forked[0]
    reads = (got["child"], p.read(a), g.read(a))
    if reads != ("gpu", "gpu", "gpu"):
        k.report("assertion", f"lost data {reads}", signature="fork-migration")
    svm.fini()
    for q in (g, c, p):
        q.exit()


def test_fork_during_a_migration_copies_the_migration_entry_and_finalize_restores_it() -> None:
    """The child's fault migrates the shared page while the parent forks again: every mm ends mapped.

    While the child's migration holds the page, the parent's entry is a migration entry; a fork then
    copies it into the grandchild (no reference), and remove_migration_ptes restores all three.
    """
    seen: set[int] = set()
    rep = ds.explore(lambda k: _fork_during_migration(k, seen), "random", budget=500, confirm_cycles=False)
    assert rep.findings == []
    assert seen == {PTE_DEVICE_PRIVATE, PTE_MIGRATION, PTE_PRESENT}


def test_fork_and_migration_declare_what_they_touch() -> None:
    """--check-accesses: no undeclared access in the fork/migration race (kernel.accesses A1-A5)."""
    seen: set[int] = set()
    for seed in range(25):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(  # type: ignore[arg-type]
            lambda k: _fork_during_migration(k, seen))
        assert ex.findings == [], seed
    assert PTE_MIGRATION in seen


def test_exit_during_a_migration_zaps_the_migration_entry() -> None:
    """The parent exits while the child's fault migrates their shared page: nothing leaks or dangles."""

    def scenario(k: ds.Kernel) -> None:
        p, a, svm = _gpu_written()
        c = p.fork("child")
        svm.fini()
        got: dict[str, object] = {}
        t = k.spawn(lambda: got.update(child=c.read(a)), name="child")
        e = k.spawn(p.exit, name="exit")
        k.join(t)
        k.join(e)
        page = c.mm.lookup(a)
        if got["child"] != "gpu" or page is None or page.migration_ptes or len(page.rmap) != 1:
            k.report("assertion", f"child {got} {page!r}", signature="exit-migration")
        c.exit()

    rep = ds.explore(scenario, "random", budget=100, confirm_cycles=False)
    assert rep.findings == []


def _wait_then_reuse(k: ds.Kernel) -> None:
    """A CPU fault meets the migration entry of an eviction; the freed frame's next user locks it.

    The next user holds the reused frame's lock until the faulting thread is done. A fault that
    found the migration entry must be queued on the page the migration holds (under the page-table
    lock) and be woken by that migration's unlock_page, never wait for the frame's next holder.
    """
    from dmabufsim.mm.page_lock import trylock_page, unlock_page

    p, a, svm = _gpu_written()
    got: dict[str, object] = {}
    e = k.spawn(svm.evict, svm.ranges[0], name="evict")
    c = k.spawn(lambda: got.update(cpu=p.read(a)), name="cpu")

    def next_user() -> None:
        k.join(e)
        try:
            page = svm.pgmap.alloc_page(p.mm)  # the evicted frame, reused
        except ENOMEM:
            return  # the CPU's own fault migrated it and still holds it: nothing to reuse yet
        trylock_page(page)
        k.join(c)
        unlock_page(page)
        page.alloc.put_ref(page)

    n = k.spawn(next_user, name="next-user")
    for t in (n, c):
        k.join(t)
    if got["cpu"] != "gpu":
        k.report("assertion", f"cpu read {got['cpu']!r}", signature="evict-read")
    svm.fini()
    p.exit()


def test_a_fault_waiting_on_a_migration_entry_never_waits_for_the_frames_next_user() -> None:
    rep = ds.explore(_wait_then_reuse, "odpor", budget=300, confirm_cycles=False)
    assert rep.findings == []


def test_a_wait_queued_after_the_page_table_check_waits_for_the_next_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's old wait: found the entry in one step, looked at the page lock in a later one."""
    from dmabufsim.mm import memory, page_lock

    monkeypatch.setattr(memory, "migration_entry_wait_on_locked", page_lock.wait_on_page_locked)
    rep = ds.explore(_wait_then_reuse, "odpor", budget=300, confirm_cycles=False)
    assert [f.finding.kind for f in rep.findings] == ["deadlock"]
    d = rep.findings[0].finding.details
    assert d["blocked"] == {"scenario": "join", "cpu": "wait_on_page_locked", "next-user": "join"}
    assert d["waiting_for"]["cpu"] == "PG_locked pfn 0"
    assert d["holding"]["cpu"] == ["mmap_lock"]


def test_planted_migration_that_unmaps_only_its_own_mm_never_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the rmap walk the parent still maps the page, so migrate_vma_check_page refuses it.

    The child's fault gives the page back and faults again, forever: the explorer's ``livelock``.
    (The refcount check is what keeps it from freeing a page the parent still maps.)
    """
    monkeypatch.setattr(migrate_device, "try_to_migrate", lambda page: 0)
    out: dict[str, Any] = {}
    rep = ds.explore(lambda k: _parent_gpu_reads_after_child_fault(k, out), "random", budget=1, max_steps=3000,
                     confirm_cycles=False)
    assert [(f.finding.kind, f.finding.title) for f in rep.findings] == [
        ("livelock", "livelock: no progress within 3000 scheduling points")]
    assert out == {"gpu_read": "gpu"}
