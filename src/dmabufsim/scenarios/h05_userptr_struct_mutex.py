"""H5: i915's userptr notifier took ``struct_mutex``, which the invalidating path already held (2019).

Source: commit 484d9a844d0d, "drm/i915/userptr: Avoid struct_mutex recursion
for mmu_invalidate_range_start" (Chris Wilson, January 2019; Message-ID
20190115124442.3500-1-chris@chris-wilson.co.uk; Bugzilla fdo#108375).

The bug, in our words: i915's userptr MMU notifier unbinds the objects that
overlap the invalidated range, and unbinding needed the device's big lock,
``struct_mutex``. Userspace may create a userptr object over *any* address
range -- including a GTT mmap of another i915 buffer. When the driver, under
``struct_mutex``, revokes that GTT mmap (``i915_gem_release_mmap`` ->
``unmap_mapping_range``), the zap invalidates the range, the notifier runs in
the same task and asks for ``struct_mutex`` again: recursive locking, a hung
task. With the blockable/non-blockable distinction of 93065ac753e4 (H6) the
notifier could finally fail: the fix refuses a non-blockable range with
``-EAGAIN`` and uses ``mutex_trylock_recursive``: when the caller already
holds ``struct_mutex``, go on under it; when someone else holds it, wait for
it with the shrinker's lockdep subclass (``mutex_lock_killable_nested``).

Designs:

* ``blocking-lock``: the notifier takes ``struct_mutex`` blockingly:
  ``recursive-locking`` and ``deadlock`` when the GTT mmap under a userptr is
  revoked under the lock.
* ``trylock-recursive`` (484d9a844d0d): ``EAGAIN`` when non-blockable,
  otherwise recursive trylock, else a nested lock: clean in every schedule of
  the revocation against the process's own ``munmap`` of the range.
"""

from __future__ import annotations

from ..drivers.bo_mmap import GemObject, StructMutexFault, gem_object_with_fault
from ..kernel.errors import EAGAIN
from ..kernel.runtime import Kernel, current_kernel
from ..locking.mutex import MUTEX_TRYLOCK_FAILED, MUTEX_TRYLOCK_RECURSIVE, Mutex
from ..mm.memory import Process
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps
from ..mm.notifier_hooks import MmuNotifierRange
from ..mm.page import PAGE_SIZE, init_memory

#: ``I915_MM_SHRINKER``: the lockdep subclass of struct_mutex taken from reclaim-like contexts.
I915_MM_SHRINKER = 1


class UserptrNotifier(MMUNotifierOps):
    """``i915_gem_userptr_mn_invalidate_range_start`` over one userptr object's range."""

    def __init__(self, struct_mutex: Mutex, start: int, end: int, *, recursive: bool) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.struct_mutex = struct_mutex
        self.start, self.end = start, end
        self.recursive = recursive
        self.bound = True

    def _unbind(self) -> None:
        """``i915_gem_object_unbind``: drop the object's GTT binding (under struct_mutex)."""
        self.k.point("i915_gem_object_unbind", self.oid, True)
        self.bound = False

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        if not (range.start < self.end and self.start < range.end):
            return
        sm = self.struct_mutex
        if not self.recursive:
            with sm:
                self._unbind()
            return
        if not range.blockable:
            raise EAGAIN("i915 userptr: struct_mutex may be needed")
        how = sm.trylock_recursive()
        if how == MUTEX_TRYLOCK_FAILED:
            sm.lock(I915_MM_SHRINKER)
        try:
            self._unbind()
        finally:
            if how != MUTEX_TRYLOCK_RECURSIVE:
                sm.unlock()


def release_mmap(struct_mutex: Mutex, bo: GemObject) -> None:
    """``i915_gem_release_mmap`` under ``struct_mutex``: zap the object's GTT mmap."""
    with struct_mutex:
        bo.release_mmap()


def _scenario(k: Kernel, recursive: bool) -> None:
    init_memory(64)
    struct_mutex = Mutex("struct_mutex")
    bo = gem_object_with_fault("gtt-bo", 1, StructMutexFault(struct_mutex))
    proc = Process("app")
    addr = bo.mmap(proc)
    proc.read(addr)  # the GTT mmap is faulted in
    # A userptr object created over the GTT mmap's addresses (userspace may do that).
    MMUNotifier(UserptrNotifier(struct_mutex, addr, addr + PAGE_SIZE, recursive=recursive)).register(proc.mm)
    k.spawn(release_mmap, struct_mutex, bo, name="release-mmap")
    if recursive:
        k.spawn(proc.munmap, addr, PAGE_SIZE, name="munmap")


def blocking_lock(k: Kernel) -> None:
    """The userptr notifier locks struct_mutex blockingly."""
    _scenario(k, False)


def trylock_recursive(k: Kernel) -> None:
    """The userptr notifier refuses non-blockable ranges and trylocks struct_mutex recursively."""
    _scenario(k, True)


CLAIMS = [
    {
        "id": "H5",
        "design": "blocking-lock",
        "scenario": blocking_lock,
        "expected": {"kinds": ["recursive-locking", "deadlock"]},
        "budget": 20,
    },
    {
        "id": "H5",
        "design": "trylock-recursive",
        "scenario": trylock_recursive,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 75 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 500,
    },
]
