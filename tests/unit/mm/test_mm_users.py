"""mm_users (mm/memory.py R7): mmget / mmget_not_zero / mmput, and exit_mmap run by the last mmput."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.mm.mmu_notifier import MMUNotifier
from tests.helpers import run_first
from tests.unit.mm.test_mmu_notifier import Recorder


def test_the_last_mmput_runs_exit_mmap_and_the_notifiers_release_in_its_thread() -> None:
    log: list[Any] = []
    got: list[Any] = []

    def worker(proc: ds.Process) -> None:
        got.append(("worker sees", proc.mm.dead))
        proc.mm.mmput()
        got.append(("worker put", proc.mm.dead, ds.current().name))

    def scenario(k: ds.Kernel) -> None:
        proc = ds.Process("p")
        MMUNotifier(Recorder(log, "drv")).register(proc.mm)
        assert proc.mm.mmget_not_zero()  # a deferred worker pins the address space
        proc.exit()  # not the last user: nothing is torn down yet
        got.append(("exited", proc.mm.dead, proc.mm.mm_users))
        k.join(k.spawn(worker, proc, name="worker"))
        got.append(("after", proc.mm.mmget_not_zero()))

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == [("exited", False, 1), ("worker sees", False), ("worker put", True, "worker"), ("after", False)]
    assert log[0] == ("drv", "release")


def test_mmput_below_zero_and_mmget_on_zero_are_refcount_warnings() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = ds.Process("p")
        proc.exit()
        proc.mm.mmget()
        proc.mm.mmput()

    ex = run_first(scenario)
    assert [(f.kind, f.title) for f in ex.findings] == [
        ("use-after-free", "refcount_t: addition on 0; use-after-free."),
        ("use-after-free", "refcount_t: underflow; use-after-free."),
    ]


def test_mmput_may_sleep() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = ds.Process("p")
        proc.mm.mmget()
        lock = ds.SpinLock("lock")
        lock.lock()
        proc.mm.mmput()
        lock.unlock()
        proc.exit()

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
