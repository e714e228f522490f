"""PCT: probabilistic concurrency testing with bug depth ``d``.

Burckhardt, Kothari, Musuvathi, Nagarakatte, "A Randomized Scheduler with
Probabilistic Guarantees of Finding Bugs", ASPLOS 2010 (and shuttle's
``scheduler/pct.rs``). Each thread gets a random priority above ``d``; the
highest-priority runnable thread always runs; at ``d - 1`` change points
chosen uniformly among the ``k`` steps of an execution, the running thread's
priority drops below every initial one (to ``d - i`` at the ``i``-th). A bug
of depth ``d`` (``d`` ordering constraints) is found with probability at
least ``1 / (n * k^(d-1))`` per execution, far above a random walk's.

Rules:

* R1: execution ``i`` uses the stream ``mix_seed(seed, i)`` (as random walk).
* R2: ``k`` (steps per execution) is given, or learnt once from a
  calibration execution run by the explorer before the first PCT execution
  (a non-preemptive run: its number of scheduling choices, doubled), so
  every job of a parallel run uses the same ``k``.
* R3: a thread first seen gets a fresh random priority (threads spawned
  mid-execution join at a random rank, as in shuttle).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import ExploreStrategy, mix_seed

if TYPE_CHECKING:
    from ..kernel.thread import KThread


class PCT(ExploreStrategy):
    """Probabilistic concurrency testing, depth ``depth``, ``steps`` choices per execution."""

    name = "pct"

    def __init__(self, seed: int = 0, depth: int = 3, steps: int | None = None) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"PCT depth must be >= 1, got {depth}")
        self.seed = seed
        self.depth = depth
        #: Estimated scheduling choices per execution (``k`` of the paper).
        self.steps = steps
        self._rng = random.Random(0)
        self._prio: dict[int, float] = {}
        self._changes: list[int] = []
        self._step = 0
        self._last: int = -1

    @property
    def wants_calibration(self) -> bool:
        """True until ``k`` is known (R2)."""
        return self.steps is None

    def calibrate(self, choices: int) -> None:
        """Learn ``k`` from a non-preemptive execution's number of choices (R2)."""
        self.steps = max(2, 2 * choices)

    def new_execution(self) -> bool:
        rng = self._rng = random.Random(mix_seed(self.seed, self.index))
        self._prio = {}
        k = self.steps or 2
        n = min(self.depth - 1, k)
        self._changes = sorted(rng.sample(range(1, k + 1), n)) if n > 0 else []
        self._step = 0
        self._last = -1
        return True

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        prio = self._prio
        rng = self._rng
        for t in runnable:
            if t.tid not in prio:
                prio[t.tid] = self.depth + rng.random()  # R3
        self._step += 1
        changes = self._changes
        while changes and changes[0] <= self._step:
            # the i-th change point lowers the running thread below every initial priority
            i = self.depth - len(changes)
            changes.pop(0)
            victim = current.tid if current is not None else self._last
            if victim in prio:
                prio[victim] = float(self.depth - i)
        best = runnable[0]
        bp = prio[best.tid]
        for t in runnable:
            p = prio[t.tid]
            if p > bp:
                best, bp = t, p
        self._last = best.tid
        return best

    def next_u64(self, bound: int) -> int:
        return self._rng.randrange(bound) if bound > 0 else 0

    def describe(self) -> str:
        return f"pct(seed={self.seed}, depth={self.depth}, k={self.steps})"
