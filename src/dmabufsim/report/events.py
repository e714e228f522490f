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
"""

from __future__ import annotations

from collections.abc import Sequence

from ..kernel.trace import Event

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


def pair_locks(events: Sequence[Event]) -> list[tuple[int, int | None]]:
    """Pair every acquisition with its release: ``(acquire index, release index or None)``.

    Per thread and object, a release closes the latest open acquisition of
    that object (R1). An unpaired trylock is a trylock that failed and is
    dropped; an unpaired lock is one still held when the trace ended (a
    leak or a deadlock). Indices are positions in ``events``; the result is
    in acquisition order.
    """
    open_: dict[tuple[int, int], list[int]] = {}
    pairs: dict[int, int | None] = {}
    for i, ev in enumerate(events):
        op = ev.op
        if is_acquire(op):
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
