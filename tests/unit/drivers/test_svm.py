"""The SVM driver (drivers/svm.py): fault thread, garbage collector, migration, eviction."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.device.device import Device
from dmabufsim.drivers.svm import SvmDriver
from dmabufsim.kernel.errors import EFAULT
from dmabufsim.mm.memory import PTE_DEVICE_PRIVATE, Process
from dmabufsim.mm.page import PAGE_SHIFT, PAGE_SIZE
from tests.helpers import run


def test_fault_thread_migrates_binds_and_the_cpu_faults_back() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        p.write(a, "cpu")
        svm = SvmDriver(dev, p.mm, vram_pages=1)
        k.join(k.spawn(svm.gpu_write, a, "gpu", name="gpu-job"))
        out["vram"] = p.mm.ptes[a >> PAGE_SHIFT].swp == PTE_DEVICE_PRIVATE
        out["gpu_read"] = k.join(k.spawn(svm.gpu_read, a, name="gpu-job2"))
        out["cpu_read"] = p.read(a)  # migrate_to_ram; the notifier zaps the GPU PTE
        out["gpu_ptes"] = len(dev.vm.ptes) if dev.vm is not None else -1
        out["counts"] = (svm.nr_faults, svm.nr_migrations)
        svm.fini()
        p.exit()

    for seed in range(5):
        assert run(scenario, seed=seed).findings == []
        assert out == {"vram": True, "gpu_read": "gpu", "cpu_read": "gpu", "gpu_ptes": 0, "counts": (1, 1)}


def test_garbage_collector_thread_removes_unmapped_ranges() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        p = Process("app")
        a = p.mmap(2 * PAGE_SIZE)
        p.populate(a, 2 * PAGE_SIZE, "cpu")
        svm = SvmDriver(dev, p.mm, vram_pages=2, migrate=False)
        k.join(k.spawn(lambda: [svm.gpu_write(a + i * PAGE_SIZE, "gpu") for i in range(2)], name="gpu-job"))
        out["ranges"] = len(svm.ranges)
        p.munmap(a, PAGE_SIZE)
        k.msleep(1)  # the collector thread runs
        out["after"] = [(r.start - a) // PAGE_SIZE for r in svm.ranges]
        out["collected"] = svm.nr_collected

        def late() -> None:
            try:
                svm.gpu_write(a, "late")
            except EFAULT:
                out["late"] = "EFAULT"

        k.join(k.spawn(late, name="gpu-job2"))
        svm.fini()
        p.exit()

    for seed in range(5):
        assert run(scenario, seed=seed).findings == []
        assert out == {"ranges": 2, "after": [1], "collected": 1, "late": "EFAULT"}


def test_eviction_makes_room_and_keeps_the_data() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        p = Process("app")
        a = p.mmap(3 * PAGE_SIZE)
        svm = SvmDriver(dev, p.mm, vram_pages=2, threads=False)
        for i in range(3):
            svm.gpu_write(a + i * PAGE_SIZE, f"gpu{i}")
        out["where"] = [p.mm.ptes[(a >> PAGE_SHIFT) + i].swp == PTE_DEVICE_PRIVATE for i in range(3)]
        out["counts"] = (svm.nr_migrations, svm.nr_evictions, svm.pgmap.nr_free)
        out["data"] = [p.read(a + i * PAGE_SIZE) for i in range(3)]
        svm.fini()
        p.exit()

    assert run(scenario).findings == []
    assert out == {"where": [False, True, True], "counts": (3, 1, 0), "data": ["gpu0", "gpu1", "gpu2"]}


def test_eviction_racing_the_cpu_fault_on_the_same_page() -> None:
    """Eviction and a CPU fault migrate one device page concurrently; the page lock lets one win.

    The first version of the model found two ways to lose this race (a trylock and a pte_same check
    made as separate steps from the page-table walk): put_page on a free page and a lost write.
    """

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        p = Process("app")
        a = p.mmap(PAGE_SIZE)
        svm = SvmDriver(dev, p.mm, vram_pages=1, threads=False)
        svm.gpu_write(a, "A")
        out: dict[str, object] = {}
        t = k.spawn(svm.evict, svm.ranges[0], name="evict")
        c = k.spawn(lambda: out.update(cpu=p.read(a)), name="cpu")
        k.join(t)
        k.join(c)
        if (out["cpu"], p.read(a)) != ("A", "A"):
            k.report("assertion", "lost write", signature="svm-lost-write")
        svm.fini()
        p.exit()

    rep = ds.explore(scenario, "random", budget=300, confirm_cycles=False)
    assert rep.findings == []
