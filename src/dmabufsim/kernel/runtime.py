"""The simulated machine: kthreads on greenlets, scheduling points, virtual time.

Models the parts of ``kernel/sched`` and ``kernel/time`` the buffer-sharing
stack leans on: threads that run until they reach a *scheduling point*,
block on wait queues, sleep on timers and get interrupted by signals, with
one virtual clock (nanoseconds) that only moves when no thread can run.

Rules:

* R1 (determinism): the order of everything is decided by the strategy at
  scheduling points and recorded as the replay token; nothing depends on
  the wall clock, ``id()`` or unseeded randomness. Same scenario, same
  strategy state => identical trace digest, in any process.
* R2 (scheduling points): every model operation on shared state calls
  :meth:`Kernel.point` *before* it acts, naming the object and whether it
  writes. The event is emitted when the operation really happens (after the
  thread was chosen), so the trace is the order of effects.
* R3 (time): CPU work takes no virtual time. The clock jumps to the next
  timer only when no thread is runnable; a sleep is a timer.
* R4 (deadlock): no runnable thread, no pending timer, and a non-daemon
  thread blocked => a ``deadlock`` finding naming every blocked thread and
  what it waits on and every lock it holds -- the lock it waits on too when
  it already holds it (a self-deadlock), marked so. The entry its own
  attempt pushed on ``held_locks`` (``lock_acquire`` runs before the lock
  is taken) is the attempt, not a hold. Daemon threads (device engines,
  workers) blocked at the end are idle, not deadlocked.
* R5 (atomic context): a thread in atomic context (spinlock held,
  preemption or irqs disabled, RCU read side, hardirq) that calls a
  sleeping function is a ``sleep-in-atomic`` finding; the execution goes on.
* R6 (robustness): an exception escaping a kthread is an ``exception``
  finding; more than ``max_steps`` scheduling points without progress is a
  ``livelock`` finding, more than ``runaway_steps`` in all a ``runaway``
  one, and either ends the execution (``kernel/progress.py`` P1-P3); a
  scenario bug is never a simulator crash.
  The converse holds too: an exception raised while the *strategy* ran (a
  frame of a ``Strategy`` method in its traceback; scenario code never runs
  there) is no bug of the scenario: the execution stops and ``run()``
  raises it as a ``SimulatorError`` ("internal error in strategy ..."), or
  as raised when it is the strategy's ``UsageError`` refusing the
  scenario -- never an ``exception`` finding.
  A ``KeyboardInterrupt`` (the user's Ctrl-C, or SIGTERM in the CLI) is not
  the scenario's: it ends the execution, which is torn down, and
  :meth:`Kernel.run` raises it to its caller.
* R7 (timer callbacks) run in the timer interrupt: they may wake threads and
  raise interrupts (:meth:`Kernel.raise_irq`), never block or take locks.
* R8 (early timers, opt-in with ``Config.options["early_timers"]``): at a
  scheduling point of a thread with interrupts enabled, the strategy may
  fire the next timer now (a recorded choice, ``Kernel.random(2)``): CPU
  work then took that long, and device completions, their interrupts and
  timeouts become part of the schedule the explorer searches. Off, nothing
  changes (R3).
* R9 (watchdog, ``watchdog.py``): a thread that reaches no scheduling
  point for ``softlockup_thresh`` seconds of wall time is a ``soft-lockup``
  finding and ends the execution; past ``deadline`` the execution ends at
  its next scheduling point (outcome ``time-limit``). Neither changes an
  execution that does not hit it (R1).
* R10 (hung tasks): a thread asleep uninterruptibly for longer than
  ``hung_task_timeout`` of virtual time is a ``hung-task`` finding and ends
  the execution (``kernel/hung_task.py`` H1-H3).
* R11 (checking declarations, opt-in with ``Config.check_accesses``): the
  runtime tells :mod:`~dmabufsim.kernel.accesses` where each thread's steps
  begin and end (points, waits, wake-ups, creation, exit, joins); two
  conflicting accesses of model state that the declared accesses do not
  order are an ``undeclared-access`` finding. Off, nothing is installed.
  A wake-up step writes what the thread waited on, unless the wait says
  the woken thread only reads it (``block(..., woken_reads=True)``: the
  waker unlinked it, so waiters woken together are independent steps).
* R12 (reduction, ``Config.reduction``, ``kernel/reduction.py`` L1-L5): a
  scheduling point no other thread can observe is folded: its step and
  event happen, no choice is offered. Declared guards (:meth:`Kernel.guard`)
  and blocking-only locks (:meth:`Kernel.blocking_only`) are checked with
  reduction on or off. A whole critical section inside one step reads its
  lock (:meth:`Kernel.section_read`, ``kernel/reduction.py`` L6).
* R13 (reuse): a Kernel that ran may be :meth:`Kernel.reset` for the next
  execution of the same configuration and strategy: every per-execution
  state is made anew (an extension with a reset resets its own in place,
  ``register_extension``), so the execution is the one a new Kernel would
  run -- same trace digest, findings and token (R1). What depends only on
  the configuration is kept (the scenario's id is looked up once).
* R14 (timer order, timer identity): timers of equal expiry fire in the
  order of the thread that armed them (its tid; -1 for a timer armed in a
  timer callback), then of that thread's own count of armings -- never in
  the order the threads' steps happened to arm them. The kernel promises
  no order here: ``enqueue_timer`` (``kernel/time/timer.c``) adds a timer
  at the head of its wheel bucket and ``expire_timers`` runs a bucket from
  the head, so any fixed order is one the kernel may take; this one depends
  on each thread's own program only. A callback only wakes a thread or
  raises an interrupt or softirq, whose handler runs as a thread of its own
  (R7), so the threads a time advance makes runnable are all runnable at
  once and the strategy decides who runs first. Each sleeper's timer is
  its own object (``TIMER_OBJ - tid``, :meth:`Kernel.sleep_obj`): ``msleep``,
  ``nsleep`` and ``schedule_timeout`` declare it, not the clock, so two
  sleeps of different threads are independent steps; another thread's
  early wake-up of a sleeper writes it (``kthread_park`` K1). With early
  timers on (R8) the strategy fires the first timer while threads run, so
  sleeps stay accesses of the one clock object (-1), as before. Each
  advance begins a new *epoch* (``Kernel.epoch``), also when the timers
  fired are due at once: no step of a thread that could run before it
  comes after it (R3).
* R15 (joins): :meth:`Kernel.join` without a timeout, from a thread, is a
  scheduling point of its own (op ``join`` on the joined thread's tid, a
  read of its exit) whether or not that thread exited. While it runs the
  joiner's ``gate`` is a :class:`~dmabufsim.kernel.thread.JoinGate` (the
  exit it waits for): optimal DPOR does not count the joiner as enabled
  until the exit, as a busy lock attempt (``odpor`` R1, R3). Every other
  strategy may choose it there: it then blocks until the exit wakes it
  (uninterruptibly; ``might_sleep`` is checked before the point, once, when
  the thread had not exited). A join with a timeout (it can give up) or
  from outside a thread has no point: it blocks at once, and a join of an
  exited thread reads the exit in the running step.
* R16 (sleeps that only read): a step that ends in a sleep wrote what it
  sleeps on (it looked, queued itself and slept: ``odpor`` R1, accesses
  A1), so two sleepers of one object are ordered. ``Kernel.block(sleep_reads=True)``
  declares the sleep a read instead, for a sleeper whose queued node only
  wakes it and whose place among the other such nodes nothing observes
  (``dma_fence`` R14: the waiters ``dma_fence_default_wait`` links on a
  fence's callback list, all woken by one signal in one step; runnable
  threads are kept by tid, so the wake order leaves no trace). Whatever
  wakes such a sleeper still writes the object (accesses A4), so it is
  ordered after every sleep it ends.
"""

from __future__ import annotations

import heapq
import threading
import traceback
from collections.abc import Callable, Container
from typing import Any

from greenlet import GreenletExit, greenlet

from . import token as _token
from . import watchdog as _watchdog
from .accesses import AccessChecker
from .choices import COMPACT_AT, ChoiceLog, token_of
from .errors import DmabufsimError, NotRunningError, ReplayError, SimulatorError, ThreadKilled, UsageError
from .execution import Config, Execution, ThreadSummary, config_of, execution_of
from .findings import Finding, ThreadInfo
from .held import LockTracker
from .hung_task import NEVER, SPINNING, check_hung_tasks, stall_begin
from .identity import scenario_id
from .progress import report_livelock, report_runaway
from .reduction import Reducer
from .stack import Frame, _internal, call_site, scenario_stack
from .strategy import RandomStrategy, ReplayStrategy, Strategy
from .thread import AtomicReason, JoinGate, KThread, ThreadState
from .timer import Timer
from .trace import _DETX, _OPX, STACK_ROOTS, LockMark, SchedMark, Trace, detail_word, op_word, part_owner
from .watchdog import WatchdogStop

#: ``MAX_SCHEDULE_TIMEOUT``: a timeout of None means wait forever.
MAX_SCHEDULE_TIMEOUT = None
NSEC_PER_USEC = 1_000
NSEC_PER_MSEC = 1_000_000
NSEC_PER_SEC = 1_000_000_000
#: Steps between the periodic checks (livelock budget, replay log, trace words: trace T2
#: keeps at most about this many event words unfolded).
PERIOD = 1 << 14
#: The virtual clock as an object: what a sleep declares with early timers on (R8, R14).
CLOCK = -1
#: Thread ``tid``'s sleep timer is the object ``TIMER_OBJ - tid`` (R14), below every real object id.
TIMER_OBJ = -(1 << 42)
#: Pseudo-objects from ``TIMER_OBJ - TIMER_SPAN + 1`` up to ``TIMER_OBJ`` are sleep timers.
TIMER_SPAN = 1 << 39


def is_timer_obj(obj: int) -> bool:
    """Is ``obj`` a sleeper's timer (R14)?"""
    return TIMER_OBJ - TIMER_SPAN < obj <= TIMER_OBJ


_running: Kernel | None = None
_RUNNABLE = ThreadState.RUNNABLE
_BLOCKED = ThreadState.BLOCKED
_EXITED = ThreadState.EXITED

#: Factories run at the start of every execution, in registration order:
#: the higher rooms (lockdep, checkers) install their per-execution state
#: through them, so the runtime never imports anything above it. Each with its
#: in-place reset for a reused Kernel, or None (R13).
_EXTENSIONS: list[tuple[str, Callable[[Kernel], None], Callable[[Kernel, Any], None] | None]] = []


def register_extension(
    name: str, setup: Callable[[Kernel], None], reset: Callable[[Kernel, Any], None] | None = None,
) -> None:
    """Run ``setup(kernel)`` at the start of every execution (idempotent by name).

    ``reset(kernel, state)``, if given, is run instead on a Kernel reused for
    its next execution (R13) whose ``kernel.ext[name]`` is ``state``: it makes
    ``state`` what ``setup`` would have made, in place; the exit checks
    ``setup`` appended to ``kernel.at_exit`` are kept (they are ``state``'s).
    """
    for i, (n, _, _) in enumerate(_EXTENSIONS):
        if n == name:
            _EXTENSIONS[i] = (name, setup, reset)
            return
    _EXTENSIONS.append((name, setup, reset))


def current_kernel() -> Kernel:
    """The Kernel whose execution is running (model objects bind to it)."""
    if _running is None:
        raise NotRunningError(
            "this model object needs a running Kernel: create it inside a scenario "
            "function passed to Kernel.run()"
        )
    return _running


def current() -> KThread:
    """The running kthread (``current`` in the kernel)."""
    return current_kernel().current


class _GreenletPool(threading.local):
    """Idle kthread greenlets of this OS thread, reused across threads and executions.

    Starting a fresh greenlet costs about twenty switches (its first Python
    frame allocates a new interpreter data stack); a finished kthread's
    greenlet goes back here instead of dying.
    """

    def __init__(self) -> None:
        self.idle: list[greenlet] = []


_POOL = _GreenletPool()
#: Idle greenlets kept per OS thread (more threads than this start fresh ones).
_POOL_MAX = 64


def _pooled_main(k: Kernel | None, t: KThread | None) -> None:
    """Run function of a pooled greenlet: run a kthread, then the next one, then go idle.

    When a kthread exits and another is runnable, the choice the hub would
    make is made here (:meth:`Kernel._after_exit`, the same strategy call)
    and the next thread runs without a trip through the hub: on this very
    greenlet if it has not started yet, else by switching to it. Otherwise
    (nothing runnable, the execution stopping or being torn down) the
    greenlet goes idle and returns to the hub exactly as if it had died
    (the hub is its parent); an exception escaping ``_thread_main`` ends the
    greenlet and reaches the hub as before.
    """
    me = greenlet.getcurrent()
    while k is not None and t is not None:
        k._thread_main(t)
        t.glet = None  # an exited thread has no greenlet (as a dead one has no frame)
        nxt = k._after_exit()
        if nxt is not None and nxt.glet is None:
            nxt.glet = me  # not started: it runs right here
            me.gr_context = None
            t = nxt
            continue
        hub = k._hub
        k = t = None  # hold nothing of the execution while idle
        idle = _POOL.idle
        if nxt is None and (hub is None or len(idle) >= _POOL_MAX):
            return
        idle.append(me)
        me.gr_context = None
        if nxt is not None:
            assert nxt.glet is not None
            k, t = nxt.glet.switch()  # resumed only by Kernel._start, with the next kthread
        else:
            assert hub is not None
            k, t = hub.switch()


def _exited_fn(*args: Any) -> None:
    """What an exited kthread's ``fn`` becomes (it must never run again)."""
    raise SimulatorError("an exited kthread was run again")


def _entry_frame(fn: Any) -> tuple[Frame, ...]:
    """The frame a kthread not yet started will begin in: its function, at its ``def`` line."""
    fn = getattr(fn, "func", fn)  # functools.partial
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None or fn is _exited_fn or _internal(code.co_filename):
        return ()
    return (Frame(code.co_filename, code.co_firstlineno, code.co_name),)


def _holding(t: KThread) -> list[str]:
    """The locks a blocked thread holds, for the deadlock report (R4).

    ``lock_acquire`` pushes a ``held_locks`` entry before the lock is taken,
    so the last entry of the lock the thread sleeps on is its own attempt:
    it is left out. Any earlier entry of that same lock is a real hold (the
    thread waits for itself) and says so.
    """
    obj = t.blocked_on[1] if t.blocked_on is not None else -1
    held = list(t.held)
    attempt = next((i for i in range(len(held) - 1, -1, -1) if held[i].map.oid == obj), -1)
    return [
        f"{hl.map.name} (#{obj}: the lock it waits on, already held by this thread)" if hl.map.oid == obj
        else hl.map.name
        for i, hl in enumerate(held) if i != attempt
    ]


class _StrategyFault(SimulatorError):
    """The strategy broke its contract (it chose a thread that cannot run): an internal error (R6)."""


def _raised_by_strategy(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a :class:`Strategy` method ran, or is a broken strategy
    contract (R6): scenario code never runs there."""
    if isinstance(exc, _StrategyFault):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if isinstance(tb.tb_frame.f_locals.get("self"), Strategy):
            return True
        tb = tb.tb_next
    return False


def _internal_error(strategy: Strategy, exc: BaseException) -> SimulatorError:
    what = str(exc) if isinstance(exc, _StrategyFault) else f"{type(exc).__name__}: {exc}"
    return SimulatorError(
        f"internal error in strategy {strategy.describe()}: {what} (a bug of the explorer, not of the scenario)"
    )


def _choices(n: int) -> str:
    return f"{n} choice" if n == 1 else f"{n} choices"


def _blocked_oid(t: KThread) -> int:
    return t.blocked_on[1] if t.blocked_on is not None else -1


class Kernel:
    """One simulated machine, good for one execution.

    ``Kernel(seed=1).run(scenario)`` runs ``scenario(kernel)`` as the first
    kthread under a seeded random schedule and returns an
    :class:`Execution`. ``Kernel(replay=token)`` rebuilds the identical
    execution; ``Kernel(strategy=...)`` takes any :class:`Strategy`.
    ``deadline``: a ``time.monotonic()`` value past which the execution
    stops at its next scheduling point, outcome ``time-limit`` (R9; the
    explorer's wall-time budget; never part of the model).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        strategy: Strategy | None = None,
        replay: str | None = None,
        config: Config | None = None,
        deadline: float | None = None,
        **overrides: Any,
    ) -> None:
        if replay is not None and strategy is not None:
            raise UsageError("give either replay= or strategy=, not both")
        #: The token replayed, parsed (``Kernel(replay=token)``): checked against the scenario in run().
        self._replay: _token.Token | None = None
        self._replay_text = ""
        if replay is not None:
            self._replay = _token.parse(replay)
            self._replay_text = replay.strip()
            strategy = ReplayStrategy(self._replay.choices)
        self.seed = seed
        self.strategy: Strategy = strategy if strategy is not None else RandomStrategy(seed)
        #: The seeded random walk's bit source when the strategy is exactly RandomStrategy:
        #: point() then draws its choice inline (the same stream as RandomStrategy.next_thread).
        strat = self.strategy
        self._randbits = strat._rng.getrandbits if type(strat) is RandomStrategy else None
        #: The strategy's uniform draw (``Strategy.uniform``): point() then picks inline too.
        self._uniform = strat.uniform
        #: The strategy's ``observe_forced(t)``, if it has one: called when the only runnable
        #: thread is resumed or started outside a scheduling point (no choice is recorded).
        self._forced_hook: Callable[[KThread], None] | None = getattr(strat, "observe_forced", None)
        #: The strategy replays a token (itself, or the one a recorder wraps): no reduction (R12).
        self._replaying = isinstance(strat, ReplayStrategy)
        self._replaying_inner = isinstance(getattr(strat, "inner", strat), ReplayStrategy)
        # What depends only on the configuration, the strategy and the deadline: kept by
        # reset() (R13); the state of one execution is made by _fresh().
        cfg = self.config = config_of(config, overrides)
        self._max_steps = cfg.max_steps
        self._runaway_steps = cfg.runaway_steps
        #: The hung-task detector (hung_task H1-H3): the timeout (0: off).
        self._hung_timeout = cfg.hung_task_timeout
        #: R8: the strategy may fire the next timer at a scheduling point.
        self._early_timers = bool(cfg.options.get("early_timers"))
        #: R9: wall-clock end of the execution (the watchdog reads it).
        self.deadline = deadline
        #: Called after every lock acquisition with the thread and its held stack (set
        #: before run(); the held-lock trackers read it when they are made).
        self.lock_observer: Callable[[KThread, list[Any]], None] | None = None
        #: Signatures of findings whose text, stacks and token nobody will read (the explorer
        #: passes the table of findings it already holds): see :meth:`wants_text`. When every
        #: finding of the execution is one of them, they carry no token (``Execution.token``
        #: makes it when asked: zlib's set-up costs more than a short execution).
        self.known_findings: Container[str] = ()
        #: R13: the exit checks each extension's setup added, by name, kept across :meth:`reset`
        #: for the extensions that reset their state in place.
        self._ext_checks: dict[str, list[Callable[[], None]]] = {}
        #: R13: the state objects of those extensions, by name, while a reset Kernel waits to run.
        self._ext_kept: dict[str, Any] = {}
        #: R13: the scenario run last and its id (``scenario_id`` is looked up once per scenario).
        self._last_scenario: Any = None
        self._last_id: Any = None
        self._fresh()

    def _fresh(self) -> None:
        """The state of one execution, as a new Kernel has it (R13: :meth:`reset` calls it again)."""
        cfg = self.config
        #: The short id of the scenario run (kernel.identity R3): the token carries it.
        self.scenario_id = ""
        self._notes: list[str] = []
        #: An exception raised by the strategy inside a kthread (R6): an internal error, raised by run().
        self._internal: Exception | None = None
        #: Virtual time in nanoseconds.
        self.now = 0
        #: Scheduling points taken.
        self.steps = 0
        self.trace = Trace(record=cfg.record_trace)
        #: The lock_stat hooks of a recorded execution (:meth:`lock_stat`); None when not recording.
        self.lock_marks: list[LockMark] | None = [] if cfg.record_trace else None
        #: Where a thread was preempted or went to sleep, in a recorded execution; None when not recording.
        self.sched_marks: list[SchedMark] | None = [] if cfg.record_trace else None
        self.findings: list[Finding] = []
        #: Per-execution state of the rooms above the kernel, by name.
        self.ext: dict[str, Any] = {}
        #: The held-lock tracker; the lockdep room replaces it with the validator.
        self.lockdep: LockTracker = LockTracker(self)
        #: Checks run when the execution ends (leak checks), in order.
        self.at_exit: list[Callable[[], None]] = []
        self._signatures: set[str] = set()
        self._threads: list[KThread] = []
        #: Threads ever created (the next tid); the table may have dropped exited irq threads.
        self._spawned = 0
        #: Interrupt handler threads that exited normally and left the table (see _exit_thread).
        self.irq_threads_retired = 0
        self._runnable: list[KThread] = []
        self._current: KThread | None = None
        self._timers: list[Timer] = []
        self._timer_seq = 0
        #: Timers armed so far by each thread (-1: by timer callbacks), for their order (R14).
        self._timer_nth: dict[int, int] = {}
        #: Time advances so far, each firing the timers due then (R14): steps of one epoch
        #: ran with no timer firing between them (even a timer due at once fires only when
        #: no thread can run, R3).
        self.epoch = 0
        self._oid = 0
        #: The replay log; the hot paths append to its plain list ``_choices`` (choices R1).
        self._log = ChoiceLog()
        self._choices = self._log.recent
        self._preemptions = 0
        self._hub: greenlet | None = None
        #: The step of the last progress (progress P1) and what it was.
        self._progress_step = 0
        self._progress_what = "start"
        #: The virtual time after which a stall may have passed the hung-task timeout.
        self._hung_check_at = NEVER
        #: The step count after which point() runs _periodic() (livelock window, runaway cap,
        #: log compaction).
        self._check_at = min(cfg.max_steps, cfg.runaway_steps, COMPACT_AT, PERIOD)
        self._stopping = ""
        #: R9: the outcome the watchdog asked for at the next scheduling point ("" while none).
        self._halt = ""
        #: R6: the user's interruption that escaped a kthread, raised by run() after teardown.
        self._interrupt: KeyboardInterrupt | None = None
        self._dead = False
        self._in_timer = False
        #: The undeclared-access checker (debug mode, ``Config.check_accesses``), or None.
        self._acc_check: AccessChecker | None = AccessChecker(self) if cfg.check_accesses else None
        #: _dead or _in_timer or _early_timers or _halt or checking accesses: point()'s one test for
        #: its rare cases.
        #: The Lipton reduction's rules (R12), when on or when something is declared guarded.
        self._reducer: Reducer | None = (
            Reducer(self, True)
            if cfg.reduction and not self._replaying_inner
            else None)
        #: True while a folded point emits its event (an explorer's tap merges it into the step).
        self.folded = False
        #: Freed object ids (kernel.lifetime L4) once something tracked was freed, else None;
        #: every declared access of one calls ``uaf_hook(op, obj)``.
        self.freed_oids: dict[int, Any] | None = None
        self.uaf_hook: Callable[[str, int], None] | None = None
        self._unusual = self._early_timers or self._acc_check is not None or self._reducer is not None
        self._ran = False
        self._summaries: tuple[ThreadSummary, ...] = ()
        self.outcome = "completed"

    # ------------------------------------------------------------------ identity

    def new_oid(self) -> int:
        """A fresh object id, stable across executions (creation order)."""
        self._oid += 1
        return self._oid

    @property
    def current(self) -> KThread:
        """The running kthread."""
        t = self._current
        if t is None:
            raise SimulatorError("no kthread is running (called from a timer callback?)")
        return t

    @property
    def threads(self) -> list[KThread]:
        """Every kthread of this execution, in creation order.

        Interrupt handler threads that returned normally are dropped from
        the table when no trace is recorded or listened to (counted in
        ``irq_threads_retired``), so a long run's table stays small.
        """
        return list(self._threads)

    @property
    def running(self) -> bool:
        """True while the execution is live (False during teardown)."""
        return not self._dead

    # ------------------------------------------------------------------ threads

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str | None = None, daemon: bool = False) -> KThread:
        """``kthread_run``: create a runnable kthread running ``fn(*args)``.

        A *daemon* thread (an engine, a worker) may still be blocked when the
        execution ends without that being a deadlock.
        """
        return self._spawn(fn, args, name, daemon, None)

    def _spawn(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str | None, daemon: bool,
               irq: str | None, softirq: str | None = None) -> KThread:
        tid = self._spawned
        self._spawned = tid + 1
        t = KThread(tid, name or str(getattr(fn, "__name__", f"kthread{tid}")), fn, args)
        if daemon:
            t.data["daemon"] = True
        if irq is not None:
            # Marked before the spawn point: the handler may run right there.
            t.in_irq = True
            t.atomic.append(AtomicReason("hardirq", irq, None))
        elif softirq is not None:
            t.in_softirq = True
            t.atomic.append(AtomicReason("softirq", softirq, None))
        self._threads.append(t)
        self._runnable.append(t)  # tids grow, so the list stays sorted
        if self._acc_check is not None:
            self._acc_check.spawned(self._current if not self._in_timer else None, t)
        if self._current is not None and not self._dead and not self._in_timer:
            self.point("spawn", t.tid, True, t.name)
        return t

    def raise_irq(self, fn: Callable[..., Any], *args: Any, name: str = "irq") -> KThread:
        """Deliver an interrupt: run ``fn(*args)`` in hardirq context (atomic).

        The handler runs as its own short-lived thread so that a spinlock it
        contends on can be waited for; it may not sleep (R5).
        """
        return self._spawn(fn, args, name, False, name)

    def raise_softirq(self, fn: Callable[..., Any], *args: Any, name: str = "softirq") -> KThread:
        """Run ``fn(*args)`` as a softirq handler (a tasklet, a timer softirq, NAPI).

        Softirq context is atomic (it may not sleep, R5) with hardirqs
        enabled; lockdep marks the locks it takes softirq-safe. Like an
        interrupt handler, it runs as its own short-lived thread.
        """
        return self._spawn(fn, args, name, False, None, name)

    def local_bh_disable(self, name: str = "local_bh_disable") -> None:
        """``local_bh_disable``: no softirq runs on this CPU until :meth:`local_bh_enable` (atomic)."""
        self.atomic_enter("bh_disabled", name)

    def local_bh_enable(self, name: str = "local_bh_disable") -> None:
        """``local_bh_enable``: softirqs may run again; lockdep marks the locks still held
        as taken with softirqs enabled (``trace_softirqs_on``)."""
        self.atomic_exit("bh_disabled", name)

    def join(self, t: KThread, timeout: int | None = None) -> Any:
        """``kthread_stop``-style join: block until ``t`` exits; return its result.

        Without a timeout the join is a scheduling point of its own (R15):
        the point reads ``t``'s exit, and while ``t`` runs the joiner waits
        there behind a :class:`~dmabufsim.kernel.thread.JoinGate`; if chosen
        before ``t`` exits it blocks, as a join with a timeout does at once.
        """
        me = self._current
        if timeout is None and me is not None and not self._in_timer and not self._dead:
            if t is me:
                raise UsageError("a kthread cannot join itself")
            if not t.exited:
                self.might_sleep("join")
            me.gate = JoinGate(t)  # R15: optimal DPOR holds the joiner here while t runs
            self.point("join", t.tid, False, t.name)
            me.gate = None
            while not t.exited:
                t.joiners.append(me)
                self.block("join", t.tid)
                if me in t.joiners:
                    t.joiners.remove(me)
            return t.result
        if t.exited:
            # The join reads the exit without blocking: no point, no event, but the access of
            # the current step all the same (the access checker's A1; an explorer's tap).
            if self._acc_check is not None:
                self._acc_check.joined(self.current, t)
            tap = self.trace.tap
            if tap is not None:
                tap(self.steps, self.current.tid, "join_exited", t.tid, False)
        while not t.exited:
            me = self.current
            if t is me:
                raise UsageError("a kthread cannot join itself")
            self.might_sleep("join")
            t.joiners.append(me)
            reason = self.block("join", t.tid, timeout=timeout)
            if me in t.joiners:
                t.joiners.remove(me)
            if reason == "timeout":
                break
        return t.result

    def _is_daemon(self, t: KThread) -> bool:
        return bool(t.data.get("daemon"))

    # ------------------------------------------------------------------ scheduling

    def point(self, op: str, obj: int, write: bool = True, detail: str = "", word: int | None = None) -> None:
        """A scheduling point before operation ``op`` on object ``obj`` (R2).

        ``word`` is the event's precomputed :func:`~dmabufsim.kernel.trace.event_word`
        (``op``, ``obj``, ``write``, ``detail``), an optimisation for hot
        callers (a lock's own operations); it never changes the event.
        """
        t = self._current
        folded = False
        if self._unusual:  # dead, in a timer callback, early timers on, halted (R9), reduction (R12)
            if self._dead:
                return
            if self._in_timer:
                raise SimulatorError(f"scheduling point {op!r} inside a timer callback (runtime R7)")
            if self._halt:
                self._stop(self._halt)
            assert t is not None
            red = self._reducer
            # (fold() says no to an object while nothing is declared guarded or blocking-only)
            if red is not None and (obj < 0 or red.guards or red.blocking) and red.fold(t, op, obj, write):
                folded = self.folded = True
            elif self._acc_check is not None:
                self._acc_check.at_point(t)
            if self._early_timers and self._timers and not t.in_irq:
                # R8 even at a folded point: its recorded choice keeps the token replayable
                # without reduction (reduction L4), and firing a timer early only adds schedules
                self._maybe_early_timer(t)
            if folded and len(self._runnable) > 1:
                self._choices.append(t.tid)  # reduction L4: as if the strategy chose to go on
        assert t is not None
        run = self._runnable
        n = len(run)
        if n > 1 and not folded:
            if t.state is _RUNNABLE:
                # _decide() inlined for the running thread (the hot path).
                randbits = self._randbits
                if randbits is not None:
                    # RandomStrategy.next_thread inlined: randrange's rejection sampling over
                    # getrandbits(n.bit_length()), so every seed keeps its schedule.
                    nb = n.bit_length()
                    r = randbits(nb)
                    while r >= n:
                        r = randbits(nb)
                    nxt = run[r]
                    if nxt is not t:
                        self._preemptions += 1
                        # RandomStrategy reads no pending operation; a thread needs its own
                        # only while suspended at its point (reports, _park).
                        t.pending = (op, obj, write)
                elif self._uniform is not None:
                    nxt = run[int(self._uniform() * n)]  # Strategy.uniform: next_thread inlined
                    if nxt is not t:
                        self._preemptions += 1
                        t.pending = (op, obj, write)
                else:
                    t.pending = (op, obj, write)  # the strategy may read it (DPOR)
                    nxt = self.strategy.next_thread(run, t)
                    if nxt is not t:
                        if nxt.state is not _RUNNABLE:
                            raise _StrategyFault(f"strategy {self.strategy.name} chose {nxt!r}, which is not runnable")
                        self._preemptions += 1
                self._choices.append(nxt.tid)
                lk = nxt.park
                if lk is not None and lk.owner is not None:
                    t.pending = (op, obj, write)  # _park may block t itself at this point
                    nxt = self._park(nxt)  # it would only block on a mutex: do that here
            else:
                t.pending = (op, obj, write)
                nxt = self._decide(t)
            if nxt is not t:
                if self.sched_marks is not None and t.state is _RUNNABLE:
                    self._sched_mark(t, "preempt", "")
                # _switch() inlined.
                self._current = nxt
                glet = nxt.glet
                if glet is None:
                    self._start(nxt)
                else:
                    glet.switch()
                if self._dead:
                    return
                if t.parked:
                    return  # _park() finished this point and blocked us; we were woken since
        freed = self.freed_oids
        if freed is not None and obj in freed:  # the access happens now, after the choice (lifetime L4)
            self.uaf_hook(op, obj)  # type: ignore[misc]  # set with freed_oids
        steps = self.steps = self.steps + 1
        tr = self.trace
        if tr._full:
            tr.emit(steps, t.tid, op, obj, write, detail, self.now)
            tr.point_emits += 1
        else:
            # Trace.emit's word inlined (no Event is built: nobody records or listens, perhaps
            # but a tap); the event is counted by the step (Trace.digest_with in _result).
            if word is None:
                # (subscripts, not dict.get: no call on the hot path; a miss fills the cache)
                try:
                    word = _OPX[op] ^ (obj << 1) ^ write
                except KeyError:
                    word = op_word(op) ^ (obj << 1) ^ write
                if detail:
                    try:
                        word ^= _DETX[detail]
                    except KeyError:
                        word ^= detail_word(detail)
            now = self.now
            if now:
                tr.words += (t.tid_word ^ word, -now)
            else:
                tr.words.append(t.tid_word ^ word)
            if tr._active:
                tr.tap(steps, t.tid, op, obj, write)  # type: ignore[misc]  # active, not full: a tap
        if folded:
            self.folded = False
        if steps > self._check_at:
            t.pending = (op, obj, write)  # a livelock report says where each thread is
            self._periodic()

    def guard(self, obj: int, lock: Any) -> None:
        """``__guarded_by(lock)``: every scheduling point on object ``obj`` holds ``lock``.

        Checked at each such point (an ``unguarded-access`` finding when the
        thread does not hold it); with reduction on, those points fold
        (``kernel/reduction.py`` L2). ``lock``: a lock or its lockdep map.
        """
        self._reduction().guards[obj] = getattr(lock, "dep_map", lock)

    def blocking_only(self, lock: Any) -> None:
        """Declare that ``lock`` is only taken by uninterruptible blocking acquisitions.

        No trylock, ``is_locked`` or interruptible wait on it (each is an
        ``unguarded-access`` finding); with reduction on, its release folds
        (``kernel/reduction.py`` L3).
        """
        m = getattr(lock, "dep_map", lock)
        self._reduction().blocking[m.oid] = m

    def section_read(self, lock: int) -> None:
        """The running thread released lock ``lock`` having taken it at its own lock point,
        free, and woke no waiter (``kernel/reduction.py`` L6).

        If the acquisition began the running step (no scheduling point or
        wait in between), the step left the lock as it found it: to every
        other thread it only read it, and the explorer and the access
        checker count it so. Neither an event nor a step: the trace, lockdep
        and every checker see what they saw; only the declared access of
        the step is told (the explorer's tap, the access checker), and each
        decides from the step it recorded whether the section is whole.
        """
        t = self._current
        if t is None or self._dead or self._in_timer:
            return
        chk = self._acc_check
        if chk is not None:
            chk.section_read(t, lock)
        tap = self.trace.tap
        if tap is not None:
            tap(self.steps, t.tid, "lock_section", lock, False)

    def _reduction(self) -> Reducer:
        red = self._reducer
        if red is None:
            red = self._reducer = Reducer(self, False)
            self._unusual = True
        return red

    def event(self, op: str, obj: int, write: bool = True, detail: str = "") -> None:
        """Record an event that is not a scheduling point (a DMA landing, a signal)."""
        if self._dead:
            return
        freed = self.freed_oids
        if freed is not None and obj in freed:
            self.uaf_hook(op, obj)  # type: ignore[misc]  # set with freed_oids (lifetime L4)
        t = self._current
        self.trace.emit(self.steps, t.tid if t is not None else -1, op, obj, write, detail, self.now)

    def random(self, bound: int) -> int:
        """A schedule-controlled value in ``range(bound)`` (fault injection, choices)."""
        v = self.strategy.next_u64(bound)
        self._choices.append(v)
        return v

    def _decide(self, cur: KThread | None) -> KThread:
        runnable = self._runnable
        if cur is not None and cur.state is not _RUNNABLE:
            cur = None
        uniform = self._uniform
        if uniform is not None:  # Strategy.uniform: next_thread inlined (whatever cur is)
            nxt = runnable[int(uniform() * len(runnable))]
        else:
            nxt = self.strategy.next_thread(runnable, cur)
        if nxt.state is not _RUNNABLE:
            raise _StrategyFault(f"strategy {self.strategy.name} chose {nxt!r}, which is not runnable")
        self._choices.append(nxt.tid)
        if cur is not None and nxt is not cur:
            self._preemptions += 1
        return nxt

    def _switch(self, nxt: KThread) -> None:
        """Switch from the current greenlet to ``nxt``; returns when resumed."""
        self._current = nxt
        glet = nxt.glet
        if glet is None:
            self._start(nxt)
        else:
            glet.switch()

    def _start(self, nxt: KThread) -> None:
        """First switch to ``nxt``: run it on an idle pooled greenlet (or a new one)."""
        idle = _POOL.idle
        if idle:
            glet = idle.pop()
            glet.parent = self._hub
        else:
            glet = greenlet(_pooled_main, parent=self._hub)
        nxt.glet = glet
        glet.switch(self, nxt)

    def _to_hub(self) -> None:
        hub = self._hub
        assert hub is not None
        hub.switch()

    def lock_stat(self, what: str, obj: int) -> None:
        """``lock_contended`` / ``lock_acquired`` / ``lock_failed`` of the current thread on lock ``obj``.

        The kernel's lock_stat hooks, as :class:`~dmabufsim.kernel.trace.LockMark`
        records of a recorded execution (reports draw a wait as a wait and a
        hold from the acquisition). Locks call it on their slow paths only;
        not recording, it does nothing; recording, it changes no event, step
        or choice.
        """
        marks = self.lock_marks
        if marks is not None:
            t = self._current
            events = self.trace.events
            marks.append(LockMark(len(events) if events is not None else 0, t.tid if t is not None else -1,
                                  what, obj, self.now))

    def _sched_mark(self, t: KThread, what: str, on: str) -> None:
        """Record that ``t`` loses the CPU here (recording only, like :meth:`lock_stat`)."""
        marks = self.sched_marks
        events = self.trace.events
        if marks is not None:
            marks.append(SchedMark(len(events) if events is not None else 0, t.tid, what, on, self.now))

    def block(
        self, what: str, obj: int, *, interruptible: bool = False, timeout: int | None = None, name: str = "",
        woken_reads: bool = False, sleep_reads: bool = False,
    ) -> str:
        """Put the current thread to sleep until :meth:`wake` (or timeout/signal).

        Returns why it woke: ``"wake"``, ``"timeout"`` or ``"signal"``. An
        interruptible sleep with a signal already pending returns
        ``"signal"`` at once. Callers check ``might_sleep`` themselves
        (spinning on a spinlock blocks without sleeping). ``woken_reads``:
        once woken, the thread only reads ``obj`` (its waker unlinked it, as
        ``dma_fence_signal`` unlinks ``dma_fence_default_wait``'s callback),
        so its wake-up step declares a read of ``obj``, not a write (R11).
        ``sleep_reads``: the step that ends in this sleep declares a read of
        ``obj``, not a write (R16: the thread's queued node commutes with the
        other sleepers' nodes).
        """
        t = self._current
        if t is None:
            t = self.current  # raises: no kthread is running
        if self._dead:
            raise ThreadKilled()
        if interruptible and t.signal_pending:
            return "signal"
        on = (what, obj, name)
        if self._hung_timeout:  # hung_task H1-H2 (stall_begin, its common case inlined)
            if interruptible or what in SPINNING or t.wake_reason == "timeout":
                stall_begin(self, t, on, interruptible)
            else:
                t.stall = on
                t.stall_since = now = self.now
                if now + self._hung_timeout < self._hung_check_at:
                    self._hung_check_at = now + self._hung_timeout
        t.state = _BLOCKED
        t.blocked_on = on
        t.sleep_reads = sleep_reads
        t.interruptible = interruptible
        t.wake_reason = ""
        t.pending = (what, obj, not woken_reads)
        chk = self._acc_check
        if chk is not None:
            chk.waits(t, what, obj, not sleep_reads)
        run = self._runnable
        run.remove(t)
        if self.sched_marks is not None:
            self._sched_mark(t, "block", f"{what} #{obj}" + (f" ({name})" if name else ""))
        tm = None
        if timeout is not None:
            tm = self.add_timer(self.now + max(0, timeout), self._timeout_wake, t, name=f"timeout:{t.name}")
        if run:
            # _schedule_away() inlined for the common case: someone can run.
            nxt = self._next_of(run)
            if nxt is not t:
                self._switch(nxt)
        else:
            self._schedule_away(t)
        if self._dead:
            raise ThreadKilled()
        if chk is not None:
            chk.woken(t, what, obj, not woken_reads)
        if tm is not None:
            tm.cancel()
        return t.wake_reason

    def _park(self, nxt: KThread) -> KThread:
        """Finish the point of ``nxt`` and block it on its mutex, without switching to it.

        ``nxt`` was just chosen at the running thread's scheduling point; it
        waits at its own point inside ``mutex_lock`` (``nxt.park`` is that
        mutex, see :class:`~dmabufsim.kernel.thread.ParkLock`); it may be the
        running thread itself, choosing to go on at its own point. If the mutex
        is owned, all ``nxt`` would do when switched to is: count its step and
        emit its event (the end of :meth:`point`), find the owner, join the
        waiters and sleep (:meth:`block`, uninterruptible, no timeout), and
        pick who runs next. This does the same here, in the same order, with
        the same strategy calls and recorded choices, so the trace, the
        token and every report are unchanged; it saves two context switches
        per contended lock (the kernel's wake-to-sleep ping-pong).
        ``nxt.parked`` tells its point, once woken and run, that it is
        done. A parked thread chosen after its wake-up while the mutex is
        owned again (another thread took it first) would only leave the
        waiters, join them again at the end and sleep: that is done here too
        (no step, no event, as in :meth:`Mutex.lock`'s loop).
        Returns the thread to run (perhaps the current one: no switch).
        The thread chosen next may be parked in turn, the current one
        included (it is at its own point: its ``point`` then switches away
        and returns when woken). Not done when ``nxt`` is the only runnable
        thread (its sleep would end the execution or wait for time), while
        someone wants the events themselves (the trace's tap, which takes no
        Event, is called here as ``Trace.emit`` would), or when the step would
        reach the periodic check: then ``nxt`` runs as usual.
        """
        run = self._runnable
        tr = self.trace
        while True:
            lk = nxt.park
            if (lk is None or lk.owner is None or len(run) == 1 or tr._full
                    or self.steps >= self._check_at):
                return nxt
            if nxt.parked:
                lk.waiters.remove(nxt)  # woken, and the mutex was taken again: requeue
            else:
                # The rest of nxt's point(): its step and event (Trace.emit's word inlined).
                steps = self.steps = self.steps + 1  # counts the event too (Trace.digest_with)
                now = self.now
                if now:
                    tr.words += (nxt.tid_word ^ lk.park_word, -now)
                else:
                    tr.words.append(nxt.tid_word ^ lk.park_word)
                nxt.parked = True
                tap = tr.tap
                if tap is not None:  # an explorer records the event (Trace.emit would call it)
                    on = lk.park_on
                    tap(steps, nxt.tid, on[0], on[1], True)
            # mutex_lock finds the owner: block() inlined (nxt.pending already is (op, obj, True)).
            lk.waiters.append(nxt)
            if self._hung_timeout:  # hung_task H1: a mutex waiter's stall begins (stall_begin inlined)
                nxt.stall = lk.park_on
                nxt.stall_since = now = self.now
                if now + self._hung_timeout < self._hung_check_at:
                    self._hung_check_at = now + self._hung_timeout
            nxt.state = _BLOCKED
            nxt.blocked_on = lk.park_on
            nxt.interruptible = False
            nxt.wake_reason = ""
            run.remove(nxt)
            nxt = self._next_of(run)

    def _next_of(self, run: list[KThread]) -> KThread:
        """Who runs after a thread stopped being runnable (``run`` not empty): the only
        candidate, or the strategy's choice (recorded) -- no preemption is counted."""
        if len(run) == 1:  # _only(run) inlined: parking comes this way on every contended lock
            nxt = run[0]
            if self._forced_hook is not None:
                self._forced_hook(nxt)
            return nxt
        uniform = self._uniform
        nxt = run[int(uniform() * len(run))] if uniform is not None else self.strategy.next_thread(run, None)
        if nxt.state is not _RUNNABLE:
            raise _StrategyFault(f"strategy {self.strategy.name} chose {nxt!r}, which is not runnable")
        self._choices.append(nxt.tid)
        return nxt

    def _only(self, run: list[KThread]) -> KThread:
        """The only runnable thread, about to run with no choice made: a strategy that
        wants to see such forced steps too (``observe_forced``, optimal DPOR) is told."""
        t = run[0]
        if self._forced_hook is not None:
            self._forced_hook(t)
        return t

    def _timeout_wake(self, t: KThread) -> None:
        self.wake(t, "timeout")

    def wake(self, t: KThread, reason: str = "wake") -> bool:
        """``wake_up_process``: make a blocked thread runnable. False if it was not blocked."""
        if t.state is not _BLOCKED:
            return False
        if self._acc_check is not None:
            self._acc_check.wakes(t)
        t.state = _RUNNABLE
        t.blocked_on = None
        t.wake_reason = reason
        run = self._runnable
        i = len(run)
        while i > 0 and run[i - 1].tid > t.tid:
            i -= 1
        run.insert(i, t)
        return True

    def _schedule_away(self, t: KThread) -> None:
        """``schedule()`` for a thread that stopped being runnable."""
        while True:
            run = self._runnable
            if run:
                nxt = self._only(run) if len(run) == 1 else self._decide(None)
                if nxt is not t:
                    self._switch(nxt)
                return
            if self._timers and self._advance_time():
                continue
            # Nothing can ever run again: the hub decides deadlock or done.
            self._to_hub()
            return

    def _maybe_early_timer(self, t: KThread) -> None:
        """R8: let the strategy fire the next timer now (interrupts enabled only)."""
        for r in t.atomic:
            if r.what == "irqs_disabled":
                return
        timers = self._timers
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
        if timers and self.random(2):
            self._advance_time()

    def _advance_time(self) -> bool:
        """Jump to the earliest pending timer and fire every timer due then (R3)."""
        timers = self._timers
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
        if not timers:
            return False
        self.epoch += 1
        when = timers[0].when
        if when > self.now:
            self.now = when
            self.progress("virtual time")  # progress P1
            if when > self._hung_check_at:
                check_hung_tasks(self)  # hung_task H3 (may end the execution)
                if self._stopping:
                    return True
        while timers and timers[0].when <= self.now:
            tm = heapq.heappop(timers)
            if tm.cancelled:
                continue
            tm.cancelled = True
            self.trace.emit(self.steps, -1, "timer", tm.seq, True, tm.name, self.now)
            self._in_timer = self._unusual = True
            try:
                tm.fn(*tm.args)
            finally:
                self._in_timer = False
                self._unusual = (self._dead or self._early_timers or bool(self._halt)
                                 or self._acc_check is not None or self._reducer is not None)
        return True

    # ------------------------------------------------------------------ time

    def add_timer(self, when: int, fn: Callable[..., Any], *args: Any, name: str = "timer") -> Timer:
        """Arm a timer firing ``fn(*args)`` at virtual time ``when`` (R7); among timers of equal
        expiry it fires in the order of its arming thread and that thread's count (R14)."""
        self._timer_seq += 1
        t = self._current
        owner = t.tid if t is not None and not self._in_timer else -1
        nth = self._timer_nth.get(owner, 0) + 1
        self._timer_nth[owner] = nth
        tm = Timer(when, self._timer_seq, fn, args, name, owner, nth)
        heapq.heappush(self._timers, tm)
        return tm

    def sleep_obj(self, t: KThread) -> int:
        """The object a sleep of ``t`` on virtual time declares: its own timer, or the clock with
        early timers on (R14)."""
        return CLOCK if self._early_timers else TIMER_OBJ - t.tid

    def schedule_timeout(self, timeout: int | None, *, interruptible: bool = False) -> int:
        """``schedule_timeout``: sleep up to ``timeout`` ns; return the time left (0 if it ran out)."""
        self.might_sleep("schedule_timeout")
        obj = self.sleep_obj(self.current)
        self.point("schedule_timeout", obj, False)
        start = self.now
        reason = self.block("schedule_timeout", obj, interruptible=interruptible, timeout=timeout)
        if timeout is None or reason == "timeout":
            return 0
        return max(1, timeout - (self.now - start))

    def msleep(self, ms: float) -> None:
        """``msleep``: sleep (uninterruptibly) for ``ms`` milliseconds of virtual time."""
        self.nsleep(int(ms * NSEC_PER_MSEC))

    def nsleep(self, ns: int) -> None:
        """Sleep exactly ``ns`` nanoseconds of virtual time (uninterruptible)."""
        self.might_sleep("msleep")
        obj = self.sleep_obj(self.current)
        self.point("msleep", obj, False)
        deadline = self.now + ns
        while self.now < deadline:
            self.block("msleep", obj, timeout=deadline - self.now)

    # ------------------------------------------------------------------ signals

    def send_signal(self, t: KThread) -> None:
        """``send_sig``: mark a signal pending; wakes ``t`` if in an interruptible sleep."""
        self.point("signal", t.tid, True)
        t.signal_pending = True
        if t.state is ThreadState.BLOCKED and t.interruptible:
            self.wake(t, "signal")

    def flush_signals(self, t: KThread | None = None) -> None:
        """``flush_signals``: forget pending signals of ``t`` (default: current)."""
        (t or self.current).signal_pending = False

    # ------------------------------------------------------------------ context

    def atomic_enter(self, what: str, name: str) -> None:
        """Enter atomic context (spin_lock, preempt_disable, rcu_read_lock, ...)."""
        self.current.atomic.append(AtomicReason(what, name, call_site()))

    def atomic_exit(self, what: str, name: str) -> None:
        """Leave the innermost atomic section of kind ``what`` named ``name``."""
        t = self.current
        atomic = t.atomic
        for i in range(len(atomic) - 1, -1, -1):
            r = atomic[i]
            if r.what == what and r.name == name:
                del atomic[i]
                if t.held:
                    if what == "irqs_disabled":
                        self.irqs_restored(t)
                    elif what == "bh_disabled":
                        self.bh_restored(t)
                return
        raise UsageError(f"{what} {name!r} ended but was never entered by {self.current.name}")

    def irqs_restored(self, t: KThread) -> None:
        """An ``irqs_disabled`` section of ``t`` ended: if interrupts are on again, tell
        lockdep (``trace_hardirqs_on``), which marks the locks ``t`` still holds."""
        if t.in_irq or not t.held:
            return
        for r in t.atomic:
            if r.what == "irqs_disabled" or r.what == "hardirq":
                return
        self.lockdep.hardirqs_on(t)

    def bh_restored(self, t: KThread) -> None:
        """A ``bh_disabled`` section of ``t`` ended: if softirqs are on again, tell lockdep
        (``trace_softirqs_on``), which marks the locks ``t`` still holds."""
        if t.in_irq or t.in_softirq or not t.held:
            return
        for r in t.atomic:
            if r.what == "bh_disabled" or r.what == "softirq" or r.what == "hardirq":
                return
        self.lockdep.softirqs_on(t)

    def might_sleep(self, what: str = "might_sleep") -> None:
        """``might_sleep``: report a sleeping call in atomic context (R5)."""
        if self._dead:
            return
        t = self._current
        if t is None or not (t.atomic or t.in_irq):
            return
        site = call_site()
        reason = t.atomic[-1] if t.atomic else AtomicReason("hardirq", t.name, None)
        irqs_off = any(r.what == "irqs_disabled" or r.what == "hardirq" for r in t.atomic)
        lines = [
            f"BUG: sleeping function called from invalid context at {site}",
            f"in_atomic(): 1, irqs_disabled(): {int(irqs_off)}, non_block: 0, pid: {t.tid}, name: {t.name}",
            f"preempt_count: {len(t.atomic)}, expected: 0",
            f"sleeping call: {what}",
        ]
        for r in t.atomic:
            lines.append(f"atomic because of {r.what} ({r.name}) taken at: {r.site}")
        self.report(
            "sleep-in-atomic",
            "BUG: sleeping function called from invalid context",
            details={
                "call": what,
                "site": str(site),
                "atomic": [{"what": r.what, "name": r.name, "site": str(r.site)} for r in t.atomic],
                "irqs_disabled": irqs_off,
            },
            rule="kernel R5: no sleeping in atomic context",
            signature=f"sleep-in-atomic:{what}:{reason.what}:{reason.name}:{site}",
            text="\n".join(lines),
        )

    # ------------------------------------------------------------------ findings

    def thread_info(self, t: KThread, stack: tuple[Frame, ...] | None = None) -> ThreadInfo:
        """A :class:`ThreadInfo` for reports (the current stack for the running thread)."""
        if stack is None:
            stack = scenario_stack(frame=None) if t is self._current else self._suspended_stack(t)
        return ThreadInfo(t.tid, t.name, stack)

    def _suspended_stack(self, t: KThread) -> tuple[Frame, ...]:
        glet = t.glet
        if glet is None:  # never switched to: where it will start (its function's first line)
            return _entry_frame(t.fn)
        frame = getattr(glet, "gr_frame", None)
        return scenario_stack(frame=frame) if frame is not None else ()

    def wants_text(self, signature: str) -> bool:
        """Whether a finding with ``signature`` needs its report text and stacks.

        False when this execution already reported it (:meth:`report` keeps one
        per signature) or the explorer already holds it (:attr:`known_findings`):
        a checker may then report it with its title and no stacks (the finding
        itself, its kind, details and signature, is still recorded).
        """
        return signature not in self._signatures and signature not in self.known_findings

    def report(
        self,
        kind: str,
        title: str,
        *,
        details: dict[str, Any] | None = None,
        rule: str = "",
        signature: str = "",
        text: str = "",
        thread: KThread | None = None,
        threads: tuple[ThreadInfo, ...] | None = None,
        severity: str = "",
    ) -> Finding | None:
        """Record a finding (once per signature per execution). Returns it, or None if a duplicate."""
        if self._dead:
            return None
        sig = signature or f"{kind}:{title}"
        if sig in self._signatures:
            return None
        self._signatures.add(sig)
        if threads is None:
            t = thread or self._current
            threads = (self.thread_info(t),) if t is not None else ()
        f = Finding(
            kind=kind,
            title=title,
            threads=threads,
            details=details or {},
            rule=rule,
            severity=severity,
            step=self.steps,
            now=self.now,
            report=text or title,
            signature=sig,
        )
        self.findings.append(f)
        if self.config.stop_on_first and f.severity == "error" and not self._stopping:
            self._stop("stopped")
        return f

    def halt(self, outcome: str) -> None:
        """End the execution at its next scheduling point with ``outcome`` (R9: the watchdog's
        wall-time limit; safe from a signal handler: it only sets flags)."""
        self._halt = outcome
        self._unusual = True

    def _stop(self, outcome: str) -> None:
        """End the execution now (from a thread or the hub)."""
        self._stopping = outcome
        if self._current is not None and greenlet.getcurrent() is not self._hub:
            self._to_hub()
            raise ThreadKilled()

    def progress(self, what: str) -> None:
        """Something that cannot be undone happened (progress P1): the livelock window restarts."""
        self._progress_step = self.steps
        self._progress_what = what

    def _periodic(self) -> None:
        """Every ``PERIOD`` steps (or ``COMPACT_AT`` if smaller): fold the trace's event words,
        compact the replay log when it holds ``COMPACT_AT`` choices; more than ``max_steps``
        since the last progress: livelock; past ``runaway_steps``: runaway (R6, progress P2-P3)."""
        steps = self.steps
        if steps - self._progress_step > self._max_steps:
            report_livelock(self)
            self._stop("livelock")
            return
        if steps > self._runaway_steps:
            report_runaway(self)
            self._stop("runaway")
            return
        if len(self._choices) >= COMPACT_AT:
            self._log.compact()
        self.trace.fold()  # trace T2: bounds the pending event words
        self._check_at = min(self._progress_step + self._max_steps, self._runaway_steps,
                             steps + min(COMPACT_AT, PERIOD))

    def _deadlock(self, blocked: list[KThread]) -> None:
        sig = "deadlock:" + ",".join(sorted(f"{t.name}@{(t.blocked_on or ('?', -1, ''))[0]}" for t in blocked))
        full = self.wants_text(sig)
        lines = ["INFO: deadlock: no thread can run and no timer is pending", "Blocked threads:"]
        for t in blocked:
            what, obj, name = t.blocked_on or ("?", -1, "")
            shown = part_owner(obj)  # a part declared apart (a page's lock, page R8) is shown as its object
            on = f"{name} (#{shown})" if name else f"#{shown}"
            holds = ", ".join(_holding(t))
            lines.append(f"  {t.name}/{t.tid} blocked in {what} on {on}, holding [{holds}]")
            if full:
                for fr in self._suspended_stack(t):
                    lines.append(f"      {fr}")
        waits = {t.name: (t.blocked_on or ("?", -1, ""))[0] for t in blocked}
        self.report(
            "deadlock",
            "INFO: task blocked forever: deadlock",
            details={
                "blocked": waits,
                "waiting_for": {t.name: (t.blocked_on or ("?", -1, ""))[2] for t in blocked},
                "holding": {t.name: _holding(t) for t in blocked},
                "objects": {t.name: (t.blocked_on or ("?", -1, ""))[1] for t in blocked},
            },
            rule="kernel R4: no runnable thread and no pending timer",
            signature=sig,
            threads=tuple(self.thread_info(t, None if full else ()) for t in blocked),
            text="\n".join(lines),
        )

    # ------------------------------------------------------------------ running

    def _thread_main(self, t: KThread) -> None:
        if self._acc_check is not None:
            self._acc_check.started(t)
        try:
            t.result = t.fn(*t.args)
        except (ThreadKilled, GreenletExit):
            pass
        except KeyboardInterrupt as exc:  # R6: the user's, not the scenario's: end the execution
            if self._dead:
                raise  # in teardown: _teardown passes it on
            self._interrupt = exc
            if not self._stopping:
                self._stopping = "interrupted"
        except BaseException as exc:  # noqa: BLE001 - any other escape is a finding (R6)
            t.error = exc
            if not self._dead and isinstance(exc, Exception) and _raised_by_strategy(exc):
                # R6: the strategy's own failure is no bug of the scenario: stop, and run() raises it
                self._internal = exc
                self._stopping = self._stopping or "internal error"
            elif not self._dead:
                tb = traceback.extract_tb(exc.__traceback__)
                stack = tuple(
                    Frame(fs.filename, fs.lineno or 0, fs.name)
                    for fs in reversed(tb)
                    if "/dmabufsim/kernel/" not in fs.filename
                )
                self.report(
                    "exception",
                    f"{type(exc).__name__} in {t.name}: {exc}",
                    details={"type": type(exc).__name__, "message": str(exc)},
                    rule="kernel R6: an exception escaped a kthread",
                    signature=f"exception:{t.name}:{type(exc).__name__}",
                    threads=(ThreadInfo(t.tid, t.name, stack[:8]),),
                    text="".join(traceback.format_exception(exc)),
                )
        finally:
            self._exit_thread(t)

    def _exit_thread(self, t: KThread) -> None:
        if self._acc_check is not None and not self._dead:
            self._acc_check.exits(t)
        if not self._dead:
            if t.held:  # debug_check_no_locks_held: nothing to check without held locks
                self.lockdep.thread_exit(t)
            self._progress_step = self.steps  # progress P1: progress("thread exit") inlined
            self._progress_what = "thread exit"
        t.state = _EXITED
        run = self._runnable
        if t in run:
            run.remove(t)
        if t.joiners:
            for j in t.joiners:
                self.wake(j)
            t.joiners.clear()
        # An exited thread keeps its name, result and error for joiners and
        # summaries, not what it ran on: long runs spawn an interrupt thread
        # per completion, whose arguments would otherwise pin every job.
        t.fn = _exited_fn
        t.args = ()
        if t.in_irq and t.error is None and not self.trace._active:
            # An interrupt handler that returned, while nobody records or listens
            # to events (which name threads by tid): it leaves the thread table
            # (a soak raises one per job completion) and is only counted.
            self._threads.remove(t)
            self.irq_threads_retired += 1
        if self._current is t:
            self._current = None

    def run(self, scenario: Callable[..., Any], *args: Any) -> Execution:
        """Run ``scenario(kernel, *args)`` as the first kthread to completion."""
        global _running
        if self._ran:
            raise UsageError("a Kernel runs one execution; create a new Kernel (or reset() it) to run again")
        if _running is not None:
            raise UsageError("Kernel.run() cannot be nested inside another running Kernel")
        if scenario is self._last_scenario:  # R13: the same scenario as the execution before
            ident = self._last_id
        else:
            ident = scenario_id(scenario)
            self._last_scenario, self._last_id = scenario, ident
        self.scenario_id = ident.short
        if self._replay is not None:
            self._check_token(self._replay, ident.name, ident.short)
        self._ran = True
        if not self.strategy.new_execution():
            raise UsageError(f"strategy {self.strategy.describe()} has no execution left to run")
        self._hub = greenlet.getcurrent()
        _running = self
        try:
            if self._acc_check is not None:
                self._acc_check.install()
            self.spawn(scenario, self, *args, name="scenario")
            self._current = self._threads[0]
            self._install_extensions()
            self._current = None
            _watchdog.watch(self)
            try:
                self._hub_loop()
            except WatchdogStop:
                pass  # R9: the watchdog stopped a timer callback running in the hub
            except Exception as exc:  # a strategy called from the hub (R6)
                if not _raised_by_strategy(exc) or (isinstance(exc, DmabufsimError) and
                                                    not isinstance(exc, _StrategyFault)):
                    raise
                raise _internal_error(self.strategy, exc) from exc
            finally:
                _watchdog.unwatch(self)
            if self._interrupt is not None:
                raise self._interrupt  # R6: after teardown (the finally below)
            if not self._stopping:
                blocked = [t for t in self._threads if t.state is _BLOCKED and not self._is_daemon(t)]
                if blocked:
                    self.outcome = "deadlock"
                    self._deadlock(blocked)
                else:
                    for check in self.at_exit:
                        check()
            else:
                self.outcome = self._stopping
            self._summaries = self._summarise()
        finally:
            try:
                self._teardown()  # may pass on the user's Ctrl-C
            finally:
                _running = None
                if self._acc_check is not None:
                    self._acc_check.uninstall()
        failed = self._internal
        if failed is not None:
            if isinstance(failed, DmabufsimError) and not isinstance(failed, _StrategyFault):
                raise failed  # the strategy refused the scenario (a UsageError): the user's to fix, as raised
            raise _internal_error(self.strategy, failed) from failed
        return self._result()

    def _install_extensions(self) -> None:
        """Install the rooms' per-execution state (:func:`register_extension`), in registration order.

        On a reused Kernel (R13) an extension with a reset resets its state
        in place and keeps its exit checks; the others are set up anew. The
        exit checks run in registration order either way, before any the
        scenario adds.
        """
        kept, states = self._ext_checks, self._ext_kept
        exits = self.at_exit
        for name, setup, reset in _EXTENSIONS:
            checks = kept.get(name)
            state = states.get(name)
            if reset is not None and checks is not None and state is not None:
                reset(self, state)
                self.ext[name] = state
                exits += checks
            else:
                n = len(exits)
                setup(self)
                kept[name] = exits[n:]

    def reset(self) -> None:
        """Make this Kernel, which ran, a fresh one for the next execution (R13).

        Same configuration, strategy, deadline, ``lock_observer`` and
        ``known_findings``; every per-execution state is made anew, as
        ``Kernel(...)`` makes it, and the extensions that can reset their state
        in place (:func:`register_extension`) do so instead of building it
        again. The next :meth:`run` then gives the trace, findings and token a
        new Kernel would. The explorer reuses one Kernel per phase this way.
        """
        if _running is self:
            raise UsageError("Kernel.reset() while its execution runs")
        if self._replay is not None:
            raise UsageError("a replaying Kernel cannot be reset: it rebuilds one execution")
        if self._ran:  # (reset twice: the states kept the first time stay kept)
            ext = self.ext
            self._ext_kept = {name: ext[name] for name, _, reset in _EXTENSIONS if reset is not None and name in ext}
        self._fresh()

    def _check_token(self, tok: _token.Token, name: str, sid: str) -> None:
        """Refuse a token made for another scenario; note one made for another version of its code (token R2)."""
        if not tok.scenario or tok.scenario == sid:
            return
        if tok.scenario[:4] != sid[:4]:
            raise ReplayError(
                f"replay token belongs to another scenario: the token's scenario id is {tok.scenario}, "
                f"{name}() has {sid}"
            )
        self._notes.append(
            f"the replay token was made for another version of {name}() (scenario id {tok.scenario}; its "
            f"module's code now has {sid}): the replay may not rebuild the execution it recorded"
        )

    def _replay_notes(self, n: int, diverged: int | None) -> str | None:
        """Compare a replay with its token (token R3): the token to print back, and notes."""
        tok = self._replay
        if tok is None:
            return None
        held = len(tok.choices)
        if tok.length is None:  # a dbs1 token: no length to check
            if n > held:
                self._notes.append(
                    f"the replay token holds {_choices(held)} and the execution made {n}: the rest were the "
                    "default (non-preemptive) ones; the token printed is the whole execution's"
                )
            return None
        if n != tok.length:
            self._notes.append(
                f"the replay token recorded an execution of {_choices(tok.length)}; this replay made {n}"
            )
            return None
        if diverged is None and tok.scenario == self.scenario_id:
            return self._replay_text  # the same execution: print back the token it was rebuilt from
        return None

    def _after_exit(self) -> KThread | None:
        """The thread to run after the running one exited, chosen as :meth:`_hub_loop` would
        (the same strategy call, recorded), or None to leave it to the hub (nothing
        runnable: time may advance or the execution ends; or it is stopping)."""
        run = self._runnable
        if not run or self._stopping or self._dead:
            self._current = None
            return None
        nxt = self._only(run) if len(run) == 1 else self._decide(None)
        self._current = nxt
        return nxt

    def _hub_loop(self) -> None:
        while not self._stopping:
            run = self._runnable
            if not run:
                if self._timers and self._advance_time():
                    continue
                return
            nxt = self._only(run) if len(run) == 1 else self._decide(None)
            self._switch(nxt)
            self._current = None

    def _teardown(self) -> None:
        """Kill every thread still alive, with the model in its dead state."""
        self._dead = self._unusual = True
        interrupt: KeyboardInterrupt | None = None
        for t in self._threads:
            glet = t.glet
            if t.state is not _EXITED and glet is not None and not glet.dead:
                self._current = t
                try:
                    glet.throw(ThreadKilled())
                except KeyboardInterrupt as exc:  # the user's Ctrl-C: finish tearing down, then pass it on
                    interrupt = exc
                except BaseException:  # noqa: BLE001 - teardown of a dead execution
                    pass
            t.state = _EXITED
            t.glet = None
        self._current = None
        self._runnable.clear()
        self._timers.clear()
        if interrupt is not None:
            raise interrupt

    def _summarise(self) -> tuple[ThreadSummary, ...]:
        out = []
        for t in self._threads:
            ctx = "hardirq" if t.in_irq else "softirq" if t.in_softirq else ""
            daemon = bool(t.data.get("daemon")) if t.data else False  # _is_daemon(t)
            st = t.state
            if st is _EXITED:
                out.append(ThreadSummary(t.tid, t.name, "exited" if t.error is None else "crashed", "", daemon, ctx))
            elif st is _BLOCKED:
                what, obj, _ = t.blocked_on or ("?", -1, "")
                out.append(ThreadSummary(t.tid, t.name, "blocked", f"{what} #{obj}", daemon, ctx))
            else:
                out.append(ThreadSummary(t.tid, t.name, "runnable", "", daemon, ctx))
        return tuple(out)

    def _result(self) -> Execution:
        choices = self._log.choices()
        diverged = self.strategy.diverged_at if self._replaying else None  # type: ignore[attr-defined]
        tok = self._replay_notes(len(choices), diverged)
        known = self.known_findings
        if tok is None and self.findings and any(f.signature not in known for f in self.findings):
            # else made when asked for (choices R2): no finding, or only findings the explorer
            # already holds (they keep no text, stacks or token; Execution.token still has it)
            tok = token_of(choices, self.scenario_id)
        findings = [f.with_token(tok) for f in self.findings] if tok is not None else list(self.findings)
        summaries = self._summaries
        return execution_of({
            "findings": findings,
            "_token": tok,
            "trace_digest": self.trace.digest_with(self.steps - self.trace.point_emits),
            "steps": self.steps,
            "now": self.now,
            "outcome": self.outcome,
            "strategy": self.strategy.describe(),
            "threads": summaries,
            "choices": choices,
            "preemptions": self._preemptions,
            "diverged_at": diverged,
            "events": self.trace.events,
            "lock_marks": self.lock_marks,
            "sched_marks": self.sched_marks,
            "event_stacks": self.trace.event_stacks,
            "stack_table": self.trace.stack_table if self.trace.event_stacks is not None else None,
            "scenario_id": self.scenario_id,
            "notes": tuple(self._notes),
        })


# Trace T4: a timer callback's events carry the callback's own stack, not the stack of whoever advanced time.
STACK_ROOTS.add(id(Kernel._advance_time.__code__))
