"""iommu R6 / isolation R2: a device mapping is judged for the process it was made for, across fork.

After ``fork`` an anonymous frame is copy-on-write shared and owned by the parent (memory R3). The
child's SVM driver mapping it for the child's GPU used to record the parent as the owner, so the
child's GPU reading its own page after the *parent* broke copy-on-write (the frame is the child's
now) was a false ``dma-foreign-page``, and a write through a mapping of the child's left after the
*child* broke copy-on-write (the frame is the parent's alone) was missed. The driver now tells the
IOMMU mapping which address space it is for.
"""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.device.device import Device
from dmabufsim.drivers.svm import SvmDriver
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE


def _svm_child(who_breaks: str) -> tuple[dict[str, Any], ds.Execution]:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        parent = Process("parent")
        addr = parent.mmap(PAGE_SIZE)
        parent.write(addr, "p")
        child = parent.fork("child")
        svm = SvmDriver(dev, child.mm, vram_pages=1, migrate=False, threads=False)
        out["before"] = svm.gpu_read(addr)  # the child's GPU maps the shared frame (read-only)
        shared = child.mm.lookup(addr)
        assert shared is not None
        out["owner_before"] = shared.owner is parent.mm
        (parent if who_breaks == "parent" else child).write(addr, who_breaks)
        out["owner_after"] = "child" if shared.owner is child.mm else "parent"
        out["after"] = svm.gpu_read(addr)
        svm.fini()
        child.exit()
        parent.exit()

    return out, ds.Kernel(seed=0).run(scenario)


def test_the_childs_gpu_reads_its_own_page_after_the_parent_breaks_cow() -> None:
    out, ex = _svm_child("parent")
    assert ex.findings == []  # before: dma-foreign-page:gpu0:parent#5:cow-owner-moved
    assert out == {"before": "p", "owner_before": True, "owner_after": "child", "after": "p"}


def test_the_childs_gpu_follows_the_childs_cow_break() -> None:
    out, ex = _svm_child("child")
    assert ex.findings == []  # the child's notifier unmapped the shared frame; the GPU faulted the new one
    assert out == {"before": "p", "owner_before": True, "owner_after": "parent", "after": "child"}


def _stale_write(mm_for: str) -> ds.Execution:
    """A mapping of the shared frame for ``mm_for``, left in place (nobody invalidates it) while the
    child breaks copy-on-write; then a device write through it."""

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0", gpuvm=False)
        parent = Process("parent")
        addr = parent.mmap(PAGE_SIZE)
        parent.write(addr, "p")
        child = parent.fork("child")
        page = child.mm.lookup(addr)
        assert page is not None
        iova = dev.domain.dma_map_page(page, True, mm=child.mm if mm_for == "child" else parent.mm)
        child.write(addr, "c")  # the child's copy: the old frame is the parent's alone
        dev.dma_write(iova, "dev")
        dev.domain.dma_unmap_page(iova)
        child.exit()
        parent.exit()

    return ds.Kernel(seed=0).run(scenario)


def test_a_write_for_the_child_landing_in_the_parents_page_is_foreign() -> None:
    ex = _stale_write("child")
    assert [f.kind for f in ex.findings] == ["dma-foreign-page"]  # before: no finding at all
    f = ex.findings[0]
    assert f.signature == "dma-foreign-page:gpu0:child#10:cow-owner-moved:False"
    assert (f.details["owner"], f.details["owner_at_map"]) == ("parent#4", "child#10")


def test_the_same_write_for_the_parent_is_the_parents_own() -> None:
    ex = _stale_write("parent")
    # The parent maps the frame alone now (read-only until it writes): its own device's write is
    # coherent for the kernel (isolation R3: at most a userspace-visible incoherence).
    assert [f.kind for f in ex.findings if f.kind == "dma-foreign-page"] == []
