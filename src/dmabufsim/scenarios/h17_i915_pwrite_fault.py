"""H17: i915's pwrite faulted on a GTT mmap while holding ``struct_mutex`` (2010).

Source: commit 51311d0a5c69, "drm/i915: Do not hold mutex when faulting in
user addresses" (Chris Wilson, November 2010; reported and tested by Linus
Torvalds, who hit it as a freeze of the X server).

The bug, in our words: the pwrite ioctl copies the caller's data into a
buffer object. To keep the fast path fast, the 2.6.37 code took the device's
big lock, ``struct_mutex``, and only then copied from the user's source
address. Userspace is free to pass, as that source, an address inside a GTT
mmap of another buffer object; the copy then faults, and i915's fault handler
for GTT mmaps takes ``struct_mutex`` too -- in the same task, which already
holds it. Lockdep says "possible recursive locking detected" (struct_mutex,
with ``mmap_lock`` held by the fault), and the task hangs for good.

The fix: validate and prefault the source *before* taking the lock, then copy
under the lock with page faults disabled (``__copy_from_user_inatomic``); if
the page vanished in between (here: another thread revoked the GTT mapping
under the lock), drop the lock and take the slow path, which faults the
source in again without it.

Designs:

* ``lock-then-copy`` (2.6.37-rc): ``struct_mutex``, then ``copy_from_user``
  of a GTT-mmapped source: ``recursive-locking`` on ``struct_mutex`` and the
  task never runs again (``deadlock``).
* ``prefault-then-lock`` (51311d0a5c69): prefault, lock, inatomic copy, fall
  back without the lock: clean, in every schedule against a thread that
  revokes the source's GTT mapping under ``struct_mutex``.
"""

from __future__ import annotations

from ..drivers.bo_mmap import GemObject, StructMutexFault, gem_object_with_fault
from ..kernel.runtime import Kernel
from ..locking.mutex import Mutex
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, init_memory
from ..mm.uaccess import copy_from_user, copy_from_user_inatomic, fault_in_readable

#: Pages copied by the pwrite (one keeps the proof small; the recursion needs one fault).
NR_PAGES = 1


def _copy_into(dst: GemObject, data: list[object]) -> None:
    for page, value in zip(dst.pages, data, strict=False):
        page.write(0, value)


def pwrite_lock_then_copy(proc: Process, struct_mutex: Mutex, dst: GemObject, src: int) -> None:
    """``i915_gem_pwrite_ioctl`` (2.6.37-rc2): the copy from user memory runs under ``struct_mutex``."""
    struct_mutex.lock()
    try:
        _copy_into(dst, copy_from_user(proc.mm, src, NR_PAGES * PAGE_SIZE))
    finally:
        struct_mutex.unlock()


def pwrite_prefault_then_lock(proc: Process, struct_mutex: Mutex, dst: GemObject, src: int) -> None:
    """``i915_gem_pwrite_ioctl`` after 51311d0a5c69: prefault, lock, copy without faulting, else retry."""
    while True:
        if fault_in_readable(proc.mm, src, NR_PAGES * PAGE_SIZE):
            return  # -EFAULT to userspace
        struct_mutex.lock()
        try:
            data = copy_from_user_inatomic(proc.mm, src, NR_PAGES * PAGE_SIZE)
            if data is not None:
                _copy_into(dst, data)
                return
        finally:
            struct_mutex.unlock()
        # The fast path would have faulted: go round again without the lock (the slow path).


def revoke_gtt_mmap(struct_mutex: Mutex, obj: GemObject) -> None:
    """``i915_gem_release_mmap`` under ``struct_mutex`` (a fence or domain change): zap the GTT mmap."""
    with struct_mutex:
        obj.release_mmap()


def _scenario(k: Kernel, fixed: bool) -> None:
    init_memory(64)
    struct_mutex = Mutex("struct_mutex")
    src_obj = gem_object_with_fault("gtt-src", NR_PAGES, StructMutexFault(struct_mutex))
    dst = GemObject("pwrite-dst", NR_PAGES)
    proc = Process("Xorg")
    src = src_obj.mmap(proc)
    pwrite = pwrite_prefault_then_lock if fixed else pwrite_lock_then_copy
    k.spawn(pwrite, proc, struct_mutex, dst, src, name="pwrite")
    if fixed:
        k.spawn(revoke_gtt_mmap, struct_mutex, src_obj, name="release-mmap")


def lock_then_copy(k: Kernel) -> None:
    """pwrite takes struct_mutex, then copies from a GTT mmap whose fault takes struct_mutex."""
    _scenario(k, False)


def prefault_then_lock(k: Kernel) -> None:
    """pwrite prefaults, locks, copies with faults disabled and retries without the lock."""
    _scenario(k, True)


CLAIMS = [
    {
        "id": "H17",
        "design": "lock-then-copy",
        "scenario": lock_then_copy,
        "expected": {"kinds": ["recursive-locking", "deadlock"]},
        "budget": 20,
    },
    {
        "id": "H17",
        "design": "prefault-then-lock",
        "scenario": prefault_then_lock,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 15 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 200,
    },
]
