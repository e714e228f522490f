"""S2: GPU page-table entries are programmed only after ``mmu_interval_read_retry`` under the notifier lock.

``Documentation/mm/hmm.rst``: the driver takes a sequence
(``mmu_interval_read_begin``), looks the pages up with ``hmm_range_fault``
under ``mmap_read_lock``, then takes its notifier lock -- the lock its
``invalidate`` callback takes to bump the sequence and zap the device
mappings -- and only programs the device page table if
``mmu_interval_read_retry`` says nothing invalidated the range meanwhile.

Every row: a process maps one page and writes it; an SVM GPU
(``drivers/svm.py``, system memory only, faults serviced on the faulting
thread) writes it from thread ``gpu-job`` (a GPU page fault: range,
``hmm_range_fault``, bind, write) while thread ``munmap`` unmaps it; then
the driver is torn down and the process exits.

* ``read-retry``: the documented pattern: no finding in any schedule
  (proved); a fault that lost the race to ``munmap`` looks the page up
  again and gets ``EFAULT`` (the job would be killed).
* ``no-read-retry``: the driver binds what ``hmm_range_fault`` returned
  without re-checking the sequence: in the schedule where ``munmap`` frees
  the page between the lookup and the bind, the driver DMA-maps a free
  frame (``assertion`` "BUG: IOMMU mapping of a free page") and the GPU's
  write lands in it (``dma-freed-page``).
"""

from __future__ import annotations

from ..device.device import Device
from ..drivers.svm import NoRetrySvmDriver, SvmDriver
from ..kernel.errors import EFAULT
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE
from .catalog import Verdict


def run_fault_vs_munmap(k: Kernel, cls: type[SvmDriver]) -> dict[str, object]:
    """The scenario body: a GPU fault racing munmap of the page. Returns what the GPU job saw."""
    dev = Device("gpu0")
    proc = Process("app")
    addr = proc.mmap(PAGE_SIZE)
    proc.write(addr, "cpu")
    svm = cls(dev, proc.mm, vram_pages=1, migrate=False, threads=False)
    out: dict[str, object] = {"svm": svm}

    def gpu() -> None:
        try:
            svm.gpu_write(addr, "gpu")
            out["gpu"] = "written"
        except EFAULT:
            out["gpu"] = "EFAULT"

    t_gpu = k.spawn(gpu, name="gpu-job")
    t_unmap = k.spawn(proc.munmap, addr, PAGE_SIZE, name="munmap")
    k.join(t_gpu)
    k.join(t_unmap)
    svm.fini()
    proc.exit()
    return out


def read_retry(k: Kernel) -> None:
    """hmm_range_fault, then read_retry under the notifier lock before binding: coherent."""
    run_fault_vs_munmap(k, SvmDriver)


def no_read_retry(k: Kernel) -> None:
    """Binding hmm_range_fault's pages without re-checking the sequence: the GPU writes a freed page."""
    run_fault_vs_munmap(k, NoRetrySvmDriver)


CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule (334 Mazurkiewicz traces, about 1.5 s).
    {"id": "S2", "design": "read-retry", "scenario": read_retry, "expected": Verdict(clean=True),
     "strategy": "odpor", "budget": 2000},
    {"id": "S2", "design": "no-read-retry", "scenario": no_read_retry,
     "expected": Verdict(kinds=frozenset({"dma-freed-page", "assertion"}), asserts=frozenset({"iommu-map-free"})),
     "strategy": "odpor", "budget": 2000},
]
