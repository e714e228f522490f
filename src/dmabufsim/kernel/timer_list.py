"""Timer wheel timers (``struct timer_list``): callbacks in softirq context at a virtual time.

Models ``kernel/time/timer.c`` (6.12): ``timer_setup``, ``mod_timer``,
``add_timer``, ``del_timer`` (``timer_delete``), ``del_timer_sync``
(``timer_delete_sync``), ``timer_pending``.

Rules:

* T1 (expiry): an armed timer expires at its virtual time (runtime R3: the
  clock jumps there when nothing else can run; with early timers on, the
  explorer may fire it sooner, runtime R8). Its callback then runs in
  *softirq* context (``run_timer_softirq``, atomic: it may not sleep) as its
  own thread, so the explorer decides when it runs against everything else.
  A timer deleted or re-armed between its expiry and the softirq does not
  run (the base lock decides who was first: the softirq's scheduling point).
* T2 (lockdep, ``call_timer_fn``): the callback runs holding the timer's
  lockdep map (one class per ``timer_setup`` name), so every lock it takes
  is ordered after the map.
* T3 (``del_timer_sync``): acquires and releases the timer's map with
  interrupts off before it waits, then deletes the timer and waits for a
  running callback to finish. Called from the timer's own callback, the
  map is already held: lockdep's ``possible recursive locking detected``,
  and the wait never ends (the kernel spins in ``del_timer_wait_running``
  forever): a ``deadlock``. Called in hardirq context on a timer without
  ``TIMER_IRQSAFE``, it is the kernel's WARN (an ``assertion`` finding).
* T4 (declarations): arming, deleting, running and finishing are writes of
  the timer at scheduling points; waits wait on the timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .lockdep_map import LockdepMap
from .runtime import current_kernel
from .thread import KThread
from .timer import Timer

#: ``TIMER_IRQSAFE``: the callback runs with interrupts off; waiting for it from hardirq is allowed.
TIMER_IRQSAFE = 1 << 21


class TimerList:
    """``struct timer_list`` (``timer_setup(timer, callback, flags)``)."""

    __slots__ = ("armed", "dep_map", "expires", "flags", "func", "gen", "k", "name", "oid", "pending", "running",
                 "waiters")

    def __init__(self, func: Callable[[TimerList], Any], name: str | None = None, flags: int = 0) -> None:
        """``timer_setup``: the callback is ``func(timer)``; one lockdep class per name (T2)."""
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.func = func
        self.flags = flags
        self.name = name or str(getattr(func, "__name__", "timer"))
        self.dep_map = LockdepMap(f"({self.name})")
        #: ``timer_pending``: armed and not yet expired-and-taken.
        self.pending = False
        self.expires = 0
        #: Bumped by every arm and delete: an expiry of an older arming is stale (T1).
        self.gen = 0
        #: The runtime timer of the current arming.
        self.armed: Timer | None = None
        #: The softirq thread running the callback, or None.
        self.running: KThread | None = None
        self.waiters: list[KThread] = []

    def _disarm(self) -> bool:
        was = self.pending
        self.pending = False
        self.gen += 1
        if self.armed is not None:
            self.armed.cancel()
            self.armed = None
        return was

    def mod_timer(self, expires: int) -> bool:
        """``mod_timer``: (re)arm to expire at virtual time ``expires`` (ns); True if it was pending."""
        k = self.k
        k.point("mod_timer", self.oid, True, self.name)
        was = self._disarm()
        self.pending = True
        self.expires = expires
        self.armed = k.add_timer(expires, self._expire, self.gen, name=f"timer_list:{self.name}")
        return was

    def add_timer(self, expires: int) -> None:
        """``add_timer``: arm an idle timer."""
        self.mod_timer(expires)

    def timer_pending(self) -> bool:
        """``timer_pending``."""
        self.k.point("timer_pending", self.oid, False, self.name)
        return self.pending

    def _expire(self, gen: int) -> None:
        """The hrtimer side (runtime R7: no scheduling point): raise the timer softirq."""
        self.k.raise_softirq(self._run, gen, name=f"timer:{self.name}")

    def _run(self, gen: int) -> None:
        """``run_timer_softirq`` -> ``call_timer_fn`` (T1, T2)."""
        k = self.k
        k.point("run_timer_softirq", self.oid, True, self.name)
        if gen != self.gen or not self.pending:
            return  # deleted or re-armed after it expired (T1)
        self.pending = False
        self.armed = None
        self.running = me = k.current
        self.dep_map.acquire()
        try:
            self.func(self)
        finally:
            self.dep_map.release()
        k.point("call_timer_fn_done", self.oid, True, self.name)
        if self.running is me:
            self.running = None
        for t in list(self.waiters):
            k.wake(t)

    def del_timer(self) -> bool:
        """``del_timer`` (``timer_delete``): deactivate; True if it was pending. Does not wait."""
        self.k.point("del_timer", self.oid, True, self.name)
        return self._disarm()

    def del_timer_sync(self) -> bool:
        """``del_timer_sync`` (``timer_delete_sync``): deactivate and wait for a running callback (T3)."""
        k = self.k
        me = k.current
        k.atomic_enter("irqs_disabled", "del_timer_sync")  # local_irq_save
        self.dep_map.acquire()
        self.dep_map.release()
        k.atomic_exit("irqs_disabled", "del_timer_sync")
        if me.in_irq and not (self.flags & TIMER_IRQSAFE):
            k.report(
                "assertion",
                "WARNING: del_timer_sync() in hardirq context on a timer without TIMER_IRQSAFE",
                details={"timer": self.name},
                rule="timer_list T3: no del_timer_sync from hardirq unless TIMER_IRQSAFE",
                signature=f"del-timer-sync-irq:{self.name}",
            )
        k.point("del_timer_sync", self.oid, True, self.name)
        was = self._disarm()
        while self.running is not None:
            # del_timer_wait_running spins; waiting on oneself never ends (T3).
            self.waiters.append(me)
            k.block("del_timer_sync", self.oid, name=self.name)
            self.waiters.remove(me)
        return was

    def __repr__(self) -> str:
        state = "pending" if self.pending else "running" if self.running is not None else "idle"
        return f"<TimerList {self.name} {state}>"
