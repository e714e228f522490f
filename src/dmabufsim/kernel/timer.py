"""Virtual-time timers (``struct hrtimer``): what the runtime's clock jumps to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Timer:
    """A virtual-time timer (``struct hrtimer`` with a callback).

    Timers fire in the order of ``(when, owner, nth)`` (runtime R14): the
    expiry, then the thread that armed the timer (-1: a timer callback or no
    thread) and how many timers that thread had armed before -- an order
    that depends on each thread's own program only, not on how the threads'
    steps interleaved. ``seq`` counts every arming of the execution (the
    trace names a firing by it).
    """

    __slots__ = ("args", "cancelled", "fn", "key", "name", "seq", "when")

    def __init__(self, when: int, seq: int, fn: Callable[..., Any], args: tuple[Any, ...], name: str,
                 owner: int = -1, nth: int | None = None) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.name = name
        #: The firing order among timers (runtime R14).
        self.key = (when, owner, seq if nth is None else nth)

    def __lt__(self, other: Timer) -> bool:
        return self.key < other.key

    def cancel(self) -> bool:
        """``hrtimer_cancel``: True if the timer was still pending."""
        was = not self.cancelled
        self.cancelled = True
        return was
