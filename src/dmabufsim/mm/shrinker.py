"""Shrinkers: caches that give memory back under pressure.

Models ``struct shrinker`` / ``struct shrink_control`` and ``shrink_slab``
(``mm/shrinker.c``, formerly ``mm/vmscan.c``).

Rules:

* R1 (context): shrinkers run inside the reclaim of *whichever thread is
  allocating*, holding the ``fs_reclaim`` map and every lock that thread
  already holds, with ``current.in_reclaim > 0`` (PF_MEMALLOC: allocations
  made inside do not recurse into reclaim).
* R2 (count): ``count_objects`` returns how many objects could be freed,
  :data:`SHRINK_EMPTY` when there are none, or 0 to be skipped this time. It
  must not block or take sleeping locks.
* R3 (scan): ``scan_objects`` is called only after a non-zero count, in
  batches of at most ``batch`` objects; it frees up to ``sc.nr_to_scan``,
  sets ``sc.nr_scanned`` and returns the number freed, or
  :data:`SHRINK_STOP` when no progress is possible (locks busy): no further
  scan of that shrinker in this pass.
* R4 (what a shrinker must never do): block on a lock that is ever held
  while allocating memory with direct reclaim (``dma_resv``, driver locks):
  that is a cycle through ``fs_reclaim`` lockdep reports (claim C5), and a
  real self-deadlock when the allocating thread holds it. Only
  ``trylock`` and skip busy objects. Waiting for a dma_fence is allowed.
* R5 (variants, extension): a shrinker is written by subclassing
  :class:`Shrinker` and implementing its two public callbacks; the
  single-callback API of before Linux 3.12 (``shrinker->shrink``, replaced
  by Dave Chinner's count/scan split in 2013) is :class:`LegacyShrinker`: one ``shrink(sc)`` called with
  ``nr_to_scan == 0`` to count and with a batch to scan, returning the
  objects left, or -1 when it cannot make progress (the old code that took
  a driver lock there, e.g. i915's ``struct_mutex`` shrinker, is written
  against it unchanged).
"""

from __future__ import annotations

from ..kernel.errors import UsageError
from ..kernel.gfp import GFP
from ..kernel.runtime import Kernel, current_kernel

#: ``SHRINK_STOP``: scan_objects could make no progress; stop this shrinker's pass.
SHRINK_STOP = ~0
#: ``SHRINK_EMPTY``: count_objects has nothing at all to free.
SHRINK_EMPTY = ~0 - 1
#: Default ``shrinker->batch`` (``SHRINK_BATCH``).
SHRINK_BATCH = 128


class ShrinkControl:
    """``struct shrink_control``: the request handed to a shrinker."""

    __slots__ = ("gfp_mask", "nr_scanned", "nr_to_scan")

    def __init__(self, gfp_mask: GFP, nr_to_scan: int = 0) -> None:
        #: The allocation's flags: a shrinker may skip work without __GFP_FS / __GFP_IO.
        self.gfp_mask = gfp_mask
        self.nr_to_scan = nr_to_scan
        self.nr_scanned = 0


class Shrinker:
    """``struct shrinker``. Subclass and implement the two callbacks.

    Extension contract (R2-R4): ``count_objects(sc)`` is cheap, lock-free or
    trylock-only, and never blocks; ``scan_objects(sc)`` frees up to
    ``sc.nr_to_scan`` objects using only trylocks on locks that allocations
    are made under, returns the number freed or :data:`SHRINK_STOP`, and
    sets ``sc.nr_scanned``. Both run with the allocating thread's locks held.
    Register with :meth:`register` (``register_shrinker``), remove with
    :meth:`unregister` (``unregister_shrinker``).
    """

    name = "shrinker"
    #: Statistics of the calls: increments commute and nothing in the model reads them (accesses A3).
    __untracked__ = ("nr_count_calls", "nr_scan_calls", "nr_freed")
    #: Objects per scan_objects call.
    batch = SHRINK_BATCH

    def __init__(self, name: str | None = None) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        if name is not None:
            self.name = name
        self.registered = False
        #: Calls made, for tests and statistics.
        self.nr_count_calls = 0
        self.nr_scan_calls = 0
        self.nr_freed = 0

    def count_objects(self, sc: ShrinkControl) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement count_objects")

    def scan_objects(self, sc: ShrinkControl) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement scan_objects")

    def register(self) -> None:
        """``register_shrinker``."""
        shrinker_registry(self.k).add(self)

    def unregister(self) -> None:
        """``unregister_shrinker``: after return the callbacks are not running nor called."""
        shrinker_registry(self.k).remove(self)


class ShrinkerRegistry:
    """The machine's shrinker list (``shrinker_list`` under ``shrinker_rwsem``)."""

    #: ``_running``: (thread, shrinker) pairs, so that unregister can report a shrinker
    #: unregistering itself from its own callback; each thread only looks for its own
    #: entries (thread-local, accesses A3).
    __untracked__ = ("_running",)

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.oid = k.new_oid()
        self._list: list[Shrinker] = []
        self._running: list[tuple[int, Shrinker]] = []

    def add(self, s: Shrinker) -> None:
        self.k.point("register_shrinker", self.oid, True, s.name)
        if s.registered:
            raise UsageError(f"shrinker {s.name} registered twice")
        s.registered = True
        self._list.append(s)

    def remove(self, s: Shrinker) -> None:
        self.k.point("unregister_shrinker", self.oid, True, s.name)
        if not s.registered:
            raise UsageError(f"shrinker {s.name} is not registered")
        if (self.k.current.tid, s) in self._running:
            raise UsageError(f"shrinker {s.name} unregistered from inside its own callback")
        s.registered = False
        self._list.remove(s)

    def __len__(self) -> int:
        return len(self._list)

    def shrink_slab(self, gfp: GFP, nr_to_reclaim: int) -> int:
        """``shrink_slab``: ask each shrinker, in registration order, to free objects (R2, R3).

        Returns the total the shrinkers reported freed.
        """
        k = self.k
        k.point("shrink_slab", self.oid, False)
        total = 0
        for s in list(self._list):
            if not s.registered:
                continue
            sc = ShrinkControl(gfp)
            me = (k.current.tid, s)
            self._running.append(me)
            try:
                s.nr_count_calls += 1
                count = s.count_objects(sc)
                if count == SHRINK_EMPTY or count <= 0:
                    continue
                todo = min(count, max(nr_to_reclaim - total, 1))
                while todo > 0:
                    sc.nr_to_scan = min(s.batch, todo)
                    sc.nr_scanned = sc.nr_to_scan
                    s.nr_scan_calls += 1
                    freed = s.scan_objects(sc)
                    if freed == SHRINK_STOP:
                        break
                    s.nr_freed += freed
                    total += freed
                    todo -= max(sc.nr_scanned, 1)
            finally:
                self._running.remove(me)
            if total >= nr_to_reclaim:
                break
        return total


def shrinker_registry(k: Kernel) -> ShrinkerRegistry:
    """The machine's ``shrinker_list`` (a global of ``mm/shrinker.c``), created on first use.

    Registration and ``shrink_slab`` (the page allocator's reclaim, R1) both
    find it here; the allocator does not own it.
    """
    reg: ShrinkerRegistry | None = k.ext.get("mm.shrinkers")
    if reg is None:
        reg = k.ext["mm.shrinkers"] = ShrinkerRegistry(k)
    return reg


class LegacyShrinker(Shrinker):
    """``struct shrinker`` with the pre-3.12 ``shrink`` callback (R5).

    Implement :meth:`shrink`: with ``sc.nr_to_scan == 0`` return how many
    objects could be freed; otherwise free up to ``sc.nr_to_scan`` and
    return how many remain, or -1 when nothing can be done now (locks
    busy). The count/scan calls of today's core are mapped onto it as the
    3.12 conversion did.
    """

    def shrink(self, sc: ShrinkControl) -> int:
        """``shrinker->shrink(shrinker, sc)`` (before 3.12)."""
        raise NotImplementedError(f"{type(self).__name__} must implement shrink")

    def count_objects(self, sc: ShrinkControl) -> int:
        wanted = sc.nr_to_scan
        sc.nr_to_scan = 0
        try:
            n = self.shrink(sc)
        finally:
            sc.nr_to_scan = wanted
        return n if n > 0 else SHRINK_EMPTY

    def scan_objects(self, sc: ShrinkControl) -> int:
        probe = ShrinkControl(sc.gfp_mask)
        before = self.shrink(probe)
        left = self.shrink(sc)
        if left < 0:
            return SHRINK_STOP
        freed = max(0, before - left)
        sc.nr_scanned = max(freed, 1)
        return freed
