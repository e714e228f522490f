"""Lipton reduction: scheduling points no other thread can observe are folded into the step before them.

Lipton, "Reduction: a method of proving properties of parallel programs"
(CACM 1975); Flanagan and Qadeer, "Transactions for software model
checking" (SoftMC 2003). A step that commutes with every step of every
other thread (a *both-mover*), or that commutes with the steps of other
threads just before it (a *left mover*), may run right after its thread's
previous step: offering the other threads a turn in between adds only
schedules equivalent to ones explored anyway. Such a scheduling point is
*folded*: the thread goes on without a choice being made. The point still
counts its step and emits its event (lockdep, might_sleep and every
checker see exactly the events they see without reduction; the trace is
complete); only the scheduling *choice* is gone.

Rules:

* L1 (what folds): with ``Config.reduction`` on, a scheduling point folds
  when its operation is (a) thread-local -- it declares no object (an
  object id below zero, a read: ``msleep``'s and ``schedule_timeout``'s
  look at the virtual clock, a scenario's "think" step): it touches nothing
  another thread reads or writes (the access checker, ``accesses`` A4,
  proves the segment after it declares nothing shared either); (b) an
  access of an object *guarded* by a lock the thread holds (L2): a
  both-mover, every other access of the object waits for the same lock;
  (c) the release (``mutex_unlock``, ``spin_unlock``) of a lock declared
  *blocking-only* (L3): a left mover. Lock acquisitions never fold: a
  blocking acquire is a right mover, but a thread that blocks in the middle
  of a transaction would hide the deadlocks the kernel's "ABBA" needs
  (every thread holding its first lock), so each acquisition begins a new
  transaction (Flanagan and Qadeer's transactions end at a blocking step).
  Every step therefore has the shape ``[yield] op (both | left)*``: a
  transaction.
* L2 (guards, ``__guarded_by``): :meth:`Kernel.guard` declares that every
  scheduling point on object ``obj`` is made with ``lock`` held (the
  kernel's ``lockdep_assert_held`` on every access). The declaration is
  checked at every such point whether reduction is on or off: a point on
  a guarded object without its lock held is an ``unguarded-access``
  finding (error), and that point never folds -- a wrong declaration is
  reported, never silently reduced. Declarations are the same in every
  execution (the model makes them), so findings do not depend on the
  reduction.
* L3 (blocking-only locks): :meth:`Kernel.blocking_only` declares that a
  lock is only ever taken by uninterruptible blocking acquisitions: no
  trylock, no ``is_locked``, no interruptible or killable wait. Only those
  observe a lock held without waiting for it (a failed trylock read the
  owner; a signalled waiter saw it held), so with none the release of the
  lock commutes to the left with every step of another thread (a blocked
  acquirer would only have queued, and the release hands it the lock in
  either order). A trylock, ``is_locked`` or interruptible acquisition of a
  declared lock is an ``unguarded-access`` finding (error) and never folds
  anything.
* L4 (replay): a folded point where other threads were runnable records the
  running thread as its choice, as a strategy choosing to go on would (after
  the early-timer choice of runtime R8, which a folded point still offers: a
  timer fired early only adds schedules): a
  token made with reduction replays, with the same trace, without it
  (``Kernel(replay=token)``, shrinking); a replay never runs with reduction
  (it must follow the choices where they were recorded).
* L5 (cost): off and with no guard declared, nothing is installed (the
  point's one test for its rare cases covers it).
* L6 (whole sections read their lock): a step that takes a lock at its own
  lock point (``spin_lock``, ``mutex_lock``: the point that begins the
  step), finding it free, and releases it before the step ends, waking no
  waiter -- the release joined the step (``dma_fence``'s sections, R10, or
  a release folded by L1 c) -- leaves the lock as it found it: owner none,
  no waiter queued or woken. To every other thread the step only *read*
  the lock (it needed it free), so the explorer counts the section's
  acquire and release as one read of the lock (``Kernel.section_read``,
  ``odpor`` R1), and two such sections commute unless what they touch
  under the lock conflicts -- which each must declare on its own (the
  access checker sees their writes of the lock's owner as reads, since the
  step restored it, ``accesses`` A3, and catches a section whose protected
  state is undeclared). Sound because: the section begins and ends inside
  one step, so no thread observes the lock held; a thread at its lock
  point is enabled before and after such a step alike; a trylock or
  ``is_locked`` (a read, or a write when it takes the lock) meets only the
  free lock either way; a thread holding the lock across points, a
  contended acquisition (spinning, queueing, a hand-off from the wait
  list), a trylock's acquisition or a release that wakes a waiter stays a
  write. Lockdep, might_sleep and the trace see the same acquire and
  release events; only the declared access changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runtime import Kernel
    from .thread import KThread

#: The releases that fold for a blocking-only lock (L1 c).
RELEASES = frozenset({"mutex_unlock", "spin_unlock"})
#: Operations that observe a lock held without waiting for it (L3).
TESTS = frozenset({"mutex_trylock", "spin_trylock", "mutex_is_locked", "spin_is_locked",
                   "mutex_lock_interruptible", "mutex_lock_killable"})

#: Points whose object is a thread id (a child's creation, a signal's target, a joined thread,
#: runtime R15): never folded.
_THREAD_OPS = frozenset({"spawn", "signal", "join"})


class Reducer:
    """The folding rules of one execution (see the module Rules)."""

    __slots__ = ("blocking", "enabled", "guards", "k")

    def __init__(self, k: Kernel, enabled: bool) -> None:
        self.k = k
        #: L1: fold points (``Config.reduction``); off, declarations are still checked (L2, L3).
        self.enabled = enabled
        #: L2: object id -> the lock guarding it (its lockdep map) and the lock's name.
        self.guards: dict[int, Any] = {}
        #: L3: object ids of the locks declared blocking-only -> their lockdep maps.
        self.blocking: dict[int, Any] = {}

    def fold(self, t: KThread, op: str, obj: int, write: bool) -> bool:
        """May ``t`` go on at its point before ``op`` on ``obj`` without a choice (L1)?"""
        if obj < 0:
            return self.enabled and not write
        if op in _THREAD_OPS:
            return False  # obj is a thread id there, not an object
        g = self.guards.get(obj)
        if g is not None:
            if self.k.lockdep.is_held(g, t):
                return self.enabled
            self._unguarded(t, op, obj, g)
            return False
        m = self.blocking.get(obj)
        if m is not None:
            if op in RELEASES:
                return self.enabled and self.k.lockdep.is_held(m, t)
            if op in TESTS:
                self.tested(t, op, obj)
        return False

    def tested(self, t: KThread, op: str, obj: int) -> None:
        """``op`` observed blocking-only lock ``obj`` without waiting for it (L3)."""
        m = self.blocking.get(obj)
        if m is None:
            return
        self.k.report(
            "unguarded-access",
            f"{op} on {m.name}, which is declared blocking-only",
            details={"lock": m.name, "operation": op},
            rule="reduction L3: a blocking-only lock is never tested without waiting for it",
            signature=f"blocking-only-tested:{m.name}:{op}",
            thread=t,
        )

    def _unguarded(self, t: KThread, op: str, obj: int, g: Any) -> None:
        self.k.report(
            "unguarded-access",
            f"{op} of #{obj} without holding {g.name}, which guards it",
            details={"object": obj, "lock": g.name, "operation": op},
            rule="reduction L2: a guarded object is only accessed with its lock held",
            signature=f"unguarded-access:{obj}:{g.name}:{op}",
            thread=t,
        )
