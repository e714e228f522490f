"""Parking kthreads: ``kthread_park`` / ``kthread_unpark`` / ``kthread_should_park``.

Models the parking part of ``kernel/kthread.c``: another thread asks a
kthread to park and waits until it has; the kthread polls
``kthread_should_park()`` at points of its loop where it holds nothing and
calls ``kthread_parkme()``, which sleeps until it is unparked. (The GPU
scheduler's timeout handler parks the scheduler thread this way.)

Rules:

* K1: ``kthread_park(t)`` sets ``t``'s SHOULD_PARK, wakes ``t`` when it
  sleeps in a wait that re-checks its condition (``wait_event``,
  ``schedule_timeout``, ``msleep``, an idle worker), and waits until ``t``
  parked (it may sleep). Parking oneself is refused, as the kernel's WARN
  (``-ENOSYS`` in the kernel; here a ``UsageError``). Parking an exited
  thread returns at once.
* K2: ``kthread_parkme()`` sleeps while SHOULD_PARK is set, after telling
  the parker it parked; ``kthread_unpark(t)`` clears SHOULD_PARK and wakes it.
* K3 (declarations): every operation is a write of the thread's park state
  at a scheduling point; the waits wait on it.
"""

from __future__ import annotations

from .errors import UsageError
from .runtime import Kernel, current_kernel
from .thread import KThread, ThreadState

#: Waits that re-check their condition, so a wake-up to park is harmless (K1).
_WAKEABLE = frozenset({"wait_event", "schedule_timeout", "msleep", "worker_thread"})


class _Park:
    """``struct kthread``'s parking state of one thread."""

    __slots__ = ("oid", "parked", "parkers", "should_park", "thread")

    def __init__(self, k: Kernel, t: KThread) -> None:
        self.oid = k.new_oid()
        self.thread = t
        self.should_park = False
        self.parked = False
        self.parkers: list[KThread] = []


def _park_state(k: Kernel, t: KThread) -> _Park:
    st = t.data.get("kthread_park")
    if st is None:
        st = t.data["kthread_park"] = _Park(k, t)
    assert isinstance(st, _Park)
    return st


def kthread_should_park() -> bool:
    """``kthread_should_park``: has someone asked the current kthread to park? (K2)"""
    k = current_kernel()
    st = _park_state(k, k.current)
    k.point("kthread_should_park", st.oid, False, k.current.name)
    return st.should_park


def kthread_parkme() -> None:
    """``kthread_parkme``: park while SHOULD_PARK is set (K2)."""
    k = current_kernel()
    me = k.current
    st = _park_state(k, me)
    k.might_sleep("kthread_parkme")
    k.point("kthread_parkme", st.oid, True, me.name)
    while st.should_park:
        if not st.parked:
            st.parked = True
            for t in list(st.parkers):
                k.wake(t)
        k.block("kthread_parkme", st.oid, name=me.name)
    st.parked = False


def kthread_park(t: KThread) -> None:
    """``kthread_park``: ask ``t`` to park and wait until it has (K1)."""
    k = current_kernel()
    me = k.current
    if t is me:
        raise UsageError("kthread_park: a kthread cannot park itself (use kthread_parkme)")
    st = _park_state(k, t)
    k.might_sleep("kthread_park")
    k.point("kthread_park", st.oid, True, t.name)
    st.should_park = True
    if t.state is ThreadState.BLOCKED and t.blocked_on is not None and t.blocked_on[0] in _WAKEABLE:
        k.event("kthread_park_wake", t.blocked_on[1], True)  # accesses A4: the wake writes its wait
        k.wake(t)
    while not st.parked and not t.exited:
        st.parkers.append(me)
        k.block("kthread_park", st.oid, name=t.name)
        st.parkers.remove(me)


def kthread_unpark(t: KThread) -> None:
    """``kthread_unpark``: clear SHOULD_PARK and wake ``t`` (K2)."""
    k = current_kernel()
    st = _park_state(k, t)
    k.point("kthread_unpark", st.oid, True, t.name)
    st.should_park = False
    if st.parked:
        k.wake(t)
