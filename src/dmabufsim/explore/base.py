"""The explorer's side of the scheduler interface: strategies that span executions.

The runtime's :class:`~dmabufsim.kernel.strategy.Strategy` answers one
execution's questions. An *exploration* strategy also knows where it is in
the whole search: which execution comes next (:attr:`index`), what it
learnt from the one that just ended (:meth:`ExploreStrategy.end_execution`),
and whether it has covered its space (:attr:`complete`, :meth:`bound`).

Contract for implementers (in addition to the runtime's): the choices made
in execution ``i`` depend only on the strategy's constructor arguments, on
``i`` and, for the systematic strategies, on the executions before ``i`` --
never on wall time, process, or other jobs. That is what makes ``--jobs N``
find the same findings as ``--jobs 1`` and lets a checkpoint resume a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..kernel.strategy import Strategy

if TYPE_CHECKING:
    from ..kernel.execution import Execution
    from ..kernel.runtime import Kernel
    from ..kernel.thread import KThread

_MASK = (1 << 64) - 1


def mix_seed(seed: int, index: int) -> int:
    """A 64-bit seed for execution ``index`` of a run seeded ``seed`` (splitmix64).

    Each execution of a randomised strategy gets its own independent stream,
    so executions can be split among processes and still be the same ones.
    """
    z = (seed * 0x9E3779B97F4A7C15 + index + 1) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class ExploreStrategy(Strategy):
    """A strategy driven by the explorer across many executions.

    The explorer sets :attr:`index` before each execution, calls
    :meth:`attach` with the fresh Kernel (before it runs) and
    :meth:`end_execution` with the result. :attr:`complete` becomes True
    when a systematic strategy has nothing left to explore;
    :meth:`bound` says within which bound ("preemption bound 2") and
    :attr:`cut` whether that bound pruned anything.
    """

    #: True for strategies that can exhaust a space (DFS, DPOR).
    systematic = False
    #: True when each execution is a distinct Mazurkiewicz trace (optimal DPOR): the
    #: count of an exhausted search is then the number of traces.
    one_per_trace = False

    def __init__(self) -> None:
        #: The index of the execution about to run (set by the explorer).
        self.index = 0
        #: Set when nothing is left to explore (systematic strategies only).
        self.complete = False
        #: True when a bound (preemptions, value cap) pruned some alternative.
        self.cut = False
        #: Set when a replayed prefix met other choices (uncontrolled nondeterminism).
        self.error = ""
        #: Run each execution with Lipton reduction (``Config.reduction``, ``kernel/reduction.py``):
        #: on for the systematic strategies, off with ``explore --no-reduction``.
        self.reduction = self.systematic

    def attach(self, kernel: Kernel) -> None:
        """Called with each execution's Kernel before it runs (subscribe to its trace here)."""

    def end_execution(self, ex: Execution) -> None:
        """Called with each execution's result."""

    def identity(self) -> str:
        """The strategy and all its parameters, as a checkpoint records them (explorer R9).

        :meth:`describe` says what the strategy does now; for most strategies
        that is their parameters, but a strategy whose description changes
        as it runs (a deepening search names its current bound) overrides this.
        """
        return self.describe()

    def bound(self) -> str:
        """The bound within which an exhaustive search is exhaustive ("" = none)."""
        return ""

    def bound_reached(self) -> int:
        """The highest preemption bound within which the search is exhausted (-1: none).

        Set by a bounded search that completed, and by a deepening one
        (ICB, ``dpor``) for every bound it finished, even when a budget
        stops it during the next.
        """
        return -1

    def proved(self) -> bool:
        """Exhausted with nothing cut and nothing dropped: every schedule of the configuration ran
        (up to the equivalence the strategy reduces by)."""
        return self.systematic and self.complete and not self.cut and not self.dropped()

    def dropped(self) -> int:
        """Alternatives the search had to give up (optimal DPOR's dropped wakeup sequences)."""
        return 0

    def split(self, job: int, jobs: int) -> None:
        """Restrict this strategy to its share ``job`` of ``jobs`` (deterministic split)."""
        raise NotImplementedError(f"{self.name} cannot be split among processes")

    def state(self) -> dict[str, Any]:
        """A picklable snapshot for checkpoints (the default: the whole object dict)."""
        return dict(self.__dict__)

    def restore(self, state: dict[str, Any]) -> None:
        """Restore a snapshot made by :meth:`state`."""
        self.__dict__.update(state)


def default_choice(runnable: Sequence[KThread], current: KThread | None) -> KThread:
    """The non-preemptive choice: keep the current thread, else the lowest tid."""
    return current if current is not None else runnable[0]
