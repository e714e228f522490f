"""The scheduler interface: who runs next at a scheduling point.

A strategy answers three questions (shuttle's ``Scheduler``):

* :meth:`Strategy.new_execution` -- prepare the next execution; ``False``
  when the strategy has nothing left to explore (an exhaustive search is
  done);
* :meth:`Strategy.next_thread` -- at a scheduling point with several
  runnable threads, which one runs next;
* :meth:`Strategy.next_u64` -- a random value the model asked for (fault
  injection, ``Kernel.random``).

A strategy whose choice is a uniform draw may say so with ``uniform``: a
zero-argument callable returning a float in ``[0, 1)`` such that its
``next_thread(runnable, current)`` is exactly
``runnable[int(uniform() * len(runnable))]`` whatever ``current`` is. The
runtime then draws at its scheduling points itself (the same stream, the
same choices) instead of calling ``next_thread``.

A strategy may also define ``observe_forced(t)``: the runtime then calls it
whenever it resumes or starts the only runnable thread outside a scheduling
point (no choice is made or recorded), so that a strategy reasoning about
every step (optimal DPOR) sees those too.

Contract for implementers: a strategy must be deterministic given its own
state (seeded randomness only); it must return one of the ``runnable``
threads; it must not call into the Kernel or the model (it only reads the
threads' ``tid`` and ``pending`` operation). The runtime records every answer
into the replay token, so a strategy never needs to replay itself.

This module holds the two strategies the runtime needs: seeded random walk
and replay. The explorer adds PCT, bounded DFS and DPOR (``explore/``).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .thread import KThread

_U64 = (1 << 64) - 1


class Strategy(ABC):
    """Decides the schedule of an execution. See the module docstring for the contract."""

    #: Short name used in reports ("random", "pct", "dpor", ...).
    name: str = "strategy"
    #: The draw of a strategy that picks uniformly (see the module docstring), else None.
    uniform: Callable[[], float] | None = None

    def new_execution(self) -> bool:
        """Prepare for a new execution. Return False when nothing is left to explore."""
        return True

    @abstractmethod
    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        """Choose the thread to run among ``runnable`` (sorted by tid, at least two).

        ``current`` is the thread that reached the scheduling point if it is
        still runnable (choosing another one is then a *preemption*), else None.
        """

    @abstractmethod
    def next_u64(self, bound: int) -> int:
        """A value in ``range(bound)`` (``bound`` <= 2**64)."""

    def describe(self) -> str:
        """One line for reports: the strategy and its parameters."""
        return self.name


class RandomStrategy(Strategy):
    """Seeded random walk: every scheduling point picks a runnable thread uniformly.

    Each execution of an exploration continues the same seeded stream, so
    ``RandomStrategy(seed)`` explores a reproducible sequence of schedules.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        # random.Random.randrange(n) inlined: its _randbelow draws getrandbits(n.bit_length())
        # until the draw is below n, so the stream (and every seed's schedule) is the same.
        n = len(runnable)
        k = n.bit_length()
        getrandbits = self._rng.getrandbits
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return runnable[r]

    def next_u64(self, bound: int) -> int:
        return self._rng.randrange(bound) if bound > 0 else 0

    def describe(self) -> str:
        return f"random(seed={self.seed})"


class ReplayStrategy(Strategy):
    """Replays a recorded choice sequence (from a replay token).

    When the recorded thread is not runnable at a step, the execution has
    *diverged* (uncontrolled nondeterminism in the scenario, or a token made
    for another scenario): the first such step is kept in :attr:`diverged_at`
    and the lowest runnable thread runs instead. When the recording runs out
    (a truncated, shrunk schedule), the remaining choices are the default
    non-preemptive ones: keep running the current thread, else the lowest tid.
    """

    name = "replay"

    def __init__(self, choices: Sequence[int]) -> None:
        self.choices = list(choices)
        self.pos = 0
        #: Index into the choice list of the first divergence, or None.
        self.diverged_at: int | None = None

    def _next(self) -> int | None:
        if self.pos < len(self.choices):
            v = self.choices[self.pos]
            self.pos += 1
            return v
        return None

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        pos = self.pos
        tid = self._next()
        if tid is None:
            return current if current is not None else runnable[0]
        for t in runnable:
            if t.tid == tid:
                return t
        if self.diverged_at is None:
            self.diverged_at = pos
        return current if current is not None else runnable[0]

    def next_u64(self, bound: int) -> int:
        pos = self.pos
        v = self._next()
        if v is None:
            return 0
        if bound > 0 and v >= bound:
            if self.diverged_at is None:
                self.diverged_at = pos
            return v % bound
        return v

    @property
    def exhausted(self) -> bool:
        """True when every recorded choice has been consumed."""
        return self.pos >= len(self.choices)


class FirstStrategy(Strategy):
    """Non-preemptive and deterministic: keep the current thread, else the lowest tid.

    The schedule a plain sequential test would see; useful as a baseline and
    for unit tests of single-threaded behaviour.
    """

    name = "first"

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        return current if current is not None else runnable[0]

    def next_u64(self, bound: int) -> int:
        return 0
