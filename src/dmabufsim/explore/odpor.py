"""Optimal dynamic partial-order reduction: source sets, sleep sets and wakeup trees.

Abdulla, Aronis, Jonsson and Sagonas, "Optimal Dynamic Partial Order
Reduction", POPL 2014, and "Source Sets: A Foundation for Optimal Dynamic
Partial Order Reduction", JACM 64(4), 2017 (Algorithm 2, the insertion of
section 6.2 and Lemma 4.6). Classic DPOR (``dpor.py``) reverses a race by
scheduling the later thread earlier, and may run several equivalent
executions (the ones it counts as sleep-set blocked). Optimal DPOR reverses
a race by scheduling a whole *sequence*: the steps after the first racing
step that do not depend on it, then the second one, and keeps those
sequences in a *wakeup tree* per state, so that every Mazurkiewicz trace
(equivalence class of executions) is explored exactly once.

Rules:

* R1 (events): an event is one step of one thread, from the moment it is
  scheduled to the next scheduling: a choice among several runnable threads
  (``next_thread``), the only runnable thread resumed or started outside a
  scheduling point (``observe_forced``, ``Kernel._only``), or a thread
  going on at its own scheduling point with no choice made (its point
  event) -- unless the point was folded by the reduction (``Kernel.folded``,
  ``kernel/reduction.py``): that point is one more access of the running
  event. Each event has a state node (its position in the execution) with
  the threads runnable there. An event's accesses are the operation the
  thread declared (``t.pending``: the point it waits at, or the wait it
  resumes from) and every trace event of that thread until the next
  scheduling; two events are dependent when they touch one object and one
  writes (``dpor`` R1). An event that ends in a wait also wrote what it
  waits on (it looked, queued itself and slept; so did a waiter the
  teardown at the end of the execution marks exited: it never exited),
  or read it when its queued node commutes with the other sleepers'
  (runtime R16, ``dma_fence`` R14).
  Thread creation and exit:
  the parent's event that created a thread writes a pseudo-object every
  event of the child reads; a thread's last event writes its exit. A
  ``join`` is a scheduling point of its own (runtime R15) that reads the
  exit; a join with a timeout, which has none, waits on it at once, or
  reads it in the running event when the thread had exited already (the
  runtime tells the tap: ``join_exited``). An event that began at its lock
  point, taking the lock free, and released it within the event (``Kernel.section_read``:
  ``lock_section``, ``kernel/reduction.py`` L6) only read the lock: its acquire and release
  are one read of it (and the event is marked as releasing it too, for R3's walks: it
  neither begins nor ends a hold). A runnable thread at its ``mutex_lock`` (or
  ``spin_lock``) point while the lock is owned is not *enabled* (all it
  could do is queue and sleep, or spin: the textbook blocking operation),
  nor is one at a ``ww_mutex_lock`` point whose attempt can only wait
  (``t.gate``, ww_mutex R12: no context, or a wound-wait context holding
  nothing; a ``read_seqcount_begin`` while another thread's write section
  is open, seqcount R7, whose ``write_seqcount_end`` is the release), nor
  one at its ``join`` point while the joined thread runs (``t.gate``, a
  ``JoinGate``: all it could do is queue on the thread and sleep; the
  thread's last event, its exit, is the release, and the join's event
  after it, which reads the exit, the acquisition), unless every runnable
  thread is such a
  thread: then they are all enabled, and an attempt is an event that ends
  in a wait (a deadlock, or a wait for virtual time).
* R2 (happens-before): program order plus dependent events in execution
  order, by vector clocks (``clock[j][t]`` = the last event of thread ``t``
  that happens before event ``j``). Incremental: a position's clock and
  races are computed once, when its event completes (from the last write of
  each object it touches and the reads since); the replayed prefix of the
  next execution keeps them, and an undo log rewinds to the backtrack point.
  The events arrive through the trace's tap (``Trace.tap``: no Event built).
* R3 (races): ``e`` (event ``i``) and ``e'`` (event ``j``) race when they are
  dependent, of different threads, and ``e`` happens before ``e'`` through
  no other event. A race is reversible unless ``e'``'s thread was not
  runnable before ``e`` and was after it (``e`` woke or created it), or was
  waiting before ``e`` on something no event of the reversal touches (a
  sleep on its own timer, R10, is woken early only by a step that writes
  that timer) -- or on the virtual clock, which advances only when no
  thread can run -- or
  was not enabled before ``e``, at its lock point while another thread owns
  the lock, and no event of the reversal touches that lock (its attempt
  there could only have waited: ``e'`` is the attempt that ended in a wait
  once no thread was enabled, racing with an access of the holder to an
  object that is the lock's own, as a ``dma_resv`` is its ww_mutex's). The
  release of a mutex and its next acquisition at a ``mutex_lock`` point by
  another thread are never enabled together: that race is reversed as the
  two acquisitions -- the releasing thread's last earlier write of the
  mutex and ``e'`` -- unless the first happens before ``e'`` through
  something other than the release. A thread's exit and a join's event
  after it (R1) are never enabled together either, and the exit has no
  earlier acquisition: that race is not reversible (the join's event can
  only follow the exit). A reversal any
  of whose events (``e'`` included) began in a later epoch of virtual
  time than ``e`` (after timers fired, runtime R14's ``Kernel.epoch``;
  a timer due at once, ``schedule_timeout(0)``, fires the same way) is not
  one either: ``e``'s thread stays runnable until ``e``, and timers fire
  only when no thread can run, so none fires before ``e`` (early timers
  are refused, R8).
* R4 (wakeup trees): at the end of every execution, for each reversible race
  with ``E' = pre(E, e)`` (the node of ``e``): ``v = notdep(e, E).e'`` (the
  events between them that do not happen after ``e``, then ``e'``); unless a
  thread sleeping at ``E'`` is a weak initial of ``v``, ``v`` is inserted into
  the wakeup tree of ``E'``: at the first node ``u`` in post-order with
  ``u ~[E'] v`` (Lemma 4.6: each thread of ``u`` is an initial of what is left
  of ``v`` -- its first event there has no dependent event before it -- and is
  removed from it, or does not occur in it and its event is independent of
  all of it), nothing if ``u`` is a leaf, else ``u`` extended by what is left.
* R5 (exploration): a node explores its wakeup tree's children in order,
  each with the child's subtree as the next node's tree (the same list,
  never a copy); a node with an
  empty tree chooses freely (the current thread, else the lowest tid) among
  the runnable threads not asleep. Explored children join the node's sleep
  set with their events; a thread sleeps at the next node while its event is
  independent of the event just taken. An execution reaching a node where
  every runnable thread sleeps is counted in ``redundant`` (none where every
  access is declared; the audits check it).
* R6 (determinism): a replayed prefix must meet the same runnable threads,
  choices and forced steps (``dpor`` R6). A wakeup sequence whose next
  thread is not the one a forced step runs waits for the next node, if that
  step turns out independent of all of it; otherwise, or at a choice that
  does not offer its thread, it is dropped and counted in ``deviations``
  and the verdict says so (a read the model does not declare, or an order
  virtual time forbids). One case is no loss and is counted apart
  (``infeasible``): the thread is runnable but not enabled there (R1: at
  its lock point while another thread owns the lock and some thread is
  enabled). Its attempt could only queue and sleep, which R1 never takes
  while another thread can run, so no execution of the search begins with
  the sequence at that node: R3's reversal moved the attempt before an
  event of the holder when the thread reached its lock point only inside
  ``notdep`` (R3's lock rule sees the threads at their lock points at
  ``e``'s node).
* R7 (split): parallel job ``j`` of ``N`` owns the alternatives ``j``,
  ``j + N``, ... of the first choice among several threads (the split
  node), which takes no wakeup sequences and tries every thread in order:
  the threads before this job's last one that other jobs own are each run
  once (a *probe*, not counted, its races not analysed) to learn their
  events, and join the split node's sleep set as the explored children do
  (R5). The jobs together run one search whose split node tried every
  thread in order: each trace once, as one process runs it, unless a
  sleep-blocked execution (``redundant``) is needed where one process's
  wakeup trees avoid it.
* R8 (limits): unbounded only (a preemption bound needs ``dpor``'s bounded
  search); scenarios that ask for schedule-controlled values
  (``Kernel.random``, early timers) are refused: an event's value would be
  part of its identity, which this implementation does not model.
* R9 (pieces, dynamic splitting; ``osplit.py``): a search can be a *piece*
  that owns the nodes from its root (``_own_from``) down, except those it
  lent. Between two executions it can hand the other children of its
  shallowest owned node that has some (:meth:`OptimalDPOR.handoff`) to a new
  piece, which owns that node with the child kept here asleep (R5 order:
  it was taken first); this search then only finishes that child there. A
  race at a node the piece does not own, after R4's sleep check there, is
  not inserted but returned (:attr:`OptimalDPOR.foreign`) with the node's
  path, its sleep set as the sequence would run there, the child this piece
  took there and that node's owner; a walk of R4 that follows the current
  path into a lent node returns what is left of the sequence when the child
  kept there does not cover it. A piece that re-analyses a prefix it does
  not own (a piece made by :meth:`OptimalDPOR.piece_at`) leaves the races
  inside that prefix to whoever ran it first. A sequence delivered late to
  its node (:meth:`OptimalDPOR.accept`, :func:`place`) is treated as R4
  would have treated it while its child was explored: dropped when a thread
  asleep before that child is a weak initial of it; inserted when no child
  taken since is compatible with it; covered when R4's walk down the subtree
  the first compatible child's branch began with (kept by a piece for each
  child it takes at a node another piece passes through) ends at a leaf;
  when that branch is the one its owner is exploring, added where the walk
  ends if that is still where one process adds it (the walk follows the
  branch being explored or children not started yet, and the children where
  it ends are all ones the branch began with: :meth:`OptimalDPOR._graft`);
  else explored apart, as a piece of its own (:class:`Apart`,
  :meth:`OptimalDPOR.piece_at`) that runs the walked events of that branch
  as a fixed prefix of their owner's -- with the sleep set that branch began
  with, and at each node on the way the children one process explored there
  before the walk's next event asleep (every child where it ends: the rest
  of the sequence comes last) -- and owns the node where the rest begins;
  never dropped for being compatible with a child explored after its own
  (that child's subtree counted on it: sleep sets of the children between
  them did).
  Each execution's trace has a fingerprint (each event's thread, rank,
  accesses and happens-before counts), so that traces run twice by two
  pieces are counted once (``osplit`` O4).
* R10 (timers): a sleep on virtual time (``msleep``, ``nsleep``,
  ``schedule_timeout``) declares its thread's own timer (runtime R14), not
  the clock: the step that arms it writes it (R1: it ends in a wait on it)
  and so does the step that resumes after it fires, and no other thread's
  step touches it except an early wake-up (``kthread_park`` writes the
  timer it wakes its thread from). Two sleeps of different threads in one
  epoch of virtual time are therefore independent, and swapping them
  changes nothing observable: timers of equal expiry fire in an order that
  depends on each thread's own program only (runtime R14: the arming
  thread, then its count), every callback only wakes a thread or raises
  a handler thread, and a time advance makes all of them runnable at once,
  so the order in which they then run is chosen here as any other. What
  the order of two sleeps could decide stays ordered otherwise: a reversal
  never moves an event across a time advance (R3), a thread asleep on its
  timer is not moved before ``e`` unless the reversal writes that timer
  (R3), ``mod_timer`` and ``del_timer`` of a ``timer_list`` write the
  timer's own object (``timer_list`` T4), and a wait with a timeout
  declares what it waits on, which its waker writes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from greenlet import getcurrent

from ..kernel.errors import UsageError
from ..kernel.runtime import Kernel
from ..kernel.thread import EXIT_OID, ThreadState
from .base import ExploreStrategy

if TYPE_CHECKING:
    from ..kernel.execution import Execution
    from ..kernel.thread import KThread
    from .race_stats import RaceStats

#: Accesses of an event: (object id, write) pairs.
Accs = tuple[tuple[int, bool], ...]

#: The operations that release a lock a gate or a lock point waits for (R3): a write section's
#: end releases the readers spinning at ``read_seqcount_begin`` (seqcount R7).
_RELEASES = frozenset({"mutex_unlock", "spin_unlock", "ww_mutex_unlock", "write_seqcount_end"})

#: Pseudo-objects of thread creation and exit (R1), below every real object id.
_SPAWN = -(1 << 40)
_EXIT = EXIT_OID

_POINT_CODE = Kernel.point.__code__
_BLOCKED = ThreadState.BLOCKED
#: The virtual clock as a waited-on object (a sleep with early timers on, which this search
#: refuses, R8; sleeps declare their own timers otherwise, R10): only a time advance, which
#: happens when no thread can run, wakes its sleepers (R3).
_CLOCK = -1
_EXITED = ThreadState.EXITED
#: A frontier undo entry: the position was appended to the object's reads (a singleton
#: that survives a checkpoint's pickling; the other entries are lists or None).
_APPENDED: Any = True
_START_CODE = Kernel._start.__code__
_TID = attrgetter("tid")
#: R9: the first position of a piece that does not know yet where its own nodes begin.
_FAR = 1 << 40


def _at_point(t: KThread) -> bool:
    """Is ``t`` suspended at one of its scheduling points (``Kernel.point`` switched away, perhaps
    by starting a new thread's greenlet), rather than in a wait or not started? A thread the
    runtime parked at its point (``Kernel._park``: it blocked on the mutex there) is waiting."""
    if t.parked:
        return False
    g = t.glet
    if g is not None and g is getcurrent():
        return True  # running: the strategy is asked from inside its point (``Kernel._park``)
    f = g.gr_frame if g is not None else None
    if f is not None and f.f_code is _START_CODE:
        f = f.f_back
    return f is not None and f.f_code is _POINT_CODE


def _conflict(a: Accs | list[tuple[int, bool]], b: Accs | list[tuple[int, bool]]) -> bool:
    """Do two access sets touch one object with at least one write?"""
    for o, w in a:
        for o2, w2 in b:
            if o == o2 and (w or w2):
                return True
    return False


class _WNode:
    """A wakeup tree node: a thread, the accesses of its event there, the ordered children.

    One tree serves the whole search: the node of position ``i + 1`` explores
    the very list of children of the child chosen at position ``i`` (R5), so
    a wakeup sequence is never copied as the execution walks down it.
    """

    __slots__ = ("accs", "children", "tid")

    def __init__(self, tid: int, accs: Accs, children: list[_WNode] | None = None) -> None:
        self.tid = tid
        self.accs = accs
        self.children: list[_WNode] = children if children is not None else []


class _Node:
    """A state of the search (``E``): runnable threads, sleep set, wakeup tree, current child."""

    __slots__ = ("accs", "acq", "at_point", "blocked", "disabled", "enabled", "forced", "full", "rel", "sleep",
                 "waiting", "wut")

    def __init__(self, enabled: tuple[int, ...], forced: bool) -> None:
        self.enabled = enabled
        self.forced = forced
        #: The threads blocked here and the object each waits on (R3).
        self.blocked: dict[int, int] = {}
        #: Threads asleep here with their events' accesses (inherited, then explored children).
        self.sleep: dict[int, Accs] = {}
        #: The wakeup tree's children; the first is the child being explored.
        self.wut: list[_WNode] = []
        #: The accesses of the event taken from here in the current execution.
        self.accs: Accs = ()
        #: The split root (R7): no sleep set, no wakeup sequences.
        self.full = False
        #: The event taken from here began at its thread's own scheduling point.
        self.at_point = False
        #: Runnable threads not enabled here: each waits at its ``mutex_lock`` point for the
        #: mutex (its object id) another thread owns (R3).
        self.disabled: dict[int, int] | None = None
        #: The mutex the event taken from here acquires at its ``mutex_lock`` point, or releases
        #: (``mutex_unlock``), if any (R3).
        self.acq: int | None = None
        #: The mutexes the event releases (several when the reduction folded releases into it).
        self.rel: tuple[int, ...] | None = None
        #: When no thread was enabled here (every runnable one at its lock point with the lock
        #: owned, R1): each one's (lock, owner's tid); the event taken ends in a wait (R3).
        self.waiting: dict[int, tuple[int, int]] | None = None

    @property
    def chosen(self) -> int:
        return self.wut[0].tid


def _touches(tree: list[_WNode], accs: Accs) -> bool:
    """Does any event of a wakeup (sub)tree depend on ``accs``?"""
    todo = list(tree)
    while todo:
        wn = todo.pop()
        if _conflict(wn.accs, accs):
            return True
        todo.extend(wn.children)
    return False


def _writes(accs: Accs) -> dict[int, bool]:
    """An access set as object -> whether it writes it: the dependence scans below look each
    object of a sequence up in it instead of comparing the two sets pair by pair."""
    ix: dict[int, bool] = {}
    for o, w in accs:
        if w or o not in ix:
            ix[o] = w
    return ix


def _depends(ix: dict[int, bool], w: list[tuple[int, Accs]], stop: int) -> bool:
    """Does one of the first ``stop`` events of ``w`` depend on the event whose accesses ``ix``
    holds (:func:`_writes`): one object, at least one write (``_conflict``)?"""
    for _t, accs in w if stop >= len(w) else w[:stop]:
        for o, wr in accs:
            if o in ix and (wr or ix[o]):  # (a membership test, not dict.get: no call per access)
                return True
    return False


def _initial(w: list[tuple[int, Accs]], tid: int) -> int:
    """Index of ``tid``'s first event in ``w`` if ``tid`` is an initial of ``w`` (no earlier
    event of ``w`` it depends on), -1 if it is not, -2 if ``tid`` does not occur in ``w``."""
    for x, (t, accs) in enumerate(w):
        if t == tid:
            return -1 if x and _depends(_writes(accs), w, x) else x
    return -2


def _after(w: list[tuple[int, Accs]], tid: int, accs: Accs) -> list[tuple[int, Accs]] | None:
    """One step of ``u ~ w`` (Lemma 4.6) for ``u``'s next event (``tid``, ``accs``): what is left
    of ``w`` -- without ``tid``'s first event if ``tid`` is an initial of it, unchanged if
    ``tid`` does not occur in it and its event is independent of all of it -- or None."""
    x = _initial(w, tid)
    if x >= 0:
        return w[:x] + w[x + 1 :]
    if x == -2 and not _depends(_writes(accs), w, len(w)):
        return w
    return None


class OptimalDPOR(ExploreStrategy):
    """Optimal DPOR with wakeup trees (Abdulla et al. 2014/2017; see the module rules)."""

    name = "odpor"
    systematic = True
    one_per_trace = True

    def __init__(self, preemption_bound: int | None = None) -> None:
        super().__init__()
        if preemption_bound is not None:
            raise UsageError("odpor explores without a preemption bound (R8): use dpor for a bounded search")
        self._stack: list[_Node] = []
        self._job = 0
        self._jobs = 1
        #: Executions that met a node where every runnable thread slept (R5; expected 0).
        self.redundant = 0
        #: Wakeup sequences dropped at a forced step (R6; expected 0).
        self.deviations = 0
        #: Wakeup sequences whose next thread only waits at a lock point there (R6): not
        #: executions of the search, nothing lost.
        self.infeasible = 0
        self.discard = False
        #: Race statistics (``race_stats.py``): told of every reversed race when set; None: off.
        self.race_stats: RaceStats | None = None
        #: This job has no share of the split node (or there is no choice at all): it runs nothing (R7).
        self._idle = False
        #: The split node's position and this job's threads there (R7).
        self._split_at = -1
        self._owned: set[int] = set()
        self._threads: list[KThread] = []
        # The analysed prefix (R2, R3), kept across executions: the positions below
        # ``_done`` replay identically, so their clocks and races are not computed again.
        #: Vector clock of each analysed position, indexed by tid (-1: no event of that thread).
        self._clk: list[list[int]] = []
        #: Per analysed position: (its thread, that thread's previous position or -1, the
        #: frontier entries it replaced), to rewind to a backtrack point.
        self._undo: list[tuple[int, int, list[tuple[int, Any]]]] = []
        #: Per object: [last write or -1, the reads since it] (the accesses a new one can race with).
        self._front: dict[int, list[Any]] = {}
        #: Per thread: its last analysed position.
        self._last: dict[int, int] = {}
        self._done = 0
        #: The dependencies of the position being analysed (R3's reversal past a release).
        self._jdeps: set[int] = set()
        # R9 (pieces): the positions this search owns are ``_own_from`` on, except those it lent
        #: The first position this search owns (the positions above are another piece's).
        self._own_from = 0
        #: Positions whose other alternatives this search handed off (R9): it finishes only the
        #: child it is exploring there.
        self._lent: dict[int, int] = {}
        #: R9: this piece's number, and the number of the piece that owns each position above
        #: ``_own_from`` (the coordinator's numbers; -1 until it gives one).
        self.number = 0
        self._owners: list[int] = []
        #: Owned positions another piece's path passes through: reported in :attr:`closed` when done.
        self._shared: set[int] = set()
        #: R9: per shared position, the wakeup subtree each child there began with (for :func:`place`).
        self._began: dict[int, dict[int, _WNode]] = {}
        #: R9: the shared nodes this search finished: (path, final sleep set in the order it grew,
        #: the subtree each child began with where known).
        self.closed: list[tuple[tuple[int, ...], dict[int, Accs], dict[int, _WNode]]] = []
        #: Wakeup sequences for nodes this search does not own (R9): (the node's path, sequence,
        #: the node's sleep set as the sequence would run there, the child taken there, the number of
        #: the node's owner); :attr:`prefixes` holds each such node's path down to it.
        self.foreign: list[tuple[tuple[int, ...], tuple[tuple[int, Accs], ...], dict[int, Accs], int, int]] = []
        self.prefixes: dict[tuple[int, ...], tuple[list[_Node], list[int]]] = {}
        #: R9: the fingerprint of each execution's trace (None: not kept).
        self.traces: set[int] | None = None
        #: R9 (:meth:`piece_at` with a walk): the first node of this piece's own sequence, the
        #: threads to put to sleep at the nodes of the branch before it, and that branch's owner.
        self._head: _WNode | None = None
        self._asleep: list[tuple[_WNode, dict[int, Accs]]] = []
        self._below = -1
        self._reset_execution()

    def _reset_execution(self) -> None:
        self._pos = 0
        #: This execution's events: (thread, accesses so far; a tuple once the event is closed).
        self._events: list[tuple[int, list[tuple[int, bool]] | Accs]] = []
        #: The thread whose event was just opened at its own point: that point's trace event
        #: (the next of that thread: it resumes right there) belongs to the event (-1: none).
        self._expect = -1
        #: The epoch of virtual time (``Kernel.epoch``) in which each event began (R3: what a
        #: reversal cannot move before).
        self._times: list[int] = []
        self._last_step = -1
        self._blocked_now = False
        self._follow: list[_WNode] = []  # the wakeup subtree the next new node starts with
        #: (event index, sequence) of a wakeup sequence deferred past a forced step (R6)
        self._deferred: tuple[int, list[_WNode]] | None = None
        #: A choice among several threads was made in this execution (R7 splits the first).
        self._decided = False
        #: This execution runs another job's thread at the split node (R7: a probe).
        self._probe = False

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_events", "_threads", "_times", "_k")}

    def __getstate__(self) -> dict[str, Any]:
        """A piece travels without its execution's kernel (R9)."""
        return self.state()

    def __setstate__(self, st: dict[str, Any]) -> None:
        self.__dict__.update(st)
        self._threads = []
        self._events = []
        self._times = []

    def split(self, job: int, jobs: int) -> None:
        self._job, self._jobs = job, jobs

    def bound(self) -> str:
        """``unbounded``, saying so when a wakeup sequence had to be dropped (R6): the
        exhaustion then rests on the model declaring every access, which it did not."""
        if self.deviations:
            return f"unbounded, {self.deviations} wakeup sequence(s) dropped (odpor R6)"
        return "unbounded"

    def describe(self) -> str:
        return "odpor()"

    def dropped(self) -> int:
        """Wakeup sequences dropped (R6): an exhausted search that dropped one proves nothing."""
        return self.deviations

    def attach(self, kernel: Kernel) -> None:
        if kernel._early_timers:
            raise UsageError("odpor does not model schedule-controlled values (early timers): use dpor (R8)")
        kernel.trace.set_tap(self._tap)
        self._k = kernel
        self._threads = kernel._threads  # by tid: an observed trace keeps every thread (runtime)
        if self.race_stats is not None:
            self.race_stats.attach(kernel, self)

    def new_execution(self) -> bool:
        if self.complete:
            return False
        self._reset_execution()
        self.discard = self._idle  # a probe's execution is not counted; a job without a share never runs
        return True

    # ------------------------------------------------------------------ events (R1)

    def _open(self, t: KThread, running: bool) -> None:
        """Open the event of the position just scheduled: ``t`` runs (``running``: it is the
        thread at whose point the choice was made)."""
        tid = t.tid
        i = self._pos - 1
        node = self._stack[i]
        if i < self._done:
            # replayed (R6): the same event as when this position was first run and analysed,
            # closed from the start (its accesses are the node's), and where it began is known
            self._expect = tid if node.at_point else -1
            self._events.append((tid, node.accs))
            self._times.append(self._k.epoch)
            return
        at_point = node.at_point = running or _at_point(t)
        node.acq = node.rel = None
        if at_point:
            _mark(node, t, t.pending[0], t.pending[1])
        accs: list[tuple[int, bool]] = [(_SPAWN - tid, False)]
        self._expect = tid if at_point else -1
        if t.glet is not None or at_point:
            op, obj, write = t.pending
            if op == "join":
                # its join point reads the exit (runtime R15); resumed from the wait, it wrote it
                accs.append((_EXIT - obj, write))
            elif op != "spawn" and op != "start":
                accs.append((obj, write))
        self._events.append((tid, accs))
        self._times.append(self._k.epoch)

    def _close(self) -> None:
        """The event of the previous node is complete: record its accesses there. An event
        that ended in a wait also accessed what it waits on (it looked and went to sleep:
        a ``join`` has no scheduling point of its own); a thread's last event writes its exit.
        A position not analysed yet gets its vector clock and races now (R2-R4)."""
        i = len(self._events) - 1
        if i < 0:
            return
        tid, acc = self._events[i]
        if not isinstance(acc, list):
            return  # replayed (opened closed), or closed already (the end of an execution)
        t = self._threads[tid] if tid < len(self._threads) else None
        exited = False
        if t is not None:
            if t.blocked_on is not None:
                # blocked (or torn down blocked at the end of the execution: a deadlock's waiters
                # never exit, although the teardown marks them exited)
                what, obj, _name = t.blocked_on
                acc.append((_EXIT - obj, True) if what == "join" else (obj, not t.sleep_reads))
            elif t.state is _EXITED:
                acc.append((_EXIT - tid, True))
                exited = True
        accs = tuple(acc)
        self._events[i] = (tid, accs)
        if i >= len(self._stack):
            return
        node = self._stack[i]
        if exited:
            # R3: the exit releases the join gates waiting for it (runtime R15)
            node.rel = (_EXIT - tid,) if node.rel is None else (*node.rel, _EXIT - tid)
        d = self._deferred
        if d is not None and d[0] == i:
            self._deferred = None
            if _touches(d[1], accs):
                self.deviations += 1  # R6: the forced step depends on the deferred sequence
                self._follow = []
        node.accs = accs
        wut = node.wut
        if wut and wut[0].tid == tid:
            wut[0].accs = accs
        if i == self._done:
            self._analyse(i, tid, accs)

    def _tap(self, step: int, tid: int, op: str, obj: int, write: bool) -> None:
        """Every trace event (``Trace.tap``): a scheduling point, or an access of the running
        thread's current event (R1)."""
        if tid == self._expect and tid >= 0 and step > self._last_step and op != "join_exited":
            # the opened event's own point: already its first access (the common case)
            self._last_step = step
            self._expect = -1
            return
        if tid < 0:
            return  # a timer firing: no thread's step
        if op == "lock_section":
            self._section(tid, obj)
            return
        if op == "join_exited":
            # Kernel.join of a thread that had exited: no step, a read of its exit (R1)
            last = self._events[-1] if self._events else None
            if last is not None and last[0] == tid and type(last[1]) is list:  # (a replayed one has it)
                last[1].append((_EXIT - obj, False))
            return
        if step > self._last_step:
            self._last_step = step
            if self._expect == tid:
                self._expect = -1
                return  # the opened event's own point: already its first access
            self._expect = -1
            if self._k.folded:
                events = self._events
                if events and events[-1][0] == tid:
                    # a folded point (reduction L1): an access of the running event, no step of its own
                    acc = events[-1][1]
                    if type(acc) is not list:
                        return  # a replayed event: its accesses and releases are known (R6)
                    acc.append((obj, write))
                    if op in _RELEASES:
                        node = self._stack[self._pos - 1]
                        if node.rel is None:
                            node.rel = (obj,)
                        elif obj not in node.rel:
                            node.rel = (*node.rel, obj)
                    return
            # a thread going on at its own point with no choice made: a forced step
            self._schedule((tid,), tid, True, None, _waiting_alone(self._threads[tid]))
            node = self._stack[self._pos - 1]
            node.acq = node.rel = None
            _mark(node, self._threads[tid], op, obj)
            accs = [(_SPAWN - tid, False)]
            if op == "join":
                accs.append((_EXIT - obj, write))  # a join point reads the exit (runtime R15)
            elif op != "spawn":
                accs.append((obj, write))
            self._events.append((tid, accs))
            self._times.append(self._k.epoch)
            return
        events = self._events
        if events:
            last = events[-1]
            if last[0] == tid:
                acc = last[1]
                if type(acc) is list:  # (a replayed event's accesses are known, R6)
                    acc.append((obj, write))
            else:  # defensive: a step nobody announced is a forced step of its own
                self._schedule((tid,), tid, True)
                events.append((tid, [(_SPAWN - tid, False), (obj, write)]))
                self._times.append(self._k.epoch)

    def _section(self, tid: int, lock: int) -> None:
        """R1, reduction L6: ``tid`` released ``lock``, which it took free at its own lock
        point and woke no waiter. If the running event began at that acquisition (its node
        marks it) and its only accesses of the lock are that point and this release, the two
        writes become one read."""
        events = self._events
        if not events:
            return
        last = events[-1]
        acc = last[1]
        if last[0] != tid or type(acc) is not list:
            return  # a replayed event: its accesses and releases are known (R6)
        node = self._stack[self._pos - 1]
        if node.acq != lock:
            return  # the section began before this event (or by a trylock): a write
        at = [x for x, a in enumerate(acc) if a[0] == lock]
        if len(at) != 2 or not (acc[at[0]][1] and acc[at[1]][1]):
            return
        acc[at[0]] = (lock, False)
        del acc[at[1]]
        rel = node.rel
        if rel is None:
            node.rel = (lock,)
        elif lock not in rel:
            node.rel = (*rel, lock)

    # ------------------------------------------------------------------ choosing (R5, R6)

    def _schedule(self, enabled: tuple[int, ...], default: int, forced: bool,
                  disabled: dict[int, int] | None = None,
                  waiting: dict[int, tuple[int, int]] | None = None) -> int:
        """The node of the next position (replayed or new): returns the thread to run; the
        caller opens its event. The next new node will start with this choice's subtree."""
        events = self._events
        if events and type(events[-1][1]) is list:  # (a replayed event was opened closed)
            self._close()
        pos = self._pos
        stack = self._stack
        if pos < len(stack) - 1:  # replayed, not the backtrack node: the hot path
            node = stack[pos]
            if (node.enabled != enabled or node.forced != forced) and not self.error:
                self._nondeterministic(pos, enabled, forced, node)
            tid = node.wut[0].tid
            if tid not in enabled:
                tid = enabled[0]
            if not forced:
                self._decided = True
            self._pos = pos + 1
            return tid
        deferred: list[_WNode] | None = None
        if pos < len(stack):
            node = stack[pos]
            if (node.enabled != enabled or node.forced != forced) and not self.error:
                self._nondeterministic(pos, enabled, forced, node)
            tid = node.wut[0].tid
            if tid not in enabled:
                tid = enabled[0]
        else:
            node = _Node(enabled, forced)
            node.disabled = disabled
            node.waiting = waiting
            node.sleep = self._inherit_sleep()
            for th in self._threads:
                if th.state is _BLOCKED and th.blocked_on is not None:
                    what, obj, _name = th.blocked_on
                    node.blocked[th.tid] = _EXIT - obj if what == "join" else obj  # (R3: the exit wakes it)
            follow = self._follow
            self._follow = []
            if follow and follow[0].tid not in enabled:
                if disabled is not None and follow[0].tid in disabled:
                    # R6: the sequence's next thread waits at its lock point for a lock another
                    # thread owns while others are enabled: all its attempt could do here is
                    # queue and sleep, which R1 never takes. No execution of the search begins
                    # with the sequence here (its race was reversed across the lock's holder),
                    # so nothing is lost: counted apart, not as a dropped sequence.
                    self.infeasible += 1
                elif forced:
                    deferred = follow  # R6: the forced step first; the sequence waits for the next node
                else:
                    self.deviations += 1  # R6: the wakeup sequence cannot go on here
                follow = []
            if self._jobs > 1 and not forced and not self._decided:
                order = list(enabled)
                owned = order[self._job :: self._jobs]  # R7: the first choice is split
                node.full = True
                node.sleep = {}
                if not owned:
                    self.discard = self._idle = True
                    owned = [enabled[0]]
                    node.wut = [_WNode(t, ()) for t in owned]
                else:  # the other jobs' threads before this job's last one: each probed once, then asleep
                    node.wut = [_WNode(t, ()) for t in order[: order.index(owned[-1]) + 1]]
                self._split_at = pos
                self._owned = set(owned)
            elif follow:
                node.wut = follow
                if self._head is not None:
                    self._reach(pos, node)
            else:
                awake = [t for t in enabled if t not in node.sleep]
                if not awake:
                    self._blocked_now = True
                    awake = list(enabled)
                choice = default if default in awake else awake[0]
                node.wut = [_WNode(choice, ())]
            stack.append(node)
            tid = node.wut[0].tid
        if not forced:
            self._decided = True
        if pos == self._split_at:
            self._probe = tid not in self._owned  # R7: another job's thread, run once for its event
        if pos == len(stack) - 1 and deferred is not None:
            self._follow = deferred
            self._deferred = (pos, deferred)
        else:
            # R5: the chosen child's subtree, shared (not copied) with the next node
            self._follow = node.wut[0].children if pos == len(stack) - 1 else []
        self._pos = pos + 1
        return tid

    def _nondeterministic(self, pos: int, enabled: tuple[int, ...], forced: bool, node: _Node) -> None:
        self.error = (
            f"odpor: the scenario is not deterministic: step {pos} offered threads {list(enabled)}"
            f"{' (forced)' if forced else ''}, an earlier execution {list(node.enabled)} (rule R6)"
        )

    def _inherit_sleep(self) -> dict[int, Accs]:
        """R5: the threads asleep at the previous node whose events are independent of the
        event just taken there."""
        i = self._pos - 1
        if i < 0:
            return {}
        prev = self._stack[i]
        if not prev.sleep:
            return {}
        taken_tid, taken = self._events[i]
        return {q: a for q, a in prev.sleep.items() if q != taken_tid and not _conflict(a, taken)}

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        if current is not None and current.pending[0] == "spawn" and self._events:
            # The event ending now created the thread (R1): the child's events read this.
            child = current.pending[1]
            acc = self._events[-1][1]
            if type(acc) is list:  # (a replayed event's accesses are known, R6)
                acc.append((_SPAWN - child, True))
        # R1: a thread at its mutex_lock point with the mutex owned is not enabled (taking it
        # would only queue and sleep), nor one whose attempt can only wait on a lock blocking on
        # its own (ww_mutex R12), unless every runnable thread is such (they block: a deadlock or
        # a wait for time). (A comprehension: no append call per runnable thread.)
        en = [t.tid for t in runnable
              if (t.park is None or t.park.owner is None) and (t.gate is None or not t.gate.waits(t))]
        off = [t for t in runnable if t.tid not in en] if len(en) < len(runnable) else None
        enabled = tuple(en) if en else tuple(map(_TID, runnable))
        pos = self._pos
        if pos < len(self._stack) - 1:
            again = self._replayed(pos, enabled, False)
            if again is not None:
                return again
        if off is not None and self._pos >= len(self._stack):
            # a new node (a replayed one knows): what each thread not enabled waits for
            disabled, waiting = _not_enabled(off, bool(en))
            tid = self._schedule(enabled, current.tid if current is not None else enabled[0], False,
                                 disabled, waiting)
        else:
            tid = self._schedule(enabled, current.tid if current is not None else enabled[0], False)
        t = self._threads[tid]  # by tid (attach); the choice is one of the runnable threads
        self._open(t, t is current)
        return t

    def observe_forced(self, t: KThread) -> None:
        """``Kernel._only``: ``t`` runs next, the only runnable thread (R1)."""
        pos = self._pos
        if pos < len(self._stack) - 1 and self._replayed(pos, (t.tid,), True) is not None:
            return
        self._schedule((t.tid,), t.tid, True, None, _waiting_alone(t))
        self._open(t, False)

    def _replayed(self, pos: int, enabled: tuple[int, ...], forced: bool) -> KThread | None:
        """The step at ``pos``, replayed and analysed (not the backtrack node): :meth:`_schedule`'s
        and :meth:`_open`'s paths for it in one (the common case of a search's executions: every
        step of the prefix it replays, R5-R6). Returns the thread to run; None when ``pos`` was
        not analysed (the caller takes the general path, which closes nothing twice)."""
        events = self._events
        if events and type(events[-1][1]) is list:
            self._close()
        if pos >= self._done:
            return None
        node = self._stack[pos]
        if (node.enabled != enabled or node.forced != forced) and not self.error:
            self._nondeterministic(pos, enabled, forced, node)
        tid = node.wut[0].tid
        if tid not in enabled:
            tid = enabled[0]
        if not forced:
            self._decided = True
        self._pos = pos + 1
        # _open() of a replayed position: the same event as when it was first run, closed
        self._expect = tid if node.at_point else -1
        events.append((tid, node.accs))
        self._times.append(self._k.epoch)
        return self._threads[tid]

    def next_u64(self, bound: int) -> int:
        if not self.error:
            self.error = ("odpor does not model schedule-controlled values (Kernel.random): "
                          "use dpor or dfs for this scenario (R8)")
        return 0

    # ------------------------------------------------------------------ analysis (R2-R4)

    def _analyse(self, j: int, tid: int, accs: Accs) -> None:
        """Position ``j``'s vector clock and its races with earlier events (R2, R3), and the
        wakeup sequences they call for (R4), as soon as its event is complete.

        Incremental: per object only its last write and the reads since can race with
        a new access (anything older happens before that write), and the clocks and
        races of the replayed prefix were computed by the execution that first ran it
        (re-inserting their sequences would change nothing: a covered sequence stays
        covered, by the tree or, once explored, by the sleep set).
        """
        front = self._front
        deps: set[int] = set()
        for o, w in accs:
            f = front.get(o)
            if f is not None:
                if f[0] >= 0:
                    deps.add(f[0])
                if w:
                    deps.update(f[1])
        clk = self._clk
        events = self._events
        prev = self._last.get(tid, -1)
        c = list(clk[prev]) if prev >= 0 else []
        width = len(self._threads)
        if len(c) < width:
            c.extend([-1] * (width - len(c)))
        races: list[int] = []
        for k in sorted(deps, reverse=True) if len(deps) > 1 else deps:
            tk = events[k][0]
            if c[tk] >= k:
                continue  # a later dependency (or program order) carries k to j: its clock is in c
            if tk != tid:
                races.append(k)  # no later dependency carries k to j: an immediate race
            ck = clk[k]
            c[: len(ck)] = [a if a > b else b for a, b in zip(c, ck, strict=False)]
        c[tid] = j
        clk.append(c)
        undo: list[tuple[int, Any]] = []
        for o, w in accs:
            f = front.get(o)
            if w:
                undo.append((o, f))
                front[o] = [j, []]
            elif f is None:
                undo.append((o, None))
                front[o] = [-1, [j]]
            elif f[0] != j and (not f[1] or f[1][-1] != j):
                undo.append((o, _APPENDED))
                f[1].append(j)
        self._undo.append((tid, prev, undo))
        self._last[tid] = j
        self._done = j + 1
        if races and not self.discard and not self._probe and not self.error and j >= self._own_from:
            # (R9: a piece that analyses its fixed prefix again leaves those races to whoever ran it)
            self._jdeps = deps
            for i in races:
                self._race(i, j)

    def _rewind(self, keep: int) -> None:
        """Forget the analysis of the positions from ``keep`` on (they will run differently)."""
        front, last, undo_log = self._front, self._last, self._undo
        for _ in range(self._done - keep):
            tid, prev, undo = undo_log.pop()
            for o, old in reversed(undo):
                if old is _APPENDED:
                    front[o][1].pop()
                elif old is None:
                    del front[o]
                else:
                    front[o] = old
            if prev >= 0:
                last[tid] = prev
            else:
                del last[tid]
        del self._clk[keep:]
        self._done = min(self._done, keep)

    def _race(self, i: int, j: int, past: bool = False) -> None:
        """R3, R4: the race of events ``i`` and ``j``: if reversible, insert ``notdep(e, E).e'``
        into the wakeup tree of ``i``'s node, unless a sleeping thread is a weak initial of it."""
        stack = self._stack
        node = stack[i]
        if node.full:
            return
        events = self._events
        p = events[j][0]
        if not past:
            m = stack[j].acq
            if m is not None and node.rel is not None and m in node.rel and node.acq != m:
                # R3: e' acquires the mutex e released: never enabled together (a thread at its
                # mutex_lock point waits while the mutex is owned); reverse the acquisitions
                self._race_past_release(i, j, m)
                return
            w = stack[j].waiting
            if w is not None and node.waiting is None:
                lk = w.get(p)
                if lk is not None:
                    x = self._held_across(lk[1], lk[0], i)
                    if x >= 0:
                        # R3: e' is an attempt that waited for a lock its owner took at its
                        # lock point (x) before e and held to e': moved before e (whose thread
                        # is enabled there), it could only queue and sleep, which R1 never
                        # takes. Reversed instead with that acquisition, as a release's race
                        # with the next acquisition is.
                        self._race_acquisition(x, i, j, lk[1])
                        return
        if p not in node.enabled and p in stack[i + 1].enabled:
            return  # R3: e woke or created e''s thread: not reversible
        ti = events[i][0]
        clk = self._clk
        times = self._times
        ti_time = times[i]
        if times[j] > ti_time:
            return  # R3: the reversal needs timers to fire while e's thread can run
        v: list[tuple[int, Accs]] = []
        for k in range(i + 1, j):
            ck = clk[k]
            if ti >= len(ck) or ck[ti] < i:
                if times[k] > ti_time:
                    return  # R3: as above, for an event of notdep(e, E)
                v.append(events[k])  # type: ignore[arg-type]  # closed: a tuple
        waits = node.blocked.get(p)
        if waits is not None and (waits == _CLOCK or not any(o == waits for _t, a in v for o, _w in a)):
            return  # R3: e''s thread sleeps before e, and nothing that can run first wakes it
        dis = node.disabled
        if dis is not None:
            lock = dis.get(p)
            if lock is not None and not any(o == lock for _t, a in v for o, _w in a):
                # R3: e''s thread waits at its lock point before e for a lock another thread
                # owns, and nothing that can run first touches that lock (a resv object's own
                # operations under its lock write the lock's object too)
                return
        v.append(events[j])  # type: ignore[arg-type]
        for q, a in node.sleep.items():
            if self._weak_initial(q, a, v):
                if self.race_stats is not None:
                    self.race_stats.race(events, i, j, False)
                return
        if i < self._own_from or i in self._lent:
            self._send(i, v)  # R9: another piece owns that node
            inserted = True
        else:
            inserted = self._insert_at(i, v)
        if self.race_stats is not None:
            self.race_stats.race(events, i, j, inserted)

    def _held_across(self, owner: int, m: int, i: int) -> int:
        """R3: the position where thread ``owner`` took mutex ``m`` at its lock point, if that
        was before position ``i`` and it held the mutex since (no release of it among its
        events after); else -1, also when unsure (an acquisition no lock point marks, e.g. a
        trylock)."""
        x = self._last.get(owner, -1)
        stack, undo = self._stack, self._undo
        while x >= 0:
            nx = stack[x]
            if nx.rel is not None and m in nx.rel:
                return -1
            if nx.acq == m:
                return x if x < i else -1
            x = undo[x][1]
        return -1

    def _race_acquisition(self, x: int, i: int, j: int, owner: int) -> None:
        """R3: thread ``owner`` took the mutex at position ``x``; event ``j`` of another thread
        acquires it after ``i`` released it, or waited for it while ``owner`` held it (``i``
        is ``j``'s race on it). The acquisition at ``x`` and ``j`` race (``j``, moved before
        it, takes the mutex) unless ``x`` happens before ``j`` through something other than
        the mutex's own chain: ``j``'s program order, or its dependencies other than ``i``
        (the accesses of ``j`` other than the mutex: its last write before ``j`` is ``i``)."""
        clk = self._clk
        prev = self._undo[j][1]
        if prev >= 0:
            cp = clk[prev]
            if owner < len(cp) and cp[owner] >= x:
                return
        for k in self._jdeps:
            if k != i:
                ck = clk[k]
                if k == x or (owner < len(ck) and ck[owner] >= x):
                    return
        self._race(x, j, True)

    def _race_past_release(self, i: int, j: int, m: int) -> None:
        """R3: event ``j`` took mutex ``m`` at its ``mutex_lock`` point, and event ``i`` of another
        thread released it last (the two are never enabled together). The acquisition to
        reverse is the one ``i`` ended: the last event of ``i``'s thread before it that wrote
        ``m``. It races with ``j`` unless it happens before ``j`` through something other than
        ``i``."""
        events = self._events
        ti = events[i][0]
        undo = self._undo
        stack = self._stack
        # i's thread's earlier events, newest first (their undo records link them): the one
        # marked as taking m at its lock point (a dma_resv's operations under its lock write
        # the lock's own object too), else the last that wrote m (a trylock)
        x = undo[i][1]
        last = -1
        while x >= 0:
            nx = stack[x]
            if nx.rel is not None and m in nx.rel:
                x = -1  # a release (or a whole section, R1): the hold began after it
                break
            if nx.acq == m:
                break
            if last < 0 and (m, True) in events[x][1]:
                last = x
            x = undo[x][1]
        if x < 0:
            x = last
        if x < 0:
            return
        self._race_acquisition(x, i, j, ti)

    @staticmethod
    def _weak_initial(q: int, accs: Accs, v: list[tuple[int, Accs]]) -> bool:
        x = _initial(v, q)
        if x >= 0:
            return True
        return x == -2 and not _depends(_writes(accs), v, len(v))

    def _insert_at(self, i: int, v: list[tuple[int, Accs]]) -> bool:
        """R4 at the node of position ``i``, which this search owns; R9: a walk that follows the
        path of the current execution into a node lent to another piece gives what is left of
        ``v`` to that piece (:attr:`foreign`), as it is that node's wakeup tree."""
        stack = self._stack
        if not self._lent:
            return self._insert(stack[i], v)
        children, rest, parent = stack[i].wut, v, None
        p = i  # the position whose tree ``children`` is, while the walk follows the path; -1 off it
        while True:
            for wn in children:
                after = _after(rest, wn.tid, wn.accs)
                if after is not None:
                    children, rest, parent = wn.children, after, wn
                    p = p + 1 if p >= 0 and p + 1 < len(stack) and stack[p + 1].wut is children else -1
                    break
            else:
                if (parent is None or parent.children) and rest:
                    if p in self._lent:
                        # the child this search keeps there does not cover it: the node's other
                        # children, and the place of a new one, are the piece it lent them to
                        self._send(p, rest)
                    else:
                        _attach(children, rest)
                    return True
                return False

    @staticmethod
    def _insert(node: _Node, v: list[tuple[int, Accs]]) -> bool:
        """R4: insert ``v`` at the first node ``u`` in post-order with ``u ~ v``; True when
        that added a branch to the tree.

        ``~`` is a prefix walk (Lemma 4.6), so the first such node is found by
        following, from the root, the first child still compatible, down to a
        node none of whose children is: a leaf covers ``v`` already; any other
        node gets what is left of ``v`` as a new last child chain.
        """
        children, rest, parent = node.wut, v, None
        while True:
            for wn in children:
                after = _after(rest, wn.tid, wn.accs)
                if after is not None:
                    children, rest, parent = wn.children, after, wn
                    break
            else:
                if (parent is None or parent.children) and rest:
                    _attach(children, rest)
                    return True
                return False

    def end_execution(self, ex: Execution) -> None:
        self._close()
        stack = self._stack
        del stack[self._pos :]
        if not self._decided and self._job > 0:
            self.discard = self._idle = True  # no choice at all: the single execution is job 0's (R7)
        if self._probe:  # R7: another job's thread at the split node: asleep from now on, not counted
            del stack[self._split_at + 1 :]
            node = stack[-1]
            done = node.wut.pop(0)
            node.sleep[done.tid] = node.accs
            self._rewind(len(stack) - 1)
            self.discard = True
            return
        if self._blocked_now:
            self.redundant += 1
        if self.traces is not None and not self.discard:
            self.traces.add(self._fingerprint())
        own, lent = self._own_from, self._lent
        while len(stack) > own:
            p = len(stack) - 1
            node = stack[p]
            done = node.wut.pop(0)
            node.sleep[done.tid] = node.accs
            if p in lent:
                del lent[p]  # R9: the other children of that node are another piece's
                self._shared.discard(p)
                self._began.pop(p, None)
            elif node.wut and not self.discard:
                self._rewind(p)  # that position takes its next child
                if p in self._shared:  # R9: the subtree the child begins with, for late sequences
                    self._began.setdefault(p, {})[node.wut[0].tid] = copy.deepcopy(node.wut[0])
                return
            elif p in self._shared:
                self._shared.discard(p)
                # R9: for late sequences
                self.closed.append((self.path(p), dict(node.sleep), self._began.pop(p, {})))
            self._began.pop(p, None)
            stack.pop()
        self._rewind(0)
        self.complete = True

    # ------------------------------------------------------------------ pieces (R9)

    def _copy(self) -> OptimalDPOR:
        other = OptimalDPOR.__new__(OptimalDPOR)
        other.__setstate__(copy.deepcopy(self.state()))
        return other

    def handoff(self) -> OptimalDPOR | None:
        """R9: give away the other children of the shallowest node this search owns that has some.

        Called between two executions. Returns a search of exactly those
        children (its prefix fixed, the child kept here asleep at that node),
        after which this search only finishes its child there; None when no
        owned node of the stack has another child.
        """
        if self.complete or self._jobs > 1 or self.error:
            return None
        stack = self._stack
        top = len(stack) - 1
        for d in range(self._own_from, top + 1):
            node = stack[d]
            if d in self._lent or len(node.wut) < 2:
                continue
            keep = node.wut[0]
            if d == top and not keep.accs:
                continue  # (a child whose event is not known yet cannot sleep in the piece)
            other = self._copy()
            other._rewind(d)
            del other._stack[d + 1 :]
            mine = other._stack[d]
            del mine.wut[0]
            # the child kept here is explored first (R5 order): asleep in the piece, with its event
            mine.sleep[keep.tid] = node.accs if d < top else keep.accs
            for n in other._stack[:d]:
                del n.wut[1:]
            other._own_from, other._lent = d, {}
            other._owners = self.owners(d)
            other.number = -1
            other._shared = {d}
            other._began = {q: dict(b) for q, b in other._began.items() if q < d}
            other._began.setdefault(d, {})[mine.wut[0].tid] = copy.deepcopy(mine.wut[0])
            other.closed = []
            other.foreign, other.prefixes = [], {}
            other.traces = set() if self.traces is not None else None
            other.redundant = other.deviations = other.infeasible = 0
            del node.wut[1:]  # in place: the node above shares this list (R5)
            self._lent[d] = -1  # the coordinator numbers the piece
            self._shared.update(range(self._own_from, d + 1))
            return other
        return None

    def _send(self, i: int, v: Sequence[tuple[int, Accs]]) -> None:
        """R9: a wakeup sequence for the node of position ``i``, which another piece owns: kept for
        the coordinator with the node's sleep set here (the threads asleep when this search's
        child there was taken) and the path down to it."""
        path = self.path(i)
        if path not in self.prefixes:
            self.prefixes[path] = (self.prefix(i), self.owners(i))
        node = self._stack[i]
        sleep = dict(node.sleep)
        sleep[node.wut[0].tid] = node.accs  # as it will be when the sequence runs there (R5)
        owner = self._owners[i] if i < self._own_from else self._lent[i]
        self.foreign.append((path, tuple(v), sleep, node.wut[0].tid, owner))

    def owners(self, depth: int) -> list[int]:
        """R9: the number of the piece that owns each of the first ``depth`` positions."""
        return [self._owners[p] if p < self._own_from else self._lent.get(p, self.number) for p in range(depth)]

    def holder(self, path: tuple[int, ...]) -> int | None:
        """R9: does this search hold the node at the end of ``path`` (on its stack, ``path`` being its
        path there)? None if not; else the number of the piece it lent the node to, or its own."""
        i = len(path)
        if self.complete or not self._own_from <= i < len(self._stack) or self.path(i) != path:
            return None
        return self._lent.get(i, self.number)

    def accept(self, i: int, v: Sequence[tuple[int, Accs]], child: int) -> Apart | None:
        """R9: a wakeup sequence another piece found for the node of position ``i`` (which this
        search owns) under that node's child ``child``, delivered late: placed as the race of this
        search would have been while ``child`` was explored (R4, :func:`place`). None: inserted
        here, or covered; else how a piece of its own must explore it."""
        node = self._stack[i]
        current = node.wut[0].tid if node.wut and i < len(self._stack) - 1 else None
        if child not in node.sleep and current != child:
            return Apart({}, rest=list(v))  # (not a child this node took: explored apart, nothing asleep)
        w = list(v)
        where = place(node.sleep, current, node.wut[0].accs if current is not None else (), child, w,
                      self._began.get(i))
        if where is True:
            return None
        if where is False:
            self._insert_at(i, w)
            return None
        if where.walk and current is not None and where.walk[0][0] == current and self._graft(i, where):
            return None
        return where

    def _graft(self, i: int, a: Apart) -> bool:
        """R9: a late sequence that belongs to the branch this search is exploring at position ``i``
        (:func:`place`): follow R4's walk (``a.walk``) down this search's own tree -- the branch
        being explored, or children not started yet -- to the node whose children ``a.rest`` would
        have joined, and add it there as R4 would have, when that is still where one process puts
        it: no child explored there or on the way that one process would have explored after it
        (only children the branch began with: every one R4 saw). True when added."""
        stack = self._stack
        p = i
        live: _WNode | None = None  # the walk left the stack: a node of a subtree not started yet
        for tid, _accs in a.walk:
            if live is None:
                if p in self._lent:
                    return False  # (its other children are another piece's)
                node = stack[p]
                if node.wut and node.wut[0].tid == tid:
                    if p + 1 < len(stack):
                        p += 1  # the child being explored: its node is the next on the stack
                    else:
                        live = node.wut[0]  # the child the next execution takes
                    continue
                nxt = next((w for w in node.wut[1:] if w.tid == tid), None)
            else:
                nxt = next((w for w in live.children if w.tid == tid), None)
            if nxt is None:
                return False  # explored already (asleep there), or not where the walk went
            live = nxt
        if live is None and p in self._lent:
            return False
        children = stack[p].wut if live is None else live.children
        began = a.asleep[-1]
        if not children or any(w.tid not in began for w in children):
            return False  # a child added since, or explored: one process met the sequence first
        _attach(children, list(a.rest))
        return True

    @classmethod
    def piece_at(cls, prefix: Sequence[_Node], owners: list[int], v: Sequence[tuple[int, Accs]],
                 sleep: dict[int, Accs], number: int, traces: bool = False, *, walk: int = 0,
                 asleep: Sequence[dict[int, Accs]] = (), below: int = -1) -> OptimalDPOR:
        """R9: a search of the node ``prefix[-1]`` (a copy of another piece's stack down to it, whose
        positions above are the pieces ``owners``') that explores the wakeup sequence ``v`` there,
        with ``sleep`` asleep, and owns that node; the coordinator's piece ``number``. With ``walk``
        (:class:`Apart`): the first ``walk`` events of ``v`` are a branch the piece ``below`` owns
        (that node's owner), run as a fixed prefix, each next node with the threads ``asleep`` there
        added to its sleep set; the piece owns the node where the rest of ``v`` begins."""
        s = cls()
        s._owners = list(owners)
        s.number = number
        nodes = copy.deepcopy(list(prefix))
        for n in nodes[:-1]:
            del n.wut[1:]
            if n.wut:
                n.wut[0].children = []
        root = nodes[-1]
        root.wut = []
        _attach(root.wut, list(v))
        root.sleep = dict(sleep)
        s._stack = nodes
        s.traces = set() if traces else None
        if not walk:
            s._shared = {len(prefix) - 1}
            s._began = {len(nodes) - 1: {root.wut[0].tid: copy.deepcopy(root.wut[0])}}
            s._own_from = len(nodes) - 1
            return s
        # R9: the node where the rest begins is known once an execution reaches it (a forced step
        # R6 defers a sequence past may come between): owned from then on (:meth:`_reach`)
        s._own_from = _FAR
        s._below = below
        chain = [root.wut[0]]
        while chain[-1].children:
            chain.append(chain[-1].children[0])
        s._asleep = [(chain[x + 1], dict(asleep[x])) for x in range(walk) if x + 1 < len(chain)]
        s._head = chain[walk] if walk < len(chain) else None
        return s

    def _reach(self, pos: int, node: _Node) -> None:
        """R9: a new node of a piece whose prefix is another piece's branch (:meth:`piece_at`): the
        threads one process explored there before the branch's next event go to sleep; the node where
        the piece's own sequence begins becomes the piece's."""
        head = node.wut[0]
        for x, (wn, extra) in enumerate(self._asleep):
            if wn is head:
                node.sleep.update({q: a for q, a in extra.items() if q != head.tid})
                del self._asleep[x]
                break
        if head is self._head:
            self._head = None
            self._asleep = []
            self._own_from = pos
            self._owners.extend([self._below] * (pos - len(self._owners)))
            self._shared = {pos}
            self._began = {pos: {head.tid: copy.deepcopy(head)}}

    def prefix(self, depth: int) -> list[_Node]:
        """R9: the nodes of the stack down to position ``depth``, as :meth:`piece_at` takes them
        (wakeup trees cut to the chosen child)."""
        out = []
        for n in self._stack[: depth + 1]:
            c = copy.copy(n)
            c.wut = [_WNode(n.wut[0].tid, n.wut[0].accs)] if n.wut else []
            c.sleep = dict(n.sleep)
            out.append(c)
        return out

    def _fingerprint(self) -> int:
        """R9: the Mazurkiewicz trace of the execution that just ended, as a number: each event
        as (its thread, its rank among that thread's events, its accesses, the number of events
        of every thread that happen before it). Equivalent executions have the same events in
        the same happens-before order, so the same fingerprint."""
        clk, events = self._clk, self._events
        rank: list[int] = []
        count: dict[int, int] = {}
        desc: list[tuple[int, int, Any, tuple[int, ...]]] = []
        for j, (tid, accs) in enumerate(events):
            n = count.get(tid, 0) + 1
            count[tid] = n
            rank.append(n)
            seen = [rank[x] if x >= 0 else 0 for x in (clk[j] if j < len(clk) else [])]
            while seen and not seen[-1]:
                seen.pop()  # (the clock's width is the threads that existed then)
            desc.append((tid, n, accs, tuple(seen)))
        desc.sort()
        return hash(tuple(desc))

    def path(self, depth: int | None = None) -> tuple[int, ...]:
        """The threads chosen at the first ``depth`` positions of the stack (all by default):
        the node at ``depth`` (R9), or the next execution's prefix."""
        return tuple(n.wut[0].tid for n in self._stack[:depth])


@dataclass
class Apart:
    """R9: a late wakeup sequence to explore as a piece of its own: at the node it was found for, whose
    sleep set is ``sleep`` (as the branch it belongs to began), it runs ``walk`` -- the events of that
    branch's subtree, as it began, that R4's walk follows (empty: none known) -- then ``rest``, what is
    left of the sequence. ``asleep[x]`` are the children of ``walk[x]`` explored before the walk's next
    event (all of them before ``rest``): one process explores those first, so they sleep there."""

    sleep: dict[int, Accs]
    walk: list[tuple[int, Accs]] = field(default_factory=list)
    asleep: list[dict[int, Accs]] = field(default_factory=list)
    rest: list[tuple[int, Accs]] = field(default_factory=list)

    @property
    def chain(self) -> list[tuple[int, Accs]]:
        return self.walk + self.rest


def _walk(branch: _WNode, v: list[tuple[int, Accs]]) -> tuple[list[_WNode], list[tuple[int, Accs]]] | None:
    """R4's walk of ``v`` down a branch whose first node is compatible with it: None when it ends at a leaf
    or uses ``v`` up (nothing would have been inserted: covered); else the branch's nodes it followed
    (``branch`` first) and what is left of ``v``, which R4 would have added as a new last child of the
    last of them; ``([], v)`` when the walk cannot follow even the first node."""
    rest = _after(v, branch.tid, branch.accs)
    if rest is None:
        return [], v  # (its event as known differs: explored apart at the node, nothing lost)
    path = [branch]
    children = branch.children
    while rest:
        if not children:
            return None
        for wn in children:
            after = _after(rest, wn.tid, wn.accs)
            if after is not None:
                rest, children = after, wn.children
                path.append(wn)
                break
        else:
            return path, rest
    return None


def _apart(sleep: dict[int, Accs], b: _WNode | None, v: list[tuple[int, Accs]]) -> Apart | bool:
    """R9: ``v`` belongs to the branch that began with the subtree ``b`` (None: not known) at a node
    whose sleep set was ``sleep`` then: True when R4's walk down ``b`` covers it; else explored apart,
    from the node of ``b``'s subtree where the walk ends (:class:`Apart`)."""
    if b is None:
        return Apart(sleep, rest=v)
    walked = _walk(b, v)
    if walked is None:
        return True
    path, rest = walked
    if not path:
        return Apart(sleep, rest=rest)
    asleep: list[dict[int, Accs]] = []
    for x, wn in enumerate(path):
        nxt = path[x + 1] if x + 1 < len(path) else None
        before = wn.children[: wn.children.index(nxt)] if nxt is not None else wn.children
        # (an event whose accesses are not known cannot sleep: it would cover everything)
        asleep.append({c.tid: c.accs for c in before if c.accs})
    return Apart(sleep, [(wn.tid, wn.accs) for wn in path], asleep, rest)


def place(sleep: dict[int, Accs], current: int | None, current_accs: Accs, child: int,
          v: list[tuple[int, Accs]], began: dict[int, _WNode] | None = None) -> Apart | bool:
    """R9: where a wakeup sequence ``v`` found under the child ``child`` of a node goes when it
    arrives after that node moved on: ``sleep`` is the node's sleep set in the order it grew (the
    threads asleep at it, then its children as they were explored), ``current`` the child being
    explored (None: none). When ``child`` was explored, R4 would have dropped ``v`` if a thread
    asleep then is a weak initial of it, else walked the node's tree, whose children after
    ``child`` were all there then: ``v`` joins the first compatible one's branch, or comes last.
    Returns True when ``v`` is covered, False when the node's tree can still take it (no child
    after ``child`` is compatible: the caller inserts it, or explores it with every child asleep
    if the node is finished); else how to explore it apart (:class:`Apart`): with the sleep set of
    the node when that child's branch began (every child explored before it asleep), as it would
    have been inside that branch -- from the node where R4's walk down the subtree that branch
    began with (``began``) ends, with the children explored there before it asleep; True when
    that walk ends at a leaf (covered)."""
    began = began or {}
    keys = list(sleep)
    cut = keys.index(child) if child in sleep else len(keys)
    for q in keys[:cut]:
        if OptimalDPOR._weak_initial(q, sleep[q], v):
            return True
    for x in range(cut + 1, len(keys)):
        q = keys[x]
        if OptimalDPOR._weak_initial(q, sleep[q], v):
            return _apart({k: sleep[k] for k in keys[:x]}, began.get(q), v)
    if current is not None and current != child and _after(v, current, current_accs) is not None:
        return _apart(dict(sleep), began.get(current), v)
    return False


def _waiting_alone(t: KThread) -> dict[int, tuple[int, int]] | None:
    """R1/R3: ``t`` runs alone at its lock point with the lock owned (its attempt will wait):
    its (lock, owner's tid) for the node's ``waiting``; else None."""
    lk = t.park
    if lk is not None and lk.owner is not None:
        return {t.tid: (lk.park_on[1], getattr(lk.owner, "tid", -1))}
    g = t.gate
    if g is not None and g.waits(t):
        return {t.tid: (g.oid, getattr(g.owner, "tid", -1))}
    return None


def _not_enabled(off: list[KThread], some_enabled: bool) -> tuple[dict[int, int] | None,
                                                                  dict[int, tuple[int, int]] | None]:
    """R1/R3: the runnable threads ``off`` that are not enabled, each at its lock point with the lock
    owned: while ``some_enabled``, each one's lock (a node's ``disabled``); else, every runnable
    thread being one of them, each one's (lock, owner's tid) (a node's ``waiting``)."""
    locks: dict[int, int] = {}
    owners: dict[int, Any] = {}
    for t in off:
        lk = t.park
        if lk is not None and lk.owner is not None:
            locks[t.tid] = lk.park_on[1]
            owners[t.tid] = lk.owner
        else:
            locks[t.tid] = t.gate.oid
            owners[t.tid] = t.gate.owner
    if some_enabled:
        return locks, None
    return None, {q: (lk_oid, getattr(owners[q], "tid", -1)) for q, lk_oid in locks.items()}


def _mark(node: _Node, t: KThread, op: str, obj: int) -> None:
    """R3: does the event taken from ``node``, ``t`` going on from its point before ``op`` on
    ``obj``, acquire a mutex at its ``mutex_lock`` point (free: it takes it; or a ww_mutex with an
    attempt that could only have waited while it was owned) or release one?"""
    lk = t.park
    if lk is not None:
        if lk.owner is None:
            node.acq = lk.park_on[1]
        return
    g = t.gate
    if g is not None:
        if g.owner is None:
            node.acq = g.oid
    elif op in _RELEASES:
        node.rel = (obj,)


def _attach(children: list[_WNode], rest: list[tuple[int, Accs]]) -> None:
    """Append ``rest`` as a new chain after the existing children."""
    if not rest:
        return
    head = _WNode(rest[0][0], rest[0][1])
    cur = head
    for tid, accs in rest[1:]:
        nxt = _WNode(tid, accs)
        cur.children.append(nxt)
        cur = nxt
    children.append(head)
