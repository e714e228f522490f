"""dma-buf through the reference drivers: pins, re-mapping after moves, teardown of old tables."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
import dmabufsim.check  # (installs the isolation checker)
from dmabufsim.device.ttm import GTT, MemType
from dmabufsim.dma.dma_buf import DMA_BIDIRECTIONAL
from dmabufsim.drivers.amdgpu_exporter import AmdgpuExporter
from dmabufsim.drivers.dma_buf_importers import DynamicImporter, StaticImporter
from tests.helpers import run, run_first


def test_static_attachment_pins_the_bo_in_gtt_until_detach() -> None:
    """dma-buf R4 + amdgpu-exporter R1: a static importer pins; the pinned BO is never evicted (ttm R7)."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        drv = AmdgpuExporter(vram_pages=2)
        bo = drv.create_bo(2, name="scanout", value="px")
        out["before"] = bo.mem_type
        buf = drv.export(bo)
        disp = StaticImporter("display")
        att, sgt = disp.attach(buf)
        out["pinned"] = (bo.mem_type, bo.pin_count, att.sgt is sgt)
        other = drv.create_bo(2, name="other", placement=(MemType.VRAM,))
        out["other"] = other.mem_type
        try:
            drv.move(bo, (MemType.VRAM,))
        except ds.EINVAL:
            out["move"] = "EINVAL"
        disp.release(att, sgt)
        out["after"] = bo.pin_count
        drv.wait_idle()
        buf.put()
        for b in (bo, other):
            drv.destroy(b)
        drv.wait_idle()

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {
        "before": MemType.VRAM, "pinned": (GTT, 1, True), "other": MemType.VRAM, "move": "EINVAL", "after": 0,
    }


def test_old_tables_are_torn_down_by_the_exporter_once_the_move_completed() -> None:
    """ttm R4 / dma-buf R7: the ghost tears down tables of the old pages before freeing them."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        drv = AmdgpuExporter(vram_pages=8)
        bo = drv.create_bo(1, name="b", placement=(GTT,), value="v")
        buf = drv.export(bo)
        imp = DynamicImporter("gpu1")
        att = imp.attach(buf)
        imp.access(att, write=False).wait()  # type: ignore[union-attr]
        first = DynamicImporter.state(att).sgt
        assert first is not None
        old_pages = bo.pages
        drv.move(bo, (MemType.VRAM,))
        out["stale_before_idle"] = (first.stale, first.torn_down, first.mapped)
        drv.wait_idle()
        out["after_idle"] = (first.torn_down, first.mapped, [p.is_free for p in old_pages])
        out["dev_maps"] = [len(p.dev_maps) for p in old_pages]
        imp.release(att)
        buf.put()
        drv.destroy(bo)
        drv.wait_idle()

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {
        "stale_before_idle": (True, False, True),
        "after_idle": (True, False, [True]),
        "dev_maps": [0],
    }


def test_revocation_of_a_shared_buffer_tears_everything_down() -> None:
    """dma-buf R11 with a real importer: after revoke no device mapping of the buffer remains."""
    for seed in range(10):
        out: dict[str, Any] = {}

        def scenario(k: ds.Kernel, out: dict[str, Any] = out) -> None:
            drv = AmdgpuExporter(vram_pages=8)
            bo = drv.create_bo(2, name="b", placement=(GTT,), value="v")
            buf = drv.export(bo)
            imps = [DynamicImporter(f"gpu{i}") for i in (1, 2)]
            atts = [imp.attach(buf) for imp in imps]
            for imp, att in zip(imps, atts, strict=True):
                imp.access(att, write=False, duration_ns=(1 + imps.index(imp)) * 50_000)
            with bo.resv:
                buf.revoke()
                out["idle"] = all(imp.jobs[-1].fence.is_signaled() for imp in imps)
                out["maps"] = [len(a.tables) for a in atts] + [len(p.dev_maps) for p in bo.pages]
                out["access_after"] = [imp.state(a).revoked for imp, a in zip(imps, atts, strict=True)]
            out["none"] = [imp.access(a, write=False) for imp, a in zip(imps, atts, strict=True)]
            for imp, att in zip(imps, atts, strict=True):
                imp.release(att)
            buf.put()
            drv.destroy(bo)
            drv.wait_idle()

        ex = run(scenario, seed=seed)
        assert ex.findings == []
        assert out == {"idle": True, "maps": [0, 0, 0, 0], "access_after": [True, True], "none": [None, None]}


def test_dynamic_importer_maps_bidirectionally_through_its_own_iommu() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        drv = AmdgpuExporter(vram_pages=8)
        bo = drv.create_bo(2, name="b", placement=(GTT,))
        buf = drv.export(bo)
        imp = DynamicImporter("gpu1")
        att = imp.attach(buf)
        with bo.resv:
            sgt = att.map(DMA_BIDIRECTIONAL)
            out["entries"] = [(e.length, imp.dev.domain.translate(e.dma_address).page is e.backing)  # type: ignore[union-attr]
                              for e in sgt.entries]
            att.unmap(sgt, DMA_BIDIRECTIONAL)
            out["after"] = [imp.dev.domain.translate(e.dma_address) for e in sgt.entries]
        att.detach()
        buf.put()
        drv.destroy(bo)

    assert run_first(scenario).findings == []
    assert out == {"entries": [(4096, True), (4096, True)], "after": [None, None]}


def test_importer_that_keeps_its_old_table_after_move_notify_is_caught() -> None:
    """dma-buf R7 broken by the importer: its write goes to the old pages, freed once the move completed."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        drv = AmdgpuExporter(vram_pages=8)
        bo = drv.create_bo(1, name="b", placement=(GTT,), value="v")
        buf = drv.export(bo)
        imp = DynamicImporter("gpu1", iommu=False, remap_on_move=False)
        att = imp.attach(buf)
        imp.access(att, write=False).wait()  # type: ignore[union-attr]
        drv.move(bo, (MemType.VRAM,))
        drv.wait_idle()  # the move completed: the old page is free
        imp.access(att, write=True, value="lost").wait()  # type: ignore[union-attr]
        out["contents"] = [p.read(0) for p in bo.pages]
        imp.release(att)
        buf.put()
        drv.destroy(bo)
        drv.wait_idle()

    ex = run_first(scenario)
    assert ex.kinds == ["dma-freed-page"]
    f = ex.findings[0]
    assert (f.details["device"], f.details["access"], f.details["owner"]) == ("gpu1", "write", "free")
    assert out["contents"] == ["v"]
