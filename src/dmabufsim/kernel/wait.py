"""Wait queues: sleeping until a condition holds.

Models ``include/linux/wait.h``: ``wait_event*`` sleep until a condition
(a Python callable reading model state) is true, re-checking it after every
wake-up; ``wake_up*`` wake the sleepers. The condition is evaluated at a
scheduling point (it reads shared state).

Rules:

* R1: ``wait_event*`` may sleep (``might_sleep``): calling it in atomic
  context is a finding.
* R2: ``wait_event_timeout`` returns the time left (at least 1) when the
  condition became true, 0 when the timeout elapsed with it still false.
* R3: the interruptible variants raise ``ERESTARTSYS`` when a signal is
  pending; uninterruptible ones ignore signals.
* R4: a wake-up with no sleeper is lost (the condition is what counts).
* R5 (declarations): the condition reads model state the wait queue's own
  point does not name; ``reads=oid`` declares the object it reads (an event
  with every check), so partial-order reduction orders the check with the
  writes of that object (``kernel.accesses``).
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import ERESTARTSYS
from .runtime import current_kernel
from .thread import KThread


class WaitQueue:
    """``wait_queue_head_t``: threads sleeping until a condition holds."""

    __slots__ = ("k", "name", "oid", "waiters")

    def __init__(self, name: str = "wq") -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.waiters: list[KThread] = []

    def _wait(self, cond: Callable[[], object], interruptible: bool, timeout: int | None,
              reads: int | None = None) -> int:
        k = self.k
        me = k.current
        deadline = None if timeout is None else k.now + timeout
        while True:
            k.point("wait_event", self.oid, False, self.name)
            if reads is not None:
                k.event("wait_event_cond", reads, False, self.name)  # R5
            if cond():
                return 1 if deadline is None else max(1, deadline - k.now)
            if deadline is not None and k.now >= deadline:
                return 0
            k.might_sleep("wait_event")
            self.waiters.append(me)
            left = None if deadline is None else deadline - k.now
            reason = k.block("wait_event", self.oid, interruptible=interruptible, timeout=left, name=self.name)
            if me in self.waiters:
                self.waiters.remove(me)
            if reason == "signal":
                raise ERESTARTSYS(f"wait_event_interruptible on {self.name} interrupted by a signal")
            if reason == "timeout":
                k.point("wait_event", self.oid, False, self.name)
                if reads is not None:
                    k.event("wait_event_cond", reads, False, self.name)  # R5
                return 1 if cond() else 0

    def wait_event(self, cond: Callable[[], object], *, reads: int | None = None) -> None:
        """``wait_event``: sleep uninterruptibly until ``cond()`` is true (``reads``: R5)."""
        self._wait(cond, False, None, reads)

    def wait_event_timeout(self, cond: Callable[[], object], timeout: int, *, reads: int | None = None) -> int:
        """``wait_event_timeout``: time left (>= 1) if ``cond()`` became true, else 0 (R2)."""
        return self._wait(cond, False, timeout, reads)

    def wait_event_interruptible(self, cond: Callable[[], object], *, reads: int | None = None) -> None:
        """``wait_event_interruptible``: raises ERESTARTSYS on a signal (R3)."""
        self._wait(cond, True, None, reads)

    def wait_event_interruptible_timeout(self, cond: Callable[[], object], timeout: int, *,
                                         reads: int | None = None) -> int:
        """``wait_event_interruptible_timeout``: time left, 0 on timeout, ERESTARTSYS on a signal."""
        return self._wait(cond, True, timeout, reads)

    def wake_up(self) -> int:
        """``wake_up``/``wake_up_all``: wake every sleeper; returns how many woke."""
        k = self.k
        k.point("wake_up", self.oid, True, self.name)
        n = 0
        for t in list(self.waiters):
            n += k.wake(t)
        return n

    wake_up_all = wake_up

    def wake_up_one(self) -> bool:
        """Wake the first sleeper only (an exclusive waiter)."""
        k = self.k
        k.point("wake_up", self.oid, True, self.name)
        return any(k.wake(t) for t in self.waiters)

    def __repr__(self) -> str:
        return f"<WaitQueue {self.name} waiters={[t.name for t in self.waiters]}>"
