"""A 2019 shmem GEM object (before the reservation lock) with a purge shrinker: panfrost's design, its fix.

``drm_gem_shmem`` objects (panfrost, lima, v3d...) get their pages on first
use under the object's ``pages_lock`` (``drm_gem_shmem_get_pages``: the
allocation runs under it); userspace marks idle buffers purgeable
(``madvise(DONTNEED)``), and the driver's shrinker purges them under memory
pressure (``panfrost_gem_shrinker_scan`` -> ``panfrost_gem_purge``), which
frees the pages under the same kind of lock. Every object's ``pages_lock``
is one lockdep class (one ``mutex_init`` site).

Rules:

* R1: :meth:`PurgeableShmemObject.get_pages` allocates with ``GFP_KERNEL`` while
  holding ``pages_lock``: ``pages_lock -> fs_reclaim``.
* R2: :class:`PurgeShrinker` walks the purgeable list under the device's
  ``shrinker_lock`` (taken with a trylock, in count and scan alike, as
  panfrost does) and purges an object under its ``pages_lock``: with
  ``trylock=False`` blockingly (the 2019 code), with ``trylock=True``
  skipping a busy object (Rob Herring, "drm/panfrost: Use mutex_trylock in
  panfrost_gem_purge", 2019).
* R3: only objects marked purgeable are purged; an object being populated is
  never purgeable (userspace marks idle buffers only), which is why the
  cycle lockdep reports for the blocking design cannot close.
"""

from __future__ import annotations

from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import current_kernel
from ..locking.mutex import Mutex
from ..mm.page import Page, alloc_page, free_page
from ..mm.shrinker import SHRINK_EMPTY, SHRINK_STOP, ShrinkControl, Shrinker

#: The lockdep key of every object's pages_lock (one ``mutex_init`` site, one class).
PAGES_LOCK_KEY = "drm_gem_shmem_object.pages_lock"


class PurgeableShmemObject:
    """``struct drm_gem_shmem_object`` (R1, R3)."""

    def __init__(self, name: str) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.pages_lock = Mutex("&shmem->pages_lock", key=PAGES_LOCK_KEY)
        self.pages: list[Page] = []
        #: ``shmem->madv``: True once userspace marked the object purgeable.
        self.purgeable = False

    def get_pages(self, nr_pages: int) -> None:
        """``drm_gem_shmem_get_pages``: allocate the backing pages under ``pages_lock`` (R1)."""
        with self.pages_lock:
            self.k.point("shmem_get_pages", self.oid, True)
            while len(self.pages) < nr_pages:
                self.pages.append(alloc_page(GFP_KERNEL, self))

    def purge_locked(self) -> int:
        """``drm_gem_shmem_purge_locked``: free the pages (``pages_lock`` held). Returns pages freed."""
        self.k.point("shmem_purge", self.oid, True)
        pages, self.pages = self.pages, []
        for p in pages:
            free_page(p)
        return len(pages)


class PurgeShrinker(Shrinker):
    """``panfrost_gem_shrinker_count`` / ``_scan`` over the purgeable list (R2)."""

    def __init__(self, *, trylock: bool) -> None:
        super().__init__("panfrost_gem_shrinker")
        self.trylock = trylock
        #: ``pfdev->shrinker_lock``.
        self.shrinker_lock = Mutex("&pfdev->shrinker_lock")
        #: ``pfdev->shrinker_list``: objects userspace marked purgeable.
        self.purgeable: list[PurgeableShmemObject] = []

    def madvise_dontneed(self, obj: PurgeableShmemObject) -> None:
        """``panfrost_ioctl_madvise(PANFROST_MADV_DONTNEED)``: put ``obj`` on the purgeable list."""
        with self.shrinker_lock:
            obj.purgeable = True
            self.purgeable.append(obj)

    def count_objects(self, sc: ShrinkControl) -> int:
        if not self.shrinker_lock.trylock():
            return 0
        try:
            n = sum(len(o.pages) for o in self.purgeable)
        finally:
            self.shrinker_lock.unlock()
        return n or SHRINK_EMPTY

    def _purge(self, obj: PurgeableShmemObject) -> int:
        """``panfrost_gem_purge``."""
        if self.trylock:
            if not obj.pages_lock.trylock():
                return 0
        else:
            obj.pages_lock.lock()
        try:
            return obj.purge_locked()
        finally:
            obj.pages_lock.unlock()

    def scan_objects(self, sc: ShrinkControl) -> int:
        if not self.shrinker_lock.trylock():
            return SHRINK_STOP
        freed = 0
        try:
            for obj in list(self.purgeable):
                if freed >= sc.nr_to_scan:
                    break
                if obj.pages:
                    freed += self._purge(obj)
        finally:
            self.shrinker_lock.unlock()
        return freed
