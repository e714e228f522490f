"""H11: panfrost's shrinker locked ``pages_lock`` inside reclaim (2019) -- a report, not a deadlock.

Source: Rob Herring, "drm/panfrost: Use mutex_trylock in panfrost_gem_purge"
(2019).

The bug, in our words: panfrost's shrinker purges buffers userspace marked
as unneeded, and took each buffer's ``pages_lock`` with a plain
``mutex_lock`` -- inside reclaim, i.e. under ``fs_reclaim``. Every
``drm_gem_shmem`` object's ``pages_lock`` is one lock class, and other
buffers allocate their pages while holding theirs. Lockdep therefore sees
``pages_lock -> fs_reclaim`` and ``fs_reclaim -> pages_lock`` and reports a
possible circular locking dependency. The author explains why it cannot
happen: a buffer is only purgeable when it is idle, so no one is ever
allocating under the ``pages_lock`` the shrinker wants. He switched to
``mutex_trylock`` anyway, to be safe and to silence the report.

This row is the model telling the two apart: lockdep (which reasons about
lock classes) reports the cycle, exactly as the kernel's did, and the
explorer, which runs the schedules, must *not* confirm a deadlock: the
blocking design's verdict expects ``circular-locking`` and asserts that no
``deadlock`` (nor hung task) is ever found.

Designs:

* ``blocking-purge``: ``mutex_lock(pages_lock)`` in the shrinker:
  ``circular-locking`` (``&shmem->pages_lock`` against ``fs_reclaim``), and
  never a deadlock in any explored schedule.
* ``trylock-purge``: ``mutex_trylock``, skip a busy buffer: clean (proved).
"""

from __future__ import annotations

from ..drivers.gem_shmem_purge import PurgeableShmemObject, PurgeShrinker
from ..kernel.runtime import Kernel
from ..mm.page import init_memory, kswapd_reclaim


def _scenario(k: Kernel, trylock: bool) -> None:
    init_memory(64)
    shrinker = PurgeShrinker(trylock=trylock)
    shrinker.register()
    idle = PurgeableShmemObject("idle-bo")
    idle.get_pages(1)
    shrinker.madvise_dontneed(idle)
    busy = PurgeableShmemObject("job-bo")
    k.spawn(busy.get_pages, 1, name="submit")
    k.spawn(kswapd_reclaim, 1, name="kswapd")


def blocking_purge(k: Kernel) -> None:
    """The shrinker locks each purgeable buffer's pages_lock blockingly."""
    _scenario(k, False)


def trylock_purge(k: Kernel) -> None:
    """The shrinker trylocks each purgeable buffer's pages_lock and skips a busy one."""
    _scenario(k, True)


CLAIMS = [
    {
        "id": "H11",
        "design": "blocking-purge",
        "scenario": blocking_purge,
        "expected": {
            "kinds": ["circular-locking"],
            "chain": ["&shmem->pages_lock", "fs_reclaim"],
            "absent": ["deadlock", "hung-task"],
        },
        # Every schedule is run (a bounded budget above the trace count): no deadlock in any of them.
        "strategy": "odpor",
        "budget": 500,
    },
    {
        "id": "H11",
        "design": "trylock-purge",
        "scenario": trylock_purge,
        "expected": "clean",
        # Proved: optimal DPOR exhausts it in 4 Mazurkiewicz traces.
        "strategy": "odpor",
        "budget": 200,
    },
]
