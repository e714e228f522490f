"""Random walk: every scheduling point picks a runnable thread uniformly.

The baseline of every model checker (shuttle's ``RandomScheduler``, loom's
absence thereof). It needs no knowledge of the scenario, finds shallow bugs
with many threads fast (the dining philosophers deadlock in a handful of
executions) and never exhausts anything: a random run with no finding is
always *inconclusive*.

Rules:

* R1: execution ``i`` of a run seeded ``s`` uses its own stream
  ``mix_seed(s, i)``: the same executions in any process and any split.
"""

from __future__ import annotations

import _random
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import ExploreStrategy, mix_seed

#: ``random.Random.seed``'s C part: for an int it is the whole of it (the same stream).
_seed = _random.Random.seed

if TYPE_CHECKING:
    from ..kernel.thread import KThread


class RandomWalk(ExploreStrategy):
    """Seeded random walk, one independent stream per execution (R1)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self._rng = random.Random(mix_seed(seed, 0))
        self._seeded = 0
        if type(self).next_thread is RandomWalk.next_thread:
            #: next_thread's draw (Strategy.uniform): the runtime draws inline (reseeding keeps it bound)
            self.uniform = self._rng.random

    def new_execution(self) -> bool:
        # idempotent: the explorer asks, then Kernel.run asks again for the same index
        if self._seeded != self.index:
            _seed(self._rng, mix_seed(self.seed, self.index))  # random.Random.seed of an int, as is
        self._seeded = self.index
        return True

    def end_execution(self, ex: object) -> None:
        self._seeded = -1  # the next execution reseeds even if its index is the same

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        return runnable[int(self._rng.random() * len(runnable))]

    def next_u64(self, bound: int) -> int:
        return self._rng.randrange(bound) if bound > 0 else 0

    def describe(self) -> str:
        return f"random(seed={self.seed})"
