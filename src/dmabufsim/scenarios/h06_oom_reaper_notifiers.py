"""H6: the OOM reaper and notifiers that sleep (2018).

Source: commit 93065ac753e4, "mm, oom: distinguish blockable mode for mmu
notifiers" (Michal Hocko, 2018).

The bug, in our words: the OOM reaper frees the memory of a task the OOM
killer chose, so the machine makes progress even while the victim is stuck.
It must not sleep on anything the victim might hold. Address spaces with MMU
notifiers were simply skipped before, because a notifier callback may sleep
on a driver lock; so memory that GPUs or KVM mirrored could not be reaped.
The commit gave ``invalidate_range_start`` a *blockable* flag: the reaper
calls the notifiers in non-blockable mode, a callback that would have to
sleep answers ``-EAGAIN``, the reaper leaves that range alone and tries
again a little later (up to ten times). A notifier that ignores the flag
and takes its mutex anyway sleeps inside the reaper's non-blocking section:
the kernel's ``non_block_start`` / ``might_sleep`` check fires ("BUG:
sleeping function called from invalid context", rule ``mmu_notifier`` R4).

Designs:

* ``blocking-notifier``: the callback takes its mutex whatever the range
  says: ``sleep-in-atomic`` (the non-block section of
  ``mmu_notifier_invalidate_range_start_nonblock``).
* ``honours-blockable`` (93065ac753e4): trylock in a non-blockable range,
  ``EAGAIN`` when busy; the reaper retries after ``HZ/10``: clean, and the
  memory is reaped, in every schedule against the driver's own work under
  its lock.
"""

from __future__ import annotations

from ..drivers.secondary_mmu import LockedSecondaryMmu
from ..kernel.errors import UsageError
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.mmu_notifier import MMUNotifier
from ..mm.page import PAGE_SIZE, init_memory

#: How long the driver holds its lock (virtual ns): shorter than the reaper's ten retries.
DRIVER_WORK_NS = 50_000_000


def oom_reaper(proc: Process) -> None:
    """The ``oom_reaper`` kthread on the victim's mm; the memory must end up reaped."""
    if not proc.mm.oom_reap_task():
        raise UsageError("oom_reaper: unable to reap the victim (the retries ran out)")


def _scenario(k: Kernel, honour: bool) -> None:
    init_memory(64)
    proc = Process("victim")
    addr = proc.mmap(PAGE_SIZE)
    proc.populate(addr, PAGE_SIZE, "data")
    gpu = LockedSecondaryMmu("gpu_svm", honour_blockable=honour)
    gpu.mapped.add(addr)
    MMUNotifier(gpu).register(proc.mm)
    k.spawn(gpu.work, DRIVER_WORK_NS, name="driver")
    k.spawn(oom_reaper, proc, name="oom_reaper")


def blocking_notifier(k: Kernel) -> None:
    """The notifier takes its mutex even in the reaper's non-blockable range."""
    _scenario(k, False)


def honours_blockable(k: Kernel) -> None:
    """The notifier trylocks in a non-blockable range and answers EAGAIN when busy."""
    _scenario(k, True)


CLAIMS = [
    {
        "id": "H6",
        "design": "blocking-notifier",
        "scenario": blocking_notifier,
        "expected": {"kinds": ["sleep-in-atomic"]},
        "budget": 20,
    },
    {
        "id": "H6",
        "design": "honours-blockable",
        "scenario": honours_blockable,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 3 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 200,
    },
]
