"""Reading a recorded trace: which events take and release locks, signal and wait.

The trace records operations by their kernel names (``mutex_lock``,
``spin_unlock``, ``dma_fence_signal``, ...). Reports that reconstruct
intervals (lock hold times, fence waits) classify events here, in one
place, so that a new lock type of a model room is recognised by its
kernel name without touching every reporter.

Rules:

* R1: an operation named ``*_lock``, ``*_trylock``, ``*_lock_*``,
  ``down_read``/``down_write`` (and their variants) acquires the object
  it names; ``*_unlock``/``up_read``/``up_write`` releases it. A trylock
  that failed leaves no release behind and stays an instant.
* R2: ``dma_fence_signal``, ``complete``/``complete_all`` and ``wake_up``
  signal their object; ``dma_fence_wait``, ``wait_for_completion`` and
  ``wait_event`` wait on it.
* R3: a lock operation's own event is the *attempt*. The lock_stat hooks
  of a recorded execution (:class:`~dmabufsim.kernel.trace.LockMark`) say
  what became of it: ``lock_contended`` (it waited), ``lock_acquired``
  (taken after waiting, where the hold begins), ``lock_failed`` (given up:
  ``-EDEADLK``, ``-EALREADY``, ``-EINTR``; no hold, and no release is
  paired with it). A hook belongs to the latest attempt of its thread on
  its lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ..kernel.trace import Event, LockMark

#: Operations that signal waiters on their object.
SIGNAL_OPS = frozenset({"dma_fence_signal", "complete", "complete_all", "wake_up"})
#: Operations that wait for a signal on their object.
WAIT_OPS = frozenset({"dma_fence_wait", "wait_for_completion", "wait_event", "dma_resv_wait_timeout"})
#: Lock operations that are not named ``*_lock`` / ``*_unlock``.
_ACQUIRE_EXTRA = frozenset({"down_read", "down_write", "down_read_trylock", "down_write_trylock", "lock_acquire"})
_RELEASE_EXTRA = frozenset({"up_read", "up_write", "lock_release"})


def is_release(op: str) -> bool:
    """``mutex_unlock``, ``spin_unlock``, ``up_read``... (R1)."""
    return op.endswith("_unlock") or "_unlock_" in op or op in _RELEASE_EXTRA


def is_acquire(op: str) -> bool:
    """``mutex_lock``, ``spin_trylock``, ``ww_mutex_lock_interruptible``, ``down_write``... (R1)."""
    if is_release(op):
        return False
    return (
        op.endswith(("_lock", "_trylock"))
        or "_lock_" in op
        or op in _ACQUIRE_EXTRA
    ) and not op.startswith(("ww_acquire", "wait", "wake"))


def is_trylock(op: str) -> bool:
    return "trylock" in op


def is_dma(op: str) -> bool:
    """A device access (``dma``, the device room's DMA burst; ``dma_read``/``dma_write``): instant events."""
    return op == "dma" or op.startswith(("dma_read", "dma_write", "dma_access"))


class Attempt(NamedTuple):
    """What became of one lock attempt (R3): positions are :class:`LockMark` ``pos`` values."""

    #: Where it started waiting (the next event's index), or None: it did not wait.
    contended: LockMark | None
    #: Where it got the lock after waiting, or None (not contended, or never got it).
    acquired: LockMark | None
    #: Where it gave up, or None.
    failed: LockMark | None


def attempts(events: Sequence[Event], marks: Sequence[LockMark] | None) -> dict[int, Attempt]:
    """The lock_stat hooks of each attempt, by the attempt's event index (R3)."""
    if not marks:
        return {}
    by: dict[int, list[LockMark | None]] = {}
    latest: dict[tuple[int, int], int] = {}
    mi = 0
    n = len(marks)
    for i, ev in enumerate(events):
        while mi < n and marks[mi].pos <= i:
            _attach(marks[mi], latest, by)
            mi += 1
        if is_acquire(ev.op):
            latest[(ev.tid, ev.obj)] = i
    while mi < n:
        _attach(marks[mi], latest, by)
        mi += 1
    return {i: Attempt(v[0], v[1], v[2]) for i, v in by.items()}


_SLOT = {"lock_contended": 0, "lock_acquired": 1, "lock_failed": 2}


def _attach(m: LockMark, latest: dict[tuple[int, int], int], by: dict[int, list[LockMark | None]]) -> None:
    i = latest.get((m.tid, m.obj))
    if i is not None and m.what in _SLOT:
        by.setdefault(i, [None, None, None])[_SLOT[m.what]] = m


def pair_locks(events: Sequence[Event], marks: Sequence[LockMark] | None = None) -> list[tuple[int, int | None]]:
    """Pair every acquisition with its release: ``(acquire index, release index or None)``.

    Per thread and object, a release closes the latest open acquisition of
    that object (R1). An unpaired trylock is a trylock that failed and is
    dropped; an attempt its lock_stat hooks say failed is dropped too (R3);
    an unpaired lock is one still held (or still waited for) when the trace
    ended (a leak or a deadlock). Indices are positions in ``events``; the
    result is in acquisition order.
    """
    failed = {i for i, a in attempts(events, marks).items() if a.failed is not None}
    open_: dict[tuple[int, int], list[int]] = {}
    pairs: dict[int, int | None] = {}
    for i, ev in enumerate(events):
        op = ev.op
        if is_acquire(op):
            if i in failed:
                continue
            open_.setdefault((ev.tid, ev.obj), []).append(i)
            pairs[i] = None
        elif is_release(op):
            stack = open_.get((ev.tid, ev.obj))
            if stack:
                pairs[stack.pop()] = i
    return [(i, r) for i, r in sorted(pairs.items()) if r is not None or not is_trylock(events[i].op)]


def lock_name(ev: Event) -> str:
    """The lock class an event names (its detail), else the object id."""
    return ev.detail or f"#{ev.obj}"
