"""H7: a refused non-blockable invalidation left the other notifiers without their end (2021).

Source: Sean Christopherson, "mm/mmu_notifiers: ensure range_end() is paired
with range_start()", Message-ID 20210311180057.1582638-1-seanjc@google.com
(Linux 5.12).

The bug, in our words: since H6's fix the OOM reaper calls the notifiers of
an mm in non-blockable mode, and any of them may refuse with ``-EAGAIN``.
The core then returned the error at once -- but the subscribers *before* the
refusing one had already run their ``invalidate_range_start``, and nobody
ever called their ``invalidate_range_end``. A subscriber that counts
invalidations in flight, as KVM does (``mmu_notifier_count``, now
``mmu_invalidate_in_progress``), stays "invalidating" forever: every vCPU
fault on that memory waits for the count to drop and never runs again. The
fix: when a subscriber refuses, call ``invalidate_range_end`` of every
subscriber whose start succeeded (``mmu_notifier`` R4; the old behaviour is
the documented variant R9, ``mmu_notifier_variant(mm, paired_end=False)``).

The experiment: a victim mm mirrored by a KVM-style counting secondary MMU
and by a GPU driver that honours non-blockable ranges (H6's fix); the GPU
driver is busy for a moment, so the reaper's first attempt is refused; a
vCPU faults on the memory.

Designs:

* ``unpaired``: the pre-5.12 core: the vCPU waits for an end that never
  comes (``deadlock``: no thread can run, the waiter is never woken).
* ``paired`` (the fix): clean in every schedule; the reaper succeeds on a
  retry and the vCPU maps its page.
"""

from __future__ import annotations

from ..drivers.secondary_mmu import CountingSecondaryMmu, LockedSecondaryMmu
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.mmu_notifier import MMUNotifier, mmu_notifier_variant
from ..mm.page import PAGE_SIZE, init_memory

#: How long the GPU driver holds its lock (virtual ns): the reaper's first try meets it busy.
DRIVER_WORK_NS = 50_000_000


def _scenario(k: Kernel, paired: bool) -> None:
    init_memory(64)
    proc = Process("vm-guest")
    addr = proc.mmap(PAGE_SIZE)
    proc.populate(addr, PAGE_SIZE, "data")
    mmu_notifier_variant(proc.mm, paired_end=paired)
    kvm = CountingSecondaryMmu("kvm")
    gpu = LockedSecondaryMmu("gpu_svm", honour_blockable=True)
    MMUNotifier(kvm).register(proc.mm)
    MMUNotifier(gpu).register(proc.mm)
    k.spawn(gpu.work, DRIVER_WORK_NS, name="driver")
    k.spawn(proc.mm.oom_reap_task, name="oom_reaper")
    k.spawn(kvm.map, addr, name="vcpu")


def unpaired(k: Kernel) -> None:
    """The notifier core before 5.12: a refusal ends none of the started subscribers."""
    _scenario(k, False)


def paired(k: Kernel) -> None:
    """The notifier core since 5.12: a refusal ends the subscribers whose start succeeded."""
    _scenario(k, True)


CLAIMS = [
    {
        "id": "H7",
        "design": "unpaired",
        "scenario": unpaired,
        "expected": {"kinds": ["deadlock"]},
        "budget": 200,
    },
    {
        "id": "H7",
        "design": "paired",
        "scenario": paired,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 12 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 500,
    },
]
