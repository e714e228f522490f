"""Models i915's userptr of 2018: ``i915_gem_userptr.c`` (v4.15-v4.19) with its mmu notifier.

Per mm one :class:`I915MmuNotifier` (``struct i915_mmu_notifier``): a
spinlock protecting the tree of *active* userptr objects (objects with
pages or a pending get-pages), found by ``invalidate_range_start``, which
takes them out of the tree and runs ``cancel_userptr`` for each, waiting
for all of them (``flush_workqueue``) before it returns.

``cancel_userptr`` (:meth:`I915Userptr.cancel`): under the object's lock
(the model's ``obj->mm.lock``, which here also plays ``struct_mutex``'s
part of excluding execbuf) cancel a pending get-pages, wait for all GPU
rendering on the object, unbind every VMA (zap the GPU PTEs, flush, DMA
unmap), and only then put the pages: ``set_page_dirty``,
``mark_page_accessed``, ``put_page``. Daniel: "we guarantee that we call
set_page_dirty/mark_page_accessed only after all the mappings are really
gone". That teardown is the shared helper's ``userptr_teardown`` (claim
C16: one piece of code for the part every userptr driver must get right).

Get-pages (:meth:`I915Userptr.get_pages`) marks the object active first,
records a work cookie under the object lock, looks the pages up without
any lock, and installs them only if the cookie is still its own -- a
``cancel_userptr`` in between clears it (``obj->userptr.work``), and the
pages are dropped and looked up again.

Rules:

* R1 (order, claim C14): mappings are torn down before pages are dirtied or
  released; when the notifier returns nothing reaches the pages (C15).
* R2 (cancellation): a get-pages overtaken by an invalidation never
  installs its pages (the cookie check, i915's ``userptr.work``).
* R3 (locks, claim C7): the notifier blocks only on the object's own lock,
  which is never held while allocating (the sg table is allocated before
  it is taken) nor while taking a reservation lock; waiting for fences
  under it is allowed. Lockdep stays clean.
* R4 (non-blockable, v4.19): an active object overlapping the range makes
  the callback refuse with ``EAGAIN``.
* Simplification: the synchronously flushed workqueue is modelled by
  running ``cancel_userptr`` inline (same ordering: the notifier returns
  after every cancellation finished); the 2018 lockdep issue of taking
  ``struct_mutex`` from the worker is out of scope (i915 worked around it
  with lockdep subclasses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import Device, DmaOp
from ..dma.fence import DmaFence
from ..kernel.errors import EAGAIN, UsageError
from ..locking.mutex import Mutex
from ..locking.spinlock import SpinLock
from ..mm.memory import MmStruct
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps, MMUNotifierRange
from .userptr_common import UserptrBo
from .userptr_helper import userptr_teardown


class I915Userptr:
    """A userptr GEM object of i915-2018 (``obj->userptr``, ``obj->mm.lock``)."""

    def __init__(self, mn: I915MmuNotifier, bo: UserptrBo) -> None:
        self.mn = mn
        self.bo = bo
        self.lock = Mutex("i915_gem_object.mm.lock")
        #: ``obj->userptr.work``: the cookie of the get-pages in flight, or None.
        self.work: object | None = None
        #: In the notifier's tree (``__i915_gem_userptr_set_active``).
        self.active = False
        self.nr_cancelled = 0
        self.nr_retries = 0

    def get_pages(self) -> None:
        """``i915_gem_userptr_get_pages`` + the worker (R2). Loops until its pages are installed."""
        bo = self.bo
        while True:
            cookie = object()
            with self.lock:
                if bo.bound:
                    return
                self.work = cookie
                self.mn.set_active(self, True)
            pages = bo.gup()
            with self.lock:
                if self.work is cookie and not bo.bound:
                    self.work = None
                    bo.bind(pages)
                    return
            bo.release_pages(pages, dirty=False)  # cancelled: drop them and try again
            self.nr_retries += 1

    def submit(self, ops: Sequence[DmaOp], **job: Any) -> DmaFence:
        """``i915_gem_do_execbuffer`` for one job using the object: pin the pages, push, add the fence."""
        bo = self.bo
        while True:
            self.get_pages()
            bo.resv.lock(None)
            bo.reserve_fence()
            with self.lock:
                if bo.bound:  # still there: no cancel_userptr ran since get_pages
                    fence = bo.submit_fenced(ops, **job)
                    bo.resv.unlock()
                    return fence
            bo.resv.unlock()
            self.nr_retries += 1

    def cancel(self, *, deactivate: bool = False) -> None:
        """``cancel_userptr`` (R1): wait, unbind, then dirty/accessed/put.

        ``deactivate``: also leave the notifier's tree, under the object lock
        and after the teardown (``put_pages`` from the shrinker or at close);
        the notifier itself took the object out of the tree already.
        """
        with self.lock:
            self.work = None
            self.nr_cancelled += 1
            userptr_teardown(self.bo)
            if deactivate:
                self.mn.set_active(self, False)

    def destroy(self) -> None:
        """``i915_gem_userptr_release``: release like a cancel and leave the tree."""
        self.cancel(deactivate=True)


class I915MmuNotifier(MMUNotifierOps):
    """``struct i915_mmu_notifier``: the spinlock-protected tree of active objects of one mm (R1, R4)."""

    def __init__(self, dev: Device, mm: MmStruct) -> None:
        self.dev = dev
        self.mm = mm
        self.lock = SpinLock("i915_mmu_notifier.lock")
        self.objects: list[I915Userptr] = []
        self.sub = MMUNotifier(self)
        self.sub.register(mm)

    def create(self, bo: UserptrBo) -> I915Userptr:
        """``i915_gem_userptr_ioctl`` + ``i915_gem_userptr_init__mmu_notifier``."""
        if bo.mm is not self.mm:
            raise UsageError("the userptr object belongs to another mm")
        return I915Userptr(self, bo)

    def set_active(self, obj: I915Userptr, active: bool) -> None:
        """``__i915_gem_userptr_set_active``: add to / remove from the tree under the spinlock."""
        with self.lock:
            if active and not obj.active:
                self.objects.append(obj)
            elif not active and obj.active:
                self.objects.remove(obj)
            obj.active = active

    def invalidate_range_start(self, sub: MMUNotifier, range: MMUNotifierRange) -> None:
        """``i915_gem_userptr_mn_invalidate_range_start``: cancel every overlapping active object."""
        with self.lock:
            hit = [o for o in self.objects if range.overlaps(o.bo.start, o.bo.end)]
            if hit and not range.blockable:
                raise EAGAIN("i915 userptr: active objects overlap a non-blockable range")
            for o in hit:
                self.objects.remove(o)
                o.active = False
        for o in hit:  # queue_work(cancel_userptr) ... flush_workqueue
            o.cancel()
