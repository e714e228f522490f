"""Virtual-time timers (``struct hrtimer``): what the runtime's clock jumps to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Timer:
    """A virtual-time timer (``struct hrtimer`` with a callback)."""

    __slots__ = ("args", "cancelled", "fn", "name", "seq", "when")

    def __init__(self, when: int, seq: int, fn: Callable[..., Any], args: tuple[Any, ...], name: str) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.name = name

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self) -> bool:
        """``hrtimer_cancel``: True if the timer was still pending."""
        was = not self.cancelled
        self.cancelled = True
        return was
