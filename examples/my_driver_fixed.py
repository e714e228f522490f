"""my_driver.py with the shrinker fixed: trylock and skip a busy cache (mm/shrinker R4)."""

import dmabufsim as ds
from dmabufsim.kernel.gfp import GFP_KERNEL
from dmabufsim.mm.page import alloc_page, free_page, init_memory
from dmabufsim.mm.shrinker import SHRINK_EMPTY, SHRINK_STOP, Shrinker


class BufferCache(Shrinker):
    """Idle buffers the driver keeps for reuse; the shrinker gives their pages back."""

    def __init__(self) -> None:
        super().__init__("my_driver_bo_cache")
        self.lock = ds.Mutex("my_driver.bo_lock")
        self.idle = []

    def submit(self, n):
        """The command-submission path: allocate backing pages under the lock."""
        with self.lock:
            for _ in range(n):
                self.idle.append(alloc_page(GFP_KERNEL, self))

    def count_objects(self, sc):
        return len(self.idle) or SHRINK_EMPTY

    def scan_objects(self, sc):
        if not self.lock.trylock():           # busy: skip it, never block in reclaim
            return SHRINK_STOP
        freed = 0
        while self.idle and freed < sc.nr_to_scan:
            free_page(self.idle.pop())
            freed += 1
        self.lock.unlock()
        sc.nr_scanned = freed
        return freed


def other_process(k):
    """Someone else allocating under memory pressure: direct reclaim runs our shrinker."""
    for _ in range(6):
        alloc_page(GFP_KERNEL, "other")


def scenario(k):
    init_memory(16, low=8, min=4)             # a small machine: 16 pages, reclaim under 8 free
    cache = BufferCache()
    cache.register()                          # register_shrinker
    k.spawn(cache.submit, 6, name="submit")
    k.spawn(other_process, k, name="other")
