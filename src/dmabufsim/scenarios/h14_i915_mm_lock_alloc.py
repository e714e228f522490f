"""H14: i915 allocated under ``i915->mm_lock``, which the free path (and so reclaim) takes (2020).

Source: Chris Wilson's patch of June 2020, Message-ID
20200619194038.5088-1-chris@chris-wilson.co.uk.

The bug, in our words: each userptr object points to a shared, reference
counted record of its process's mm (``struct i915_mm_struct``), found in a
hash table under ``i915->mm_lock``. Creating a userptr object looked the
record up under the lock and, when there was none, allocated one with
``GFP_KERNEL`` -- still under the lock. That allocation may enter reclaim:
``mm_lock -> fs_reclaim``. But freeing an object drops its record's last
reference under ``mm_lock`` (``kref_put_mutex``), and objects are freed by
i915's shrinker, inside reclaim: ``fs_reclaim -> mm_lock``. Lockdep reports
the cycle; in the worst case the allocating thread's own reclaim would wait
for the lock it holds. The fix allocates the new record *before* taking the
lock, and frees it again if another thread inserted one meanwhile.

Designs:

* ``alloc-under-lock``: ``circular-locking`` (``i915->mm_lock`` against
  ``fs_reclaim``).
* ``alloc-before-lock``: clean in every schedule of a registration against
  the shrinker freeing an idle object of another mm.
"""

from __future__ import annotations

from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import Kernel, current_kernel
from ..locking.mutex import Mutex
from ..mm.page import Page, alloc_page, free_page, init_memory, kswapd_reclaim
from ..mm.shrinker import SHRINK_EMPTY, SHRINK_STOP, ShrinkControl, Shrinker


class MmRecord:
    """``struct i915_mm_struct``: one per process mm, reference counted (its memory: one page)."""

    def __init__(self, key: str, mem: Page) -> None:
        self.key = key
        self.mem = mem
        self.refs = 1


class I915MmRegistry:
    """``i915->mm_structs`` under ``i915->mm_lock``."""

    def __init__(self, *, alloc_under_lock: bool) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.mm_lock = Mutex("i915->mm_lock")
        self.alloc_under_lock = alloc_under_lock
        self.table: dict[str, MmRecord] = {}

    def get(self, key: str) -> MmRecord:
        """``i915_gem_userptr_init__mm_struct``: find or create the record of mm ``key``."""
        if self.alloc_under_lock:
            with self.mm_lock:
                rec = self.table.get(key)
                if rec is None:
                    rec = self.table[key] = MmRecord(key, alloc_page(GFP_KERNEL, self))  # kmalloc under mm_lock
                else:
                    rec.refs += 1
                return rec
        new = MmRecord(key, alloc_page(GFP_KERNEL, self))  # kmalloc before the lock
        with self.mm_lock:
            rec = self.table.get(key)
            if rec is None:
                self.table[key] = new
                return new
            rec.refs += 1
        free_page(new.mem)  # another thread won: kfree(new)
        return rec

    def put(self, rec: MmRecord) -> None:
        """``kref_put_mutex(&mm->kref, __i915_mm_struct_free, &i915->mm_lock)``."""
        with self.mm_lock:
            rec.refs -= 1
            if rec.refs:
                return
            del self.table[rec.key]
        free_page(rec.mem)


class UserptrShrinker(Shrinker):
    """``i915_gem_shrink`` freeing idle userptr objects: each drops its mm record."""

    def __init__(self, registry: I915MmRegistry) -> None:
        super().__init__("i915_gem_shrinker")
        self.registry = registry
        self.idle: list[MmRecord] = []

    def count_objects(self, sc: ShrinkControl) -> int:
        self.k.event("i915_shrinker_count", self.oid, False)
        return len(self.idle) or SHRINK_EMPTY

    def scan_objects(self, sc: ShrinkControl) -> int:
        self.k.point("i915_shrinker_scan", self.oid, True)
        if not self.idle:
            return SHRINK_STOP
        self.registry.put(self.idle.pop())
        return 1


def _scenario(k: Kernel, under: bool) -> None:
    init_memory(64)
    registry = I915MmRegistry(alloc_under_lock=under)
    shrinker = UserptrShrinker(registry)
    shrinker.register()
    shrinker.idle.append(registry.get("other-process"))  # an idle userptr object of another mm
    k.spawn(registry.get, "app", name="userptr-ioctl")
    k.spawn(kswapd_reclaim, 1, name="kswapd")


def alloc_under_lock(k: Kernel) -> None:
    """The mm record is allocated with GFP_KERNEL under i915->mm_lock."""
    _scenario(k, True)


def alloc_before_lock(k: Kernel) -> None:
    """The mm record is allocated before i915->mm_lock is taken."""
    _scenario(k, False)


CLAIMS = [
    {
        "id": "H14",
        "design": "alloc-under-lock",
        "scenario": alloc_under_lock,
        "expected": {"kinds": ["circular-locking"], "chain": ["i915->mm_lock", "fs_reclaim"]},
        "budget": 50,
    },
    {
        "id": "H14",
        "design": "alloc-before-lock",
        "scenario": alloc_before_lock,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 5 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 200,
    },
]
