"""H4: i915 userptr dirtying its pages and the page lock (2019).

Source: upstream 0d4bbe3d40 (a cherry-pick line of the i915 userptr fix,
2019; Fixes: 5cc9ed4b9a), which settles the back-and-forth of cb6d7c7dc7
(take the page lock around the dirtying) and its revert 505a8ec7e1.

The bug, in our words: when a userptr object gives its pages back it marks
them dirty, because the GPU may have written them. For pages of a file (a
shared mapping), ``set_page_dirty`` is only safe under the page lock: without
it the dirty bit races with truncation and writeback, which hold the lock
while they detach or clean the page. So i915 switched to
``set_page_dirty_lock`` -- and deadlocked: reclaim unmaps a page with
``try_to_unmap`` while holding that page's lock, the unmap calls the MMU
notifiers, and i915's notifier drops the object's pages, i.e. waits for the
very page lock its own thread holds. The revert brought the race back. The
fix trylocks the page and, when the lock is taken (by reclaim, by us, or by
writeback), skips the dirtying: a page someone is reclaiming or writing back
is being dealt with anyway.

The experiment: a process shares one page of a file-like shmem mapping with
a userptr object; a reclaim thread (``shrink_page``: trylock the page,
``try_to_unmap``, unlock) and the process's own ``munmap`` both invalidate
it. Reclaim holding the page lock stands for every holder (truncation and
writeback lock the page the same way): the smallest configuration that shows
both buggy designs.

Designs:

* ``lock-page``: ``set_page_dirty_lock`` from the notifier:
  ``recursive-locking`` on the page lock under ``try_to_unmap``, and the
  reclaiming thread never wakes (``deadlock``).
* ``no-lock``: plain ``set_page_dirty``: the notifier, run by ``munmap``,
  dirties the page while reclaim holds its lock: the page lock rule's
  ``assertion`` (``set_page_dirty-unlocked``).
* ``trylock`` (0d4bbe3d40): ``trylock_page`` and skip when contended: clean in
  every schedule.
"""

from __future__ import annotations

from ..drivers.userptr_dirty import DIRTY_LOCK, DIRTY_NOLOCK, DIRTY_TRYLOCK, UserptrObject
from ..kernel.runtime import Kernel
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, init_memory
from ..mm.rmap import shrink_page


def _scenario(k: Kernel, policy: str) -> None:
    init_memory(64)
    proc = Process("app")
    addr = proc.mmap(PAGE_SIZE, shared=True)
    proc.populate(addr, PAGE_SIZE, "data")
    obj = UserptrObject(proc, addr, 1, policy)
    page = obj.pages[0]
    k.spawn(shrink_page, page, name="kswapd")
    k.spawn(proc.munmap, addr, PAGE_SIZE, name="munmap")


def lock_page_design(k: Kernel) -> None:
    """The notifier dirties with set_page_dirty_lock."""
    _scenario(k, DIRTY_LOCK)


def no_lock(k: Kernel) -> None:
    """The notifier dirties with plain set_page_dirty."""
    _scenario(k, DIRTY_NOLOCK)


def trylock(k: Kernel) -> None:
    """The notifier trylocks the page and skips the dirtying when it is contended."""
    _scenario(k, DIRTY_TRYLOCK)


CLAIMS = [
    {
        "id": "H4",
        "design": "lock-page",
        "scenario": lock_page_design,
        "expected": {"kinds": ["recursive-locking", "deadlock"]},
        "year": 2019,
        "source": "cb6d7c7dc7",
        "budget": 100,
    },
    {
        "id": "H4",
        "design": "no-lock",
        "scenario": no_lock,
        "expected": {"kinds": ["assertion"], "asserts": ["set_page_dirty-unlocked"]},
        "year": 2019,
        "source": "505a8ec7e1 (revert of cb6d7c7dc7)",
        "budget": 200,
    },
    {
        "id": "H4",
        "design": "trylock",
        "scenario": trylock,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 788 Mazurkiewicz traces (~1.5 s).
        "strategy": "odpor",
        "budget": 1500,
    },
]
