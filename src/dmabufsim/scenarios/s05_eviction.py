"""S5: eviction of device memory back to system memory under pressure keeps every page's data.

VRAM is a fixed pool (``DevicePagemap``): when the GPU faults on a range
that should move to VRAM and no page is free, the driver first migrates
the least recently faulted VRAM range back to system memory
(``drm_pagemap_evict_to_ram``: ``migrate_vma_*`` with
``MIGRATE_VMA_SELECT_DEVICE_PRIVATE``), then migrates the new range in.

* ``evict-lru``: one page of VRAM; the GPU writes range A (it moves to
  VRAM), then, on its job thread, range B (A is evicted to make room)
  while the CPU reads A (faulting it back itself if it is still in
  VRAM). The CPU sees A's GPU value; at the end both pages read back as
  the GPU wrote them. Not proved (``proofs.NOT_PROVED`` says why); the
  explorer found two real races of the model's first version here -- a
  page-lock ``trylock`` and a ``pte_same`` check that were separate steps
  from the page-table walk they belong to -- both fixed
  (``migrate_device`` R2, ``memory`` R11).
"""

from __future__ import annotations

from ..device.device import Device
from ..drivers.svm import SvmDriver
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE
from .catalog import Verdict


def _expect(k: Kernel, got: object, want: object, what: str) -> None:
    if got != want:
        k.report("assertion", f"SVM lost a write: {what} reads {got!r}, expected {want!r}",
                 details={"what": what, "got": repr(got), "want": repr(want)},
                 rule="S5: eviction preserves data", signature=f"svm-lost-write:{what}")


def evict_lru(k: Kernel) -> None:
    """Range B's migration evicts range A from a one-page VRAM while the CPU reads A: data preserved."""
    dev = Device("gpu0")
    proc = Process("app")
    addr = proc.mmap(2 * PAGE_SIZE)
    proc.write(addr, "a")
    proc.write(addr + PAGE_SIZE, "b")
    svm = SvmDriver(dev, proc.mm, vram_pages=1, threads=False)
    svm.gpu_write(addr, "A")
    out: dict[str, object] = {}

    def cpu() -> None:
        out["A"] = proc.read(addr)

    t_gpu = k.spawn(svm.gpu_write, addr + PAGE_SIZE, "B", name="gpu-job")
    t_cpu = k.spawn(cpu, name="cpu")
    k.join(t_gpu)
    k.join(t_cpu)
    _expect(k, out["A"], "A", "range A (concurrent read)")
    _expect(k, proc.read(addr), "A", "range A")
    _expect(k, proc.read(addr + PAGE_SIZE), "B", "range B")
    svm.fini()
    proc.exit()


CLAIMS = [
    # Not provable yet (proofs.NOT_PROVED): DPOR deepening exhausts every schedule within 2 preemptions in
    # 988 executions; the budget leaves a quarter more, so the row earns that bound, not a sample.
    {"id": "S5", "design": "evict-lru", "scenario": evict_lru, "expected": Verdict(clean=True),
     "strategy": "dpor", "budget": 1300},
]
