"""Models an i915-2018 userptr object exported as a dma-buf (claim C7's "invalidate importers").

i915 of v4.15-v4.19 let userspace export a userptr object through PRIME
(``i915_gem_userptr_dmabuf_export`` only made sure the object had an mmu
notifier); i915's own ``dma_buf_ops`` were static and pinned the pages.
Here the object is exported *dynamically* (``pin``/``unpin``, importers
with ``move_notify``), which is what Daniel's "going to importers through
the ->invalidate_mapping callback" needs. (The kernel later gave up: since
v5.13 i915 refuses to export userptr objects, and amdgpu refuses with
``EPERM`` in ``amdgpu_gem_prime_export``.)

:class:`ExportedI915Userptr` is ``userptr_i915_2018.I915Userptr`` plus the
exporter side; :class:`I915UserptrDmaBufOps` are its ``dma_buf_ops``:

* ``map_dma_buf`` (reservation lock held) takes the object lock
  (``obj->mm.lock``, ordered after the reservation lock as in execbuf) and
  maps the object's pages through the *importer's* IOMMU
  (``dma_map_sg``). It cannot look pages up: ``get_user_pages`` takes
  ``mmap_lock``, which is ordered *before* the reservation lock. An object
  without pages (the shrinker or the notifier took them) is ``EAGAIN``,
  and, as i915's get-pages did, it queues the get-pages worker
  (:meth:`ExportedI915Userptr.get_pages_worker`), which looks the pages up
  without any lock held and installs them unless an invalidation overtook
  it (the ``userptr.work`` cookie). The importer's access fails cleanly and
  a later one re-maps; a lookup that faulted (the range is gone) makes the
  next map ``EFAULT``.
* The shrinker (``shrinker_designs.I915ExportedUserptrShrinker``), holding
  the trylocked reservation lock, calls :meth:`ExportedI915Userptr.invalidate_importers_locked`:
  wait for every fence of the reservation object (the importers' jobs
  included), ``dma_buf_move_notify`` (importers drop their tables and
  re-map before their next access), and tear down every importer table
  made before it (``dma_buf_teardown_mappings``); then the usual
  ``cancel_userptr``: unbind its own mappings, dirty and put the pages.
* The mmu notifier cannot take the reservation lock (claims C5, C10), so
  it cannot call ``move_notify``. Its ``cancel_userptr``
  (:meth:`ExportedI915Userptr.cancel`) holds the object lock, under which
  every importer table was made: after waiting for the fences it unmaps
  the importer tables' IOMMU entries itself and marks them torn down (the
  importer then re-maps at its next access, which takes the reservation
  lock and the object lock), and only then unbinds and puts the pages.

Rules:

* R1 (locks): ``map_dma_buf``/``unmap_dma_buf`` run with the reservation
  lock held and take the object lock inside it; nothing allocates under the
  object lock (the IOMMU map does not, in the model); the notifier never
  takes the reservation lock, the shrinker only trylocks it.
* R2 (invalidate importers, claim C7): before the pages are dirtied or put,
  no importer IOMMU entry reaches them: through ``move_notify`` +
  teardown (shrinker) or the exporter's own unmap under the object lock
  (notifier).
* R3 (no pinning): userptr pages cannot be pinned against the notifier:
  static attachments are refused (``EBUSY`` in ``attach``) and ``pin`` is
  ``EBUSY``.
* R4 (re-map): ``map_dma_buf`` of an object without pages is ``EAGAIN``
  (or ``EFAULT`` once, after the worker's lookup faulted); it never calls
  ``get_user_pages`` itself, the worker does, holding no lock. The buffer's
  release flushes the worker (``flush_work``).
* ``forget_importers=True`` is the deliberately broken exporter: both paths
  skip R2 (no ``move_notify``, no teardown of importer tables) and free the
  pages under the importers' feet.
* ``notifier_trylock=True`` is Daniel's "trylock and skip" applied to the
  notifier (:class:`ExportingI915MmuNotifier`): it trylocks the reservation
  lock to ``move_notify`` and tear the importer tables down, and when the
  lock is busy it skips the importers -- which an mmu notifier may not do:
  it must not return while a device can still reach the range.
"""

from __future__ import annotations

from ..device.device import Device
from ..dma.dma_buf import (
    DMA_TO_DEVICE,
    DmaBuf,
    DmaBufAttachment,
    DmaBufOps,
    DmaDataDirection,
    SgEntry,
    SgTable,
    export,
)
from ..kernel.errors import EAGAIN, EBUSY, EFAULT, UsageError
from ..kernel.thread import KThread
from ..mm.mmu_notifier import MMUNotifier, MMUNotifierRange
from ..mm.page import PAGE_SIZE
from .userptr_common import UserptrBo
from .userptr_helper import userptr_teardown
from .userptr_i915_2018 import I915MmuNotifier, I915Userptr


class ExportedI915Userptr(I915Userptr):
    """An i915-2018 userptr object that may be exported (``i915_gem_userptr_dmabuf_export``).

    ``importer_tables``: the tables ``map_dma_buf`` made and nobody unmapped
    yet (protected by the object lock). Counters: ``nr_importer_revokes``
    (tables the notifier tore down), ``nr_invalidations`` (shrinker
    ``move_notify`` passes), ``nr_importer_teardowns`` (tables the shrinker
    tore down after them), ``nr_eagain`` (maps refused for lack of pages).
    """

    def __init__(self, mn: I915MmuNotifier, bo: UserptrBo, *, forget_importers: bool = False,
                 notifier_trylock: bool = False) -> None:
        super().__init__(mn, bo)
        self.forget_importers = forget_importers
        self.notifier_trylock = notifier_trylock
        self.nr_notifier_skips = 0
        self.dmabuf: DmaBuf | None = None
        self.importer_tables: list[SgTable] = []
        self.nr_importer_revokes = 0
        self.nr_invalidations = 0
        self.nr_importer_teardowns = 0
        self.nr_eagain = 0
        #: The queued get-pages worker (``obj->userptr.work``'s work item), or None.
        self.worker: KThread | None = None
        #: The worker's lookup faulted: the next map is ``EFAULT`` (i915's ``ERR_PTR(-EFAULT)`` cookie).
        self.get_pages_error = False
        self.nr_worker_binds = 0

    def _work_state(self, write: bool) -> None:
        """The step reads (writes) the worker and export state: ``obj->userptr.work`` and
        ``obj->base.dma_buf`` (an event on the object: the work item's own synchronisation)."""
        self.bo.k.event("i915_userptr_work", self.bo.oid, write)

    def export(self) -> DmaBuf:
        """``i915_gem_prime_export``: a dynamic dma-buf sharing the object's reservation object."""
        if self.dmabuf is not None:
            raise UsageError(f"{self.bo.name}: exported twice")
        buf = export(I915UserptrDmaBufOps(self), self.bo.npages * PAGE_SIZE, self, resv=self.bo.resv,
                     name=f"dmabuf:{self.bo.name}", exp_name="i915")
        self.dmabuf = buf
        return buf

    # ------------------------------------------------------------------ get-pages worker (R4)

    def queue_get_pages(self) -> None:
        """Object lock held: queue the get-pages worker unless one is pending (``schedule_work``)."""
        self._work_state(True)
        if self.worker is None:
            self.worker = self.bo.k.spawn(self.get_pages_worker, name=f"{self.bo.name}-get-pages")

    def get_pages_worker(self) -> None:
        """``__i915_gem_userptr_get_pages_worker``: one lookup, installed only if still wanted (R4)."""
        bo = self.bo
        cookie = object()
        with self.lock:
            self._work_state(True)
            if bo.bound or self.dmabuf is None:
                self.worker = None
                return
            self.work = cookie
            self.mn.set_active(self, True)
        try:
            pages = bo.gup()
        except EFAULT:
            with self.lock:
                self._work_state(True)
                if self.work is cookie:
                    self.work = None
                    self.get_pages_error = True
                self.worker = None
            return
        with self.lock:
            self._work_state(True)
            install = self.work is cookie and not bo.bound
            if install:
                self.work = None
                bo.bind(pages)
                self.nr_worker_binds += 1
            self._work_state(True)  # bind took scheduling points: this step writes it again
            self.worker = None
        if not install:
            bo.release_pages(pages, dirty=False)  # overtaken by an invalidation

    def flush_get_pages(self) -> None:
        """``flush_work``: wait for a queued get-pages worker."""
        self._work_state(False)
        w = self.worker
        if w is not None:
            self.bo.k.join(w)

    # ------------------------------------------------------------------ shrinker side (resv held)

    def invalidate_importers_locked(self) -> int:
        """Shrinker, reservation lock held (R2): wait idle, ``move_notify``, tear the old tables down.

        Returns the number of importer tables torn down.
        """
        buf = self.dmabuf
        if buf is None or self.forget_importers:
            return 0
        self.bo.wait_idle()  # every fence: own jobs and the importers'
        gen = buf.move_notify()
        self.nr_invalidations += 1
        n = buf.teardown_mappings_before(gen)
        self.nr_importer_teardowns += n
        return n

    # ------------------------------------------------------------------ notifier side (object lock)

    def _revoke_importer_tables(self) -> None:
        """Object lock held, fences waited for (R2): unmap every importer table's IOMMU entries."""
        for sgt in list(self.importer_tables):
            dev = sgt.attachment.dev
            assert isinstance(dev, Device)
            dev.domain.dma_unmap_sg(sgt.priv)
            # the importer tests torn_down under the reservation lock, which this path need not hold
            self.bo.k.event("importer_sgt", sgt.attachment.oid, True)
            sgt.torn_down = True
            self.importer_tables.remove(sgt)
            self.nr_importer_revokes += 1

    def notifier_cancel(self) -> None:
        """What the notifier runs for this object: :meth:`cancel`, or with ``notifier_trylock`` the
        trylock of the reservation lock first (``move_notify`` + teardown), skipping importers when busy."""
        if self.notifier_trylock and not self.forget_importers:
            resv = self.bo.resv
            if resv.trylock():
                try:
                    self.invalidate_importers_locked()
                finally:
                    resv.unlock()
            else:
                self.nr_notifier_skips += 1  # "skip to the next object": the importer keeps its table
        self.cancel()

    def cancel(self, *, deactivate: bool = False) -> None:
        """``cancel_userptr`` of an exported object (R2): wait, revoke importer tables, unbind, dirty/put."""
        with self.lock:
            self.work = None
            self.nr_cancelled += 1
            if not self.forget_importers and not self.notifier_trylock:
                self.bo.wait_idle()
                self._revoke_importer_tables()
            userptr_teardown(self.bo)
            if deactivate:
                self.mn.set_active(self, False)


class ExportingI915MmuNotifier(I915MmuNotifier):
    """``struct i915_mmu_notifier`` whose objects may be exported (runs their ``notifier_cancel``)."""

    def invalidate_range_start(self, sub: MMUNotifier, range: MMUNotifierRange) -> None:
        """``i915_gem_userptr_mn_invalidate_range_start`` (userptr_i915_2018 R4), exported objects included."""
        with self.lock:
            hit = [o for o in self.objects if range.overlaps(o.bo.start, o.bo.end)]
            if hit and not range.blockable:
                raise EAGAIN("i915 userptr: active objects overlap a non-blockable range")
            for o in hit:
                self.objects.remove(o)
                o.active = False
        for o in hit:
            if isinstance(o, ExportedI915Userptr):
                o.notifier_cancel()
            else:
                o.cancel()


class I915UserptrDmaBufOps(DmaBufOps):
    """The ``dma_buf_ops`` of an exported userptr object: dynamic, never pinned (R1, R3, R4)."""

    def __init__(self, obj: ExportedI915Userptr) -> None:
        self.obj = obj

    def attach(self, dmabuf: DmaBuf, attachment: DmaBufAttachment) -> None:
        """Refuse static importers: they would pin pages the notifier must be able to take (R3)."""
        if not attachment.is_dynamic:
            raise EBUSY("i915 userptr: only dynamic importers (move_notify) may attach")

    def pin(self, attachment: DmaBufAttachment) -> None:
        """R3: userptr pages cannot be pinned against the mmu notifier."""
        raise EBUSY("i915 userptr: cannot pin")

    def unpin(self, attachment: DmaBufAttachment) -> None:
        """Never reached (``pin`` always fails)."""
        raise UsageError("i915 userptr: unpin without pin")

    def map_dma_buf(self, attachment: DmaBufAttachment, direction: DmaDataDirection) -> SgTable:
        """``i915_gem_map_dma_buf`` (R1, R4): the object's pages through the importer's IOMMU."""
        obj = self.obj
        bo = obj.bo
        dev = attachment.dev
        assert isinstance(dev, Device)
        with obj.lock:
            pages = bo.pages
            if pages is None or not bo.bound:
                if obj.get_pages_error:
                    obj.get_pages_error = False
                    raise EFAULT("i915 userptr: the pages could not be looked up")
                obj.nr_eagain += 1
                obj.queue_get_pages()
                raise EAGAIN("i915 userptr: no pages (get-pages worker queued)")
            writable = bo.writable and direction != DMA_TO_DEVICE
            recs = dev.map_pages(0, pages, writable)
            for i, rec in enumerate(recs):  # mapped for the object's process at its address (as bind does)
                rec.owner = bo.mm
                rec.user_mm = bo.mm
                rec.user_va = bo.start + i * PAGE_SIZE
            iovas = [r.iova for r in recs]
            entries = [SgEntry(a, PAGE_SIZE, p) for a, p in zip(iovas, pages, strict=True)]
            sgt = SgTable(attachment, entries, direction, priv=iovas)
            obj.importer_tables.append(sgt)
            return sgt

    def unmap_dma_buf(self, attachment: DmaBufAttachment, sgt: SgTable, direction: DmaDataDirection) -> None:
        """``i915_gem_unmap_dma_buf``: ``dma_unmap_sg`` unless the notifier did it already."""
        obj = self.obj
        dev = attachment.dev
        assert isinstance(dev, Device)
        with obj.lock:
            if sgt in obj.importer_tables:
                obj.importer_tables.remove(sgt)
                dev.domain.dma_unmap_sg(sgt.priv)

    def release(self, dmabuf: DmaBuf) -> None:
        """``i915_gem_dmabuf_release``: the object is no longer exported; flush the get-pages worker."""
        self.obj._work_state(True)
        self.obj.dmabuf = None
        self.obj.flush_get_pages()


__all__ = ["ExportedI915Userptr", "ExportingI915MmuNotifier", "I915UserptrDmaBufOps"]
