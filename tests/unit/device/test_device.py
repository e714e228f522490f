"""Devices: jobs doing DMA through GPU VMs and IOMMUs, faults, stale IOTLB/TLB entries, broken devices."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
import dmabufsim.check  # installs the isolation checker
from dmabufsim import mm
from dmabufsim.device import Device
from dmabufsim.dma.fence import DMA_FENCE_FLAG_SIGNALED_BIT, FLAG_NAMES, cb_list_oid, flag_oid
from dmabufsim.kernel.gfp import GFP_KERNEL
from tests.helpers import run, run_first

P = mm.PAGE_SIZE
VA = 0x40_0000


class Bo:
    """A kernel object owning frames (a buffer object)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.oid = ds.current_kernel().new_oid()


def _pages(owner: object, n: int) -> list[mm.Page]:
    return [mm.alloc_page(GFP_KERNEL, owner) for _ in range(n)]


def test_job_writes_reach_exactly_the_intended_frames() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu0")
        bo, other = Bo("bo"), Bo("other")
        target = _pages(bo, 4)
        bystanders = _pages(other, 4)
        gpu.map_pages(VA, target)
        fence = gpu.submit([("write", VA + i * P + 8, f"v{i}") for i in range(4)], duration_ns=40_000)
        out["pending"] = fence.is_signaled()
        fence.wait()
        out["time"] = k.now
        out["target"] = [(p.read(8), p.owner is bo) for p in target]
        out["bystanders"] = [p.data for p in bystanders]
        gpu.unmap_pages(VA, 4)
        for p in target + bystanders:
            mm.free_page(p)

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["pending"] is False
    assert out["time"] == 40_000
    assert out["target"] == [("v0", True), ("v1", True), ("v2", True), ("v3", True)]
    assert out["bystanders"] == [None] * 4


def test_write_after_iommu_unmap_faults_and_lands_nowhere() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev = Device("nic", gpuvm=False)
        bo = Bo("bo")
        (page,) = _pages(bo, 1)
        iova = dev.domain.dma_map_page(page)
        dev.dma_write(iova, "ok")
        dev.domain.dma_unmap_page(iova)
        dev.dma_write(iova, "stray")
        out["data"] = page.read(0)
        out["faults"] = dev.nr_faults
        mm.free_page(page)

    ex = run_first(scenario)
    assert ex.kinds == ["iommu-fault"]
    f = ex.findings[0]
    assert f.severity == "info"
    assert f.details["reason"] == "unmapped IOVA"
    assert f.details["device"] == "nic"
    assert out == {"data": "ok", "faults": 1}


def test_stale_iommu_mapping_after_free_and_reuse_is_foreign_or_freed() -> None:
    def scenario(reuse: bool) -> Any:
        def sc(k: ds.Kernel) -> None:
            mm.init_memory(64)
            dev = Device("gpu0")
            victim, thief = Bo("victim"), Bo("thief")
            (page,) = _pages(victim, 1)
            dev.map_pages(VA, [page])
            mm.free_page(page)  # the driver frees while the IOMMU still maps it
            if reuse:
                (again,) = _pages(thief, 1)
                assert again is page  # LIFO reuse
            dev.submit([("write", VA, "corrupt")]).wait()
        return sc

    freed = run_first(scenario(False))
    assert freed.kinds == ["dirty-while-mapped", "dma-freed-page", "stale-mapping", "leak"]
    f = freed.by_kind("dma-freed-page")[0]
    assert f.details["owner"] == "free"
    assert f.details["owner_at_map"].startswith("victim#")
    assert f.details["gen_now"] == f.details["gen_at_map"] + 1
    assert freed.findings[0].details["event"] == "freed"

    reused = run_first(scenario(True))
    assert reused.kinds == ["dirty-while-mapped", "dma-foreign-page", "stale-mapping", "leak"]
    g = reused.by_kind("dma-foreign-page")[0]
    assert g.details["owner"].startswith("thief#")
    assert g.details["owner_at_map"].startswith("victim#")
    assert g.details["gen_now"] == g.details["gen_at_map"] + 2
    assert g.details["cause"] == "reused"
    assert (g.details["va"], g.details["device"]) == (f"{VA:#x}", "gpu0")
    # The leak check names the mapping that was never torn down: the GPU PTE.
    assert reused.by_kind("leak")[0].title == "leak: 1 GPU PTE(s) of gpu0.vm not zapped"


def test_stale_iotlb_entry_keeps_working_until_flushed() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev = Device("dev", gpuvm=False)
        bo = Bo("bo")
        (page,) = _pages(bo, 1)
        iova = dev.domain.dma_map_page(page)
        dev.dma_write(iova, 1)  # fills the IOTLB
        dev.domain.unmap(iova, sync=False)  # iommu_unmap_fast
        out["pt"] = dev.domain.iova_to_phys(iova)
        dev.dma_write(iova, 2)  # still translated by the IOTLB
        out["stale"] = (page.read(0), len(page.dev_maps))
        dev.domain.flush_iotlb()
        dev.dma_write(iova, 3)
        out["flushed"] = (page.read(0), len(page.dev_maps))
        mm.free_page(page)

    ex = run_first(scenario)
    assert out == {"pt": None, "stale": (2, 1), "flushed": (2, 0)}
    assert ex.kinds == ["iommu-fault"]


def test_gpu_tlb_serves_zapped_pte_until_flush() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu")
        bo = Bo("bo")
        (page,) = _pages(bo, 1)
        gpu.map_pages(VA, [page])
        gpu.dma_write(VA, "a")
        assert gpu.vm is not None
        gpu.vm.zap(VA)
        out["stale_tlb"] = gpu.vm.stale_tlb_entries()
        gpu.dma_write(VA, "b")
        gpu.vm.flush_tlb()
        gpu.dma_write(VA, "c")
        out["data"] = page.read(0)
        gpu.domain.unmap(gpu.domain.live_mappings()[0].iova)
        mm.free_page(page)

    ex = run_first(scenario)
    assert out == {"stale_tlb": 1, "data": "b"}
    assert ex.kinds == ["iommu-fault"]
    assert ex.findings[0].title == "GPU VM fault: DMA write fault (no PTE)"


def test_read_only_mapping_faults_on_write_and_reads_work() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu")
        bo = Bo("bo")
        (page,) = _pages(bo, 1)
        page.write(0, "ro-data")
        gpu.map_pages(VA, [page], writable=False)
        fence = gpu.submit([("read", VA), ("write", VA, "x")])
        fence.wait()
        out["data"] = page.read(0)
        gpu.unmap_pages(VA, 1)
        mm.free_page(page)

    ex = run_first(scenario)
    assert out == {"data": "ro-data"}
    assert ex.kinds == ["iommu-fault"]
    assert ex.findings[0].details["reason"] == "read-only PTE"


def test_jobs_run_in_order_after_dependencies_and_signal_from_irq() -> None:
    order: list[str] = []
    ctx: list[tuple[str, bool]] = []

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu")
        bo = Bo("bo")
        src, dst = _pages(bo, 1), _pages(bo, 1)
        gpu.map_pages(VA, src)
        gpu.map_pages(VA + P, dst)

        def step(name: str) -> Any:
            def fn(job: Any) -> None:
                order.append(f"{name}@{k.now}")
            return fn

        slow = gpu.submit(step("fill"), engine="gfx", duration_ns=50_000)
        slow.add_callback(lambda f, cb: ctx.append(("fill", k.current.in_irq)))
        copy = gpu.submit([("write", VA, "data"), ("copy", VA, VA + P)], engine="copy", deps=[slow],
                          duration_ns=10_000)
        after = gpu.submit(step("gfx2"), engine="gfx", duration_ns=5_000)
        copy.wait()
        after.wait()
        order.append(f"dst={dst[0].read(0)}@{k.now}")
        gpu.unmap_pages(VA, 2)
        for p in src + dst:
            mm.free_page(p)

    for seed in range(5):
        order.clear()
        ctx.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == []
        assert order == ["fill@0", "gfx2@50000", "dst=data@60000"]
        assert ctx == [("fill", True)]


def test_broken_device_keeps_writing_after_teardown() -> None:
    def scenario(stale: bool) -> Any:
        def sc(k: ds.Kernel) -> None:
            mm.init_memory(64)
            gpu = Device("gpu", broken=True, stray_delay_ns=1_000_000)
            owner, later = Bo("userptr"), Bo("innocent")
            (page,) = _pages(owner, 1)
            gpu.map_pages(VA, [page])
            gpu.submit([("write", VA, "job")], duration_ns=1_000).wait()
            # The driver thinks the device is done: teardown, free, memory reused.
            if not stale:
                gpu.unmap_pages(VA, 1)
            mm.free_page(page)
            _pages(later, 1)
            k.msleep(2)  # the stray write happens meanwhile
            if stale:
                gpu.unmap_pages(VA, 1)
        return sc

    clean = run_first(scenario(False))
    assert clean.kinds == ["iommu-fault"]
    assert clean.findings[0].details["stray"] is True
    assert clean.findings[0].title == "GPU VM fault: DMA write fault (no PTE)"

    bad = run_first(scenario(True))
    assert bad.kinds == ["dirty-while-mapped", "dma-foreign-page"]
    d = bad.by_kind("dma-foreign-page")[0].details
    assert (d["stray"], d["cause"]) == (True, "reused")
    assert d["owner"].startswith("innocent#") and d["owner_at_map"].startswith("userptr#")


def test_passthrough_device_reaches_any_frame() -> None:
    def scenario(k: ds.Kernel) -> None:
        dev = Device("legacy", iommu=False, gpuvm=False)
        mine, theirs = Bo("mine"), Bo("theirs")
        (a,) = _pages(mine, 1)
        (b,) = _pages(theirs, 1)
        addr = dev.domain.dma_map_page(a)
        assert addr == a.phys
        dev.dma_write(addr, "mine")
        dev.dma_write(b.phys, "scribble")  # never mapped for the device, and still reached
        assert b.read(0) == "scribble"
        dev.domain.dma_unmap_page(addr)
        mm.free_page(a)
        mm.free_page(b)

    ex = run_first(scenario)
    assert ex.kinds == ["dma-foreign-page"]
    assert ex.findings[0].details["cause"] == "passthrough-unmapped"
    assert ex.findings[0].details["owner"].startswith("theirs#")


def test_device_runs_are_deterministic() -> None:
    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu")
        bo = Bo("bo")
        pages = _pages(bo, 8)
        gpu.map_pages(VA, pages)
        fences = [gpu.submit([("write", VA + (i % 8) * P, i)], engine=("gfx", "copy")[i % 2], duration_ns=1000 * i)
                  for i in range(8)]
        for f in fences:
            f.wait()
        gpu.unmap_pages(VA, 8)
        for p in pages:
            mm.free_page(p)

    a, b = run(scenario, seed=3), run(scenario, seed=3)
    assert a.trace_digest == b.trace_digest
    assert a.findings == [] and b.findings == []
    replay = ds.Kernel(replay=a.token).run(scenario)
    assert replay.trace_digest == a.trace_digest


def test_interrupt_moderation_signals_a_window_of_completions_at_once() -> None:
    times: list[tuple[int, int]] = []

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu", irq_coalesce_ns=10_000)
        bo = Bo("bo")
        (page,) = _pages(bo, 1)
        gpu.map_pages(VA, [page])
        fences = [gpu.submit([("write", VA, i)], duration_ns=1_000) for i in range(4)]
        for i, f in enumerate(fences):
            f.add_callback(lambda fence, cb, i=i: times.append((i, k.now)))
        fences[-1].wait()
        gpu.unmap_pages(VA, 1)
        mm.free_page(page)

    ex = run_first(scenario)
    assert ex.findings == []
    # The first completion interrupts at once; the next three wait for the end of the window.
    assert times == [(0, 1_000), (1, 11_000), (2, 11_000), (3, 11_000)]


def test_mapping_a_free_page_is_reported_and_accesses_judged() -> None:
    def scenario(k: ds.Kernel) -> None:
        dev = Device("dev", gpuvm=False)
        (page,) = _pages(Bo("bo"), 1)
        mm.free_page(page)
        iova = dev.domain.dma_map_page(page)
        dev.dma_write(iova, "x")
        dev.domain.dma_unmap_page(iova)

    ex = run_first(scenario)
    assert ex.kinds == ["assertion", "dma-freed-page"]
    assert ex.findings[0].title == "BUG: IOMMU mapping of a free page"
    assert ex.findings[1].details["owner_at_map"] == "free"


def test_two_threads_asking_for_a_new_engine_get_the_same_one() -> None:
    """Device.engine() starts an engine lazily; a racing second caller must not start another."""
    got: list[object] = []

    def ask(dev: Device) -> None:
        got.append(dev.engine("copy"))

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        a = k.spawn(ask, dev, name="a")
        b = k.spawn(ask, dev, name="b")
        k.join(a)
        k.join(b)
        assert list(dev.engines) == ["copy"]

    for seed in range(30):
        got.clear()
        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.findings == [], (seed, ex.kinds)
        assert len(got) == 2 and got[0] is got[1]


def test_a_job_whose_own_access_faults_is_an_error_and_its_fence_carries_eio() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu0")
        fence = gpu.submit([("write", VA, "lost")], duration_ns=1_000)  # nothing mapped at VA
        fence.wait()
        out["status"] = fence.get_status()

    ex = run_first(scenario)
    assert ex.kinds == ["iommu-fault"]
    f = ex.findings[0]
    assert f.severity == "error"
    assert (f.title, f.details["reason"], f.details["stray"]) == (
        "GPU VM fault: DMA write fault (no PTE)", "no PTE", False)
    assert f.details["job"] == "gpu0.gfx#1"
    assert out["status"] == -5  # -EIO


def test_a_broken_devices_stray_fault_stays_info_and_the_job_completes() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu0", broken=True)
        bo = Bo("bo")
        pages = _pages(bo, 1)
        gpu.map_pages(VA, pages)
        fence = gpu.submit([("write", VA, "v")], duration_ns=1_000)
        fence.wait()
        out["status"] = fence.get_status()
        gpu.unmap_pages(VA, 1)  # the stray repeat of the write faults: isolation held
        k.nsleep(10_000)
        mm.free_page(pages[0])

    ex = run_first(scenario)
    assert ex.kinds == ["iommu-fault"]
    assert ex.findings[0].severity == "info" and ex.findings[0].details["stray"] is True
    assert out["status"] == 1


def test_a_dependency_on_the_same_rings_earlier_job_is_ordered_by_the_ring_not_waited_for() -> None:
    """R1 (``drm_sched_entity_add_dependency_cb``: fences from ourself): the second job names the first's
    fence; the engine runs it right after the first, without a wait on that fence; a dependency of another
    ring is still waited for."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        gpu = Device("gpu0", gpuvm=False)
        other = Device("gpu1", gpuvm=False)
        f1 = gpu.submit([], duration_ns=10_000, name="first")
        f2 = gpu.submit([], duration_ns=10_000, deps=[f1], name="second")
        g = other.submit([], duration_ns=30_000, name="elsewhere")
        f3 = gpu.submit([], duration_ns=10_000, deps=[g], name="third")
        out["fences"] = (f1.oid, g.oid)
        out["engine"] = gpu.engine("gfx").thread.tid
        f2.wait()
        f3.wait()
        out["done"] = (f1.timestamp, f2.timestamp, g.timestamp, f3.timestamp)

    ex = run_first(scenario, record_trace=True)
    assert ex.findings == [] and ex.events is not None
    own, elsewhere = out["fences"]

    def parts(oid: int) -> set[int]:  # the fence's declared parts (dma_fence R12, R13)
        return {oid, cb_list_oid(oid)} | {flag_oid(oid, bit) for bit in FLAG_NAMES}

    waits = {(e.op, e.obj) for e in ex.events if e.tid == out["engine"] and e.op.startswith("dma_fence_")}
    assert not {(op, o) for op, o in waits if op in ("dma_fence_wait", "dma_fence_enable_signaling")
                and o in parts(own)}
    assert ("dma_fence_wait", flag_oid(elsewhere, DMA_FENCE_FLAG_SIGNALED_BIT)) in waits
    assert out["done"] == (10_000, 20_000, 30_000, 40_000)
