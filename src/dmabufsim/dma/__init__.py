"""dma: fences, fence containers, reservation objects (``drivers/dma-buf/``).

``import dmabufsim.dma as dma``; see ``docs/fences.md``.
"""

from . import fence_chain, fence_unwrap

# -- dma-buf
from .dma_buf import (
    DMA_BIDIRECTIONAL,
    DMA_FROM_DEVICE,
    DMA_TO_DEVICE,
    DmaBuf,
    DmaBufAttachment,
    DmaBufAttachOps,
    DmaBufOps,
    DmaBufRevocation,
    DmaDataDirection,
    SgEntry,
    SgTable,
)
from .dma_buf import export as dma_buf_export
from .fence import (
    DMA_FENCE_FLAG_USER_BITS,
    LONG_MAX,
    DmaFence,
    DmaFenceCb,
    FenceCache,
    FenceContext,
    FenceOps,
    NamedFenceOps,
    allocate_private_stub,
    context_alloc,
    depended_fences,
    get_rcu_safe,
    get_stub,
    later,
    seqno_is_later,
    wait_any,
    wait_any_timeout,
)
from .fence_array import DmaFenceArray, array_create, is_array, is_container, match_context
from .fence_chain import DmaFenceChain, find_seqno, is_chain
from .fence_unwrap import merge, unwrap
from .resv import (
    DmaResv,
    DmaResvIter,
    DmaResvList,
    DmaResvUsage,
    ReservationObject,
    reservation_object_wait_timeout_rcu,
    reservation_ww_class,
    usage_rw,
)

__all__ = [
    "DMA_FENCE_FLAG_USER_BITS", "LONG_MAX", "DmaFence", "DmaFenceArray", "DmaFenceCb", "DmaFenceChain",
    "DmaResv", "DmaResvIter", "DmaResvList", "DmaResvUsage", "ReservationObject",
    "reservation_object_wait_timeout_rcu", "reservation_ww_class", "usage_rw",
    "FenceCache", "FenceContext", "FenceOps", "get_rcu_safe",
    "NamedFenceOps", "allocate_private_stub", "array_create", "context_alloc",
    "depended_fences", "fence_chain", "fence_unwrap", "find_seqno", "get_stub", "is_array", "is_chain",
    "is_container", "later", "match_context", "merge", "seqno_is_later", "unwrap", "wait_any",
    "wait_any_timeout",
]
__all__ += [
    "DMA_BIDIRECTIONAL", "DMA_FROM_DEVICE", "DMA_TO_DEVICE", "DmaBuf", "DmaBufAttachOps", "DmaBufAttachment",
    "DmaBufOps", "DmaBufRevocation", "DmaDataDirection", "SgEntry", "SgTable", "dma_buf_export",
]
