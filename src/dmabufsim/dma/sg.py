"""Scatterlist entries and DMA directions (``include/linux/scatterlist.h``, ``dma-direction.h``).

The pieces a mapping is made of: :class:`SgEntry` (device address and
length) and :class:`DmaDataDirection`. The table that ``map_dma_buf``
hands an importer (:class:`~dmabufsim.dma.dma_buf.SgTable`) belongs to one
attachment and lives with the dma-buf core, whose rules (R5-R7) govern it;
this module imports nothing of the dma-buf, so dependencies point down.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


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
