"""H10 (kernel history): a fence signalled from a timer runs a callback that ``del_timer_sync``\\ s.

i915 (2017) let a request wait for a foreign fence with a safety net: an
``i915_sw_fence`` await hangs a callback on the foreign fence *and* arms a
timer; if the foreign fence is late, the timer completes the await on its
behalf. The request's own fence may then be signalled from inside that
timer callback, in softirq context -- and with it every callback hanging on
the request's fence, including the awaits of *later* requests on it. Their
callback (``dma_i915_sw_fence_wake_timer``) called ``del_timer_sync`` on
their own timer. All those timers come from one ``timer_setup`` site, one
lockdep class, whose map the running timer callback holds: lockdep reports
``possible recursive locking detected`` on the timer class (and for the
await's own timer the wait would never end: ``del_timer_sync`` spins until
the running callback returns). Source: 81c0ed21aa91, "drm/i915/fence: Avoid
del_timer_sync() from inside a timer", Message-ID
20170911084135.22903-3-chris@chris-wilson.co.uk (Chris Wilson, 2017).

The experiment (``drivers/i915_sw_fence.py``): request R1 awaits a foreign
fence D with a 1 ms timer, request R2 awaits R1 with a 1 ms timer, and the
other driver signals D at 1 ms too: the explorer orders D's signal, both
timer softirqs and the callbacks. Where R1's timer wins, it completes R1 on
D's behalf and signals R1 in the timer softirq. R2's gate is committed
last, so only its await of R1 completes inside these races.

* ``del-timer-sync-in-callback``: R2's callback on R1 calls
  ``del_timer_sync`` on R2's timer inside R1's timer callback:
  ``recursive-locking`` on ``(&cb->timer)``; and since the callback runs
  under R1's fence lock while the timer callback signals R1 under the timer
  map, lockdep also closes the cycle fence lock -> timer -> fence lock
  (``circular-locking``).
* ``worker`` (the fix): the callback completes the await and hands the
  ``del_timer_sync`` to a work item, which runs in process context. Clean.
"""

from __future__ import annotations

from ..dma.fence import FenceContext
from ..drivers.i915_sw_fence import SwFence
from ..kernel.runtime import NSEC_PER_MSEC, Kernel
from ..kernel.workqueue import Workqueue
from .catalog import Verdict


def run_h10(k: Kernel, design: str) -> None:
    """R1 awaits a foreign fence that signals just as its timer expires; R2 awaits R1."""
    wq = Workqueue("i915", workers=1) if design == "worker" else None
    foreign = FenceContext("foreign", driver="other").create()
    timeline = FenceContext("i915.rcs0", driver="i915")
    r1 = SwFence(timeline, "R1", design=design, wq=wq)
    r1.await_dma_fence(foreign, 1 * NSEC_PER_MSEC)
    r1.commit()
    r2 = SwFence(timeline, "R2", design=design, wq=wq)
    r2.await_dma_fence(r1.fence, 1 * NSEC_PER_MSEC)

    def other_driver() -> None:
        k.msleep(1)
        foreign.signal()

    k.join(k.spawn(other_driver, name="other-driver"))
    k.msleep(1)
    r2.commit()  # R2's gate opens last (its fence shares R1's timeline lock)


def del_timer_sync_in_callback(k: Kernel) -> None:
    """The await's fence callback calls del_timer_sync, possibly inside another await's timer."""
    run_h10(k, "del-timer-sync-in-callback")


def worker(k: Kernel) -> None:
    """The fence callback hands del_timer_sync to a work item (process context): clean."""
    run_h10(k, "worker")


CLAIMS = [
    {"id": "H10", "design": "del-timer-sync-in-callback", "scenario": del_timer_sync_in_callback,
     "source": "fixed by 81c0ed21aa91 (20170911084135.22903-3-chris@chris-wilson.co.uk)",
     "expected": Verdict(kinds=frozenset({"recursive-locking", "circular-locking"}),
                         chain=("i915.rcs0.fence_lock", "(&cb->timer)")),
     "budget": 100},
    {"id": "H10", "design": "worker", "scenario": worker,
     "source": "81c0ed21aa91 (20170911084135.22903-3-chris@chris-wilson.co.uk)",
     # Proved: optimal DPOR exhausts it in 155 Mazurkiewicz traces.
     "expected": "clean", "strategy": "odpor", "budget": 400},
]
