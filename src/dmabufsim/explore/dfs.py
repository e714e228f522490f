"""Systematic depth-first search, optionally preemption-bounded (CHESS).

Every execution replays the choices of a stack of decision nodes and
extends it with non-preemptive defaults; after the execution the deepest
node with an untried alternative moves to it. The search is *exhaustive*:
when the stack empties, every schedule (within the bound) has run.

Iterative context bounding (Musuvathi and Qadeer, "Iterative Context
Bounding for Systematic Testing of Multithreaded Programs", PLDI 2007, the
CHESS checker) runs the search with preemption bound 0, 1, 2, ...: most
bugs need few preemptions, and a search that finishes bound ``b`` with no
alternative cut by the bound has explored the *whole* space.

Rules:

* R1: a choice that takes the CPU from a thread that could continue is a
  preemption; alternatives beyond the bound are not explored and mark the
  search as *cut* (exhausted within the bound, not in general).
* R2: values asked with ``Kernel.random(bound)`` are choices too, each value
  tried, up to :data:`VALUE_CAP` (more marks the search as cut).
* R3: a replayed prefix must meet the same runnable threads; a scenario
  that does not (uncontrolled nondeterminism) is refused with the step.
* R4: a parallel job ``j`` of ``N`` owns the alternatives ``j``, ``j + N``,
  ... of the first decision that has more than one (the split node; the
  decisions before it have one alternative each, so a root with a single
  alternative still keeps every job busy): the split is a partition of the
  tree. A tree without any such decision is one execution, job 0's.
  (``--jobs`` runs ``dfs`` by R5 instead; ICB keeps this split.)
* R5 (hand-off, dynamic splitting): a search can give away, between two
  executions, the untried alternatives of the shallowest decision of its
  stack that still has some (:meth:`DFS.handoff`): the piece replays the
  same prefix, fixed, and explores exactly those alternatives; the search
  keeps the alternative it is exploring there. Each node owns the
  alternatives ``idx .. end - 1``, so the two are a partition of what was
  left, each a contiguous interval of the sequential search order, and an
  execution's place in that order is the lexicographic order of its path
  (:meth:`DFS.path`, the alternative's position at each decision), whoever
  ran it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import ExploreStrategy

if TYPE_CHECKING:
    from ..kernel.execution import Execution
    from ..kernel.thread import KThread

#: Values tried per ``Kernel.random`` choice (fault injection points are small).
VALUE_CAP = 16


class _Node:
    """One decision: the alternatives in try order and the one being explored."""

    __slots__ = ("costs", "end", "idx", "offered", "options", "pre", "thread")

    def __init__(self, thread: bool, options: list[int], costs: list[int], pre: int, idx: int) -> None:
        self.thread = thread
        #: Every alternative the runtime offered (before the bound pruned some).
        self.offered = list(options)
        self.options = options
        #: Preemptions each option costs (0 or 1).
        self.costs = costs
        #: Preemptions taken before this node.
        self.pre = pre
        self.idx = idx
        #: One past the last alternative this search owns here (R5: a hand-off lowers it).
        self.end = len(options)

    def __getstate__(self) -> tuple[None, dict[str, object]]:
        return None, {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        slots = dict(state[1])
        slots.setdefault("end", len(slots["options"]))  # type: ignore[arg-type]  # a checkpoint made before R5
        for k, v in slots.items():
            setattr(self, k, v)

    def copy(self) -> _Node:
        n = _Node(self.thread, list(self.options), list(self.costs), self.pre, self.idx)
        n.offered = list(self.offered)
        n.end = self.end
        return n


class StackSearch(ExploreStrategy):
    """What the stateless systematic searches (DFS, DPOR) share: a position in
    a stack of decisions replayed each execution, the preemptions taken so
    far against an optional preemption bound, and a share of the root
    alternatives when split among jobs."""

    systematic = True

    def __init__(self, preemption_bound: int | None = None) -> None:
        super().__init__()
        if preemption_bound is not None and preemption_bound < 0:
            raise ValueError(f"preemption bound must be >= 0, got {preemption_bound}")
        self.preemption_bound = preemption_bound
        self._pos = 0
        self._pre = 0
        self._job = 0
        self._jobs = 1
        #: The position of the split node (R4), once met; -1 before.
        self._split_pos = -1
        #: True when this execution is outside this job's share of the split node.
        self.discard = False
        #: True when a value choice was capped at :data:`VALUE_CAP` (R2): no bound is then exhausted.
        self.value_cut = False

    def split(self, job: int, jobs: int) -> None:
        self._job, self._jobs = job, jobs

    def restore(self, state: dict[str, object]) -> None:
        st = dict(state)
        jobs = st.get("_jobs", 1)
        if "_split_pos" not in st and isinstance(jobs, int) and jobs > 1:
            st["_split_pos"] = 0  # a checkpoint of the root split (R4 before the split node)
        super().restore(st)

    def splits_here(self, pos: int, alternatives: int) -> bool:
        """R4: is the decision being made at ``pos`` with ``alternatives`` alternatives the split node?"""
        if self._jobs > 1 and self._split_pos < 0 and alternatives > 1:
            self._split_pos = pos
            return True
        return False

    def bound(self) -> str:
        if self.preemption_bound is None:
            return "unbounded" if not self.cut else f"value cap {VALUE_CAP}"
        return f"preemption bound {self.preemption_bound}"

    def describe(self) -> str:
        b = "" if self.preemption_bound is None else f"preemption_bound={self.preemption_bound}"
        return f"{self.name}({b})"

    def bound_reached(self) -> int:
        done = self.complete and not self.value_cut
        return self.preemption_bound if done and self.preemption_bound is not None else -1

    def new_execution(self) -> bool:
        """Back to the root for the next execution; False once the search is complete."""
        if self.complete:
            return False
        self._pos = 0
        self._pre = 0
        self.discard = False
        return True


class DFS(StackSearch):
    """Depth-first search of every schedule, with an optional preemption bound (R1)."""

    name = "dfs"

    def __init__(self, preemption_bound: int | None = None) -> None:
        super().__init__(preemption_bound)
        self._stack: list[_Node] = []
        #: The path of each execution run since :meth:`keep_paths` (R5), in order; None: not kept.
        self.paths: list[tuple[int, ...]] | None = None

    def keep_paths(self) -> None:
        """Record each execution's :meth:`path` in :attr:`paths` from now on (R5)."""
        self.paths = []

    def path(self) -> tuple[int, ...]:
        """R5: the position of the next execution in the sequential search order, as the alternative
        taken at each decision met so far (the decisions after these take their first alternative)."""
        return tuple(n.idx for n in self._stack)

    def handoff(self) -> DFS | None:
        """R5: give away the untried alternatives of the shallowest decision that has some.

        Called between two executions. Returns a search of exactly those
        alternatives (its prefix fixed), after which this search no longer
        owns them; None when no decision of the stack has an untried
        alternative (what is left is the unexplored subtree under the next
        execution's path, or nothing).
        """
        if self.complete or self._jobs > 1:
            return None
        stack = self._stack
        for d, node in enumerate(stack):
            # the deepest node's idx is the next execution's, untried; above it, idx is in progress
            if node.idx + 1 < node.end:
                piece = DFS(self.preemption_bound)
                prefix = [n.copy() for n in stack[:d + 1]]
                for n in prefix[:d]:
                    n.end = n.idx + 1  # fixed: the piece never backtracks above its decision
                prefix[d].idx = node.idx + 1
                piece._stack = prefix
                node.end = node.idx + 1
                return piece
        return None

    def _node(self, thread: bool, options: list[int], costs: list[int]) -> _Node:
        pos = self._pos
        if pos < len(self._stack):
            node = self._stack[pos]
            if node.offered != options and not self.error:
                self.error = (
                    f"{self.name}: the scenario is not deterministic: decision {pos} offered "
                    f"{options}, an earlier execution offered {node.offered} (rule R3)"
                )
        else:
            offered = list(options)
            bound = self.preemption_bound
            if bound is not None:
                keep = [i for i, c in enumerate(costs) if self._pre + c <= bound]
                if len(keep) < len(options):
                    self.cut = True
                options = [options[i] for i in keep]
                costs = [costs[i] for i in keep]
            idx = 0
            if self.splits_here(pos, len(options)):
                idx = self._job
                if idx >= len(options):
                    idx = 0
                    self.discard = True
            node = _Node(thread, options, costs, self._pre, idx)
            node.offered = offered
            self._stack.append(node)
        self._pos = pos + 1
        self._pre += node.costs[node.idx]
        return node

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        first = current if current is not None else runnable[0]
        options = [first.tid] + [t.tid for t in runnable if t is not first]
        costs = [0] + [1 if current is not None else 0] * (len(options) - 1)
        node = self._node(True, options, costs)
        tid = node.options[node.idx]
        for t in runnable:
            if t.tid == tid:
                return t
        return first  # nondeterministic scenario: recorded in self.error, the explorer stops

    def next_u64(self, bound: int) -> int:
        n = bound if bound <= VALUE_CAP else VALUE_CAP
        if bound > VALUE_CAP:
            self.cut = self.value_cut = True
        node = self._node(False, list(range(max(n, 1))), [0] * max(n, 1))
        return node.options[node.idx]

    def end_execution(self, ex: Execution) -> None:
        stack = self._stack
        del stack[self._pos :]
        if self._split_pos < 0 and self._job > 0:
            self.discard = True  # no decision with a choice: the single execution is job 0's (R4)
        if self.discard:
            self.complete = True
            return
        if self.paths is not None:
            self.paths.append(tuple(n.idx for n in stack))
        while stack:
            node = stack[-1]
            inc = self._jobs if len(stack) - 1 == self._split_pos else 1
            if node.idx + inc < node.end:
                node.idx += inc
                return
            stack.pop()
        self.complete = True


class ICB(ExploreStrategy):
    """Iterative context bounding: DFS with preemption bound 0, 1, ... ``max_bound``.

    A bound whose search cut nothing has explored every schedule: the run is
    then exhausted without bound (CHESS). Executions of bound ``b`` repeat
    those of smaller bounds (the cost of a stateless search; counted).
    """

    name = "icb"
    systematic = True

    def __init__(self, max_bound: int = 3) -> None:
        super().__init__()
        if max_bound < 0:
            raise ValueError(f"ICB's largest preemption bound must be >= 0, got {max_bound}")
        self.max_bound = max_bound
        self.current_bound = 0
        self._dfs = DFS(0)
        self._value_cut = False
        self._job, self._jobs = 0, 1

    @property
    def discard(self) -> bool:
        return self._dfs.discard

    def split(self, job: int, jobs: int) -> None:
        self._job, self._jobs = job, jobs
        self._dfs.split(job, jobs)

    def bound(self) -> str:
        if self.complete and not self.cut:
            return "unbounded (no preemption was cut)"
        return f"preemption bound {self.current_bound}"

    def new_execution(self) -> bool:
        if self._dfs.complete:
            if not self._dfs.cut or self.current_bound >= self.max_bound:
                self.complete = True
                self.cut = self._dfs.cut
                return False
            self.current_bound += 1
            self._dfs = DFS(self.current_bound)
            self._dfs.split(self._job, self._jobs)
        self._dfs.index = self.index
        return self._dfs.new_execution()

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        t = self._dfs.next_thread(runnable, current)
        self.error = self._dfs.error
        return t

    def next_u64(self, bound: int) -> int:
        v = self._dfs.next_u64(bound)
        self.error = self._dfs.error
        return v

    def end_execution(self, ex: Execution) -> None:
        self._dfs.end_execution(ex)
        self.cut = self._dfs.cut
        self._value_cut = self._value_cut or self._dfs.value_cut
        if self._dfs.complete and (not self._dfs.cut or self.current_bound >= self.max_bound):
            self.complete = True

    def describe(self) -> str:
        return f"icb(bound={self.current_bound}/{self.max_bound})"

    def bound_reached(self) -> int:
        if self._value_cut or self._dfs.value_cut:
            return -1  # R2: values beyond the cap were never tried, whatever the bound
        return self.current_bound if self._dfs.complete else self.current_bound - 1
