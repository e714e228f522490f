"""H16: nouveau copied relocations from user memory while holding reservations (2019).

Source: commit 03e0d26fcf79, "drm/nouveau: slowpath for pushbuf ioctl"
(Daniel Vetter, August 2019), written together with the boot-time lockdep
priming of ``dma_resv_lockdep()`` that made the rule explicit.

The bug, in our words: ``nouveau_gem_ioctl_pushbuf`` reserved every buffer
of the submission (one ww acquire context), and only then read the
relocation entries from user memory and, after patching the command
stream, wrote the buffers' presumed offsets back to userspace -- both
``copy_*_user`` calls that may fault and take ``mmap_lock``. The
cross-driver contract is the other way round: a fault on a buffer's mmap
reserves the buffer under ``mmap_lock`` (TTM's fault handler), and the
priming teaches lockdep ``mmap_lock -> reservation`` at boot. So the first
``copy_from_user`` under a reservation is reported at once. The fix adds a
slow path: copy the relocations in before reserving anything, and write the
presumed offsets back only after the reservations are dropped.

Designs:

* ``copy-under-reservation``: ``copy_from_user`` / ``copy_to_user`` under
  the reservations: ``circular-locking`` (the reservation classes against
  ``mmap_lock``).
* ``slowpath`` (03e0d26fcf79): copy in first, reserve, patch, unreserve,
  copy out: clean in every schedule against a CPU fault on the buffer's
  mmap (TTM's modern trylock-and-retry handler).
"""

from __future__ import annotations

from ..dma.resv import reservation_ww_class
from ..drivers.bo_mmap import GemObject, TtmFault, gem_object_with_fault
from ..kernel.runtime import Kernel
from ..locking.ww_mutex import WWAcquireCtx
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, init_memory
from ..mm.uaccess import copy_from_user, copy_to_user


def _apply_relocs(bo: GemObject, relocs: list[object]) -> list[object]:
    """Patch the command stream with the relocation targets; returns the presumed offsets."""
    bo.pages[0].write(0, relocs[0])
    return [bo.pages[0].phys]


def pushbuf_copy_under_reservation(proc: Process, bo: GemObject, relocs_va: int, presumed_va: int) -> None:
    """``nouveau_gem_ioctl_pushbuf`` before 03e0d26fcf79: the user copies run under the reservations."""
    ctx = WWAcquireCtx(reservation_ww_class)
    bo.resv.lock(ctx)
    ctx.done()
    try:
        relocs = copy_from_user(proc.mm, relocs_va, PAGE_SIZE)
        presumed = _apply_relocs(bo, relocs)
        copy_to_user(proc.mm, presumed_va, presumed)
    finally:
        bo.resv.unlock()
        ctx.fini()


def pushbuf_slowpath(proc: Process, bo: GemObject, relocs_va: int, presumed_va: int) -> None:
    """``nouveau_gem_ioctl_pushbuf`` after 03e0d26fcf79: copy in, reserve, patch, unreserve, copy out."""
    relocs = copy_from_user(proc.mm, relocs_va, PAGE_SIZE)
    ctx = WWAcquireCtx(reservation_ww_class)
    bo.resv.lock(ctx)
    ctx.done()
    try:
        presumed = _apply_relocs(bo, relocs)
    finally:
        bo.resv.unlock()
        ctx.fini()
    copy_to_user(proc.mm, presumed_va, presumed)


def cpu_access(proc: Process, addr: int) -> None:
    """Userspace writes its mmap of the buffer: the fault runs TTM's handler."""
    proc.write(addr, "cpu")


def _scenario(k: Kernel, fixed: bool) -> None:
    init_memory(64)
    bo = gem_object_with_fault("nouveau-bo", 1, TtmFault(retry=True))
    proc = Process("mesa")
    addr = bo.mmap(proc)
    relocs_va = proc.mmap(PAGE_SIZE)
    presumed_va = proc.mmap(PAGE_SIZE)
    proc.write(relocs_va, "reloc")
    push = pushbuf_slowpath if fixed else pushbuf_copy_under_reservation
    k.spawn(push, proc, bo, relocs_va, presumed_va, name="pushbuf")
    k.spawn(cpu_access, proc, addr, name="cpu-fault")


def copy_under_reservation(k: Kernel) -> None:
    """The pushbuf ioctl copies relocations in and presumed offsets out under the reservation."""
    _scenario(k, False)


def slowpath(k: Kernel) -> None:
    """The pushbuf ioctl copies before reserving and after unreserving."""
    _scenario(k, True)


CLAIMS = [
    {
        "id": "H16",
        "design": "copy-under-reservation",
        "scenario": copy_under_reservation,
        "expected": {
            "kinds": ["circular-locking"],
            "chain": ["mmap_lock", "reservation_ww_class_acquire", "reservation_ww_class_mutex"],
        },
        "budget": 50,
    },
    {
        "id": "H16",
        "design": "slowpath",
        "scenario": slowpath,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 464 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 1000,
    },
]
