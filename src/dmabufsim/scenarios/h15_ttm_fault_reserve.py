"""H15: TTM's fault handler reserved the buffer under ``mmap_lock`` (2013).

Source: commit c58f009e01c9, "drm/ttm: Remove set_need_resched from the ttm
fault handler" (2013).

The bug, in our words: a CPU fault on a TTM buffer's mmap runs
``ttm_bo_vm_fault`` with ``mmap_lock`` held and reserves the buffer there:
the order is ``mmap_lock -> reservation``. Ioctls reserve buffers and then
read their arguments, relocation lists and the like, from user memory with
``copy_from_user``, which may fault and take ``mmap_lock``: ``reservation
-> mmap_lock``. The two orders close a cycle that lockdep reports (and that
deadlocks for real once a writer of ``mmap_lock``, an ``mmap`` or
``munmap``, queues between them). The handler of the time tried to avoid
the wait with a non-blocking reserve plus ``set_need_resched``, a busy loop
the scheduler rework made unsafe; the fix made the fault *trylock* the
reservation and, when it is busy and the fault may be retried, drop
``mmap_lock``, wait for the buffer to be unreserved without it, and return
``VM_FAULT_RETRY`` so the fault starts over. No ``mmap_lock ->
reservation`` order remains.

These rows run without the boot-time lockdep priming (``dma_resv_lockdep``
came in 2019): the cycle is the one the two 2013 paths make themselves.

Designs:

* ``blocking-reserve``: the fault reserves blockingly: ``circular-locking``
  between ``mmap_lock`` and the reservation class.
* ``trylock-retry`` (c58f009e01c9): trylock, else drop ``mmap_lock``, wait,
  ``VM_FAULT_RETRY``: clean in every schedule against the ioctl.
"""

from __future__ import annotations

from ..drivers.bo_mmap import GemObject, TtmFault, gem_object_with_fault
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, init_memory
from ..mm.uaccess import copy_from_user


def cpu_access(proc: Process, addr: int) -> None:
    """Userspace reads its mmap of the buffer: the first access faults into ``ttm_bo_vm_fault``."""
    proc.read(addr)


def ioctl_reserve_then_copy(proc: Process, bo: GemObject, args: int) -> None:
    """An ioctl that reserves the buffer, then reads its arguments from user memory (may fault)."""
    bo.resv.lock()
    try:
        copy_from_user(proc.mm, args, PAGE_SIZE)
    finally:
        bo.resv.unlock()


def _scenario(k: Kernel, retry: bool) -> None:
    init_memory(64)
    bo = gem_object_with_fault("ttm-bo", 1, TtmFault(retry=retry))
    proc = Process("app")
    addr = bo.mmap(proc)
    args = proc.mmap(PAGE_SIZE)  # the ioctl's argument block, not yet faulted in
    k.spawn(cpu_access, proc, addr, name="cpu-fault")
    k.spawn(ioctl_reserve_then_copy, proc, bo, args, name="ioctl")


def blocking_reserve(k: Kernel) -> None:
    """The fault handler reserves the buffer blockingly under mmap_lock."""
    _scenario(k, False)


def trylock_retry(k: Kernel) -> None:
    """The fault handler trylocks; when busy it drops mmap_lock, waits and retries the fault."""
    _scenario(k, True)


_UNPRIMED = {"prime_lockdep": False}

CLAIMS = [
    {
        "id": "H15",
        "design": "blocking-reserve",
        "scenario": blocking_reserve,
        "expected": {"kinds": ["circular-locking"], "chain": ["reservation_ww_class_mutex", "mmap_lock"]},
        "budget": 50,
        "kernel_options": _UNPRIMED,
    },
    {
        "id": "H15",
        "design": "trylock-retry",
        "scenario": trylock_retry,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 118 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 500,
        "kernel_options": _UNPRIMED,
    },
]
