"""Models ``drivers/dma-buf/dma-fence-unwrap.c``: iterating and merging containers.

Rules:

* R1 (unwrap): :func:`unwrap` visits, for each chain point reachable from
  the head (the head first, then :func:`~.fence_chain.walk` steps, so
  signalled history other than the head is skipped), each member of the
  point's array, or the contained fence itself.
* R2 (merge keeps one fence per context): :func:`merge` drops signalled
  leaves, keeps the later fence of each context, orders the survivors by
  ascending context, and answers a private signalled stub (carrying the
  latest timestamp) when nothing is pending, the single fence when one is
  left, a fresh signal-on-all array otherwise. The result never contains a
  duplicate or two fences of one context.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cmp_to_key

from .fence import DmaFence, allocate_private_stub, context_alloc
from .fence_array import DmaFenceArray
from .fence_chain import contained, walk


def unwrap(head: DmaFence) -> Iterator[DmaFence]:
    """``dma_fence_unwrap_for_each``: the leaves of ``head`` (R1)."""
    node: DmaFence | None = head
    while node is not None:
        inner = contained(node)
        if isinstance(inner, DmaFenceArray):
            if not inner.fences:
                return  # dma_fence_array_first() is NULL: the kernel's loop ends here
            yield from inner.fences
        else:
            yield inner
        node = walk(node)


def _cmp(a: DmaFence, b: DmaFence) -> int:
    """``fence_cmp``: ascending context; within a context the later fence first."""
    if a.context < b.context:
        return -1
    if a.context > b.context:
        return 1
    if a.is_later(b):
        return -1
    if b.is_later(a):
        return 1
    return 0


def dedup_array(fences: list[DmaFence]) -> list[DmaFence]:
    """``dma_fence_dedup_array``: sort (see :func:`_cmp`) and keep the first fence per context."""
    fences.sort(key=cmp_to_key(_cmp))
    out: list[DmaFence] = []
    for f in fences:
        if out and out[-1].context == f.context:
            f.put()
            continue
        out.append(f)
    return out


def merge(*fences: DmaFence) -> DmaFence:
    """``dma_fence_unwrap_merge``: one fence standing for all the pending leaves (R2)."""
    timestamp = 0
    pending: list[DmaFence] = []
    for head in fences:
        for leaf in unwrap(head):
            if not leaf.is_signaled():
                pending.append(leaf.get())
            else:
                ts = leaf.get_timestamp()
                if ts > timestamp:
                    timestamp = ts
    if len(pending) > 1:
        pending = dedup_array(pending)
        if len(pending) > 1:
            return DmaFenceArray(pending, context_alloc(1), 1, False)
    if not pending:
        return allocate_private_stub(timestamp)
    return pending[0]
