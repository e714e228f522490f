"""Models ``drivers/dma-buf/reservation.c`` as of 2016-2019 (``struct reservation_object``).

Before ``dma_resv`` got usage levels (2021), a reservation object held one
*exclusive* fence and a list of *shared* fences, every one of them with a
reference of the object's. Lockless readers (``reservation_object_get_fences_rcu``)
copied the list under RCU, validated the copy with the object's seqcount and
took references with ``dma_fence_get_rcu``; the fences of i915 (and others)
came from a type-safe-by-RCU slab, so a fence read under RCU could be freed
and *reused* for another fence before the reader's ``get_rcu`` (dma_fence R11).

Rules:

* R1 (writers hold the lock): ``add_excl_fence``, ``add_shared_fence`` and
  ``fini`` hold the object's ww_mutex (``reservation_ww_class``) and change
  the fences inside a write section of ``seq``; the object takes a reference
  on every fence it publishes and puts the references of the fences it drops
  (after the write section, as ``reservation_object_add_excl_fence`` did).
* R2 (shared list): ``add_shared_fence`` replaces in place a shared fence of
  the same context (putting it), else appends; a full list is replaced by a
  copy twice its size (``shared_max``), published with ``rcu_assign_pointer``.
  Adding an exclusive fence empties the shared list.
* R3 (readers, the variants with their years): a reader returns ``(excl,
  shared)`` with a reference on each, and must return a state the object
  held during the read. :func:`get_fences_rcu` is the fixed reader of
  f5b07b04e5f0 (2019). :func:`get_fences_rcu_2016` is fedf54132d24 (2016):
  it re-checks the seqcount after taking its references, but its restart
  after growing its array under ``GFP_KERNEL`` forgets the exclusive fence it
  already holds (a ``leak``). :func:`get_fences_rcu_no_recheck` is the reader
  before fedf54132d24: it checks the seqcount *before* taking references, so
  a fence freed and recycled in between is returned as if it were the
  object's. Each takes ``nowait_fails``: the reader's array grows with
  ``GFP_NOWAIT`` inside the RCU section, and under memory pressure that
  fails and the reader restarts after a ``GFP_KERNEL`` allocation outside it.
"""

from __future__ import annotations

from ..kernel.runtime import current_kernel
from ..locking.rcu import rcu_read_lock, rcu_read_unlock
from ..locking.seqcount import SeqCount
from ..locking.ww_mutex import WWAcquireCtx, WWMutex
from .fence import DmaFence
from .resv import reservation_ww_class


class ReservationObjectList:
    """``struct reservation_object_list``: ``shared_count`` used of ``shared_max`` slots."""

    __slots__ = ("shared", "shared_max")

    def __init__(self, shared_max: int, shared: list[DmaFence] | None = None) -> None:
        self.shared_max = shared_max
        self.shared: list[DmaFence] = shared if shared is not None else []

    @property
    def shared_count(self) -> int:
        return len(self.shared)


class ReservationObject2016:
    """``struct reservation_object`` (2016-2019): ``fence_excl`` plus the shared list ``fence`` (R1, R2)."""

    __slots__ = ("fence", "fence_excl", "k", "name", "oid", "seq", "ww")

    def __init__(self, name: str = "resv") -> None:
        """``reservation_object_init``."""
        self.k = current_kernel()
        self.ww = WWMutex(reservation_ww_class, name)
        self.oid = self.ww.oid
        self.name = name
        self.seq = SeqCount(f"{name}.seq", lock=self.ww, key="reservation_seqcount")
        self.fence_excl: DmaFence | None = None
        self.fence: ReservationObjectList | None = None

    def lock(self, ctx: WWAcquireCtx | None = None) -> None:
        """``reservation_object_lock`` (``ww_mutex_lock``)."""
        self.ww.lock(ctx)

    def unlock(self) -> None:
        """``reservation_object_unlock``."""
        self.ww.unlock()

    def state(self) -> tuple[tuple[int, int] | None, tuple[tuple[int, int], ...]]:
        """The fences the object holds as ``(context, seqno)`` (for checks; no scheduling point).

        Not ids: a fence of a type-safe-by-RCU cache keeps its memory's id when it is reused."""
        fobj = self.fence
        excl = self.fence_excl
        return (fence_key(excl) if excl is not None else None,
                tuple(fence_key(f) for f in fobj.shared) if fobj else ())

    def add_excl_fence(self, fence: DmaFence | None) -> None:
        """``reservation_object_add_excl_fence``: the new exclusive fence; the shared ones go (R1, R2)."""
        if fence is not None:
            fence.get()
        old_excl = self.fence_excl
        old = self.fence
        dropped = list(old.shared) if old is not None else []
        self.seq.write_begin()
        self.k.event("reservation_object_add_excl_fence", self.oid, True)
        self.fence_excl = fence
        if old is not None:
            self.fence = ReservationObjectList(old.shared_max)
        self.seq.write_end()
        if old_excl is not None:
            old_excl.put()
        for f in dropped:
            f.put()

    def add_shared_fence(self, fence: DmaFence) -> None:
        """``reservation_object_add_shared_fence`` (R2)."""
        fence.get()
        fobj = self.fence
        old: DmaFence | None = None
        self.seq.write_begin()
        self.k.event("reservation_object_add_shared_fence", self.oid, True)
        if fobj is not None:
            for i, f in enumerate(fobj.shared):
                if f.context == fence.context:
                    old = f
                    fobj.shared[i] = fence
                    break
        if old is None:
            if fobj is None or fobj.shared_count >= fobj.shared_max:
                cap = 2 * fobj.shared_max if fobj is not None else 4
                self.fence = ReservationObjectList(cap, [*(fobj.shared if fobj else ()), fence])
            else:
                fobj.shared.append(fence)
        self.seq.write_end()
        if old is not None:
            old.put()

    def fini(self) -> None:
        """``reservation_object_fini``: put every fence the object holds."""
        self.k.point("reservation_object_fini", self.oid, True)
        excl, fobj = self.fence_excl, self.fence
        self.fence_excl = None
        self.fence = None
        if excl is not None:
            excl.put()
        for f in fobj.shared if fobj else ():
            f.put()

    def __repr__(self) -> str:
        return f"<ReservationObject2016 {self.name} excl={self.fence_excl!r} shared={self.fence and self.fence.shared}>"


def fence_key(f: DmaFence) -> tuple[int, int]:
    """A fence as the kernel tells fences apart: ``(context, seqno)``."""
    return (f.context, f.seqno)


#: What a reader returns: the exclusive fence and the shared ones, each with a reference.
Fences = tuple[DmaFence | None, list[DmaFence]]


class _Array:
    """The reader's ``shared`` array (``krealloc``'d; its capacity survives restarts)."""

    __slots__ = ("cap",)

    def __init__(self) -> None:
        self.cap = 0

    def grow_nowait(self, need: int, nowait_fails: bool) -> bool:
        """``krealloc(shared, sz, GFP_NOWAIT | __GFP_NOWARN)``: False when it failed (memory pressure)."""
        if need <= self.cap:
            return True  # krealloc within the allocation's size: no allocation
        if nowait_fails:
            return False
        self.cap = need
        return True

    def grow_kernel(self, need: int) -> None:
        """``krealloc(shared, sz, GFP_KERNEL)``, outside the RCU section (may sleep)."""
        current_kernel().might_sleep("krealloc")
        self.cap = max(self.cap, need)


def _get_all(shared: list[DmaFence]) -> int:
    """``dma_fence_get_rcu`` on each; the count taken before the first failure."""
    for i, f in enumerate(shared):
        if f.get_rcu() is None:
            return i
    return len(shared)


def get_fences_rcu(obj: ReservationObject2016, nowait_fails: bool = False) -> Fences:
    """``reservation_object_get_fences_rcu`` after f5b07b04e5f0 (2019): the fixed reader (R3)."""
    return _get_fences_rcu(obj, nowait_fails, leak_excl=False)


def get_fences_rcu_2016(obj: ReservationObject2016, nowait_fails: bool = False) -> Fences:
    """``reservation_object_get_fences_rcu`` of fedf54132d24 (2016): re-checks after its gets, but its
    ``GFP_KERNEL`` restart keeps the exclusive fence's reference (R3: a ``leak``)."""
    return _get_fences_rcu(obj, nowait_fails, leak_excl=True)


def _get_fences_rcu(obj: ReservationObject2016, nowait_fails: bool, leak_excl: bool) -> Fences:
    arr = _Array()
    while True:
        rcu_read_lock()
        seq = obj.seq.read_begin()
        obj.k.point("rcu_dereference", obj.oid, False)  # fence_excl
        excl = obj.fence_excl
        if excl is not None and excl.get_rcu() is None:
            rcu_read_unlock()
            continue
        obj.k.point("rcu_dereference", obj.oid, False)  # fence
        fobj = obj.fence
        shared = list(fobj.shared) if fobj is not None else []
        if shared and not arr.grow_nowait(fobj.shared_max if fobj else 0, nowait_fails):
            rcu_read_unlock()
            arr.grow_kernel(fobj.shared_max if fobj else 0)
            if excl is not None and not leak_excl:
                excl.put()  # f5b07b04e5f0: discard the old fence_excl before retrying
            continue
        n = _get_all(shared)
        if n != len(shared) or obj.seq.read_retry(seq):
            for f in shared[:n]:
                f.put()
            if excl is not None:
                excl.put()
            rcu_read_unlock()
            continue
        rcu_read_unlock()
        return excl, shared


def get_fences_rcu_no_recheck(obj: ReservationObject2016, nowait_fails: bool = False) -> Fences:
    """``reservation_object_get_fences_rcu`` before fedf54132d24: the seqcount is checked before the
    references are taken, so a fence recycled in between is returned (R3)."""
    arr = _Array()
    while True:
        rcu_read_lock()
        seq = obj.seq.read_begin()
        obj.k.point("rcu_dereference", obj.oid, False)  # fence
        fobj = obj.fence
        shared = list(fobj.shared) if fobj is not None else []
        if shared and not arr.grow_nowait(fobj.shared_max if fobj else 0, nowait_fails):
            rcu_read_unlock()
            arr.grow_kernel(fobj.shared_max if fobj else 0)
            continue
        obj.k.point("rcu_dereference", obj.oid, False)  # fence_excl
        excl = obj.fence_excl
        if obj.seq.read_retry(seq):
            rcu_read_unlock()
            continue
        if excl is not None and excl.get_rcu() is None:
            rcu_read_unlock()
            continue
        n = _get_all(shared)
        if n != len(shared):
            for f in shared[:n]:
                f.put()
            if excl is not None:
                excl.put()
            rcu_read_unlock()
            continue
        rcu_read_unlock()
        return excl, shared
