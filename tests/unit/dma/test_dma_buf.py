"""dma-buf core: export rules, attachments, the locking convention, move_notify, revocation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.dma.dma_buf import (
    DMA_BIDIRECTIONAL,
    DMA_FROM_DEVICE,
    DMA_TO_DEVICE,
    DmaBuf,
    DmaBufAttachment,
    DmaBufAttachOps,
    DmaBufOps,
    DmaBufRevocation,
    DmaDataDirection,
    SgEntry,
    SgTable,
    export,
)
from dmabufsim.dma.fence import FenceContext
from dmabufsim.dma.resv import DmaResvUsage
from tests.helpers import run, run_first


class StaticExporter(DmaBufOps):
    """An exporter without pin/unpin: its memory never moves."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def map_dma_buf(self, attachment: DmaBufAttachment, direction: DmaDataDirection) -> SgTable:
        self.log.append(f"map:{attachment.dev}:{direction.name}")
        return SgTable(attachment, [SgEntry(0x1000, 0x1000)], direction)

    def unmap_dma_buf(self, attachment: DmaBufAttachment, sgt: SgTable, direction: DmaDataDirection) -> None:
        self.log.append(f"unmap:{attachment.dev}")

    def release(self, dmabuf: DmaBuf) -> None:
        self.log.append("release")


class DynamicExporter(StaticExporter):
    """An exporter with pin/unpin (dma_buf_is_dynamic)."""

    def pin(self, attachment: DmaBufAttachment) -> None:
        self.log.append(f"pin:{attachment.dev}")

    def unpin(self, attachment: DmaBufAttachment) -> None:
        self.log.append(f"unpin:{attachment.dev}")


class Importer(DmaBufAttachOps):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def move_notify(self, attachment: DmaBufAttachment) -> None:
        self.log.append(f"move_notify:{attachment.dev}")


class Importer2018(DmaBufAttachOps):
    """An importer written against the March 2018 proposal's callback name."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def invalidate_mappings(self, attachment: DmaBufAttachment) -> None:
        self.log.append(f"invalidate_mappings:{attachment.dev}")


def test_export_rejects_incomplete_ops() -> None:
    class NoMap(DmaBufOps):
        def release(self, dmabuf: DmaBuf) -> None:
            pass

    class HalfDynamic(StaticExporter):
        def pin(self, attachment: DmaBufAttachment) -> None:
            pass

    class CachingDynamic(DynamicExporter):
        cache_sgt_mapping = True

    errors: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        for ops in (NoMap(), HalfDynamic(), CachingDynamic()):
            try:
                export(ops, 4096)
            except ds.EINVAL as e:
                errors.append(type(ops).__name__ + ":" + str(e).split(":")[1].strip().split(" ")[0])
        assert export(StaticExporter(), 4096).is_dynamic is False
        assert export(DynamicExporter(), 4096).is_dynamic is True

    ex = run_first(scenario)
    assert ex.findings == []
    assert errors == ["NoMap:exporter", "HalfDynamic:exporter", "CachingDynamic:exporter"]


def test_mismatch_caches_mapping_and_pins() -> None:
    """Static importer of a dynamic exporter: pinned and mapped at attach, cached (R4, R5)."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        ops = DynamicExporter()
        buf = export(ops, 4096, name="buf")
        att = buf.attach("dev0")
        out["after_attach"] = list(ops.log)
        buf.resv.lock(None)
        a = att.map(DMA_TO_DEVICE)
        b = att.map(DMA_FROM_DEVICE)
        out["same"] = a is b is att.sgt
        att.unmap(a, DMA_TO_DEVICE)
        buf.resv.unlock()
        att.detach()
        buf.put()
        out["log"] = list(ops.log)
        out["pinned"] = att.pinned

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["after_attach"] == ["pin:dev0", "map:dev0:BIDIRECTIONAL"]
    assert out["same"] is True
    assert out["log"] == ["pin:dev0", "map:dev0:BIDIRECTIONAL", "unmap:dev0", "unpin:dev0", "release"]
    assert out["pinned"] == 0


def test_cached_mapping_direction_mismatch_is_ebusy() -> None:
    class Caching(StaticExporter):
        cache_sgt_mapping = True

    got: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        buf = export(Caching(), 4096)
        att = buf.attach("dev0")
        buf.resv.lock(None)
        att.map(DMA_TO_DEVICE)
        try:
            att.map(DMA_FROM_DEVICE)
        except ds.EBUSY:
            got.append("EBUSY")
        buf.resv.unlock()

    assert run_first(scenario).findings == []
    assert got == ["EBUSY"]


def test_dynamic_importer_without_move_notify_is_einval() -> None:
    class Bad(DmaBufAttachOps):
        pass

    got: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        buf = export(DynamicExporter(), 4096)
        try:
            buf.dynamic_attach("dev0", Bad())
        except ds.EINVAL:
            got.append("EINVAL")
        assert buf.attachments == []

    assert run_first(scenario).findings == []
    assert got == ["EINVAL"]


def test_map_without_resv_lock_is_a_finding_not_a_crash() -> None:
    def scenario(k: ds.Kernel) -> None:
        buf = export(DynamicExporter(), 4096, name="shared")
        att = buf.dynamic_attach("dev0", Importer([]))
        sgt = att.map(DMA_BIDIRECTIONAL)
        assert sgt.mapped

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    f = ex.findings[0]
    assert f.title == "WARNING: dma_buf_map_attachment called without the reservation lock held"
    assert f.details["function"] == "dma_buf_map_attachment"
    assert f.rule == "dma-buf R3: locking convention"


def test_attach_with_resv_lock_held_is_a_finding() -> None:
    def scenario(k: ds.Kernel) -> None:
        buf = export(DynamicExporter(), 4096, name="shared")
        buf.resv.lock(None)
        try:
            buf.begin_cpu_access(DMA_FROM_DEVICE)
        finally:
            buf.resv.unlock()

    ex = run_first(scenario)
    assert [f.title for f in ex.findings] == [
        "WARNING: dma_buf_begin_cpu_access called with the reservation lock held"
    ]


def test_move_notify_reaches_dynamic_importers_only_and_2018_alias() -> None:
    log: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        buf = export(DynamicExporter(), 4096)
        buf.dynamic_attach("dyn", Importer(log))
        buf.dynamic_attach("old", Importer2018(log))
        buf.attach("static")
        buf.resv.lock(None)
        g1 = buf.move_notify()
        g2 = buf.invalidate_mappings()
        buf.resv.unlock()
        log.append(f"gen:{g1},{g2}")

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [
        "move_notify:dyn", "invalidate_mappings:old", "move_notify:dyn", "invalidate_mappings:old", "gen:1,2",
    ]


def test_move_notify_without_lock_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        buf = export(DynamicExporter(), 4096)
        buf.dynamic_attach("dyn", Importer([]))
        buf.move_notify()

    ex = run_first(scenario)
    assert [f.details["function"] for f in ex.findings] == ["dma_buf_move_notify"]
    assert ex.findings[0].rule == "dma-buf R7: locking convention"


def test_static_importer_map_waits_for_kernel_fence() -> None:
    """R6: the core waits for the KERNEL fences before a static importer gets its table."""
    times: dict[str, int] = {}

    def signaller(k: ds.Kernel, f: Any) -> None:
        k.msleep(5)
        times["signal"] = k.now
        f.signal()

    def scenario(k: ds.Kernel) -> None:
        buf = export(StaticExporter(), 4096)
        tl = FenceContext("copy")
        f = tl.create()
        buf.resv.lock(None)
        buf.resv.reserve_fences(1)
        buf.resv.add_fence(f, DmaResvUsage.KERNEL)
        buf.resv.unlock()
        k.spawn(signaller, k, f, name="copy-engine")
        att = buf.attach("dev0")
        buf.resv.lock(None)
        att.map(DMA_BIDIRECTIONAL)
        times["mapped"] = k.now
        buf.resv.unlock()

    ex = run_first(scenario)
    assert ex.findings == []
    assert times["mapped"] == times["signal"] == 5 * ds.NSEC_PER_MSEC


def test_release_on_last_put_with_attachment_left_warns() -> None:
    log: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        ops = StaticExporter()
        buf = export(ops, 4096, name="b")
        buf.get()
        buf.attach("dev0")
        buf.put()
        log.extend(ops.log)
        buf.put()
        log.extend(ops.log)

    ex = run_first(scenario)
    assert log == ["release"]
    assert [f.title for f in ex.findings] == ["WARNING: dma-buf released with attachments"]


def test_vmap_is_refcounted() -> None:
    calls: list[str] = []

    class V(StaticExporter):
        def vmap(self, dmabuf: DmaBuf) -> Any:
            calls.append("vmap")
            return "vaddr"

        def vunmap(self, dmabuf: DmaBuf, vaddr: Any) -> None:
            calls.append("vunmap")

    def scenario(k: ds.Kernel) -> None:
        buf = export(V(), 4096)
        buf.resv.lock(None)
        assert buf.vmap() == buf.vmap() == "vaddr"
        buf.vunmap("vaddr")
        buf.vunmap("vaddr")
        buf.vunmap("vaddr")
        buf.resv.unlock()

    ex = run_first(scenario)
    assert calls == ["vmap", "vunmap"]
    assert [f.title for f in ex.findings] == ["kernel BUG: dma_buf_vunmap without a matching vmap"]


class SlowImporter(DmaBufAttachOps):
    """Revokes asynchronously: its worker puts the revocation ``delay_ms`` later."""

    def __init__(self, k: ds.Kernel, delay_ms: int, done: dict[str, int]) -> None:
        self.k = k
        self.delay_ms = delay_ms
        self.done = done

    def move_notify(self, attachment: DmaBufAttachment) -> None:
        pass

    def revoke(self, attachment: DmaBufAttachment, revocation: DmaBufRevocation) -> None:
        def finish() -> None:
            self.k.msleep(self.delay_ms)
            for sgt in list(attachment.tables):
                revocation.teardown(attachment, sgt)
            self.done[str(attachment.dev)] = self.k.now
            revocation.put()

        self.k.spawn(finish, name=f"revoke-{attachment.dev}")


@settings(max_examples=15, deadline=None)
@given(delays=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=4), seed=st.integers(0, 50))
def test_revoke_returns_after_the_slowest_importer(delays: list[int], seed: int) -> None:
    """R11 (claim C2): with the counter, revoke returns when the last importer finished."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        done: dict[str, int] = {}
        buf = export(DynamicExporter(), 4096)
        atts = [buf.dynamic_attach(f"dev{i}", SlowImporter(k, d, done)) for i, d in enumerate(delays)]
        buf.resv.lock(None)
        for a in atts:
            a.map(DMA_BIDIRECTIONAL)
        buf.revoke()
        out["returned"] = k.now
        out["done"] = dict(done)
        out["mapped"] = [len(a.tables) for a in atts]
        buf.resv.unlock()

    ex = run(scenario, seed=seed)
    assert ex.findings == []
    assert out["returned"] == max(delays) * ds.NSEC_PER_MSEC
    assert len(out["done"]) == len(delays)
    assert out["mapped"] == [0] * len(delays)


def test_uncounted_revoke_returns_at_the_first_importer() -> None:
    """The mistaken single completion returns when the *fastest* importer is done."""
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        done: dict[str, int] = {}
        buf = export(DynamicExporter(), 4096)
        for i, d in enumerate((2, 7)):
            buf.dynamic_attach(f"dev{i}", SlowImporter(k, d, done))
        buf.resv.lock(None)
        buf.revoke(counted=False)
        out["returned"] = k.now
        out["done"] = dict(done)
        buf.resv.unlock()
        k.msleep(10)

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["returned"] == 2 * ds.NSEC_PER_MSEC
    assert out["done"] == {"dev0": 2 * ds.NSEC_PER_MSEC}


def test_revoke_refuses_static_attachments() -> None:
    got: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        buf = export(DynamicExporter(), 4096)
        buf.attach("scanout")
        buf.resv.lock(None)
        try:
            buf.revoke()
        except ds.EBUSY:
            got.append("EBUSY")
        buf.resv.unlock()

    assert run_first(scenario).findings == []
    assert got == ["EBUSY"]


def test_use_after_release_is_usage_error() -> None:
    def scenario(k: ds.Kernel) -> None:
        buf = export(StaticExporter(), 4096)
        buf.put()
        with pytest.raises(ds.UsageError):
            buf.attach("dev0")

    assert run_first(scenario).findings == []


#: Functions of the locking convention (dma-buf R3/R7/R8), whether they need the lock, and how to call them.
_CONVENTION: dict[str, bool] = {
    "dma_buf_map_attachment": True,
    "dma_buf_pin": True,
    "dma_buf_move_notify": True,
    "dma_buf_vmap": True,
    "dma_buf_begin_cpu_access": False,
    "dma_buf_end_cpu_access": False,
    "dma_buf_dynamic_attach": False,
}


class _VmapExporter(DynamicExporter):
    def vmap(self, dmabuf: DmaBuf) -> Any:
        return "vaddr"


@settings(max_examples=30, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(sorted(_CONVENTION)), st.booleans()), min_size=1, max_size=10))
def test_locking_convention_findings_are_exactly_the_violations(calls: list[tuple[str, bool]]) -> None:
    """Each call made with the wrong lock state is one finding naming it; right calls are silent (R3).

    (Attaching under the lock is also a real self-deadlock -- the core takes
    the lock itself -- so the property only attaches without it; see the
    next test.)
    """
    calls = [(fn, hold and fn != "dma_buf_dynamic_attach") for fn, hold in calls]

    def scenario(k: ds.Kernel) -> None:
        buf = export(_VmapExporter(), 4096)
        att = buf.dynamic_attach("dev0", Importer([]))
        for fn, hold in calls:
            if hold:
                buf.resv.lock(None)
            if fn == "dma_buf_map_attachment":
                att.map(DMA_BIDIRECTIONAL)
            elif fn == "dma_buf_pin":
                att.pin()
            elif fn == "dma_buf_move_notify":
                buf.move_notify()
            elif fn == "dma_buf_vmap":
                buf.vmap()
            elif fn == "dma_buf_begin_cpu_access":
                buf.begin_cpu_access(DMA_TO_DEVICE)
            elif fn == "dma_buf_end_cpu_access":
                buf.end_cpu_access(DMA_TO_DEVICE)
            else:
                buf.dynamic_attach("dev1", Importer([]))
            if hold:
                buf.resv.unlock()

    ex = run_first(scenario)
    expected = sorted({fn for fn, hold in calls if hold != _CONVENTION[fn]})
    assert ex.kinds == ["assertion"] * len(expected)
    assert sorted(f.details["function"] for f in ex.findings) == expected
    for f in ex.findings:
        assert f.details["resv_held"] is not _CONVENTION[f.details["function"]]


def test_attach_under_the_resv_lock_is_reported_then_deadlocks() -> None:
    def scenario(k: ds.Kernel) -> None:
        buf = export(DynamicExporter(), 4096)
        buf.resv.lock(None)
        buf.dynamic_attach("dev0", Importer([]))

    ex = run_first(scenario)
    assert ex.kinds == ["assertion", "recursive-locking", "deadlock"]
    assert ex.findings[0].details["function"] == "dma_buf_dynamic_attach"
    assert ex.findings[1].details["chain"] == ["reservation_ww_class_mutex", "reservation_ww_class_mutex"]


def test_begin_cpu_access_waits_for_the_implicit_fences_of_its_direction() -> None:
    """R9: a CPU read waits for writers (up to WRITE), a CPU write also for readers (up to READ)."""
    times: dict[str, int] = {}

    def signal_at(k: ds.Kernel, f: Any, ms: int) -> None:
        k.msleep(ms)
        f.signal()

    def scenario(k: ds.Kernel) -> None:
        buf = export(StaticExporter(), 4096)
        tl = FenceContext("gpu")
        writer, reader = tl.create(), FenceContext("gpu2").create()
        buf.resv.lock(None)
        buf.resv.reserve_fences(2)
        buf.resv.add_fence(writer, DmaResvUsage.WRITE)
        buf.resv.add_fence(reader, DmaResvUsage.READ)
        buf.resv.unlock()
        k.spawn(signal_at, k, writer, 2, name="writer-done")
        k.spawn(signal_at, k, reader, 5, name="reader-done")
        buf.begin_cpu_access(DMA_FROM_DEVICE)
        times["cpu-read"] = k.now
        buf.end_cpu_access(DMA_FROM_DEVICE)
        buf.begin_cpu_access(DMA_TO_DEVICE)
        times["cpu-write"] = k.now
        buf.end_cpu_access(DMA_TO_DEVICE)

    assert run_first(scenario).findings == []
    assert times == {"cpu-read": 2 * ds.NSEC_PER_MSEC, "cpu-write": 5 * ds.NSEC_PER_MSEC}
