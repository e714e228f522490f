"""The callback tables of a dma-buf: ``struct dma_buf_ops`` (exporter) and ``struct dma_buf_attach_ops`` (importer).

Each class states the contract a driver model signs when it subclasses it;
:mod:`dmabufsim.dma.dma_buf` holds the core that calls them and its rules
(R1 export, R4 dynamic attach, R7 ``move_notify``, R11 revocation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..kernel.errors import EINVAL
from .sg import DmaDataDirection, SgTable

if TYPE_CHECKING:
    from .attachment import DmaBufAttachment, DmaBufRevocation
    from .dma_buf import DmaBuf


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
      :meth:`begin_cpu_access`, :meth:`end_cpu_access` run without the
      reservation lock (they may take it); :meth:`vmap`/:meth:`vunmap` with it.
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
