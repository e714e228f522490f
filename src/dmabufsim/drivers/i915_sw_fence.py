"""An i915_sw_fence-like gate: a request waits for other fences, with a safety-net timer.

Models the part of ``drivers/gpu/drm/i915/i915_sw_fence.c`` (2017) that
awaits a foreign ``dma_fence`` with a timeout: ``i915_sw_fence_await_dma_fence``
hangs a callback on the foreign fence and arms a ``timer_list``; whichever
comes first completes the await. When every await of the gate completed
(and the gate was committed), the gate signals its request's ``dma_fence``.

Rules:

* F1 (await): each await holds one count of the gate's ``pending``; the
  first of (the foreign fence's callback, the timer) takes the await's gate
  pointer (an ``xchg``) and completes it; the other finds it taken.
* F2 (the timer, ``timer_i915_sw_fence_wake``): runs in the timer softirq
  and completes the await on the foreign fence's behalf -- so the gate's
  request fence may be signalled from inside a timer callback, and with it
  every callback hanging on that fence.
* F3 (the fence callback, by design): ``del-timer-sync-in-callback`` (the
  code fixed by 81c0ed21aa91, 2017): the callback
  ``dma_i915_sw_fence_wake_timer`` completes the await and
  ``del_timer_sync``\\ s its timer right there. Every await's timer is
  initialised at one site (one lockdep class), so when the callback runs
  inside another await's timer callback, ``del_timer_sync`` takes the timer
  class held by the running timer: lockdep's ``possible recursive locking
  detected``; with the await's own timer it never returns. ``worker``
  (81c0ed21aa91): the callback completes the await and hands the
  ``del_timer_sync`` to a work item, which runs in process context.
* F4 (declarations): the await's gate pointer is exchanged at scheduling
  points (a write of the await); the gate's count is written at points on
  the gate.
"""

from __future__ import annotations

from ..dma.fence import DmaFence, DmaFenceCb, FenceContext
from ..kernel.errors import ENOENT, UsageError
from ..kernel.runtime import current_kernel
from ..kernel.timer_list import TimerList
from ..kernel.workqueue import Workqueue, WorkStruct

#: What the foreign fence's callback does with the timer (F3).
WAKE_DESIGNS = ("del-timer-sync-in-callback", "worker")
#: The one ``timer_setup`` site of every await's timer (F3): one lockdep class.
TIMER_CLASS = "&cb->timer"


class SwFence:
    """``struct i915_sw_fence``: a gate counting awaits; signals ``fence`` when all completed."""

    __slots__ = ("design", "fence", "k", "name", "oid", "pending", "wq")

    def __init__(self, timeline: FenceContext, name: str, *, design: str = "worker",
                 wq: Workqueue | None = None) -> None:
        """``i915_sw_fence_init``; ``design`` picks F3's callback, ``wq`` the worker's workqueue."""
        if design not in WAKE_DESIGNS:
            raise UsageError(f"unknown wake design {design!r}; known: {list(WAKE_DESIGNS)}")
        if design == "worker" and wq is None:
            raise UsageError("the worker design needs the workqueue its del_timer_sync runs on")
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.design = design
        self.wq = wq
        #: The request's fence, signalled when the gate opens.
        self.fence: DmaFence = timeline.create()
        #: One for the gate itself until :meth:`commit`, one per await not yet completed.
        self.pending = 1

    def commit(self) -> None:
        """``i915_sw_fence_commit``: drop the gate's own count."""
        self._complete()

    def _complete(self) -> None:
        """``i915_sw_fence_complete``: one await done; the last one signals the request's fence."""
        k = self.k
        k.point("i915_sw_fence_complete", self.oid, True, self.name)
        self.pending -= 1
        if self.pending == 0:
            self.fence.signal()

    def await_dma_fence(self, dma: DmaFence, timeout_ns: int) -> None:
        """``i915_sw_fence_await_dma_fence``: wait for ``dma``, at most ``timeout_ns`` (F1)."""
        k = self.k
        k.point("i915_sw_fence_await", self.oid, True, self.name)
        self.pending += 1
        cb = _AwaitCb(self, dma)
        try:
            _ = dma.signaled_flag  # add_callback's lockless test, declared
            dma.add_callback(cb.dma_cb)
        except ENOENT:
            cb.take_and_complete()
            return
        cb.timer.mod_timer(k.now + timeout_ns)


class _AwaitCb:
    """``struct i915_sw_dma_fence_cb_timer``: one await, its timer and (fixed design) its work."""

    __slots__ = ("dma", "dma_cb", "gate", "k", "oid", "timer", "work", "wq")

    def __init__(self, gate: SwFence, dma: DmaFence) -> None:
        self.k = gate.k
        self.oid = self.k.new_oid()
        self.gate: SwFence | None = gate
        self.dma = dma
        self.timer = TimerList(self._timer_wake, TIMER_CLASS)
        self.dma_cb = DmaFenceCb(self._dma_wake)
        self.work = WorkStruct(self._worker, "irq_i915_sw_fence_work") if gate.design == "worker" else None
        self.wq = gate.wq

    def take_and_complete(self) -> None:
        """``xchg(&cb->base.fence, NULL)``, then complete the gate if it was still ours (F1)."""
        self.k.point("i915_sw_fence_xchg", self.oid, True)
        gate = self.gate
        self.gate = None
        if gate is not None:
            gate._complete()

    def _timer_wake(self, timer: TimerList) -> None:
        """``timer_i915_sw_fence_wake``: the foreign fence is late; complete on its behalf (F2)."""
        self.take_and_complete()

    def _dma_wake(self, fence: DmaFence, cb: DmaFenceCb) -> None:
        """``dma_i915_sw_fence_wake_timer`` (F3)."""
        if self.work is None:  # del-timer-sync-in-callback
            self.timer.del_timer_sync()
            self.take_and_complete()
            return
        self.take_and_complete()
        assert self.wq is not None
        self.wq.queue_work(self.work)

    def _worker(self, work: WorkStruct) -> None:
        """``irq_i915_sw_fence_work``: ``del_timer_sync`` in process context (F3, the fix)."""
        self.timer.del_timer_sync()
