"""What an exploration exercised: lock orders, lock contexts, preemptions in critical sections.

A search that found nothing is only as good as what it reached. The
explorer folds every execution into one :class:`Coverage`:

* lock-order edges exercised: ``A -> B`` when a thread acquired (or started
  to acquire: lockdep pushes before a lock sleeps) class ``B`` while holding
  ``A`` (seen at each push onto the held-lock stack the runtime keeps, which
  lockdep extends: ``Kernel.lock_observer``);
* lock class x context: each class with the context it was taken in
  (``process``, ``irq`` for interrupt handlers, ``softirq`` for softirq
  handlers, ``reclaim`` inside direct reclaim / shrinkers);
* preemptions taken inside critical sections: a scheduling choice that took
  the CPU from a thread holding a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..kernel.strategy import ReplayStrategy, Strategy

if TYPE_CHECKING:
    from ..kernel.runtime import Kernel
    from ..kernel.thread import KThread


def _context(t: KThread) -> str:
    if t.in_irq:
        return "irq"
    if t.in_softirq:
        return "softirq"
    if t.in_reclaim:
        return "reclaim"
    return "process"


@dataclass
class Coverage:
    """Lock-order edges, class x context pairs and critical-section preemptions seen."""

    edges: set[tuple[str, str]] = field(default_factory=set)
    contexts: set[tuple[str, str]] = field(default_factory=set)
    preemptions_in_critical: int = 0
    preemptions: int = 0

    def merge(self, other: Coverage) -> None:
        self.edges |= other.edges
        self.contexts |= other.contexts
        self.preemptions_in_critical += other.preemptions_in_critical
        self.preemptions += other.preemptions

    def attach(self, k: Kernel) -> None:
        """Watch ``k``'s lock acquisitions (``Kernel.lock_observer``).

        Acquisitions are seen as pushes onto the thread's held-lock stack (not
        operation names), so pseudo-locks (``fs_reclaim``, ``dma_fence_map``),
        rwsems and ww_mutexes count as well (lockdep pushes before a lock
        sleeps: an acquisition that waits counts too), each with the context
        the thread is in at that moment. No trace listener: the execution runs
        as it would unobserved.
        """
        edges, contexts = self.edges, self.contexts

        def on_acquire(t: KThread, held: list[Any]) -> None:
            name = held[-1].map.name
            contexts.add((name, _context(t)))
            for hl in held[:-1]:
                below = hl.map.name
                if below != name:
                    edges.add((below, name))

        k.lock_observer = k.lockdep.observer = on_acquire

    def to_json(self) -> dict[str, Any]:
        return {
            "lock_order_edges": sorted([a, b] for a, b in self.edges),
            "lock_contexts": sorted([c, x] for c, x in self.contexts),
            "preemptions": self.preemptions,
            "preemptions_in_critical_sections": self.preemptions_in_critical,
        }

    def summary(self) -> str:
        return (
            f"coverage: {len(self.edges)} lock-order edge(s), {len(self.contexts)} lock class x context pair(s), "
            f"{self.preemptions_in_critical} of {self.preemptions} preemption(s) inside critical sections"
        )


class Recorder(Strategy):
    """Wraps the strategy of one execution: counts preemptions, remembers the default choices.

    ``defaults[i]`` is what the non-preemptive schedule would have chosen at
    choice ``i`` (the current thread, else the lowest tid; value 0): the
    shrinker replaces choices by these and trims a token's default tail.
    """

    __slots__ = ("coverage", "defaults", "inner", "observe_forced")

    def __init__(self, inner: Strategy, coverage: Coverage | None) -> None:
        self.inner = inner
        self.coverage = coverage
        self.defaults: list[int] = []
        self.name = inner.name
        #: The inner strategy's forced-step observer, if any (see ``Kernel._only``).
        self.observe_forced = getattr(inner, "observe_forced", None)

    def new_execution(self) -> bool:
        self.defaults = []
        return self.inner.new_execution()

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        t = self.inner.next_thread(runnable, current)
        if current is not None:
            self.defaults.append(current.tid)
            if t is not current and self.coverage is not None:
                self.coverage.preemptions += 1
                if current.held:
                    self.coverage.preemptions_in_critical += 1
        else:
            self.defaults.append(runnable[0].tid)
        return t

    def next_u64(self, bound: int) -> int:
        self.defaults.append(0)
        return self.inner.next_u64(bound)

    def describe(self) -> str:
        return self.inner.describe()

    @property
    def diverged_at(self) -> int | None:
        inner = self.inner
        return inner.diverged_at if isinstance(inner, ReplayStrategy) else None
