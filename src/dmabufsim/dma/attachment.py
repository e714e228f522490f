"""One device's attachment to a dma-buf, and claim C2's revocation counter.

``struct dma_buf_attachment`` (:class:`DmaBufAttachment`) with its map,
unmap, pin and unpin entry points, which forward to the buffer's core in
:mod:`dmabufsim.dma.dma_buf` (rules R3, R5, R6, R8 there), and
:class:`DmaBufRevocation`, the counter plus completion of rule R11.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..kernel.completion import Completion
from ..kernel.errors import UsageError
from ..kernel.runtime import current_kernel
from .dma_buf_ops import DmaBufAttachOps
from .sg import DmaDataDirection, SgTable

if TYPE_CHECKING:
    from .dma_buf import DmaBuf


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
