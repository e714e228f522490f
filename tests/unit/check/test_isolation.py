"""The isolation checker on userptr-shaped scenarios: C11/C12/C13/C14 in miniature, and the leak check."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim import mm
from dmabufsim.check import isolation_checker
from dmabufsim.device import Device
from tests.helpers import run_first

P = mm.PAGE_SIZE
GVA = 0x80_0000


def _userptr(k: ds.Kernel, proc: mm.Process, addr: int, n: int, gpu: Device) -> list[mm.Page]:
    """A 2018-style userptr bind: get_user_pages, then map every page for the GPU."""
    pages = mm.get_user_pages_fast(proc.mm, addr, n, mm.FOLL_WRITE)
    gpu.map_pages(GVA, pages)
    return pages


def _i915_release(gpu: Device, pages: list[mm.Page], n: int) -> None:
    """i915's order (C14): unmap everything first, then dirty, mark accessed, put."""
    gpu.unmap_pages(GVA, n)
    for p in pages:
        mm.set_page_dirty(p)
        mm.mark_page_accessed(p)
        mm.put_page(p)


def test_i915_order_is_clean_and_amdgpu_order_is_dirty_while_mapped() -> None:
    def scenario(amdgpu: bool) -> Any:
        def sc(k: ds.Kernel) -> None:
            proc = mm.Process("app")
            a = proc.mmap(2 * P)
            proc.populate(a, 2 * P, value="u")
            gpu = Device("gpu")
            pages = _userptr(k, proc, a, 2, gpu)
            gpu.submit([("write", GVA, "gpu")]).wait()
            if amdgpu:  # the 2018 notifier: dirty and accessed while still mapped
                for p in pages:
                    mm.set_page_dirty(p)
                    mm.mark_page_accessed(p)
            _i915_release(gpu, pages, 2)
            proc.exit()
        return sc

    clean = run_first(scenario(False))
    assert clean.findings == []
    bad = run_first(scenario(True))
    assert bad.kinds == ["dirty-while-mapped"]
    f = bad.findings[0]
    assert f.details["event"] == "dirty"
    assert f.details["devices"] == ["gpu"]
    assert f.details["owner"].startswith("app#")
    assert f.details["mappings"][0]["user_va"] == "0x100000"
    assert f.details["mappings"][0]["state"] == "mapped"


def test_fork_race_gpu_writes_page_now_owned_by_child_is_foreign() -> None:
    """C11: pages looked up before fork(); the parent's write breaks COW; the GPU writes the child's page."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        parent = mm.Process("parent")
        a = parent.mmap(P)
        parent.write(a, "before")
        gpu = Device("gpu")
        pages = _userptr(k, parent, a, 1, gpu)
        child = parent.fork("child")
        parent.write(a, "parent after fork")  # COW: parent gets a new page
        gpu.submit([("write", GVA, "gpu")]).wait()
        out["child_sees"] = child.read(a)
        out["parent_sees"] = parent.read(a)
        _i915_release(gpu, pages, 1)
        child.exit()
        parent.exit()

    ex = run_first(scenario)
    assert ex.kinds == ["dma-foreign-page"]
    d = ex.findings[0].details
    assert d["owner"].startswith("child#") and d["owner_at_map"].startswith("parent#")
    assert d["cause"] == "cow-owner-moved"
    assert d["gen_now"] == d["gen_at_map"]
    assert out == {"child_sees": "gpu", "parent_sees": "parent after fork"}


def test_child_breaking_cow_is_clean_for_the_parent_userptr() -> None:
    def scenario(k: ds.Kernel) -> None:
        parent = mm.Process("parent")
        a = parent.mmap(P)
        parent.write(a, 1)
        gpu = Device("gpu")
        pages = _userptr(k, parent, a, 1, gpu)
        child = parent.fork("child")
        child.write(a, 2)  # the child copies; the parent keeps the GPU's page
        gpu.submit([("read", GVA)]).wait()
        _i915_release(gpu, pages, 1)
        child.exit()
        parent.exit()

    assert run_first(scenario).findings == []


def test_userspace_races_are_incoherence_not_integrity() -> None:
    """C12: mprotect(PROT_READ) and munmap under a pinned userptr: info findings only."""

    def scenario(k: ds.Kernel) -> None:
        proc = mm.Process("app")
        a = proc.mmap(2 * P)
        proc.populate(a, 2 * P, value=0)
        gpu = Device("gpu")
        pages = mm.pin_user_pages_fast(proc.mm, a, 2, mm.FOLL_WRITE | mm.FOLL_LONGTERM)
        gpu.map_pages(GVA, pages)
        proc.mprotect(a, P, mm.PROT_READ)
        gpu.submit([("write", GVA, "ro")]).wait()  # page 0 is read-only to userspace now
        proc.munmap(a + P, P)
        gpu.submit([("write", GVA + P, "gone")]).wait()  # page 1 unmapped, still pinned
        gpu.unmap_pages(GVA, 2)
        mm.unpin_user_pages_dirty_lock(pages, make_dirty=True)
        proc.exit()

    ex = run_first(scenario)
    assert ex.kinds == ["user-incoherence", "user-incoherence"]
    assert [f.details["cause"] for f in ex.findings] == ["the page is mapped read-only",
                                                          "no longer mapped at the address"]
    assert all(f.severity == "info" and not f.is_error for f in ex.findings)
    assert ex.errors == []


def test_put_and_unpin_while_mapped_and_stale_mapping_at_exit() -> None:
    """C3-style "wait, free, keep sg": the references go, the IOMMU entries stay."""

    def scenario(k: ds.Kernel) -> None:
        proc = mm.Process("app")
        a = proc.mmap(2 * P)
        proc.populate(a, 2 * P, value=1)
        gpu = Device("gpu")
        got = mm.get_user_pages_fast(proc.mm, a, 1)
        pinned = mm.pin_user_pages_fast(proc.mm, a + P, 1)
        gpu.map_pages(GVA, got + pinned)
        mm.put_page(got[0])
        mm.unpin_user_page(pinned[0])
        proc.exit()  # the pages are freed now, the IOMMU entries remain
        assert gpu.vm is not None
        gpu.vm.zap_and_flush(GVA, 2)

    ex = run_first(scenario)
    assert ex.kinds == ["dirty-while-mapped", "dirty-while-mapped", "dirty-while-mapped", "stale-mapping"]
    assert [f.details["event"] for f in ex.by_kind("dirty-while-mapped")] == ["released", "unpinned", "freed"]
    s = ex.by_kind("stale-mapping")[0]
    assert s.severity == "warning"
    assert s.details["owner_now"] == "free" and s.details["device"] == "gpu"


def test_leak_check_names_what_teardown_forgot() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = mm.Process("app")
        a = proc.mmap(2 * P)
        gpu = Device("gpu")
        pinned = mm.pin_user_pages_fast(proc.mm, a, 1, mm.FOLL_WRITE)
        gpu.map_pages(GVA, pinned)
        mm.get_user_pages_fast(proc.mm, a + P, 1)
        never = ds.dma.FenceContext("never").create()
        gpu.submit([("write", GVA, 1)], deps=[never])
        proc.exit()

    ex = run_first(scenario)
    leaks = [f.title for f in ex.by_kind("leak")]
    assert leaks == [
        "leak: 1 page(s) still pinned",
        "leak: 1 get_user_pages reference(s) never put",
        "leak: 2 page(s) of exited processes still allocated",
        "leak: 1 IOMMU mapping(s) of gpu not torn down",
        "leak: 1 GPU PTE(s) of gpu.vm not zapped",
        "leak: 1 job(s) of gpu never completed (fences never signalled)",
    ]
    assert ex.kinds.count("fence-never-signalled") == 1


def test_checker_off_reports_nothing_but_faults() -> None:
    counts: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        counts["checker"] = isolation_checker(k)
        gpu = Device("gpu")
        owner = mm.Process("a")
        a = owner.mmap(P)
        owner.write(a, 1)
        (pg,) = mm.get_user_pages_fast(owner.mm, a, 1)
        gpu.map_pages(GVA, [pg])
        pg.put()
        owner.exit()
        gpu.dma_write(GVA, "stray")

    ex = ds.Kernel(strategy=ds.FirstStrategy(), options={"isolation": False}).run(scenario)
    assert ex.findings == []
    assert counts["checker"] is None


def test_statistics_count_every_event() -> None:
    stats: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu")
        bo = mm.Process("bo")
        pages = [mm.alloc_page(ds.kernel.gfp.GFP_KERNEL, bo.mm) for _ in range(3)]
        gpu.map_pages(GVA, pages)
        for p in pages:
            mm.free_page(p)
        gpu.submit([("write", GVA + i * P, i) for i in range(3)]).wait()
        chk = isolation_checker(k)
        assert chk is not None
        stats.update(chk.statistics())
        gpu.unmap_pages(GVA, 3)

    ex = run_first(scenario)
    # One report per (kind, device, owner, cause), every event counted.
    assert ex.kinds == ["dirty-while-mapped", "dma-freed-page"]
    assert stats == {"dirty-while-mapped": 3, "dma-freed-page": 3, "checked": 3}


def test_device_write_to_a_cow_shared_page_is_incoherence_until_someone_copies() -> None:
    """After fork and before any write the GPU writes a frame both processes map: info, not an error."""
    seen: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        parent = mm.Process("parent")
        a = parent.mmap(P)
        parent.write(a, "orig")
        gpu = Device("gpu")
        pages = _userptr(k, parent, a, 1, gpu)
        child = parent.fork("child")
        gpu.submit([("write", GVA, "gpu")]).wait()
        seen["both"] = (parent.read(a), child.read(a))
        _i915_release(gpu, pages, 1)
        child.exit()
        parent.exit()

    ex = run_first(scenario)
    assert ex.kinds == ["user-incoherence"]
    assert ex.findings[0].details["cause"] == "the page is shared copy-on-write"
    assert seen["both"] == ("gpu", "gpu")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["map", "dma", "unmap", "unmap_fast", "flush", "free", "alloc"]),
                          st.integers(0, 2)), max_size=25))
def test_every_access_gets_the_verdict_of_an_independent_oracle(ops: list[tuple[str, int]]) -> None:
    """Random map/unmap/flush/free/reuse sequences: each DMA's outcome matches a model of IOMMU + frames."""
    mismatches: list[str] = []

    class Owner:
        def __init__(self, name: str) -> None:
            self.name, self.oid = name, 0

    def scenario(k: ds.Kernel) -> None:
        mm.init_memory(64)
        dev = Device("dev", gpuvm=False)
        chk = isolation_checker(k)
        assert chk is not None
        owners = [Owner("a"), Owner("b")]
        iova = [0x10_0000 + i * P for i in range(3)]
        # Oracle state: what each slot's page table and IOTLB hold, as (page, owner, gen) at map time.
        pt: dict[int, tuple[mm.Page, object, int]] = {}
        tlb: dict[int, tuple[mm.Page, object, int]] = {}
        held: list[mm.Page] = []
        for n, (op, i) in enumerate(ops):
            if op == "map" and i not in pt:
                page = mm.alloc_page(ds.kernel.gfp.GFP_KERNEL, owners[n % 2])
                held.append(page)
                dev.domain.map(iova[i], page)
                pt[i] = (page, page.owner, page.gen)
            elif op in ("unmap", "unmap_fast"):
                dev.domain.unmap(iova[i], sync=op == "unmap")
                pt.pop(i, None)
                if op == "unmap":
                    tlb.pop(i, None)
            elif op == "flush":
                dev.domain.flush_iotlb()
                tlb.clear()
            elif op == "free" and held:
                mm.free_page(held.pop(0))
            elif op == "alloc":
                held.append(mm.alloc_page(ds.kernel.gfp.GFP_KERNEL, owners[1]))
            elif op == "dma":
                entry = tlb.get(i) or pt.get(i)
                if entry is not None:
                    tlb[i] = entry
                if entry is None:
                    want = "fault"
                elif entry[0].is_free:
                    want = "dma-freed-page"
                elif entry[0].owner is not entry[1] or entry[0].gen != entry[2]:
                    want = "dma-foreign-page"
                else:
                    want = "ok"
                before, faults = dict(chk.counts), dev.nr_faults
                dev.dma_write(iova[i], n)
                if dev.nr_faults != faults:
                    got = "fault"
                else:
                    grew = [kd for kd, c in chk.counts.items() if c != before.get(kd, 0)]
                    got = grew[0] if grew else "ok"
                if got != want:
                    mismatches.append(f"op {n} dma slot {i}: got {got}, oracle {want}")

    ds.Kernel(strategy=ds.FirstStrategy(), options={"leak_check": False}).run(scenario)
    assert mismatches == []


def test_munmap_racing_a_job_on_a_pinned_userptr_is_never_an_integrity_error() -> None:
    """Across schedules: the write lands before munmap (clean) or after (incoherence), never an error."""

    def scenario(k: ds.Kernel) -> None:
        proc = mm.Process("app")
        a = proc.mmap(4 * P)
        proc.populate(a, 4 * P, value=0)
        gpu = Device("gpu")
        pages = mm.pin_user_pages_fast(proc.mm, a, 4, mm.FOLL_WRITE | mm.FOLL_LONGTERM)
        gpu.map_pages(GVA, pages)
        fence = gpu.submit([("write", GVA + i * P, i) for i in range(4)], duration_ns=4_000, slices=4)

        def unmapper() -> None:
            k.nsleep(k.random(6) * 1_000)
            proc.munmap(a, 4 * P)

        t = k.spawn(unmapper, name="munmap")
        fence.wait()
        k.join(t)
        gpu.unmap_pages(GVA, 4)
        mm.unpin_user_pages_dirty_lock(pages, make_dirty=True)
        proc.exit()

    outcomes = set()
    for seed in range(30):
        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.errors == [], (seed, ex.kinds)
        outcomes.add(tuple(ex.kinds))
    assert outcomes == {(), ("user-incoherence",)}


def test_dropping_a_spare_reference_while_mapped_is_fine_the_last_one_is_not() -> None:
    """R4 counts the put/unpin that drops the frame's last driver hold, not a spare lookup's."""

    def scenario(pin: bool, drop_last: bool) -> Any:
        def sc(k: ds.Kernel) -> None:
            proc = mm.Process("app")
            a = proc.mmap(P)
            proc.populate(a, P, value="u")
            gpu = Device("gpu")
            if pin:
                held = mm.pin_user_pages_fast(proc.mm, a, 1, mm.FOLL_WRITE)
                spare = mm.pin_user_pages_fast(proc.mm, a, 1, mm.FOLL_WRITE)  # a second lookup
                gpu.map_pages(GVA, held)
                mm.unpin_user_pages(spare)  # discarded: the first pin still holds the frame
                if drop_last:
                    mm.unpin_user_pages(held)  # the bug: the frame's last pin, while mapped
            else:
                held = mm.get_user_pages_fast(proc.mm, a, 1, mm.FOLL_WRITE)
                spare = mm.get_user_pages_fast(proc.mm, a, 1, mm.FOLL_WRITE)
                gpu.map_pages(GVA, held)
                mm.put_page(spare[0])
                if drop_last:
                    mm.put_page(held[0])
            gpu.unmap_pages(GVA, 1)
            if not drop_last:
                if pin:
                    mm.unpin_user_pages(held)
                else:
                    mm.put_page(held[0])
            proc.exit()
        return sc

    for pin in (False, True):
        assert run_first(scenario(pin, drop_last=False)).findings == [], pin
        bad = run_first(scenario(pin, drop_last=True))
        assert bad.kinds == ["dirty-while-mapped"], pin
        assert bad.findings[0].details["event"] == ("unpinned" if pin else "released")
