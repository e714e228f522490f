"""Models amdgpu's userptr of 2018: ``amdgpu_mn.c`` + ``amdgpu_ttm.c`` + ``amdgpu_cs.c`` (v4.16-v4.19, GFX).

One :class:`AmdgpuMn` per (device, mm) -- ``struct amdgpu_mn`` of type
``AMDGPU_MN_TYPE_GFX`` -- is a classic MMU notifier over the whole mm with
the list of userptr objects (the kernel's interval tree of nodes). Its
``amn->lock`` is an rw_semaphore: the notifier holds the read side from
``invalidate_range_start`` to ``invalidate_range_end`` (with
``down_read_non_owner``, which lockdep does not see, behind a small mutex
and a recursion counter), the command submission takes the write side
(``amdgpu_mn_lock``) from the last "are the pages still valid" check until
its fence is in the reservation objects.

What the notifier does (``amdgpu_mn_invalidate_range_start_gfx``) for each
object overlapping the range: count the invalidation
(``amdgpu_ttm_tt_affect_userptr``), wait for every fence of the object's
reservation object *without taking the lock*
(``reservation_object_wait_timeout_rcu(wait_all, no timeout)``) and mark
the pages dirty and accessed (``amdgpu_ttm_tt_mark_user_pages``). It does
**not** unmap anything: the page references, the GART/IOMMU mappings and
the GPU page-table entries stay until the next submission naming the object
re-validates it (``amdgpu_cs_parser_bos``: get the pages again, unbind the
old ones, bind the new ones).

Rules:

* R1 (CS): a submission naming the object looks its pages up again when
  an invalidation happened since they were set (before reserving), binds
  them under the reservation lock, then takes ``amn->lock`` for write and
  restarts the whole ioctl (``-ERESTARTSYS``) if another invalidation
  happened meanwhile; the job fence is added before ``amn->lock`` drops.
* R2 (notifier): counts, waits for the fences, dirties and marks the pages
  accessed -- with every mapping still in place (claim C13: the isolation
  checker reports ``dirty-while-mapped``; the C15 invariant of
  ``mm/mmu_notifier.py`` reports the mapping that survives the
  invalidation as ``stale-mapping``).
* R3 (persistence): the GPU VM mapping is persistent; a job that does not
  name the object (:meth:`AmdgpuUserptr.rogue_job`) is not re-validated and
  writes through the stale mapping: after ``fork`` + copy-on-write into the
  child's page (``dma-foreign-page``).
* R4 (non-blockable, v4.19): ``amn->read_lock`` is only trylocked; an
  overlapping object makes the callback refuse with ``EAGAIN``. The read
  side itself is still ``down_read_non_owner``, which may sleep: under
  today's ``non_block_start`` checks that is a ``sleep-in-atomic`` finding
  (a bug the 2018 kernel could not see).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import Device, DmaOp
from ..dma.fence import DmaFence
from ..kernel.errors import EAGAIN, UsageError
from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import current_kernel
from ..kernel.wait import WaitQueue
from ..locking.mutex import Mutex
from ..mm.memory import MmStruct
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierOps, MMUNotifierRange
from .userptr_common import UserptrBo


class AmnLock:
    """``amn->lock`` + ``amn->read_lock`` + ``amn->recursion`` (``amdgpu_mn_read_lock`` / ``amdgpu_mn_lock``).

    The notifier's read side is ``down_read_non_owner`` (no lockdep
    annotation, so only the small ``read_lock`` mutex is visible); the
    command submission's ``down_write`` is an ordinary, annotated
    acquisition of class ``amdgpu_mn.lock``.
    """

    def __init__(self) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.read_lock = Mutex("amdgpu_mn.read_lock")
        self.dep_map = LockdepMap("amdgpu_mn.lock")
        self.wq = WaitQueue("amdgpu_mn.lock")
        self.readers = 0
        self.recursion = 0
        self.writer: Any = None

    def _no_writer(self) -> bool:
        return self.writer is None

    def _free(self) -> bool:
        return self.writer is None and self.readers == 0

    def read_lock_(self, blockable: bool) -> bool:
        """``amdgpu_mn_read_lock``: False when not blockable and the mutex is busy (R4)."""
        if blockable:
            self.read_lock.lock()
        elif not self.read_lock.trylock():
            return False
        self.k.event("amdgpu_mn_read_lock", self.oid, True)  # atomic_inc_return(&amn->recursion)
        self.recursion += 1
        if self.recursion == 1:
            self.k.might_sleep("down_read_non_owner")
            self.wq.wait_event(self._no_writer, reads=self.oid)
            self.k.event("amdgpu_mn_read_lock", self.oid, True)  # the step that saw no writer takes it
            self.readers += 1
        self.read_lock.unlock()
        return True

    def read_unlock(self) -> None:
        """``amdgpu_mn_read_unlock``: the last nested reader does ``up_read_non_owner``."""
        self.k.point("amdgpu_mn_read_unlock", self.oid, True)
        self.recursion -= 1
        if self.recursion == 0:
            self.readers -= 1
            self.wq.wake_up_all()

    def write_lock(self) -> None:
        """``amdgpu_mn_lock``: ``down_write(&amn->lock)``."""
        k = self.k
        k.might_sleep("down_write")
        k.lockdep.acquire(self.dep_map)
        self.wq.wait_event(self._free, reads=self.oid)
        k.event("amdgpu_mn_lock", self.oid, True)  # the step that saw it free takes it
        self.writer = k.current

    def write_unlock(self) -> None:
        """``amdgpu_mn_unlock``."""
        self.k.point("amdgpu_mn_unlock", self.oid, True)
        self.k.lockdep.release(self.dep_map)
        self.writer = None
        self.wq.wake_up_all()


class AmdgpuUserptr:
    """A userptr BO of amdgpu-2018 (``amdgpu_ttm_tt`` with ``userptr``, ``mmu_invalidations``, ``last_set_pages``)."""

    def __init__(self, amn: AmdgpuMn, bo: UserptrBo) -> None:
        self.amn = amn
        self.bo = bo
        #: ``gtt->mmu_invalidations``: bumped by every overlapping invalidation.
        self.mmu_invalidations = 0
        #: ``gtt->last_set_pages``: the count when the current pages were looked up.
        self.last_set_pages = -1
        self.nr_restarts = 0

    def _invalidations(self) -> int:
        """``atomic_read(&gtt->mmu_invalidations)``: the step reads the object."""
        self.bo.k.event("amdgpu_userptr_invalidations", self.bo.oid, False)
        return self.mmu_invalidations

    def needs_pages(self) -> bool:
        """``amdgpu_ttm_tt_userptr_needs_pages``."""
        return self._invalidations() != self.last_set_pages

    def submit(self, ops: Sequence[DmaOp], **job: Any) -> DmaFence:
        """``amdgpu_cs_ioctl`` for one job naming the object, with its restart loop (R1)."""
        bo, amn = self.bo, self.amn
        while True:
            fresh = None
            seen = self._invalidations()
            if self.needs_pages():
                fresh = bo.gup()  # amdgpu_ttm_tt_get_user_pages, before reserving
            bo.resv.lock(None)
            if fresh is not None:
                # amdgpu_cs_list_validate: unbind + unpin the old pages, bind the new ones.
                bo.unbind()
                if bo.pages is not None:
                    bo.release_pages()
                bo.bind(fresh)
                self.last_set_pages = seen
            bo.reserve_fence()
            amn.lock.write_lock()
            if self.needs_pages():  # an invalidation since the lookup: -ERESTARTSYS
                amn.lock.write_unlock()
                bo.resv.unlock()
                self.nr_restarts += 1
                continue
            fence = bo.submit_fenced(ops, **job)
            amn.lock.write_unlock()
            bo.resv.unlock()
            return fence

    def rogue_job(self, ops: Sequence[DmaOp]) -> DmaFence:
        """A job that does not name the object but uses its GPU VA (R3): nothing re-validates it."""
        return self.bo.dev.submit(list(ops))

    def destroy(self) -> None:
        """``amdgpu_mn_unregister`` + ``amdgpu_ttm_tt_unpin_userptr`` at BO free."""
        self.amn.unregister(self)
        self.bo.destroy_pages()


class AmdgpuMn(MMUNotifierOps):
    """``struct amdgpu_mn`` (GFX): a classic notifier of one mm for one device (R2, R4)."""

    def __init__(self, dev: Device, mm: MmStruct) -> None:
        self.dev = dev
        self.mm = mm
        self.lock = AmnLock()
        self.objects: list[AmdgpuUserptr] = []
        self.sub = MMUNotifier(self)
        self.sub.register(mm)

    def register(self, bo: UserptrBo) -> AmdgpuUserptr:
        """``amdgpu_mn_register``: add a userptr object to the notifier."""
        if bo.mm is not self.mm or bo.dev is not self.dev:
            raise UsageError("amdgpu_mn_register: the object belongs to another mm or device")
        obj = AmdgpuUserptr(self, bo)
        self.objects.append(obj)
        return obj

    def unregister(self, obj: AmdgpuUserptr) -> None:
        """``amdgpu_mn_unregister`` (takes the write side so no callback still uses the object)."""
        self.lock.write_lock()
        self.objects.remove(obj)
        self.lock.write_unlock()

    def _overlapping(self, range: MMUNotifierRange) -> list[AmdgpuUserptr]:
        return [o for o in self.objects if range.overlaps(o.bo.start, o.bo.end)]

    def invalidate_range_start(self, sub: MMUNotifier, range: MMUNotifierRange) -> None:
        """``amdgpu_mn_invalidate_range_start_gfx`` (R2, R4)."""
        if not self.lock.read_lock_(range.blockable):
            raise EAGAIN("amdgpu_mn: read lock busy in a non-blockable range")
        hit = self._overlapping(range)
        if not range.blockable and hit:
            self.lock.read_unlock()
            raise EAGAIN("amdgpu_mn: userptr objects overlap a non-blockable range")
        for obj in hit:
            obj.bo.k.event("amdgpu_ttm_tt_affect_userptr", obj.bo.oid, True)
            obj.mmu_invalidations += 1  # amdgpu_ttm_tt_affect_userptr
            obj.bo.wait_idle()  # reservation_object_wait_timeout_rcu(resv, true, false, MAX)
            obj.bo.k.event("amdgpu_ttm_tt_mark_user_pages", obj.bo.oid, False)  # the pages, after the wait
            for p in obj.bo.pages or ():  # amdgpu_ttm_tt_mark_user_pages
                if obj.bo.writable:
                    p.set_dirty()
                p.mark_accessed()

    def invalidate_range_end(self, sub: MMUNotifier, range: MMUNotifierRange) -> None:
        """``amdgpu_mn_invalidate_range_end``: drop the read side."""
        self.lock.read_unlock()
