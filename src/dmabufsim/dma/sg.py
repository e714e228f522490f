"""Scatter-gather tables and DMA directions (``include/linux/scatterlist.h``, ``dma-direction.h``).

What ``map_dma_buf`` hands an importer: a :class:`SgTable` of
:class:`SgEntry` (device address and length), made for one attachment in
one :class:`DmaDataDirection`. The dma-buf rules that govern them are in
:mod:`dmabufsim.dma.dma_buf` (R5-R7).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from ..kernel.runtime import current_kernel

if TYPE_CHECKING:
    from .attachment import DmaBufAttachment


class DmaDataDirection(IntEnum):
    """``enum dma_data_direction``."""

    BIDIRECTIONAL = 0
    TO_DEVICE = 1
    FROM_DEVICE = 2
    NONE = 3


DMA_BIDIRECTIONAL = DmaDataDirection.BIDIRECTIONAL
DMA_TO_DEVICE = DmaDataDirection.TO_DEVICE
DMA_FROM_DEVICE = DmaDataDirection.FROM_DEVICE


class SgEntry:
    """One ``struct scatterlist`` entry as an importer may read it: DMA address and length.

    ``backing`` is what the exporter mapped (a page, a VRAM offset): the
    model keeps it for the checkers; importers must use only
    ``dma_address`` and ``length`` (debug kernels scramble the page pointers).
    """

    __slots__ = ("backing", "dma_address", "length")

    def __init__(self, dma_address: int, length: int, backing: Any = None) -> None:
        self.dma_address = dma_address
        self.length = length
        self.backing = backing

    def __repr__(self) -> str:
        return f"<sg {self.dma_address:#x}+{self.length:#x}>"


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
