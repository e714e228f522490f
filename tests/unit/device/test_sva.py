"""SVA bonds (device/sva.py): the IOTLB refill race and the secondary-TLB hook."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.device.device import Device
from dmabufsim.device.sva import iommu_sva_bind_device
from dmabufsim.explore.explorer import explore
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE
from dmabufsim.scenarios import s01_sva
from tests.helpers import run


def test_device_access_walks_the_cpu_page_table_and_faults_in() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev = Device("accel", gpuvm=False)
        p = Process("app")
        a = p.mmap(2 * PAGE_SIZE)
        sva = iommu_sva_bind_device(dev, p.mm)
        sva.dma_write(a + PAGE_SIZE, "dev")  # no PTE yet: a page request faults it in
        out["cpu"] = p.read(a + PAGE_SIZE)
        p.write(a, "cpu")
        out["dev"] = sva.dma_read(a)
        out["stats"] = (sva.nr_walks, sva.nr_iopf, len(sva.iotlb))
        out["err"] = sva.dma_read(a + 8 * PAGE_SIZE)  # outside every VMA: an error response
        sva.unbind()
        p.exit()

    ex = run(scenario)
    assert out == {"cpu": "dev", "dev": "cpu", "stats": (3, 1, 2), "err": None}
    assert [(f.kind, f.details["reason"]) for f in ex.findings] == [("iommu-fault", "PASID page request failed")]


def test_secondary_tlbs_hook_is_proved_coherent() -> None:
    rep = explore(s01_sva.secondary_tlbs, "odpor", budget=500, confirm_cycles=False)
    assert rep.verdict == "exhausted"
    assert rep.phases[0].proved and rep.findings == []


@pytest.mark.parametrize("design", ["range_start", "range_end"])
def test_flush_outside_the_hook_reaches_a_freed_page(design: str) -> None:
    sc = getattr(s01_sva, design)
    rep = explore(sc, "odpor", budget=500, expected=["dma-freed-page", "dirty-while-mapped"], confirm_cycles=False)
    f = rep.by_kind("dma-freed-page")[0]
    assert f.finding.details["device"] == "accel"
    assert f.finding.details["cause"] == "freed"
    assert f.finding.details["owner_at_map"].startswith("app#")
    # The replay token rebuilds the same execution.
    again = ds.Kernel(replay=f.token).run(sc)
    assert "dma-freed-page" in again.kinds


def _reuse(flush: str) -> Any:
    def scenario(k: ds.Kernel) -> None:
        dev = Device("accel", gpuvm=False)
        p = Process("app")
        other = Process("other")
        a = p.mmap(PAGE_SIZE)
        b = other.mmap(PAGE_SIZE)
        p.write(a, "cpu")
        sva = iommu_sva_bind_device(dev, p.mm, flush=flush)

        def unmap_and_reuse() -> None:
            p.munmap(a, PAGE_SIZE)
            other.write(b, "other's data")  # the freed frame is reused (last freed, first reused)

        t_dev = k.spawn(lambda: [sva.dma_write(a, f"dev{i}") for i in range(2)], name="accel")
        t_cpu = k.spawn(unmap_and_reuse, name="munmap")
        k.join(t_dev)
        k.join(t_cpu)
        sva.unbind()
        other.exit()
        p.exit()

    return scenario


def test_refilled_iotlb_reaches_a_reused_page_of_another_process() -> None:
    rep = explore(_reuse("range_start"), "odpor", budget=2000, expected=["dma-foreign-page"], stop_on_first=False,
                  confirm_cycles=False)
    f = rep.by_kind("dma-foreign-page")[0].finding
    assert f.details["cause"] == "reused"
    assert f.details["owner"].startswith("other#") and f.details["owner_at_map"].startswith("app#")
    clean = explore(_reuse("secondary_tlbs"), "odpor", budget=2000, confirm_cycles=False)
    assert clean.verdict == "exhausted" and clean.findings == []
