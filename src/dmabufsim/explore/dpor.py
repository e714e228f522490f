"""Dynamic partial-order reduction with sleep sets (and a preemption bound).

Flanagan and Godefroid, "Dynamic Partial-Order Reduction for Model Checking
Software", POPL 2005; sleep sets from Godefroid's thesis (LNCS 1032, 1996);
optimal DPOR (source sets, wakeup trees) is Abdulla, Aronis, Jonsson and
Sagonas, POPL 2014 (``odpor.py``) -- this module implements the classic
algorithm with sleep sets, which is sound but may run some redundant
executions (counted as ``sleep_blocked``), and which, unlike optimal DPOR,
combines with a preemption bound. Bounded POR: Coons, Musuvathi and
McKinley, "Bounded Partial-Order Reduction", OOPSLA 2013.

Two schedules that differ only in the order of *independent* steps reach the
same state; DPOR runs one of them. After each execution it looks for *races*
(two steps of different threads on the same object, at least one a write,
not ordered by happens-before: vector clocks over the trace) and schedules
the later thread before the earlier step in a later execution.

Rules:

* R1 (dependency): a step is the operation the chosen thread declared at its
  scheduling point (``t.pending``) plus every event up to the next decision.
  Two steps are dependent when they touch one object and one writes; lock
  acquire and release are writes of the lock object, so always dependent.
  A sleep on virtual time touches its thread's own timer (runtime R14), so
  two sleeps of different threads are independent (timers of equal expiry
  fire in an order that does not depend on the order they were armed in);
  with early timers on they touch the virtual clock (object -1) and are
  dependent on each other. A thread's start touches nothing.
  The chosen thread's point event repeats its declared operation and is
  not recorded twice (a spawn's is: it carries the child's happens-before).
* R2 (race): for each step and each other thread, the last earlier dependent
  step of that thread not happening-before it is a race; the later thread
  goes into the backtrack set of the earlier step's decision, or every
  enabled thread there if it was not enabled then.
* R3 (sleep sets): a thread whose subtree was explored at a decision sleeps
  in the siblings explored after it until a step dependent on its *whole*
  step there (its point and every event of it, R1, as first explored) wakes
  it -- not only on its point's declaration, which may touch less; an
  execution where every runnable thread sleeps is redundant (counted).
  Unbounded only: under a preemption bound the sibling explored first may
  have reached its equivalent execution only beyond the bound (a cut), so a
  sleeping thread would hide schedules bounded DFS runs; with a bound no
  thread sleeps (found by the bounded audit property; even sleeping only
  threads whose subtree saw no cut was not enough).
* R4 (bound): with a preemption bound, a race also adds its thread at the
  decision where the earlier thread's run began (the Coons et al. fix, so
  the reversal is reachable without a preemption); alternatives beyond the
  bound mark the search as cut. With R3 off, bounded DPOR reached every
  terminal state bounded DFS reaches, in no more executions, on every
  program the audit property tried (a conservative fix, tested, not proved).
* R5 (split): parallel job ``j`` of ``N`` owns the alternatives ``j``,
  ``j + N``, ... of the first decision with more than one enabled thread
  (the split node, DFS R4; the decisions before it have a single thread, so
  no race can add to them) and explores the split node fully (every enabled
  thread): its backtrack set is then trivially sound. Without a preemption
  bound each owned thread's subtree sleeps every thread before it in the
  split node's order (R3), whichever job owns it: the jobs together run a
  sequential search whose split node tried every thread in that order, not
  one subtree per job with nothing asleep.
* R6 (determinism): a replayed prefix must offer the same runnable threads;
  otherwise the scenario has uncontrolled nondeterminism (refused).
* R7 (deepening, ``DeepeningDPOR``: ``--strategy dpor``): bounded DPOR
  runs with preemption bound 0, then 1, then 2, ... (iterative context
  bounding, Musuvathi and Qadeer, PLDI 2007, over R4's bounded search): a
  bug that needs ``k`` preemptions is met before any execution of bound
  ``k + 1`` runs. Each bound is a complete bounded DPOR search without sleep
  sets (R3), so each finished bound is exhausted; a bound whose search cut
  no alternative (R4) has explored every schedule, and deepening ends there
  with the search exhausted *unbounded*. With a maximum bound ``m`` it ends
  after bound ``m`` at the latest; without one, bound :data:`DEEPEN_TO` is
  followed by one unbounded search with sleep sets (bounded levels grow
  much faster than it, having none). The highest finished bound is
  reported even when the budget ends the search during the next level.
  Executions of bound ``k + 1`` repeat some of bound ``k`` (a stateless
  search keeps no states to resume from): counted per level in
  ``levels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import ExploreStrategy
from .dfs import VALUE_CAP, StackSearch

if TYPE_CHECKING:
    from ..kernel.execution import Execution
    from ..kernel.runtime import Kernel
    from ..kernel.thread import KThread
    from ..kernel.trace import Event

#: The highest bound ``dpor`` deepens to before its unbounded search (R7).
DEEPEN_TO = 2


class _DNode:
    """A decision: enabled threads, their next steps, backtrack / done / sleep sets."""

    __slots__ = (
        "acc_start",
        "backtrack",
        "blocked",
        "chosen",
        "cur",
        "done",
        "enabled",
        "full",
        "pending",
        "pre",
        "run_start",
        "sleep",
        "steps",
        "thread",
    )

    def __init__(self, thread: bool, enabled: list[int], chosen: int) -> None:
        self.thread = thread
        self.enabled = enabled
        self.chosen = chosen
        self.pending: dict[int, tuple[int, bool]] = {}
        self.backtrack: list[int] = [chosen]
        self.done: set[int] = set()
        self.sleep: dict[int, tuple[tuple[int, bool], ...]] = {}
        #: The whole step each explored thread took here (its point and its events, R1, R3).
        self.steps: dict[int, tuple[tuple[int, bool], ...]] = {}
        self.cur = -1
        self.pre = 0
        self.acc_start = 0
        self.run_start = 0
        self.full = False
        self.blocked = False


def _access(op: str, obj: int, write: bool) -> tuple[int, bool] | None:
    if op == "start":
        return None
    return (obj, write)


class DPOR(StackSearch):
    """Classic DPOR with sleep sets, optionally preemption-bounded (see the Rules)."""

    name = "dpor"

    def __init__(self, preemption_bound: int | None = None) -> None:
        super().__init__(preemption_bound)
        self._stack: list[_DNode] = []
        self._last_t = -1
        #: Steps of the running execution: (tid, obj, write, decision index, spawned tid or -1).
        self._acc: list[tuple[int, int, bool, int, int]] = []
        self._blocked_now = False
        #: The step recorded at the last decision, until the first event after it: that
        #: event is the chosen thread's point itself when it matches (not recorded twice).
        self._last_access: tuple[int, int, bool, int, int] | None = None
        #: Executions in which every runnable thread slept (redundant, R3).
        self.sleep_blocked = 0
        #: True when the preemption bound refused an alternative (R4); ``cut`` also
        #: counts the value cap, which no deeper preemption bound lifts (R7).
        self.pre_cut = False
        #: The split node's threads in try order (R5).
        self._split_order: list[int] = []

    def state(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_acc"}

    def attach(self, kernel: Kernel) -> None:
        kernel.trace.subscribe(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if ev.tid >= 0:
            last = self._last_access
            if last is not None:
                self._last_access = None
                if last[0] == ev.tid and last[1] == ev.obj and last[2] == ev.write and ev.op != "spawn":
                    return  # R1: the chosen thread's own point, already recorded as its step
            self._acc.append((ev.tid, ev.obj, ev.write, self._pos - 1, ev.obj if ev.op == "spawn" else -1))

    def new_execution(self) -> bool:
        if not super().new_execution():
            return False
        self._last_t = -1
        self._acc = []
        self._last_access = None
        self._blocked_now = False
        return True

    # ------------------------------------------------------------------ choosing

    def _cost(self, node: _DNode, tid: int) -> int:
        return 1 if node.cur >= 0 and tid != node.cur else 0

    def _allowed(self, node: _DNode, tid: int) -> bool:
        b = self.preemption_bound
        return b is None or node.pre + self._cost(node, tid) <= b

    def _record_step(self) -> None:
        """R3: the step the last decision's thread took, whole (its point and every event of it up
        to now), kept at that decision for the sleep sets of the siblings explored after it."""
        if self._last_t < 0:
            return
        prev = self._stack[self._last_t]
        if prev.chosen not in prev.steps:
            me = prev.chosen
            prev.steps[me] = tuple({(o, w) for tid, o, w, _, _ in self._acc[prev.acc_start :] if tid == me})

    def _sleep_for_new(self, enabled: set[int]) -> dict[int, tuple[tuple[int, bool], ...]]:
        self._record_step()
        if self._last_t < 0 or self.preemption_bound is not None:
            return {}  # R3: no sleep sets under a preemption bound
        prev = self._stack[self._last_t]
        cand = dict(prev.sleep)
        for d in prev.done:
            if d != prev.chosen and d in prev.pending:
                # R3: a sleeping thread is woken by a step dependent on any access of its whole
                # step, not only on its point's declaration (an event of the step may touch more)
                cand[d] = prev.steps.get(d) or (prev.pending[d],)
        if not cand:
            return {}
        seg = self._acc[prev.acc_start :]
        out: dict[int, tuple[tuple[int, bool], ...]] = {}
        for z, accs in cand.items():
            if z not in enabled:
                continue
            awake = False
            for tid, o, ww, _, _ in seg:
                if tid == z or any(o == obj and (w or ww) for obj, w in accs):
                    awake = True
                    break
            if not awake:
                out[z] = accs
        return out

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        pos = self._pos
        stack = self._stack
        tids = [t.tid for t in runnable]
        if pos < len(stack):
            node = stack[pos]
            if (not node.thread or node.enabled != tids) and not self.error:
                self.error = (
                    f"dpor: the scenario is not deterministic: decision {pos} offered threads {tids}, "
                    f"an earlier execution offered {node.enabled} (rule R6)"
                )
            if not node.thread:
                return runnable[0]
        else:
            cur = current.tid if current is not None else -1
            enabled = set(tids)
            sleep = self._sleep_for_new(enabled)
            default = cur if cur >= 0 else tids[0]
            order = [default] + [t for t in tids if t != default]
            node = _DNode(True, tids, default)
            node.cur = cur
            node.pre = self._pre
            node.sleep = sleep
            for t in runnable:
                a = _access(*t.pending)
                if a is not None:
                    node.pending[t.tid] = a
            if self.splits_here(pos, len(order)):
                self._split_order = order
                share = order[self._job :: self._jobs]
                owned = [t for t in share if self._allowed(node, t)]
                if len(owned) < len(share):
                    self.cut = self.pre_cut = True  # R4: this job's share of the root lies beyond the bound
                node.full = True
                if owned:
                    node.chosen = owned[0]
                    node.backtrack = owned
                    self._sleep_before(node, owned[0])
                else:
                    self.discard = True
            else:
                choice = -1
                for x in order:
                    if x in sleep:
                        continue
                    if not self._allowed(node, x):
                        self.cut = self.pre_cut = True
                        continue
                    choice = x
                    break
                if choice < 0:
                    node.blocked = True
                    self._blocked_now = True
                else:
                    node.chosen = choice
                node.backtrack = [node.chosen]
            stack.append(node)
        prev_chosen = stack[self._last_t].chosen if self._last_t >= 0 else -1
        node.run_start = stack[self._last_t].run_start if prev_chosen == node.chosen else pos
        node.acc_start = len(self._acc)
        self._last_t = pos
        self._pos = pos + 1
        self._pre += self._cost(node, node.chosen)
        a = node.pending.get(node.chosen)
        if a is not None:
            rec = (node.chosen, a[0], a[1], pos, -1)
            self._acc.append(rec)
            self._last_access = rec
        else:
            self._last_access = None
        for t in runnable:
            if t.tid == node.chosen:
                return t
        return runnable[0]  # nondeterministic scenario: recorded in self.error

    def next_u64(self, bound: int) -> int:
        pos = self._pos
        stack = self._stack
        n = max(1, min(bound, VALUE_CAP))
        if bound > VALUE_CAP:
            self.cut = self.value_cut = True
        if pos < len(stack):
            node = stack[pos]
            if node.thread or len(node.enabled) != n:
                if not self.error:
                    self.error = f"dpor: the scenario is not deterministic at decision {pos} (rule R6)"
                self._pos = pos + 1
                return 0
        else:
            node = _DNode(False, list(range(n)), 0)
            node.backtrack = list(range(n))
            stack.append(node)
        self._pos = pos + 1
        return node.chosen

    def _sleep_before(self, node: _DNode, t: int) -> None:
        """R5: at the split node, the threads before ``t`` in its order count as explored (asleep in
        ``t``'s subtree, R3), the other jobs' as this job's own."""
        order = self._split_order
        node.done.update(order[: order.index(t)])

    # ------------------------------------------------------------------ analysis

    def _add(self, i: int, p: int) -> None:
        stack = self._stack
        while i >= 0 and not stack[i].thread:
            i -= 1
        if i < 0:
            return
        targets = [i]
        if self.preemption_bound is not None:
            targets.append(stack[i].run_start)  # R4
        for j in targets:
            node = stack[j]
            if node.full:
                continue
            bt = node.backtrack
            if p in node.enabled:
                if p not in bt:
                    bt.append(p)
            else:
                for q in node.enabled:
                    if q not in bt:
                        bt.append(q)

    def _races(self) -> None:
        clocks: dict[int, dict[int, int]] = {}
        spawned: dict[int, dict[int, int]] = {}
        wclock: dict[int, dict[int, int]] = {}
        rclock: dict[int, dict[int, int]] = {}
        #: per object: per thread, its last access (epoch, write, decision) -- last write and last read
        hist: dict[int, dict[int, list[tuple[int, bool, int]]]] = {}
        for p, o, w, n, child in self._acc:
            c = clocks.get(p)
            if c is None:
                c = clocks[p] = dict(spawned.pop(p, {}))
            h = hist.get(o)
            if h is None:
                h = hist[o] = {}
            for q, qrecs in h.items():
                if q == p:
                    continue
                seen_q = c.get(q, 0)
                for epoch, qw, qn in reversed(qrecs):
                    if (qw or w) and epoch > seen_q and qn >= 0:
                        self._add(qn, p)  # R2
                        break
            wc = wclock.get(o)
            if wc:
                for t, v in wc.items():
                    if c.get(t, 0) < v:
                        c[t] = v
            if w:
                rc = rclock.get(o)
                if rc:
                    for t, v in rc.items():
                        if c.get(t, 0) < v:
                            c[t] = v
            e = c.get(p, 0) + 1
            c[p] = e
            target = wclock if w else rclock
            tc = target.get(o)
            if tc is None:
                target[o] = dict(c)
            else:
                for t, v in c.items():
                    if tc.get(t, 0) < v:
                        tc[t] = v
            recs = h.get(p)
            if recs is None:
                h[p] = [(e, w, n)]
            else:
                # keep the last write and the last read of this thread
                recs[:] = [*[r for r in recs if r[1] != w][-1:], (e, w, n)]
            if child >= 0:
                spawned[child] = dict(c)  # the child starts after its spawn

    def end_execution(self, ex: Execution) -> None:
        stack = self._stack
        del stack[self._pos :]
        self._record_step()
        if self._blocked_now:
            self.sleep_blocked += 1
        if self._split_pos < 0 and self._job > 0:
            self.discard = True  # R5: no decision with a choice: the single execution is job 0's
        if self.discard:
            self.complete = True
            return
        self._races()
        while stack:
            node = stack[-1]
            node.done.add(node.chosen)
            if not node.thread:
                if node.chosen + 1 < len(node.enabled):
                    node.chosen += 1
                    return
                stack.pop()
                continue
            for t in node.backtrack:
                if t in node.done or t in node.sleep:
                    continue
                if not self._allowed(node, t):
                    self.cut = self.pre_cut = True
                    node.done.add(t)
                    continue
                node.chosen = t
                if len(stack) - 1 == self._split_pos:
                    self._sleep_before(node, t)
                return
            stack.pop()
        self.complete = True


class DeepeningDPOR(ExploreStrategy):
    """Bounded DPOR with preemption bound 0, 1, 2, ... (R7), then, without a maximum, unbounded DPOR.

    ``max_bound=k``: bounds 0 .. ``k``. ``max_bound=None``: bounds 0 ..
    :data:`DEEPEN_TO`, then one unbounded search with sleep sets (R3), the
    only one that can finish a large space: a bounded search keeps no sleep
    sets and grows fast with the bound (three threads serialised by a mutex:
    6, 72, 378, 1,170 executions at bounds 0-3, unbounded 126). A bound
    that cuts nothing ends the deepening: the space is exhausted.
    ``bound_reached()`` is the highest bound finished, also when the budget
    ends the search during the next level.
    """

    name = "dpor"
    systematic = True

    def __init__(self, max_bound: int | None = None) -> None:
        super().__init__()
        if max_bound is not None and max_bound < 0:
            raise ValueError(f"a preemption bound is at least 0, got {max_bound}")
        self.max_bound = max_bound
        #: The bound of the running level (None: the final unbounded search).
        self.current_bound: int | None = 0
        #: Executions run at each level so far (index: the bound; the unbounded search last).
        self.levels: list[int] = [0]
        self._finished = -1
        self._value_cut = False
        self._job, self._jobs = 0, 1
        self._inner = DPOR(0)

    @property
    def discard(self) -> bool:
        return self._inner.discard

    @property
    def sleep_blocked(self) -> int:
        return self._inner.sleep_blocked  # R3: only the unbounded level has sleep sets

    def split(self, job: int, jobs: int) -> None:
        self._job, self._jobs = job, jobs
        self._inner.split(job, jobs)

    def bound_reached(self) -> int:
        return self._finished

    def bound(self) -> str:
        if self.complete and not self._inner.pre_cut:
            return f"value cap {VALUE_CAP}" if self.cut else "unbounded"
        if self._finished < 0:
            return "no preemption bound finished"
        return f"preemption bound {self._finished}"

    def describe(self) -> str:
        return self._inner.describe()

    def identity(self) -> str:
        """``dpor(preemption_bound=k)`` (deepens up to k) or ``dpor()`` (deepens, then unbounded): the
        parameters, not the level reached (a checkpoint must not mistake one for the other)."""
        return f"dpor(preemption_bound={self.max_bound})" if self.max_bound is not None else "dpor()"

    def _next_level(self) -> int | None:
        b = self.current_bound
        assert b is not None
        if self.max_bound is not None:
            return b + 1
        return b + 1 if b < DEEPEN_TO else None

    def new_execution(self) -> bool:
        if self.complete:
            return False
        if self._inner.complete:
            self.current_bound = self._next_level()
            self.levels.append(0)
            self._inner = DPOR(self.current_bound)
            self._inner.split(self._job, self._jobs)
        self._inner.index = self.index
        return self._inner.new_execution()

    def attach(self, kernel: Kernel) -> None:
        self._inner.attach(kernel)

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        t = self._inner.next_thread(runnable, current)
        if self._inner.error:
            self.error = self._inner.error
        return t

    def next_u64(self, bound: int) -> int:
        v = self._inner.next_u64(bound)
        if self._inner.error:
            self.error = self._inner.error
        return v

    def end_execution(self, ex: Execution) -> None:
        inner = self._inner
        inner.end_execution(ex)
        if not inner.discard:
            self.levels[-1] += 1
        self.cut = inner.cut
        if not inner.complete:
            return
        b = self.current_bound
        if b is None or not inner.pre_cut or b == self.max_bound:
            self.complete = True
        self._value_cut = self._value_cut or inner.value_cut
        if b is not None and not self._value_cut:  # a capped value leaves every bound unfinished
            self._finished = b

    def state(self) -> dict[str, object]:
        st = {k: v for k, v in self.__dict__.items() if k != "_inner"}
        st["_inner"] = self._inner.state()
        return st

    def restore(self, state: dict[str, object]) -> None:
        st = dict(state)
        inner = st.pop("_inner")
        self.__dict__.update(st)
        self._inner = DPOR(self.current_bound)
        assert isinstance(inner, dict)
        self._inner.restore(inner)
