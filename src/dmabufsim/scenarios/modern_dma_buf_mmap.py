"""Modern design M5: the dma-buf mmap / vmap locking policy.

Since v6.5 (commit ef1a8c92b4c0, "dma-buf: Change locking policy for
mmap()") ``dma_buf_mmap`` does not take the buffer's reservation lock: the
exporter's ``mmap`` callback takes it itself if it needs it (dma-buf R12).
``dma_buf_vmap`` is called with the lock held and ``dma_buf_vmap_unlocked``
takes it (R13); the exporter's ``vmap`` never locks. For v6.2-v6.4 the core
held the lock around ``ops->mmap``; once the GEM shmem helpers switched to
the reservation lock, ``drm_gem_shmem_mmap`` took it again inside, and the
dma-buf path deadlocked on itself -- the reason the policy changed.

The experiment (drivers/gem_shmem.py, a GEM shmem driver with PRIME): a
two-page object exported as a dma-buf, which the same device imports back
(PRIME self-import returns the original object). Two threads race: a
process maps the dma-buf fd (``mmap_region`` -> ``dma_buf_mmap_internal``
under ``mmap_lock``) and writes through the mapping; a kernel client (an
fbdev-like console) ``dma_buf_vmap_unlocked``s it and unmaps. The scenario
then checks that the import was the same object and that the process reads
back what it wrote, from the object's own page.

* ``exporter-locks`` (the current policy): clean in every schedule.
* ``core-and-exporter-lock`` (v6.2-v6.4 core with a locking exporter): the
  mmap thread takes the reservation lock it already holds. Lockdep reports
  it first -- ``recursive-locking`` ("possible recursive locking detected",
  ``reservation_ww_class_mutex`` held and acquired again, as the kernel's
  ``check_deadlock`` does for a ww_mutex taken without an acquire context)
  -- and the thread then sleeps on its own lock forever, which is the
  ``deadlock`` the kernel would show as a hung task.
"""

from __future__ import annotations

from typing import Any

from ..drivers.gem_shmem import DrmDevice, mmap_dma_buf
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, init_memory
from .catalog import Verdict

NPAGES = 2


def _user(proc: Process, buf: Any, out: dict[str, Any]) -> None:
    addr = out["addr"] = mmap_dma_buf(proc.mm, buf)
    proc.write(addr + PAGE_SIZE, "user")


def _console(buf: Any, out: dict[str, Any]) -> None:
    vaddr = buf.vmap_unlocked()
    out["vmap_pages"] = len(vaddr)
    buf.vunmap_unlocked(vaddr)


def _scenario(k: Kernel, core_locks_mmap: bool) -> None:
    init_memory(16)
    drm = DrmDevice("gpu0")
    obj = drm.gem_create(NPAGES, "bo")
    buf = drm.prime_export(obj, core_locks_mmap=core_locks_mmap)
    obj.put()  # the handle is closed: the dma-buf keeps the object
    proc = Process("app")
    out: dict[str, Any] = {}
    # PRIME self-import: the same device gets its own object back, with a reference (R6).
    imported = drm.prime_import(buf)
    out["same_object"] = imported is obj
    threads = [k.spawn(_user, proc, buf, out, name="mmap"), k.spawn(_console, buf, out, name="vmap")]
    for t in threads:
        k.join(t)
    out["read"] = proc.read(out["addr"] + PAGE_SIZE)
    shmem = obj.shmem
    assert shmem is not None
    page = shmem.pages.get(1)
    got = (out.get("read"), page.read(0) if page is not None else None, out.get("same_object"))
    if got != ("user", "user", True):
        k.report(
            "assertion",
            "BUG: dma-buf mmap lost the process's write",
            details={"read": str(got[0]), "page": str(got[1]), "same_object": str(got[2])},
            rule="dma-buf R12: the exporter's mmap backs the VMA with the buffer's own pages",
            signature="m5:coherence",
        )
    imported.put()
    buf.put()
    proc.exit()


def exporter_locks(k: Kernel) -> None:
    """The current policy: ``dma_buf_mmap`` calls the exporter unlocked; ``drm_gem_shmem_mmap`` locks."""
    _scenario(k, core_locks_mmap=False)


def core_and_exporter_lock(k: Kernel) -> None:
    """The v6.2-v6.4 core holds the reservation lock around ``ops->mmap``, and the exporter locks again."""
    _scenario(k, core_locks_mmap=True)


CLAIMS = [
    {"id": "M5", "design": "exporter-locks", "scenario": exporter_locks, "expected": "clean",
     "budget": 200, "strategy": "odpor", "year": 2023,
     "source": "ef1a8c92b4c0 dma-buf: Change locking policy for mmap()"},
    {"id": "M5", "design": "core-and-exporter-lock", "scenario": core_and_exporter_lock,
     "expected": Verdict(kinds=frozenset({"recursive-locking", "deadlock"})), "budget": 20, "year": 2023,
     "source": "ef1a8c92b4c0 dma-buf: Change locking policy for mmap()"},
]
