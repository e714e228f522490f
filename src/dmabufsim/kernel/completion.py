"""Completions: one-shot (or counted) events a thread can wait for.

Models ``kernel/sched/completion.c``.

Rules:

* R1: ``complete()`` lets exactly one waiter (present or future) through:
  it adds one to ``done``; each successful wait consumes one.
* R2: ``complete_all()`` lets every waiter through, now and later, until
  ``reinit_completion()``.
* R3: waiting may sleep (``might_sleep``); ``wait_for_completion_timeout``
  returns the time left (at least 1) or 0; the interruptible variants raise
  ``ERESTARTSYS`` on a pending signal.
* R4: ``complete`` never sleeps: it may be called from an interrupt handler.
* R5: ``reinit_locked`` re-arms the completion inside the caller's step (the
  caller holds the spinlock that makes it atomic with what it decided); it
  declares the write by an event.
"""

from __future__ import annotations

from .errors import ERESTARTSYS
from .runtime import current_kernel
from .thread import KThread

#: ``complete_all`` sets ``done`` to UINT_MAX: it is never consumed.
UINT_MAX = (1 << 32) - 1


class Completion:
    """``struct completion``: a counter of completions plus its waiters."""

    __slots__ = ("done", "k", "name", "oid", "waiters")

    def __init__(self, name: str = "completion") -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.done = 0
        self.waiters: list[KThread] = []

    def complete(self) -> None:
        """``complete``: release one waiter (R1)."""
        k = self.k
        k.point("complete", self.oid, True, self.name)
        k.progress("complete")  # progress P1
        if self.done != UINT_MAX:
            self.done += 1
        for t in self.waiters:
            if k.wake(t):
                break

    def complete_all(self) -> None:
        """``complete_all``: release every waiter, present and future (R2)."""
        k = self.k
        k.point("complete_all", self.oid, True, self.name)
        k.progress("complete_all")  # progress P1
        self.done = UINT_MAX
        for t in list(self.waiters):
            k.wake(t)

    def reinit(self) -> None:
        """``reinit_completion``: back to not-done."""
        self.k.point("reinit_completion", self.oid, True, self.name)
        self.done = 0

    def reinit_locked(self) -> None:
        """``reinit_completion`` inside the caller's step (R5): under a spinlock the caller holds
        (``drm_sched_rq_select_entity_rr`` re-arms ``entity_idle`` under ``rq->lock``), so no
        scheduling point of its own; an event declares the write."""
        self.k.event("reinit_completion", self.oid, True, self.name)
        self.done = 0

    def _wait(self, interruptible: bool, timeout: int | None) -> int:
        k = self.k
        k.might_sleep("wait_for_completion")
        k.point("wait_for_completion", self.oid, True, self.name)
        me = k.current
        deadline = None if timeout is None else k.now + timeout
        while not self.done:
            left = None if deadline is None else deadline - k.now
            if left is not None and left <= 0:
                return 0
            self.waiters.append(me)
            reason = k.block(
                "wait_for_completion", self.oid, interruptible=interruptible, timeout=left, name=self.name
            )
            self.waiters.remove(me)
            if reason == "signal":
                raise ERESTARTSYS(f"wait_for_completion_interruptible on {self.name} interrupted")
            if reason == "timeout" and not self.done:
                return 0
        if self.done != UINT_MAX:
            self.done -= 1
        return 1 if deadline is None else max(1, deadline - k.now)

    def wait_for_completion(self) -> None:
        """``wait_for_completion``: sleep uninterruptibly until completed."""
        self._wait(False, None)

    def wait_for_completion_timeout(self, timeout: int) -> int:
        """Time left (>= 1) if completed, 0 if ``timeout`` ns elapsed first."""
        return self._wait(False, timeout)

    def wait_for_completion_interruptible(self) -> None:
        """Raises ERESTARTSYS when a signal is pending (R3)."""
        self._wait(True, None)

    def wait_for_completion_interruptible_timeout(self, timeout: int) -> int:
        """Time left, 0 on timeout, ERESTARTSYS on a signal."""
        return self._wait(True, timeout)

    def try_wait_for_completion(self) -> bool:
        """``try_wait_for_completion``: consume a completion without sleeping."""
        self.k.point("try_wait_for_completion", self.oid, True, self.name)
        if not self.done:
            return False
        if self.done != UINT_MAX:
            self.done -= 1
        return True

    def completion_done(self) -> bool:
        """``completion_done``: would a wait succeed without sleeping?"""
        self.k.point("completion_done", self.oid, False, self.name)
        return self.done > 0
