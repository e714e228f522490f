"""Models ``drivers/dma-buf/dma-buf.c`` and ``include/linux/dma-buf.h`` (Linux 6.12).

A dma-buf is a buffer one driver (the *exporter*) shares with others (the
*importers*). Importers *attach* their device, then *map* the attachment
to get a scatter-gather table of DMA addresses their device can use. The
buffer's reservation object (:class:`~dmabufsim.dma.resv.DmaResv`)
carries the fences of every access and its lock serialises mappings.

A *dynamic* exporter (one with ``pin``/``unpin``) may move the backing
store while it is not pinned; a *dynamic* importer (one that passes
:class:`DmaBufAttachOps` with ``move_notify``) accepts that and is told,
under the reservation lock, to drop its mappings. Everyone else gets a
pinned buffer and a mapping cached at attach time.

Rules (findings cite them as ``dma-buf Rn``):

* R1 (export): ``map_dma_buf``, ``unmap_dma_buf`` and ``release`` are
  mandatory; ``pin`` and ``unpin`` come together or not at all; a cached
  sg mapping and pin/unpin exclude each other. Otherwise ``EINVAL``. The
  buffer uses the reservation object it is given, or its own.
* R2 (lifetime): ``get``/``put`` count references; the last ``put`` calls
  ``ops.release`` and is an ``assertion`` finding if attachments or
  vmaps remain. Any use of a released buffer is a :class:`UsageError`.
* R3 (locking convention, table of dma-buf.c "locking convention"):
  attach, detach, begin/end_cpu_access, put, mmap and the ``*_unlocked``
  variants must be called **without** the reservation lock (``might_lock``);
  pin, unpin, map, unmap, vmap, vunmap and ``move_notify`` **with** it.
  A violation is an ``assertion`` finding naming the function and the
  rule, and the call proceeds (the kernel only WARNs too).
* R4 (dynamic attach): importer ops without ``move_notify`` (or its 2018
  name ``invalidate_mappings``) are ``EINVAL``. When exactly one side is
  dynamic, the mapping is created at attach time (pinning a dynamic
  exporter), cached, and handed out by every later map.
* R5 (cached mapping): a map in a direction the cached table does not cover
  (not the same and not ``DMA_BIDIRECTIONAL``) is ``EBUSY``; unmapping the
  cached table is a no-op.
* R6 (static importers): a map by a static importer waits (interruptibly)
  for the KERNEL fences of the reservation object before returning, so a
  pipelined move is complete when it uses the table. Dynamic importers get
  the table at once and must themselves wait for the KERNEL (and implicit)
  fences before the device touches it.
* R7 (``move_notify``): the exporter calls it with the reservation lock
  held after it added the fence of a move as KERNEL fence. Every dynamic
  attachment's ``move_notify`` runs; the importer must stop creating new
  accesses through its old tables and re-map before its next access. Its
  old tables stay usable only until the move fence signals. Static
  attachments are never notified (their buffer is pinned: moving a pinned
  buffer is the exporter's bug).
* R8 (pin/unpin): with the reservation lock held, on dynamic attachments
  only (an ``assertion`` finding otherwise); forwarded to the exporter.
* R9 (CPU access): ``begin_cpu_access`` calls the exporter, then waits
  interruptibly for the implicit fences: up to READ for a CPU write
  (``DMA_BIDIRECTIONAL``/``DMA_TO_DEVICE``), up to WRITE for a CPU read.
* R10 (vmap): refcounted; only the first vmap reaches the exporter, the
  last vunmap unmaps; a vunmap without a vmap is an ``assertion`` finding.
* R12 (mmap, the policy since v6.5, commit ef1a8c92b4c0 "dma-buf: Change
  locking policy for mmap()"): ``dma_buf_mmap`` is called without the
  reservation lock (R3); an exporter without ``mmap`` is ``EINVAL``, a
  range beyond the buffer (``pgoff`` + the VMA's pages > size) is
  ``EINVAL``; the core sets the VMA's ``pgoff`` and calls ``ops.mmap``
  *without* the lock: the exporter takes it itself if it needs it.
  ``export(..., core_locks_mmap=True)`` models the v6.2-v6.4 policy (commit
  "dma-buf: Move dma_buf_mmap() to dynamic locking specification"), where
  the core held the lock around ``ops.mmap``: an exporter that locks too
  (``drm_gem_shmem_mmap`` once it used the reservation lock) then takes a
  lock it already holds, and lockdep reports the recursion.
* R13 (vmap_unlocked): ``dma_buf_vmap_unlocked`` / ``dma_buf_vunmap_unlocked``
  are called without the reservation lock, take it, and do R10's
  ``dma_buf_vmap`` / ``dma_buf_vunmap`` under it; ``ops.vmap`` / ``ops.vunmap``
  always run with the lock held and must not take it.
* R11 (revocation, claim C2): :meth:`DmaBuf.revoke` invalidates every
  dynamic importer and returns only when each of them has called
  :meth:`DmaBufRevocation.put` for the accesses it could not stop
  synchronously: a counter plus a completion, for callers that cannot
  pipeline (``shrink_slab``, ``mmu_invalidate_range``).

CONFIG_DMABUF_MOVE_NOTIFY is modelled as enabled: dynamic importers of a
dynamic exporter are not pinned by their mappings.

One concept, one module (as ``include/linux/dma-buf.h`` declares them
together): the sg table an attachment maps, the exporter's and the
importer's callback tables (``struct dma_buf_ops``, ``struct
dma_buf_attach_ops``), the attachment, claim C2's revocation counter, and
the buffer with its core. Only the scatterlist entries and DMA directions
(:mod:`~dmabufsim.dma.sg`) live below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..kernel.completion import Completion
from ..kernel.errors import EBUSY, EINVAL, UsageError
from ..kernel.runtime import Kernel, current_kernel
from .resv import DmaResv, DmaResvUsage
from .sg import DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, DmaDataDirection, SgEntry

__all__ = [
    "DMA_BIDIRECTIONAL", "DMA_FROM_DEVICE", "DMA_TO_DEVICE", "DmaBuf", "DmaBufAttachOps", "DmaBufAttachment",
    "DmaBufOps", "DmaBufRevocation", "DmaDataDirection", "SgEntry", "SgTable", "export",
]

#: ``PAGE_SHIFT`` (the ``dma`` room does not import ``mm``; a test holds it equal to ``mm.page.PAGE_SHIFT``).
PAGE_SHIFT = 12


class SgTable:
    """``struct sg_table`` returned by ``map_dma_buf``, owned by the caller until unmapped.

    ``mapped`` is True from ``map_dma_buf`` until ``unmap_dma_buf``;
    ``generation`` is the buffer's move count when it was created, so an
    importer (or a checker) can tell a table made before the last
    ``move_notify``. ``priv`` is the exporter's (its IOMMU mapping).
    """

    __slots__ = ("attachment", "direction", "entries", "generation", "mapped", "oid", "priv", "torn_down")

    def __init__(
        self,
        attachment: DmaBufAttachment,
        entries: Sequence[SgEntry],
        direction: DmaDataDirection,
        priv: Any = None,
    ) -> None:
        k = current_kernel()
        self.oid = k.new_oid()
        self.attachment = attachment
        self.entries = tuple(entries)
        self.direction = direction
        self.priv = priv
        self.mapped = True
        #: True when the exporter tore the mapping down for its importer (R7, R11).
        self.torn_down = False
        self.generation = attachment.dmabuf.move_generation

    @property
    def dma_addresses(self) -> list[int]:
        """The device address of every entry, in order (what an importer programs its device with)."""
        return [e.dma_address for e in self.entries]

    @property
    def stale(self) -> bool:
        """True when the buffer was moved (``move_notify``) after this table was made."""
        return self.generation != self.attachment.dmabuf.move_generation

    def __repr__(self) -> str:
        return f"<SgTable #{self.oid} {len(self.entries)} entries gen={self.generation} mapped={self.mapped}>"


class DmaBufOps:
    """``struct dma_buf_ops``: the exporter's callbacks.

    Extension contract (subclass and override):

    * MUST override :meth:`map_dma_buf`, :meth:`unmap_dma_buf` and
      :meth:`release` (R1).
    * :meth:`map_dma_buf` returns a new :class:`SgTable` whose entries are
      mapped for ``attachment.dev`` (its IOMMU), or raises an errno. For a
      dynamic exporter it runs with the reservation lock held and MUST NOT
      take it; the memory need not be idle yet (R6/R7: fences say when).
    * :meth:`pin` / :meth:`unpin` (override both or neither; overriding makes
      the exporter *dynamic*): called with the reservation lock held; after
      ``pin`` the memory is usable by every device and MUST NOT move until
      the matching ``unpin``.
    * :meth:`attach`, :meth:`detach`, :meth:`release`,
      :meth:`begin_cpu_access`, :meth:`end_cpu_access` and :meth:`mmap` run
      without the reservation lock (they may take it, R12);
      :meth:`vmap`/:meth:`vunmap` with it (they must not, R13).
    * ``cache_sgt_mapping``: the core caches the first mapping per attachment.

    The optional callbacks' defaults do what the core does when the
    kernel's pointer is NULL (accept, nothing to do).
    """

    #: ``cache_sgt_mapping``: cache the first mapping of each attachment.
    cache_sgt_mapping: bool = False

    def attach(self, dmabuf: DmaBuf, attachment: DmaBufAttachment) -> None:
        """``attach`` (optional): check the device; raise an errno (``EBUSY``) to refuse."""

    def detach(self, dmabuf: DmaBuf, attachment: DmaBufAttachment) -> None:
        """``detach`` (optional)."""

    def pin(self, attachment: DmaBufAttachment) -> None:
        """``pin`` (dynamic exporters): make the memory usable by all devices and immovable."""
        raise NotImplementedError("a static exporter has no pin (dma-buf R1): override pin and unpin together")

    def unpin(self, attachment: DmaBufAttachment) -> None:
        """``unpin`` (dynamic exporters)."""
        raise NotImplementedError("a static exporter has no unpin (dma-buf R1): override pin and unpin together")

    def map_dma_buf(self, attachment: DmaBufAttachment, direction: DmaDataDirection) -> SgTable:
        """``map_dma_buf`` (mandatory)."""
        raise NotImplementedError(f"{type(self).__name__} must implement map_dma_buf (dma-buf R1)")

    def unmap_dma_buf(self, attachment: DmaBufAttachment, sgt: SgTable, direction: DmaDataDirection) -> None:
        """``unmap_dma_buf`` (mandatory): tear the table's device mapping down."""
        raise NotImplementedError(f"{type(self).__name__} must implement unmap_dma_buf (dma-buf R1)")

    def release(self, dmabuf: DmaBuf) -> None:
        """``release`` (mandatory): the last reference is gone; free the backing store."""
        raise NotImplementedError(f"{type(self).__name__} must implement release (dma-buf R1)")

    def begin_cpu_access(self, dmabuf: DmaBuf, direction: DmaDataDirection) -> None:
        """``begin_cpu_access`` (optional): make the memory CPU-coherent; may raise ``ERESTARTSYS``."""

    def end_cpu_access(self, dmabuf: DmaBuf, direction: DmaDataDirection) -> None:
        """``end_cpu_access`` (optional)."""

    def mmap(self, dmabuf: DmaBuf, vma: Any) -> None:
        """``mmap`` (optional): back the user mapping ``vma`` with the buffer; ``EINVAL`` when absent.

        Runs without the reservation lock and may take it (R12).
        """
        raise EINVAL(f"{type(self).__name__} has no mmap")

    def vmap(self, dmabuf: DmaBuf) -> Any:
        """``vmap`` (optional): a kernel mapping of the whole buffer; ``EINVAL`` when absent."""
        raise EINVAL(f"{type(self).__name__} has no vmap")

    def vunmap(self, dmabuf: DmaBuf, vaddr: Any) -> None:
        """``vunmap`` (optional)."""

    @classmethod
    def _overrides(cls, name: str) -> bool:
        return getattr(cls, name) is not getattr(DmaBufOps, name)


class DmaBufAttachOps:
    """``struct dma_buf_attach_ops``: the callbacks of a dynamic importer.

    Extension contract:

    * MUST override :meth:`move_notify` (or the 2018 proposal's name
      :meth:`invalidate_mappings`, which the core treats as the same
      callback). It is called with the reservation lock held (R7); it MUST
      NOT take that lock or sleep on a fence; it must make sure the
      importer stops using its tables and re-maps before its next access.
      Accesses it cannot stop synchronously are covered by the fences
      already in the reservation object (the move waits for them).
    * :meth:`revoke` (claim C2) must stop every access to the buffer and
      call ``revocation.put()`` once no access remains, possibly later from
      a fence callback or a worker. The default invalidates with
      :meth:`move_notify` and puts at once, which is only right for an
      importer with no access in flight.
    * ``allow_peer2peer``: the importer can use memory without struct pages.
    """

    #: ``allow_peer2peer``.
    allow_peer2peer: bool = False

    def move_notify(self, attachment: DmaBufAttachment) -> None:
        """``move_notify``: the exporter is moving the buffer (R7)."""
        if type(self).invalidate_mappings is DmaBufAttachOps.invalidate_mappings:
            raise NotImplementedError(f"{type(self).__name__} must implement move_notify (dma-buf R4)")
        self.invalidate_mappings(attachment)

    def invalidate_mappings(self, attachment: DmaBufAttachment) -> None:
        """The March 2018 proposal's ``invalidate_mappings`` callback: an alias of :meth:`move_notify`."""
        self.move_notify(attachment)

    def revoke(self, attachment: DmaBufAttachment, revocation: DmaBufRevocation) -> None:
        """Claim C2: stop all access, tear the tables down, then ``revocation.put()`` (see the contract)."""
        self.move_notify(attachment)
        for sgt in list(attachment.tables):
            revocation.teardown(attachment, sgt)
        revocation.put()

    @classmethod
    def _has_notify(cls) -> bool:
        return (
            cls.move_notify is not DmaBufAttachOps.move_notify
            or cls.invalidate_mappings is not DmaBufAttachOps.invalidate_mappings
        )


class DmaBufAttachment:
    """``struct dma_buf_attachment``: one device's attachment to a buffer.

    ``importer_ops`` is set for a dynamic importer; ``sgt``/``dir`` hold the
    cached mapping (R4, R5); ``pinned`` counts ``dma_buf_pin`` calls made
    through this attachment (including the core's own for a cached mapping).
    """

    __slots__ = (
        "attached",
        "dev",
        "dir",
        "dmabuf",
        "importer_ops",
        "importer_priv",
        "oid",
        "peer2peer",
        "pinned",
        "priv",
        "sgt",
        "tables",
    )

    def __init__(self, dmabuf: DmaBuf, dev: Any, importer_ops: DmaBufAttachOps | None, importer_priv: Any) -> None:
        k = current_kernel()
        self.oid = k.new_oid()
        self.dmabuf = dmabuf
        self.dev = dev
        self.importer_ops = importer_ops
        self.importer_priv = importer_priv
        self.peer2peer = bool(importer_ops.allow_peer2peer) if importer_ops is not None else False
        self.sgt: SgTable | None = None
        self.dir = DmaDataDirection.NONE
        self.pinned = 0
        self.attached = True
        #: Every table mapped through this attachment and not yet unmapped (the cached one included).
        self.tables: list[SgTable] = []
        #: The exporter's per-attachment state.
        self.priv: Any = None

    @property
    def is_dynamic(self) -> bool:
        """``dma_buf_attachment_is_dynamic``."""
        return self.importer_ops is not None

    def map(self, direction: DmaDataDirection) -> SgTable:
        """``dma_buf_map_attachment``: the sg table for this device (R3, R5, R6)."""
        return self.dmabuf._map(self, direction, "dma_buf_map_attachment")

    def unmap(self, sgt: SgTable, direction: DmaDataDirection) -> None:
        """``dma_buf_unmap_attachment`` (R3, R5)."""
        self.dmabuf._unmap(self, sgt, direction, "dma_buf_unmap_attachment")

    def map_unlocked(self, direction: DmaDataDirection) -> SgTable:
        """``dma_buf_map_attachment_unlocked``: takes and drops the reservation lock."""
        buf = self.dmabuf
        buf._requires_not_held("dma_buf_map_attachment_unlocked")
        buf.resv.lock(None)
        try:
            return buf._map(self, direction, "dma_buf_map_attachment_unlocked")
        finally:
            buf.resv.unlock()

    def unmap_unlocked(self, sgt: SgTable, direction: DmaDataDirection) -> None:
        """``dma_buf_unmap_attachment_unlocked``."""
        buf = self.dmabuf
        buf._requires_not_held("dma_buf_unmap_attachment_unlocked")
        buf.resv.lock(None)
        try:
            buf._unmap(self, sgt, direction, "dma_buf_unmap_attachment_unlocked")
        finally:
            buf.resv.unlock()

    def pin(self) -> None:
        """``dma_buf_pin`` (R8)."""
        self.dmabuf._pin(self, "dma_buf_pin")

    def unpin(self) -> None:
        """``dma_buf_unpin`` (R8)."""
        self.dmabuf._unpin(self, "dma_buf_unpin")

    def detach(self) -> None:
        """``dma_buf_detach``."""
        self.dmabuf.detach(self)

    def __repr__(self) -> str:
        kind = "dynamic" if self.is_dynamic else "static"
        return f"<DmaBufAttachment #{self.oid} {kind} dev={self.dev!r}>"


class DmaBufRevocation:
    """Claim C2's "atomic_t counter plus struct completion; a lighter dma_fence".

    The revoker holds one count; each importer it asks to revoke takes one
    (:meth:`get`) and gives it back (:meth:`put`) once it no longer touches
    the buffer, from any context that may call ``complete`` (a fence
    callback, a worker). The last put completes; :meth:`wait` sleeps until
    then. ``counted=False`` models the tempting mistake of one plain
    completion that every importer ``complete()``s: the wait then returns
    at the *first* importer done, not the last.
    """

    __slots__ = ("active", "count", "counted", "dmabuf", "done", "k", "oid", "puts")

    def __init__(self, dmabuf: DmaBuf, *, counted: bool = True) -> None:
        k = self.k = current_kernel()
        self.oid = k.new_oid()
        self.dmabuf = dmabuf
        #: True while the revoker waits (holding the reservation lock for everyone, R11).
        self.active = True
        self.counted = counted
        #: Outstanding references (the revoker's own included).
        self.count = 1
        self.puts = 0
        self.done = Completion("dma_buf_revocation")

    def get(self) -> DmaBufRevocation:
        """One more importer whose accesses are outstanding."""
        self.k.point("revocation_get", self.oid, True)
        self.count += 1
        return self

    def put(self) -> None:
        """This importer (or the revoker) no longer touches the buffer."""
        k = self.k
        k.point("revocation_put", self.oid, True)
        if self.count <= 0:
            raise UsageError("DmaBufRevocation.put() without a matching get()")
        self.count -= 1
        self.puts += 1
        if not self.counted:
            # The mistake: every finisher completes the one completion.
            self.done.complete_all()
        elif self.count == 0:
            self.done.complete_all()

    def teardown(self, att: DmaBufAttachment, sgt: SgTable) -> None:
        """Unmap ``sgt`` on behalf of the revoker, who holds the reservation lock (R11).

        An importer's revocation path (a worker that saw its last access
        finish) calls this before :meth:`put`; it is the only unmap allowed
        without holding the lock oneself. (If the revoker stopped waiting too
        early -- ``counted=False`` -- the teardown comes after the memory
        may already be gone: that is the revoker's bug, which the isolation
        checker sees as DMA to a freed page.)
        """
        self.k.point("revocation_teardown", self.oid, True)
        if sgt.mapped:
            self.dmabuf._exporter_unmap(att, sgt, sgt.direction)
            sgt.torn_down = True

    def wait(self, timeout: int | None = None) -> int:
        """Drop the revoker's count, then sleep until every importer is done.

        Returns the time left (>= 1) or 0 on timeout (``wait_for_completion_timeout``).
        """
        if self.counted:
            self.put()
        try:
            if timeout is None:
                self.done.wait_for_completion()
                return 1
            return self.done.wait_for_completion_timeout(timeout)
        finally:
            self.active = False


class DmaBuf:
    """``struct dma_buf``: a shared buffer, its exporter ops, attachments and resv.

    Create it with :func:`export` (``dma_buf_export``). ``size`` never
    changes. ``move_generation`` counts ``move_notify`` calls (every move of
    the backing store), so tables made before a move are recognisable.

    Invariants: ``attachments`` is only changed with the reservation lock
    held; ``refcount > 0`` until released.
    """

    __slots__ = (
        "attachments",
        "core_locks_mmap",
        "exp_name",
        "k",
        "move_generation",
        "name",
        "oid",
        "ops",
        "own_resv",
        "priv",
        "refcount",
        "released",
        "resv",
        "size",
        "vmap_count",
        "vmap_ptr",
    )

    def __init__(
        self, ops: DmaBufOps, size: int, priv: Any, resv: DmaResv | None, name: str, exp_name: str,
        core_locks_mmap: bool = False,
    ) -> None:
        k = self.k = current_kernel()
        self.oid = k.new_oid()
        self.ops = ops
        self.size = size
        self.priv = priv
        self.own_resv = resv is None
        self.resv: DmaResv = resv if resv is not None else DmaResv()
        self.name = name
        self.exp_name = exp_name
        self.attachments: list[DmaBufAttachment] = []
        self.refcount = 1
        self.released = False
        self.move_generation = 0
        self.vmap_count = 0
        self.vmap_ptr: Any = None
        #: R12: the v6.2-v6.4 policy, the core holds the reservation lock around ``ops.mmap``.
        self.core_locks_mmap = core_locks_mmap

    # ------------------------------------------------------------ helpers

    @property
    def is_dynamic(self) -> bool:
        """``dma_buf_is_dynamic``: the exporter has pin/unpin."""
        return type(self.ops)._overrides("pin")

    def _alive(self, fn: str) -> None:
        if self.released:
            raise UsageError(f"{fn} on released dma-buf {self.name!r} (dma-buf R2)")

    def _resv_held(self) -> bool:
        return self.resv.is_held()

    def _violation(self, fn: str, held: bool, rule: str) -> None:
        need = "with" if held else "without"
        if held:
            title = f"WARNING: {fn} called without the reservation lock held"
        else:
            title = f"WARNING: {fn} called with the reservation lock held"
        self.k.report(
            "assertion",
            title,
            details={"function": fn, "dmabuf": self.name, "resv_held": not held, "rule": rule},
            rule=f"dma-buf {rule}: locking convention",
            signature=f"dma-buf-locking:{fn}:{held}",
            text=f"{title}\n{fn} must be called {need} {self.name}'s reservation lock (dma-buf {rule})",
        )

    def _requires_held(self, fn: str, rule: str = "R3") -> None:
        """``dma_resv_assert_held(dmabuf->resv)`` at the top of ``fn``."""
        if not self._resv_held():
            self._violation(fn, True, rule)

    def _requires_not_held(self, fn: str, rule: str = "R3") -> None:
        """``might_lock(&dmabuf->resv->lock.base)``: the caller must not hold it."""
        if self._resv_held():
            self._violation(fn, False, rule)

    # ------------------------------------------------------------ lifetime (R2)

    def get(self) -> DmaBuf:
        """``get_dma_buf``."""
        self._alive("get_dma_buf")
        self.k.point("get_dma_buf", self.oid, True, self.name)
        self.refcount += 1
        return self

    def put(self) -> None:
        """``dma_buf_put``: the last reference releases the buffer (R2)."""
        self._alive("dma_buf_put")
        k = self.k
        self._requires_not_held("dma_buf_put")
        k.point("dma_buf_put", self.oid, True, self.name)
        self.refcount -= 1
        if self.refcount > 0:
            return
        if self.vmap_count:
            k.report(
                "assertion",
                "kernel BUG: dma-buf released with kernel vmaps outstanding",
                details={"dmabuf": self.name, "vmap_count": self.vmap_count},
                rule="dma-buf R2: release",
                signature=f"dma-buf-release-vmap:{self.name}",
            )
        if self.attachments:
            k.report(
                "assertion",
                "WARNING: dma-buf released with attachments",
                details={"dmabuf": self.name, "attachments": [repr(a.dev) for a in self.attachments]},
                rule="dma-buf R2: release",
                signature=f"dma-buf-release-attached:{self.name}",
            )
        self.released = True
        self.ops.release(self)
        if self.own_resv:
            self.resv.fini()

    # ------------------------------------------------------------ attach (R3, R4)

    def attach(self, dev: Any) -> DmaBufAttachment:
        """``dma_buf_attach``: a static attachment (the buffer will be pinned)."""
        return self.dynamic_attach(dev, None, None)

    def dynamic_attach(
        self, dev: Any, importer_ops: DmaBufAttachOps | None, importer_priv: Any = None
    ) -> DmaBufAttachment:
        """``dma_buf_dynamic_attach`` (R3, R4)."""
        self._alive("dma_buf_dynamic_attach")
        if importer_ops is not None and not type(importer_ops)._has_notify():
            raise EINVAL("dma_buf_dynamic_attach: importer_ops without move_notify (dma-buf R4)")
        k = self.k
        self._requires_not_held("dma_buf_dynamic_attach")
        k.point("dma_buf_attach", self.oid, True, self.name)
        att = DmaBufAttachment(self, dev, importer_ops, importer_priv)
        self.ops.attach(self, att)
        resv = self.resv
        resv.lock(None)
        try:
            if att.is_dynamic != self.is_dynamic:
                # R4: mismatch -> map now and cache (pin first for a dynamic exporter).
                if self.is_dynamic:
                    self._pin_locked(att)
                try:
                    sgt = self._exporter_map(att, DMA_BIDIRECTIONAL)
                except BaseException:
                    if self.is_dynamic:
                        self._unpin_locked(att)
                    raise
                att.sgt = sgt
                att.dir = DMA_BIDIRECTIONAL
            self.attachments.append(att)
        except BaseException:
            resv.unlock()
            att.attached = False
            self.ops.detach(self, att)
            raise
        resv.unlock()
        return att

    def detach(self, att: DmaBufAttachment) -> None:
        """``dma_buf_detach``: drop a cached mapping and pin, unlist, ``ops.detach``."""
        self._alive("dma_buf_detach")
        if att.dmabuf is not self or not att.attached:
            raise UsageError(f"dma_buf_detach: {att!r} is not attached to {self.name!r}")
        k = self.k
        self._requires_not_held("dma_buf_detach")
        k.point("dma_buf_detach", self.oid, True, self.name)
        resv = self.resv
        resv.lock(None)
        try:
            sgt = att.sgt
            if sgt is not None:
                att.sgt = None
                if sgt.mapped:
                    self._exporter_unmap(att, sgt, att.dir)
                if self.is_dynamic and att.pinned:
                    self._unpin_locked(att)
            self.attachments.remove(att)
        finally:
            resv.unlock()
        att.attached = False
        self.ops.detach(self, att)

    # ------------------------------------------------------------ pin (R8)

    def _pin_locked(self, att: DmaBufAttachment) -> None:
        self.ops.pin(att)
        att.pinned += 1

    def _unpin_locked(self, att: DmaBufAttachment) -> None:
        self.ops.unpin(att)
        att.pinned -= 1

    def _enter_pin_op(self, att: DmaBufAttachment, fn: str, point: str) -> None:
        """What pin and unpin check on entry (R8): the buffer is alive and its
        resv held, then the scheduling point ``point``, then a warning if
        ``att`` is a static attachment."""
        self._alive(fn)
        self._requires_held(fn, "R8")
        self.k.point(point, self.oid, True, self.name)
        if not att.is_dynamic:
            self.k.report(
                "assertion",
                f"WARNING: {fn} on a static attachment",
                details={"function": fn, "dmabuf": self.name},
                rule="dma-buf R8: pin/unpin are for dynamic attachments",
                signature=f"dma-buf-pin-static:{fn}",
            )

    def _pin(self, att: DmaBufAttachment, fn: str) -> None:
        self._enter_pin_op(att, fn, "dma_buf_pin")
        if self.is_dynamic:
            self._pin_locked(att)

    def _unpin(self, att: DmaBufAttachment, fn: str) -> None:
        self._enter_pin_op(att, fn, "dma_buf_unpin")
        if self.is_dynamic:
            if att.pinned <= 0:
                raise UsageError(f"{fn}: {att!r} is not pinned")
            self._unpin_locked(att)

    # ------------------------------------------------------------ map (R5, R6)

    def _map(self, att: DmaBufAttachment, direction: DmaDataDirection, fn: str) -> SgTable:
        self._alive(fn)
        if not att.attached:
            raise UsageError(f"{fn}: {att!r} was detached")
        self._requires_held(fn)
        k = self.k
        k.point("dma_buf_map_attachment", self.oid, True, self.name)
        cached = att.sgt
        if cached is not None:
            if att.dir == direction or att.dir == DMA_BIDIRECTIONAL:
                return cached
            raise EBUSY(f"{fn}: cached mapping is {att.dir.name}, asked {direction.name} (dma-buf R5)")
        sgt = self._exporter_map(att, direction)
        if not att.is_dynamic:
            # R6: a static importer gets memory that is ready.
            try:
                self.resv.wait_timeout(DmaResvUsage.KERNEL, True, None)
            except BaseException:
                self._exporter_unmap(att, sgt, direction)
                raise
        if self.ops.cache_sgt_mapping:
            att.sgt = sgt
            att.dir = direction
        return sgt

    def _exporter_map(self, att: DmaBufAttachment, direction: DmaDataDirection) -> SgTable:
        sgt = self.ops.map_dma_buf(att, direction)
        att.tables.append(sgt)
        return sgt

    def _exporter_unmap(self, att: DmaBufAttachment, sgt: SgTable, direction: DmaDataDirection) -> None:
        if not sgt.mapped:
            raise UsageError(f"unmap of {sgt!r}, which is not mapped")
        self.ops.unmap_dma_buf(att, sgt, direction)
        sgt.mapped = False
        if sgt in att.tables:
            att.tables.remove(sgt)

    def _unmap(self, att: DmaBufAttachment, sgt: SgTable, direction: DmaDataDirection, fn: str) -> None:
        self._alive(fn)
        self._requires_held(fn)
        self.k.point("dma_buf_unmap_attachment", self.oid, True, self.name)
        if sgt is att.sgt:
            return
        if sgt.attachment is not att:
            raise UsageError(f"{fn}: {sgt!r} belongs to another attachment")
        if sgt.torn_down:
            # The exporter already tore it down after a move or a revocation (R7, R11).
            return
        self._exporter_unmap(att, sgt, direction)

    # ------------------------------------------------------------ moves (R7)

    def move_notify(self) -> int:
        """``dma_buf_move_notify``: tell every dynamic importer the buffer moves (R7).

        The exporter holds the reservation lock and has added the move's
        fence (KERNEL) before calling. Returns the new ``move_generation``:
        tables of an older generation point at the old location.
        """
        fn = "dma_buf_move_notify"
        self._alive(fn)
        self._requires_held(fn, "R7")
        self.k.point(fn, self.oid, True, self.name)
        self.move_generation += 1
        for att in list(self.attachments):
            ops = att.importer_ops
            if ops is not None:
                ops.move_notify(att)
        return self.move_generation

    def teardown_mappings_before(self, generation: int, *, include_cached: bool = False) -> int:
        """Tear down every importer table made before ``generation`` (R7); returns how many.

        The exporter calls it with the reservation lock held once the move
        that started ``generation`` has completed and *before* it frees the
        old backing store, so that no IOMMU mapping to freed memory remains
        (claim C9). Importers find the table ``torn_down``; their own later
        unmap of it is a no-op. The cached table of a static attachment
        belongs to a pinned buffer and is left alone, unless
        ``include_cached`` (an exporter freeing a pinned buffer anyway:
        always a bug, claim C4).
        """
        fn = "dma_buf_teardown_mappings"
        self._alive(fn)
        self._requires_held(fn, "R7")
        self.k.point(fn, self.oid, True, self.name)
        n = 0
        for att in list(self.attachments):
            for sgt in list(att.tables):
                if sgt.generation < generation and (include_cached or sgt is not att.sgt):
                    self._exporter_unmap(att, sgt, sgt.direction)
                    sgt.torn_down = True
                    n += 1
        return n

    #: The March 2018 proposal's name (``dma_buf_invalidate_mappings``); the
    #: kernel of 2026 uses it again (commit 95308225e5ba). Same semantics.
    invalidate_mappings = move_notify

    # ------------------------------------------------------------ revocation (R11)

    def revoke(self, *, counted: bool = True, timeout: int | None = None) -> int:
        """Revoke every dynamic importer's access and wait until they all stopped (claim C2).

        Called with the reservation lock held (trylocked by a shrinker or
        notifier), like ``move_notify``. Each dynamic attachment's
        ``importer_ops.revoke(att, revocation)`` is called with a reference
        it must put once its last access is over, after tearing its tables
        down with :meth:`DmaBufRevocation.teardown`; this returns when every
        reference is back (``counted=False``: the mistaken single
        completion, see :class:`DmaBufRevocation`); then every table still
        mapped is torn down, so no device mapping of the buffer remains.
        Static attachments pin the buffer and cannot be revoked: a caller
        must not revoke a buffer that has any (``EBUSY``). Returns what the
        wait returns.
        """
        fn = "dma_buf_revoke"
        self._alive(fn)
        self._requires_held(fn, "R11")
        k = self.k
        k.point(fn, self.oid, True, self.name)
        if any(not a.is_dynamic for a in self.attachments):
            raise EBUSY(f"{fn}: {self.name} has static (pinned) attachments")
        self.move_generation += 1
        rev = DmaBufRevocation(self, counted=counted)
        for att in list(self.attachments):
            ops = att.importer_ops
            assert ops is not None
            ops.revoke(att, rev.get())
        ret = rev.wait(timeout)
        # Revoked means unreachable: tear down whatever an importer left mapped.
        for att in list(self.attachments):
            for sgt in list(att.tables):
                self._exporter_unmap(att, sgt, sgt.direction)
                sgt.torn_down = True
        return ret

    # ------------------------------------------------------------ CPU access (R9, R10)

    def begin_cpu_access(self, direction: DmaDataDirection) -> None:
        """``dma_buf_begin_cpu_access`` (R3, R9)."""
        fn = "dma_buf_begin_cpu_access"
        self._alive(fn)
        self._requires_not_held(fn)
        self.k.point(fn, self.oid, False, self.name)
        self.ops.begin_cpu_access(self, direction)
        write = direction in (DMA_BIDIRECTIONAL, DMA_TO_DEVICE)
        usage = DmaResvUsage.READ if write else DmaResvUsage.WRITE
        self.resv.wait_timeout(usage, True, None)

    def end_cpu_access(self, direction: DmaDataDirection) -> None:
        """``dma_buf_end_cpu_access`` (R3)."""
        fn = "dma_buf_end_cpu_access"
        self._alive(fn)
        self._requires_not_held(fn)
        self.k.point(fn, self.oid, False, self.name)
        self.ops.end_cpu_access(self, direction)

    def vmap(self) -> Any:
        """``dma_buf_vmap`` (R3, R10): the kernel address of the buffer."""
        fn = "dma_buf_vmap"
        self._alive(fn)
        self._requires_held(fn)
        self.k.point(fn, self.oid, True, self.name)
        if self.vmap_count:
            self.vmap_count += 1
            return self.vmap_ptr
        ptr = self.ops.vmap(self)
        self.vmap_ptr = ptr
        self.vmap_count = 1
        return ptr

    def vmap_unlocked(self) -> Any:
        """``dma_buf_vmap_unlocked`` (R13): lock the reservation object, ``dma_buf_vmap``, unlock."""
        fn = "dma_buf_vmap_unlocked"
        self._alive(fn)
        self._requires_not_held(fn)
        self.resv.lock(None)
        try:
            return self.vmap()
        finally:
            self.resv.unlock()

    def vunmap_unlocked(self, vaddr: Any) -> None:
        """``dma_buf_vunmap_unlocked`` (R13)."""
        fn = "dma_buf_vunmap_unlocked"
        self._alive(fn)
        self._requires_not_held(fn)
        self.resv.lock(None)
        try:
            self.vunmap(vaddr)
        finally:
            self.resv.unlock()

    def mmap(self, vma: Any, pgoff: int = 0) -> None:
        """``dma_buf_mmap`` (R3, R12): set up the user mapping ``vma`` through the exporter's ``mmap``.

        ``vma`` is the ``struct vm_area_struct`` being created (its
        ``start``, ``end`` and ``pgoff``); the caller holds its mm's
        ``mmap_lock`` for writing, as ``mmap_region`` does around
        ``call_mmap`` (``dma_buf_mmap_internal`` is this with ``pgoff`` =
        the VMA's own). The exporter's callback runs without the reservation
        lock unless the buffer was exported with ``core_locks_mmap``.
        """
        fn = "dma_buf_mmap"
        self._alive(fn)
        self._requires_not_held(fn)
        self.k.point(fn, self.oid, True, self.name)
        if not type(self.ops)._overrides("mmap"):
            raise EINVAL(f"{fn}: exporter {type(self.ops).__name__} has no mmap (dma-buf R12)")
        npages = (vma.end - vma.start) >> PAGE_SHIFT
        if pgoff < 0 or pgoff + npages > self.size >> PAGE_SHIFT:
            raise EINVAL(f"{fn}: pages [{pgoff}, {pgoff + npages}) beyond {self.name}'s size {self.size} (dma-buf R12)")
        # vma_set_file(vma, dmabuf->file); vma->vm_pgoff = pgoff;
        vma.pgoff = pgoff
        if not self.core_locks_mmap:
            self.ops.mmap(self, vma)
            return
        # The v6.2-v6.4 policy: dma_resv_lock(dmabuf->resv, NULL) around ops->mmap.
        self.resv.lock(None)
        try:
            self.ops.mmap(self, vma)
        finally:
            self.resv.unlock()

    def vunmap(self, vaddr: Any) -> None:
        """``dma_buf_vunmap`` (R3, R10)."""
        fn = "dma_buf_vunmap"
        self._alive(fn)
        self._requires_held(fn)
        self.k.point(fn, self.oid, True, self.name)
        if self.vmap_count == 0 or vaddr is not self.vmap_ptr:
            self.k.report(
                "assertion",
                "kernel BUG: dma_buf_vunmap without a matching vmap",
                details={"dmabuf": self.name, "vmap_count": self.vmap_count},
                rule="dma-buf R10: vmap is refcounted",
                signature=f"dma-buf-vunmap:{self.name}",
            )
            return
        self.vmap_count -= 1
        if self.vmap_count == 0:
            self.ops.vunmap(self, vaddr)
            self.vmap_ptr = None

    def __repr__(self) -> str:
        kind = "dynamic" if self.is_dynamic else "static"
        return f"<DmaBuf #{self.oid} {self.name} {kind} size={self.size} refs={self.refcount}>"


def export(
    ops: DmaBufOps,
    size: int,
    priv: Any = None,
    *,
    resv: DmaResv | None = None,
    name: str = "dmabuf",
    exp_name: str = "",
    core_locks_mmap: bool = False,
) -> DmaBuf:
    """``dma_buf_export``: share ``priv`` through ``ops`` (R1); ``core_locks_mmap``: R12's v6.2-v6.4 policy."""
    cls = type(ops)
    for fn in ("map_dma_buf", "unmap_dma_buf", "release"):
        if not cls._overrides(fn):
            raise EINVAL(f"dma_buf_export: exporter {cls.__name__} lacks {fn} (dma-buf R1)")
    if cls._overrides("pin") != cls._overrides("unpin"):
        raise EINVAL(f"dma_buf_export: exporter {cls.__name__} has only one of pin/unpin (dma-buf R1)")
    if ops.cache_sgt_mapping and cls._overrides("pin"):
        raise EINVAL(f"dma_buf_export: exporter {cls.__name__} caches mappings and is dynamic (dma-buf R1)")
    if size <= 0:
        raise EINVAL(f"dma_buf_export: size {size}")
    k: Kernel = current_kernel()
    buf = DmaBuf(ops, size, priv, resv, name, exp_name or cls.__name__, core_locks_mmap)
    k.point("dma_buf_export", buf.oid, True, name)
    return buf

