"""Models ``drivers/dma-buf/sw_sync.c`` (``struct sync_timeline``, ``struct sync_pt``).

sw_sync is the kernel's software timeline for tests and userspace fences: a
timeline has a value; a *point* is a fence that signals once the value
reaches its seqno; ``sync_timeline_signal(inc)`` advances the value and
signals every point it passed. The timeline's lock is also the fence lock of
all its points, and the list of pending points holds no reference: a point
whose last reference goes away unlinks itself in its ``release``.

Rules:

* R1 (points): ``create_pt(value)`` returns a point (one reference, the
  caller's) on the timeline's context with seqno ``value``; a point already
  passed is created signalled and not linked; otherwise it is linked into
  the pending list in seqno order, under the timeline lock.
* R2 (signal): ``signal(inc)`` takes the timeline lock, advances the value
  and, for each pending point the value passed (in order), unlinks it and
  signals it (``dma_fence_signal_locked``: its callbacks run under the
  timeline lock). The 2023 code (e531fdb5cd5e, :class:`SyncTimeline`) first
  takes a reference on each such point and moves it to a private list, and
  drops those references after unlocking, so no callback can drop a point's
  last reference under the lock (but see R4).
* R3 (release): the point's ``release`` (the fence op) unlinks the point if
  it is still linked, under the timeline lock, then frees it (dma_fence R11).
* R4 (a list without references, 2024): in :class:`SyncTimeline` the
  signaller's ``dma_fence_get`` may meet a point whose last reference was
  just put and whose release waits for the timeline lock: a 0 -> 1 count
  ("refcount_t: addition on 0; use-after-free."), then the release frees the
  point the signaller still holds. Reported by Thadeu Lima de Souza Cascardo
  (Message-ID 20240324101533.3271056-1-cascardo@igalia.com); his proposal,
  :class:`SyncTimelineListRef`, makes the pending list hold a reference.
* R5 (variants, with their years): :class:`SyncTimelineLockedRelease2019`
  signals without the private list (d3c6dd1fb30d, 2019: a callback dropping
  the last reference runs the release, which takes the timeline lock the
  signaller holds); :class:`SyncTimelineUnlockedRelease` is the code before
  d3c6dd1fb30d: the release tests "still linked?" without the lock and frees
  a point the signaller just unlinked and is about to signal. A design of
  one's own overrides the public :meth:`SyncTimeline.signal`, :meth:`SyncTimeline.link`,
  :meth:`SyncTimeline.release_pt` or :meth:`SyncTimeline.signal_pt`.
"""

from __future__ import annotations

from ..kernel.runtime import current_kernel
from ..locking.spinlock import SpinLock
from .fence import DmaFence, FenceOps, context_alloc, seqno_is_later


class SyncTimelineOps(FenceOps):
    """``timeline_fence_ops``: names, ``signaled`` against the timeline value, ``release`` (R3)."""

    def get_driver_name(self, fence: DmaFence) -> str:
        return "sw_sync"

    def get_timeline_name(self, fence: DmaFence) -> str:
        assert isinstance(fence, SyncPt)
        return fence.timeline.name

    def signaled(self, fence: DmaFence) -> bool:
        """``timeline_fence_signaled``: the timeline value reached the point's seqno."""
        assert isinstance(fence, SyncPt)
        return not seqno_is_later(fence.seqno, fence.timeline.value, False)

    def release(self, fence: DmaFence) -> None:
        """``timeline_fence_release``: the timeline's :meth:`SyncTimeline.release_pt`, then free (R3)."""
        assert isinstance(fence, SyncPt)
        fence.timeline.release_pt(fence)
        fence.free()


SYNC_TIMELINE_OPS = SyncTimelineOps()


class SyncPt(DmaFence):
    """``struct sync_pt``: a fence on a :class:`SyncTimeline` (R1)."""

    __slots__ = ("linked", "timeline")

    def __init__(self, timeline: SyncTimeline, value: int) -> None:
        super().__init__(timeline.ops, timeline.lock, timeline.context, value)
        self.timeline = timeline
        #: On the timeline's pending list (``!list_empty(&pt->link)``).
        self.linked = False


class SyncTimeline:
    """``struct sync_timeline`` as of e531fdb5cd5e (2023): deferred puts (R2), locked release (R3)."""

    __slots__ = ("context", "k", "lock", "name", "oid", "ops", "pt_list", "value")

    def __init__(self, name: str = "sw_sync", ops: SyncTimelineOps | None = None) -> None:
        """``sync_timeline_create``."""
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        self.name = name
        self.ops = ops if ops is not None else SYNC_TIMELINE_OPS
        self.lock = SpinLock(f"{name}.lock", key="sync_timeline.lock")
        self.context = context_alloc(1)
        self.value = 0
        #: The pending points, in seqno order (``pt_list``; the rb-tree indexes the same points).
        self.pt_list: list[SyncPt] = []

    def create_pt(self, value: int) -> SyncPt:
        """``sync_pt_create``: a new point with one reference (R1)."""
        pt = SyncPt(self, value)
        self.lock.lock_irq()
        self.k.event("sync_pt_create", self.oid, True)
        if seqno_is_later(value, self.value, False):
            self.link(pt)
        self.lock.unlock_irq()
        if not pt.linked:
            pt.signal()
        return pt

    def link(self, pt: SyncPt) -> None:
        """``rb_insert`` + ``list_add_tail``: a pending point joins the list in seqno order (lock held)."""
        self.k.event("sync_pt_link", pt.oid, True)
        pt.linked = True
        i = len(self.pt_list)
        while i and seqno_is_later(self.pt_list[i - 1].seqno, pt.seqno, False):
            i -= 1
        self.pt_list.insert(i, pt)

    def unlink(self, pt: SyncPt) -> None:
        """``list_del_init(&pt->link)`` + ``rb_erase``: the timeline lock is held."""
        self.k.event("sync_pt_unlink", pt.oid, True)
        self.pt_list.remove(pt)
        pt.linked = False

    def signal_pt(self, pt: SyncPt) -> None:
        """``dma_fence_signal_locked(&pt->base)``: the timeline lock is held."""
        pt.signal_locked()

    def passed(self) -> list[SyncPt]:
        """The pending points the value reached, in order (lock held)."""
        out = []
        for pt in self.pt_list:
            if seqno_is_later(pt.seqno, self.value, False):
                break
            out.append(pt)
        return out

    def signal(self, inc: int) -> None:
        """``sync_timeline_signal`` of e531fdb5cd5e (2023, R2): reference, unlink and signal under
        the lock; put after. The reference is a plain ``dma_fence_get`` of a point the list does
        not pin: its count may already be zero, its release waiting for the lock (R4)."""
        k = self.k
        self.lock.lock_irq()
        k.event("sync_timeline_signal", self.oid, True)
        self.value += inc
        signalled = []
        for pt in self.passed():
            pt.get()
            self.unlink(pt)
            signalled.append(pt)
            self.signal_pt(pt)
        self.lock.unlock_irq()
        for pt in signalled:
            pt.put()

    def release_pt(self, pt: SyncPt) -> None:
        """``timeline_fence_release``'s unlink since d3c6dd1fb30d: check and unlink under the lock (R3)."""
        self.lock.lock_irqsave()
        self.k.event("sync_pt_release", pt.oid, True)
        if pt.linked:
            self.unlink(pt)
        self.lock.unlock_irqrestore()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} value={self.value} pending={len(self.pt_list)}>"


class SyncTimelineLockedRelease2019(SyncTimeline):
    """d3c6dd1fb30d (2019, "dma-buf/sw_sync: Synchronize signal vs syncpt free"): locked release,
    but points are signalled without a reference of the signaller's (R5)."""

    __slots__ = ()

    def signal(self, inc: int) -> None:
        """``sync_timeline_signal`` of 2019: unlink, then signal, each under the lock."""
        k = self.k
        self.lock.lock_irq()
        k.event("sync_timeline_signal", self.oid, True)
        self.value += inc
        for pt in self.passed():
            self.unlink(pt)
            self.signal_pt(pt)  # a callback may drop the point's last reference here
        self.lock.unlock_irq()


class SyncTimelineUnlockedRelease(SyncTimelineLockedRelease2019):
    """Before d3c6dd1fb30d: the release tests "still linked?" without the lock (R5)."""

    __slots__ = ()

    def release_pt(self, pt: SyncPt) -> None:
        """The old ``timeline_fence_release``: lock only when the unlocked test says linked."""
        self.k.point("sync_pt_release", pt.oid, False)  # list_empty(&pt->link), no lock
        if not pt.linked:
            return
        super().release_pt(pt)


class SyncTimelineListRef(SyncTimeline):
    """The pending list holds a reference (R4): Cascardo's 2024 proposal, "dma-buf/sw_sync: Add a
    reference when adding fence to timeline list" (Message-ID
    20240324101533.3271056-1-cascardo@igalia.com, Fixes: e531fdb5cd5e; merge status unverified)."""

    __slots__ = ()

    def link(self, pt: SyncPt) -> None:
        """Linking takes the list's reference."""
        super().link(pt)
        pt.get()

    def signal(self, inc: int) -> None:
        """Unlink, signal and drop the list's reference, under the lock (no callback can drop the last)."""
        k = self.k
        self.lock.lock_irq()
        k.event("sync_timeline_signal", self.oid, True)
        self.value += inc
        for pt in self.passed():
            self.unlink(pt)
            self.signal_pt(pt)
            pt.put()  # the list's reference: never the last while a callback could still hold the lock
        self.lock.unlock_irq()

    def release_pt(self, pt: SyncPt) -> None:
        """Nothing to unlink: a linked point holds a reference, so a released one is never linked."""
