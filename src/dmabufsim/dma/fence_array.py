"""Models ``drivers/dma-buf/dma-fence-array.c`` (``struct dma_fence_array``).

A fence array is one fence standing for several: it signals when all of its
members have signalled (or any one of them, with ``signal_on_any``).

Rules:

* R1 (flat): members must be plain fences; an array or chain as a member is
  a kernel WARN (``assertion`` finding): unwrap containers first.
* R2 (pending count): ``num_pending`` starts at the member count (1 with
  ``signal_on_any``); each member signal decrements it; at zero the array
  signals, *asynchronously*, from an irq_work (an interrupt thread), not
  inside the member's signal.
* R3 (errors): the array's error is the first member error observed while
  the array is still pending; 0 when no member failed.
* R4 (polling): before signalling is enabled, ``is_signaled`` counts the
  members that report signalled and decides synchronously.
* R5 (declared state): ``num_pending`` (an ``atomic_t``) is a pseudo-object
  of its own (:func:`pending_oid`, a part of the array after the fence's
  parts): ``atomic_dec_and_test`` in a member's callback (or in
  ``enable_signaling`` for a member already signalled) writes it,
  ``ops.signaled``'s ``atomic_read_acquire`` reads it. The array's error is
  its fence's (the fence's own oid, dma_fence R12): the ``cmpxchg`` of
  ``set_pending_error`` (with an error) and ``clear_pending_error`` write it.
  ``ops.signaled`` reads the array's ENABLE_SIGNAL bit (dma_fence R13).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..kernel.errors import ENOENT
from ..kernel.trace import part_oid
from ..locking.spinlock import SpinLock
from .fence import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    ENABLE_SIGNAL,
    FENCE_PARTS_END,
    DmaFence,
    DmaFenceCb,
    FenceOps,
    context_alloc,
    flag_oid,
)


def pending_oid(oid: int) -> int:
    """The pseudo-object of ``num_pending`` of the array ``oid`` (R5)."""
    return part_oid(oid, FENCE_PARTS_END)


#: The placeholder error while the array is pending (``PENDING_ERROR``).
PENDING_ERROR = 1
ARRAY_LOCK_CLASS = "dma_fence_array.lock"


class DmaFenceArrayOps(FenceOps):
    """``dma_fence_array_ops``."""

    container = True

    def get_driver_name(self, fence: DmaFence) -> str:
        return "dma_fence_array"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "unbound"

    def enable_signaling(self, fence: DmaFence) -> bool:
        """Hook a callback on every member; signal at once if enough already signalled (R2)."""
        assert isinstance(fence, DmaFenceArray)
        arr = fence
        for i, f in enumerate(arr.fences):
            cb = arr.cbs[i]
            arr.get()  # each armed callback holds a reference to the array
            try:
                f.add_callback(cb)
            except ENOENT:
                arr.set_pending_error(f.error)
                arr.put()
                arr.k.event("dma_fence_array_enable_signaling", pending_oid(arr.oid), True)  # atomic_dec_and_test (R5)
                arr.num_pending -= 1
                if arr.num_pending <= 0:
                    arr.clear_pending_error()
                    return False
        return True

    def signaled(self, fence: DmaFence) -> bool:
        """R4: synchronous decision when signalling is not enabled."""
        assert isinstance(fence, DmaFenceArray)
        arr = fence
        arr.k.event("dma_fence_array_signaled", pending_oid(arr.oid), False)  # atomic_read_acquire (R5)
        pending = arr.num_pending
        # test_bit(ENABLE_SIGNAL): the step reads that bit of the array (dma_fence R13)
        arr.k.event("dma_fence_array_signaled", flag_oid(arr.oid, DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT), False)
        if arr.flags & ENABLE_SIGNAL:
            if pending <= 0:
                arr.clear_pending_error()
                return True
            return False
        for f in arr.fences:
            if f.is_signaled():
                pending -= 1
                if pending == 0:
                    arr.clear_pending_error()
                    return True
        return False

    def release(self, fence: DmaFence) -> None:
        assert isinstance(fence, DmaFenceArray)
        for f in fence.fences:
            f.put()
        fence.free()  # dma_fence_free

    def set_deadline(self, fence: DmaFence, deadline: int) -> None:
        assert isinstance(fence, DmaFenceArray)
        for f in fence.fences:
            f.set_deadline(deadline)


ARRAY_OPS = DmaFenceArrayOps()


class _MemberCb:
    """``dma_fence_array_cb_func``: count a member down, queue the irq_work at zero."""

    __slots__ = ("array",)

    def __init__(self, array: DmaFenceArray) -> None:
        self.array = array

    def __call__(self, fence: DmaFence, cb: DmaFenceCb) -> None:
        arr = self.array
        arr.set_pending_error(fence.error)
        arr.k.event("dma_fence_array_cb_func", pending_oid(arr.oid), True)  # atomic_dec_and_test (R5)
        arr.num_pending -= 1
        if arr.num_pending == 0:
            arr.k.raise_irq(_array_irq_work, arr, name="dma_fence_array_irq_work")
        else:
            arr.put()


def _array_irq_work(arr: DmaFenceArray) -> None:
    """``irq_signal_array``: clear the placeholder error, signal (R2), drop the callback's reference."""
    arr.clear_pending_error()
    arr.signal()
    arr.put()


class DmaFenceArray(DmaFence):
    """``struct dma_fence_array``: created by :meth:`create` (``dma_fence_array_create``)."""

    __slots__ = ("cbs", "fences", "num_pending", "signal_on_any")

    def __init__(self, fences: Sequence[DmaFence], context: int, seqno: int, signal_on_any: bool = False, *,
                 ops: DmaFenceArrayOps | None = None) -> None:
        """``dma_fence_array_init``: takes over the references in ``fences``. ``ops``: a
        :class:`DmaFenceArrayOps` subclass whose public ``enable_signaling`` / ``signaled`` /
        ``release`` write another (e.g. older) design."""
        super().__init__(ops if ops is not None else ARRAY_OPS, SpinLock(ARRAY_LOCK_CLASS), context, seqno)
        k = self.k
        if not fences:
            k.report(
                "assertion",
                "WARNING: dma_fence_array_init with no fences",
                rule="dma_fence_array: an array needs members",
                signature="dma-fence-array-empty",
            )
        self.fences: tuple[DmaFence, ...] = tuple(fences)
        self.num_pending = 1 if signal_on_any else len(self.fences)
        self.signal_on_any = signal_on_any
        self.error = PENDING_ERROR
        cb = _MemberCb(self)
        self.cbs = tuple(DmaFenceCb(cb) for _ in self.fences)
        for f in self.fences:
            if is_container(f):
                k.report(
                    "assertion",
                    "WARNING: dma_fence_array member is a container",
                    details={"member": f.oid, "kind": type(f).__name__},
                    rule="dma_fence_array R1: arrays must be flat",
                    signature=f"dma-fence-array-nested:{type(f).__name__}",
                )

    @classmethod
    def create(cls, fences: Sequence[DmaFence], context: int, seqno: int,
               signal_on_any: bool = False, *, ops: DmaFenceArrayOps | None = None) -> DmaFenceArray:
        """``dma_fence_array_create``."""
        return cls(fences, context, seqno, signal_on_any, ops=ops)

    def lifetime_ids(self) -> tuple[int, ...]:
        """The fence's ids (dma_fence R11) and ``num_pending`` (R5)."""
        return (*super().lifetime_ids(), pending_oid(self.oid))

    @property
    def num_fences(self) -> int:
        return len(self.fences)

    def set_pending_error(self, error: int) -> None:
        """``dma_fence_array_set_pending_error``: first error wins, only while pending (R3); the
        ``cmpxchg`` writes the array's error (R5)."""
        if error:
            self.k.event("dma_fence_array_set_pending_error", self.oid, True)
            if self.error == PENDING_ERROR:
                self.error = error

    def clear_pending_error(self) -> None:
        """``dma_fence_array_clear_pending_error``: the ``cmpxchg`` writes the array's error (R5)."""
        self.k.event("dma_fence_array_clear_pending_error", self.oid, True)
        if self.error == PENDING_ERROR:
            self.error = 0

    def get_status_locked(self) -> int:
        if self._is_signaled_locked():
            return self.error or 1
        return 0

    def first(self) -> DmaFence | None:
        """``dma_fence_array_first``."""
        return self.fences[0] if self.fences else None

    def next(self, i: int) -> DmaFence | None:
        """``dma_fence_array_next``: member ``i`` or None."""
        return self.fences[i] if i < len(self.fences) else None

    def match_context(self, context: int) -> bool:
        """``dma_fence_match_context`` for an array: every member has ``context``."""
        return all(f.context == context for f in self.fences)


def is_array(f: DmaFence) -> bool:
    """``dma_fence_is_array``."""
    return f.ops is ARRAY_OPS


def is_container(f: DmaFence) -> bool:
    """``dma_fence_is_container``: an array or a chain node."""
    return f.ops.container


def to_array(f: DmaFence | None) -> DmaFenceArray | None:
    """``to_dma_fence_array``: the array, or None if ``f`` is not one."""
    return f if isinstance(f, DmaFenceArray) else None


def match_context(f: DmaFence, context: int) -> bool:
    """``dma_fence_match_context``."""
    if isinstance(f, DmaFenceArray):
        return f.match_context(context)
    return f.context == context


def array_create(fences: Sequence[DmaFence], context: int | None = None, seqno: int = 1,
                 signal_on_any: bool = False) -> DmaFenceArray:
    """``dma_fence_array_create`` with a fresh context by default."""
    return DmaFenceArray(fences, context_alloc(1) if context is None else context, seqno, signal_on_any)
