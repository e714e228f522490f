"""Models ``drivers/dma-buf/dma-fence-chain.c`` (``struct dma_fence_chain``).

A chain node is one point on a timeline (a syncobj timeline): it contains a
fence and links to the previous point. Node N signals once every contained
fence at or before N has signalled, in whatever order they signal.

Rules:

* R1 (context): a node whose seqno is later than its chain predecessor's
  joins the predecessor's context; otherwise it starts a fresh context (and
  takes the larger seqno). Chain seqnos compare as 64-bit numbers.
* R2 (flat contents): the contained fence must not itself be a chain
  (kernel WARN, ``assertion`` finding); chains link only through ``prev``.
* R3 (garbage collection): :func:`walk` unlinks signalled history as it
  goes (compare-and-exchange on ``prev``), so a walk never revisits it.
* R4 (find_seqno): seqno 0 is always done; a seqno beyond the head is
  ``EINVAL``; otherwise the answer is the node whose signal implies the
  seqno is done, or None when everything up to it has signalled.
* R5 (signalling): enabling signalling hooks one callback on the newest
  still-unsignalled contained fence; when it fires an irq_work re-arms on
  the next one, and signals the node when none is left.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..kernel.errors import EINVAL, ENOENT
from ..locking.spinlock import SpinLock
from .fence import DmaFence, DmaFenceCb, FenceOps, context_alloc, seqno_is_later

CHAIN_LOCK_CLASS = "dma_fence_chain.lock"


class DmaFenceChainOps(FenceOps):
    """``dma_fence_chain_ops``."""

    use_64bit_seqno = True
    container = True

    def get_driver_name(self, fence: DmaFence) -> str:
        return "dma_fence_chain"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "unbound"

    def enable_signaling(self, fence: DmaFence) -> bool:
        """R5: hook the node's callback on the newest unsignalled contained fence."""
        assert isinstance(fence, DmaFenceChain)
        head = fence
        head.get()  # held while the callback is armed
        for node in for_each(head):
            f = contained(node)
            f.get()
            try:
                f.add_callback(head.cb)
                return True
            except ENOENT:
                f.put()
        head.put()
        return False

    def signaled(self, fence: DmaFence) -> bool:
        """Every contained fence from this node back is signalled."""
        return all(contained(node).is_signaled() for node in for_each(fence))

    def release(self, fence: DmaFence) -> None:
        assert isinstance(fence, DmaFenceChain)
        # Unlink iteratively (the kernel avoids deep recursion the same way).
        prev = fence.prev
        fence.prev = None
        fence.fence.put()
        while prev is not None:
            if prev.refcount == 1 and isinstance(prev, DmaFenceChain):
                nxt = prev.prev
                prev.prev = None
                prev.put()
                prev = nxt
            else:
                prev.put()
                break
        fence.free()  # dma_fence_free

    def set_deadline(self, fence: DmaFence, deadline: int) -> None:
        for node in for_each(fence):
            contained(node).set_deadline(deadline)


CHAIN_OPS = DmaFenceChainOps()


class _ChainCb:
    """``dma_fence_chain_cb``: queue the irq_work that re-arms or signals (R5)."""

    __slots__ = ("chain",)

    def __init__(self, chain: DmaFenceChain) -> None:
        self.chain = chain

    def __call__(self, fence: DmaFence, cb: DmaFenceCb) -> None:
        self.chain.k.raise_irq(_chain_irq_work, self.chain, name="dma_fence_chain_irq_work")
        fence.put()


def _chain_irq_work(chain: DmaFenceChain) -> None:
    """``dma_fence_chain_irq_work``: re-arm on the next pending fence, or signal."""
    if not CHAIN_OPS.enable_signaling(chain):
        chain.signal()
    chain.put()


class DmaFenceChain(DmaFence):
    """``struct dma_fence_chain``: ``DmaFenceChain(prev, fence, seqno)`` is ``dma_fence_chain_init``.

    ``prev`` is the previous point (a chain node, any fence, or None);
    ``fence`` the contained fence. Both references are taken over.
    """

    __slots__ = ("cb", "fence", "prev", "prev_seqno")

    def __init__(self, prev: DmaFence | None, fence: DmaFence, seqno: int, *,
                 ops: DmaFenceChainOps | None = None) -> None:
        """``dma_fence_chain_init``. ``ops``: a :class:`DmaFenceChainOps` subclass whose public
        ``enable_signaling`` / ``signaled`` / ``release`` write another (e.g. older) design."""
        prev_chain = to_chain(prev)
        if prev_chain is not None and seqno_is_later(seqno, prev_chain.seqno, True):
            context = prev_chain.context
            prev_seqno = prev_chain.seqno
        else:
            context = context_alloc(1)
            prev_seqno = 0
            if prev_chain is not None:
                seqno = max(prev_chain.seqno, seqno)
        super().__init__(ops if ops is not None else CHAIN_OPS, SpinLock(CHAIN_LOCK_CLASS), context, seqno)
        #: The previous point, or None once the history is exhausted (R3).
        self.prev: DmaFence | None = prev
        self.prev_seqno = prev_seqno
        self.fence = fence
        self.cb = DmaFenceCb(_ChainCb(self))
        if isinstance(fence, DmaFenceChain):
            self.k.report(
                "assertion",
                "WARNING: dma_fence_chain_init with a chain as the contained fence",
                details={"fence": fence.oid},
                rule="dma_fence_chain R2: chains link only through prev",
                signature="dma-fence-chain-nested",
            )

    def get_prev(self) -> DmaFence | None:
        """``dma_fence_chain_get_prev``: read ``prev`` (a scheduling point: it changes under GC)."""
        self.k.point("dma_fence_chain_get_prev", self.oid, False)
        return self.prev


def to_chain(f: DmaFence | None) -> DmaFenceChain | None:
    """``to_dma_fence_chain``: the node, or None if ``f`` is not a chain."""
    return f if isinstance(f, DmaFenceChain) else None


def is_chain(f: DmaFence) -> bool:
    """``dma_fence_is_chain``."""
    return f.ops is CHAIN_OPS


def contained(f: DmaFence) -> DmaFence:
    """``dma_fence_chain_contained``: the node's fence, or ``f`` itself if not a chain."""
    return f.fence if isinstance(f, DmaFenceChain) else f


def walk(f: DmaFence) -> DmaFence | None:
    """``dma_fence_chain_walk``: the previous unsignalled point, collecting signalled ones (R3)."""
    chain = to_chain(f)
    if chain is None:
        return None
    while True:
        prev = chain.get_prev()
        if prev is None:
            return None
        prev_chain = to_chain(prev)
        if prev_chain is not None:
            if not prev_chain.fence.is_signaled():
                return prev
            replacement = prev_chain.get_prev()
        else:
            if not prev.is_signaled():
                return prev
            replacement = None
        k = chain.k
        k.point("dma_fence_chain_cmpxchg", chain.oid, True)
        if chain.prev is prev:  # cmpxchg: only if nobody collected it meanwhile
            chain.prev = replacement


def for_each(head: DmaFence) -> Iterator[DmaFence]:
    """``dma_fence_chain_for_each``: ``head``, then every :func:`walk` step."""
    it: DmaFence | None = head
    while it is not None:
        yield it
        it = walk(it)


def find_seqno(f: DmaFence, seqno: int) -> DmaFence | None:
    """``dma_fence_chain_find_seqno`` (R4): the point to wait on for ``seqno``.

    Returns ``f`` unchanged for seqno 0, the node (or an earlier pending
    node, because of GC), or None when everything up to ``seqno`` has
    signalled. Raises ``EINVAL`` if ``f`` is not a chain or ``seqno`` is
    beyond it.
    """
    if seqno == 0:
        return f
    chain = to_chain(f)
    if chain is None or chain.seqno < seqno:
        raise EINVAL(f"dma_fence_chain_find_seqno: seqno {seqno} not on this chain")
    node: DmaFence | None = f
    for node in for_each(chain):
        node_chain = to_chain(node)
        if node.context != chain.context or (node_chain is not None and node_chain.prev_seqno < seqno):
            return node
    return None
