"""GEM shmem + PRIME (drivers/gem_shmem.py) and the dma-buf mmap / vmap policy (dma-buf R12, R13)."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.dma import dma_buf as core
from dmabufsim.drivers.gem_shmem import DrmDevice, GemShmemObject, mmap_dma_buf
from dmabufsim.kernel.errors import EINVAL
from dmabufsim.mm import page as mm_page
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE, init_memory
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import modern_dma_buf_mmap as m5
from tests.helpers import run_first


def test_page_shift_is_the_mm_one() -> None:
    assert core.PAGE_SHIFT == mm_page.PAGE_SHIFT


def test_prime_self_import_returns_the_original_object_with_a_reference() -> None:
    out: dict[str, Any] = {}

    def sc(k: ds.Kernel) -> None:
        init_memory(8)
        drm = DrmDevice("gpu0")
        obj = drm.gem_create(2, "bo")
        buf = drm.prime_export(obj)
        assert drm.prime_export(obj) is buf  # one dma-buf per object (obj->dma_buf)
        buf.put()
        refs = obj.refcount
        imported = drm.prime_import(buf)
        out["same"] = imported is obj
        out["refs"] = (refs, obj.refcount)
        out["attachments"] = len(buf.attachments)
        imported.put()
        obj.put()
        buf.put()
        out["freed"] = obj.refcount

    ex = run_first(sc)
    assert ex.findings == []
    assert out == {"same": True, "refs": (2, 3), "attachments": 0, "freed": 0}


def test_prime_import_from_another_device_attaches_and_forwards_mmap() -> None:
    out: dict[str, Any] = {}

    def sc(k: ds.Kernel) -> None:
        init_memory(16)
        exporter, importer = DrmDevice("gpu0"), DrmDevice("gpu1")
        obj = exporter.gem_create(2, "bo")
        buf = exporter.prime_export(obj)
        imported = importer.prime_import(buf)
        out["wrapped"] = (isinstance(imported, GemShmemObject), imported is not obj, imported.resv is obj.resv)
        out["attachments"] = [a.dev for a in buf.attachments]
        proc = Process("app")
        # drm_gem_shmem_mmap of an imported object: dma_buf_mmap(obj->dma_buf, vma, 0).
        addr = proc.mm.mmap(2 * PAGE_SIZE)
        vma = proc.mm.find_vma(addr)
        proc.mm.mmap_lock.down_write()
        imported.mmap(vma)
        proc.mm.mmap_lock.up_write()
        proc.write(addr, "via-import")
        shmem = obj.shmem
        assert shmem is not None
        out["page0"] = shmem.pages[0].read(0)
        proc.exit()
        imported.put()
        out["after_put"] = len(buf.attachments)
        obj.put()
        buf.put()

    ex = run_first(sc)
    assert ex.findings == []
    assert out["wrapped"] == (True, True, True)
    assert [d.name for d in out["attachments"]] == ["gpu1"]
    assert out["page0"] == "via-import"
    assert out["after_put"] == 0


def test_dma_buf_mmap_range_and_missing_op() -> None:
    errors: list[str] = []

    class NoMmap(core.DmaBufOps):
        def map_dma_buf(self, attachment: Any, direction: Any) -> core.SgTable:
            raise AssertionError

        def unmap_dma_buf(self, attachment: Any, sgt: Any, direction: Any) -> None:
            raise AssertionError

        def release(self, dmabuf: Any) -> None:
            pass

    def sc(k: ds.Kernel) -> None:
        init_memory(8)
        drm = DrmDevice("gpu0")
        buf = drm.prime_export(drm.gem_create(2, "bo"))
        proc = Process("app")
        for pgoff, npages in ((1, 2), (-1, 1)):
            with pytest.raises(EINVAL) as e:
                mmap_dma_buf(proc.mm, buf, pgoff=pgoff, npages=npages)
            errors.append(str(e.value))
        other = core.export(NoMmap(), PAGE_SIZE, name="nommap")
        with pytest.raises(EINVAL) as e:
            mmap_dma_buf(proc.mm, other)
        errors.append(str(e.value))

    run_first(sc)
    assert errors == [
        "dma_buf_mmap: pages [1, 3) beyond dmabuf:bo's size 8192 (dma-buf R12)",
        "dma_buf_mmap: pages [-1, 0) beyond dmabuf:bo's size 8192 (dma-buf R12)",
        "dma_buf_mmap: exporter NoMmap has no mmap (dma-buf R12)",
    ]


def test_mmap_and_vmap_unlocked_with_the_lock_held_are_reported() -> None:
    def sc(k: ds.Kernel) -> None:
        init_memory(8)
        drm = DrmDevice("gpu0")
        buf = drm.prime_export(drm.gem_create(2, "bo"))
        buf.resv.lock(None)
        vaddr = buf.vmap()  # R10: with the lock, fine
        assert len(vaddr) == 2 and buf.vmap() is vaddr
        buf.vunmap(vaddr)
        buf.vunmap(vaddr)
        buf.resv.unlock()
        vaddr = buf.vmap_unlocked()
        buf.vunmap_unlocked(vaddr)
        obj = buf.priv
        assert obj.vmap_use_count == 0 and obj.pages_use_count == 0

    ex = run_first(sc)
    assert ex.findings == []

    def held(k: ds.Kernel) -> None:
        init_memory(8)
        drm = DrmDevice("gpu0")
        buf = drm.prime_export(drm.gem_create(2, "bo"))
        buf.resv.lock(None)
        buf.mmap(type("V", (), {"start": 0, "end": PAGE_SIZE, "pgoff": 0, "shmem": None})(), 0)

    ex = run_first(held)
    titles = [f.title for f in ex.findings]
    assert titles[0] == "WARNING: dma_buf_mmap called with the reservation lock held"
    assert ex.findings[0].details["rule"] == "R3"
    # ... and the exporter's own lock then recurses (what the kernel's might_lock warns about).
    assert [f.kind for f in ex.findings[1:]] == ["recursive-locking", "deadlock"]


def test_m5_rows() -> None:
    res = check(discover().select(["M5"]), jobs=1)
    by = {r.row.key: r for r in res.rows}
    clean = by["M5/exporter-locks"]
    assert clean.status == "match" and clean.exhaustive
    broken = by["M5/core-and-exporter-lock"]
    assert broken.status == "match" and broken.found is not None
    assert broken.found.kinds == {"recursive-locking", "deadlock"}


def test_m5_recursion_report() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy()).run(m5.core_and_exporter_lock)
    rec, dead = ex.errors
    assert (rec.kind, rec.title) == ("recursive-locking", "WARNING: possible recursive locking detected")
    assert "reservation_ww_class_mutex" in rec.report
    assert rec.report.count("  lock(reservation_ww_class_mutex);\n") == 2  # the CPU0 table: held, taken again
    assert dead.kind == "deadlock"
    assert "already held by this thread" in dead.report
    assert ds.Kernel(strategy=ds.FirstStrategy()).run(m5.exporter_locks).findings == []
