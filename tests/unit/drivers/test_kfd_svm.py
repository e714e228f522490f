"""The kfd-like SVM range: the kfd process lives as long as the mm, the deferred work pins the mm."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.drivers.kfd_svm import KfdSvm
from dmabufsim.kernel.workqueue import Workqueue
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE, init_memory


def _setup(design: str) -> tuple[Process, KfdSvm, int, Workqueue]:
    init_memory(16)
    proc = Process("app")
    addr = proc.mmap(2 * PAGE_SIZE)
    proc.populate(addr, 2 * PAGE_SIZE, "data")
    wq = Workqueue("events", workers=1)
    return proc, KfdSvm(proc.mm, addr, 2 * PAGE_SIZE, design=design, wq=wq), addr, wq


def test_a_process_that_never_exits_leaks_its_kfd_process() -> None:
    def scenario(k: ds.Kernel) -> None:
        _setup("mmget-when-queueing")

    ex = ds.Kernel(seed=0).run(scenario)
    assert ex.kinds == ["leak"]
    assert ex.findings[0].title.startswith("kmemleak: unreferenced object kfd_process#")


def test_the_deferred_work_pins_the_mm_until_the_worker_puts_it() -> None:
    users: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        proc, svm, addr, wq = _setup("mmget-when-queueing")
        proc.munmap(addr, PAGE_SIZE)  # UNMAP: queued with mmget_not_zero
        users.append(proc.mm.mm_users)
        wq.flush_workqueue()
        users.append(proc.mm.mm_users)
        proc.exit()  # the last user: exit_mmap releases the kfd process
        users.append(svm.process.count)

    ex = ds.Kernel(strategy=ds.FirstStrategy()).run(scenario)
    assert ex.findings == []
    assert users == [2, 1, 0]


def test_queueing_after_the_mm_is_gone_is_skipped_by_the_fix() -> None:
    seen: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        proc, svm, _addr, _wq = _setup("mmget-when-queueing")
        proc.exit()
        svm.add_list_work("unmap")  # a late invalidation's queueing: mmget_not_zero fails
        seen.append(len(svm.deferred))

    assert ds.Kernel(seed=0).run(scenario).findings == []
    assert seen == [0]
