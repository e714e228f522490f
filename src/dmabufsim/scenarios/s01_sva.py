"""S1: an SVA device's IOTLB is flushed between clearing the PTE and freeing the page.

A device bound to a process through a PASID (``iommu_sva_bind_device``)
translates user addresses by walking the *CPU* page table and caches the
result in its IOTLB (ATS). Nothing stops the hardware from walking again
while an invalidation is in progress: between ``invalidate_range_start``
and the PTE clear the PTE is still there, and a flush done in ``start``
is undone by the next walk. The kernel therefore calls
``mmu_notifier_arch_invalidate_secondary_tlbs`` (``invalidate_range``
before 6.6) *after* clearing the PTEs and *before* freeing the pages:
clear PTE -> flush CPU TLB and IOTLB -> free page.

Every row: a process maps one page and writes it; an accelerator is bound
to its mm; thread ``accel`` writes the page twice through the PASID while
thread ``munmap`` unmaps it; then the device is unbound and the process
exits.

* ``secondary-tlbs``: the IOMMU driver flushes in the hook (the kernel's
  design): no finding in any schedule (proved); a device write after the
  unmap gets an error response (``iommu-fault``, info), and a write that
  races the unmap itself may land in the page just before it goes
  (``user-incoherence``, info: userspace racing itself).
* ``range-start``: the IOMMU driver flushes in ``invalidate_range_start``
  only: the device refills its IOTLB before the PTE is cleared, the page
  is freed with the entry still there (``dirty-while-mapped``) and the
  device's next write lands in the free page (``dma-freed-page``).
* ``range-end``: it flushes in ``invalidate_range_end`` only, after the page
  was freed: the same two reports.
"""

from __future__ import annotations

from ..device.device import Device
from ..device.sva import iommu_sva_bind_device
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE
from .catalog import Verdict

#: Device writes racing the unmap.
NR_WRITES = 2


def run_sva_unmap(k: Kernel, flush: str) -> None:
    """The scenario body of every row (and of the benchmark): device writes racing munmap."""
    dev = Device("accel", gpuvm=False)
    proc = Process("app")
    addr = proc.mmap(PAGE_SIZE)
    proc.write(addr, "cpu")
    sva = iommu_sva_bind_device(dev, proc.mm, flush=flush)

    def device() -> None:
        for i in range(NR_WRITES):
            sva.dma_write(addr, f"dev{i}")

    t_dev = k.spawn(device, name="accel")
    t_unmap = k.spawn(proc.munmap, addr, PAGE_SIZE, name="munmap")
    k.join(t_dev)
    k.join(t_unmap)
    sva.unbind()
    proc.exit()


def secondary_tlbs(k: Kernel) -> None:
    """The IOTLB is flushed in arch_invalidate_secondary_tlbs, between the PTE clear and the free: coherent."""
    run_sva_unmap(k, "secondary_tlbs")


def range_start(k: Kernel) -> None:
    """The IOTLB is flushed in invalidate_range_start only: it refills before the PTE is cleared."""
    run_sva_unmap(k, "range_start")


def range_end(k: Kernel) -> None:
    """The IOTLB is flushed in invalidate_range_end only: the page was freed before the flush."""
    run_sva_unmap(k, "range_end")


_BUG = Verdict(kinds=frozenset({"dma-freed-page", "dirty-while-mapped"}))

CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule (56 Mazurkiewicz traces, well under a second).
    {"id": "S1", "design": "secondary-tlbs", "scenario": secondary_tlbs, "expected": Verdict(clean=True),
     "strategy": "odpor", "budget": 500},
    {"id": "S1", "design": "range-start", "scenario": range_start, "expected": _BUG, "strategy": "odpor",
     "budget": 500, "year": 2014, "source": "the IOTLB refill race that mmu_notifier_invalidate_range (v3.19) closed"},
    {"id": "S1", "design": "range-end", "scenario": range_end, "expected": _BUG, "strategy": "odpor",
     "budget": 500, "year": 2014, "source": "the IOTLB refill race that mmu_notifier_invalidate_range (v3.19) closed"},
]
