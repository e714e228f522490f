"""The soft-lockup watchdog and the wall-time limit of an execution.

Models the soft-lockup detector of ``kernel/watchdog.c``: a CPU that runs
one task for longer than a threshold without scheduling is reported
("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:123]").
Here the CPU is the simulated machine and scheduling is reaching a
scheduling point: a kthread that loops in plain Python (``while True:
x += 1``) would otherwise hang ``run`` and ``explore`` for ever.

Rules:

* W1 (soft lockup): a kthread -- or a timer callback, reported under the
  task it interrupted (the idle task ``swapper/0`` when no thread was
  running), as the kernel does -- that runs for
  ``Config.softlockup_thresh`` seconds of wall time (default 10; 0 turns
  the detector off) while the machine makes no progress (no scheduling
  point, no switch to another thread, no move of the virtual clock) is a
  ``soft-lockup`` finding naming the thread and the Python line it was
  running, with its stack. The thread is stopped where it is (a
  :class:`WatchdogStop`, a ``ThreadKilled``, raised into it) and the
  execution ends with outcome ``soft-lockup``.
* W2 (cost): an interval timer (``setitimer(ITIMER_REAL)``, ``SIGALRM``)
  samples the machine's progress counters a few times per threshold (at
  most every second); the scheduling points do nothing for it (their step
  count is its evidence). The first watched execution arms it; it stays
  armed across the executions of an exploration (one attribute store per
  execution), and a tick that finds no execution running twice disarms it
  and puts the previous ``SIGALRM`` disposition back, as does the exit of
  the interpreter (which would otherwise die of a late tick).
* W3 (determinism): the handler only reads the machine until it fires, so
  an execution that does not lock up is identical with or without it. A
  soft lockup depends on the wall clock: the step it is reported at and
  its signature (``soft-lockup:THREAD``) follow from the schedule; the
  "stuck for" seconds and the line the thread was interrupted on do not.
  Its token replays the schedule up to the stuck thread, which then spins
  until the watchdog fires again: the same finding when the loop does not
  itself read the clock. The explorer neither replay-checks nor shrinks it
  (every replay would cost a threshold of wall time).
* W4 (hard time limit): past ``Kernel.deadline`` (a ``time.monotonic()``
  value: the explorer's ``time_budget``) the execution ends at its next
  scheduling point with outcome ``time-limit`` and no finding; one that
  reaches none within ``EXPIRY_GRACE`` is stopped where it is, as in W1. The
  explorer drops such an execution (it counts for nothing).
* W5 (where): signals are delivered to the main thread, so executions run
  in another thread are not watched, nor any while someone else handles
  ``SIGALRM`` (pytest-timeout, an application's own alarm): the watchdog
  then stays off, as with a threshold of 0. A single long call into C code
  is interrupted only when it returns to Python.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from _signal import getsignal as _getsignal  # type: ignore[import-not-found]  # signal.getsignal: ~10 us (enum)
from types import FrameType
from typing import TYPE_CHECKING, Any

from greenlet import greenlet

from .errors import ThreadKilled
from .findings import ThreadInfo
from .stack import Frame, scenario_stack

if TYPE_CHECKING:
    from .runtime import Kernel

#: Longest and shortest time between two samples (W2).
MAX_TICK = 1.0
MIN_TICK = 0.005
#: Seconds past the deadline before an execution that reached no scheduling point is stopped where it is (W4).
EXPIRY_GRACE = 0.25
#: The name and pid the report gives when the hub (a timer callback) is stuck: the idle task.
IDLE_TASK = ("swapper/0", 0)

_MAIN_THREAD = threading.main_thread().ident


class WatchdogStop(ThreadKilled):
    """Raised into the code the watchdog stops (W1, W4); ends its kthread like a teardown."""


class _State:
    """The one watchdog of this process."""

    __slots__ = ("armed", "expired_at", "idle", "kernel", "next_at", "old", "sample", "since", "thresh")

    def __init__(self) -> None:
        self.armed = False
        #: The execution watched now (None between executions).
        self.kernel: Kernel | None = None
        #: The last progress sample and when it last changed.
        self.sample: tuple[int, int, int, int] | None = None
        self.since = 0.0
        #: Ticks in a row that found no execution.
        self.idle = 0
        #: When the watched execution's deadline was found passed (W4).
        self.expired_at: float | None = None
        #: When the timer fires next (None: not set).
        self.next_at: float | None = None
        #: The ``SIGALRM`` disposition before ours.
        self.old: Any = None
        #: The threshold the timer's pace was set for.
        self.thresh = -1.0


_wd = _State()


def _after_fork_in_child() -> None:
    # Interval timers are not inherited across fork: the child arms its own.
    _wd.armed = False
    _wd.kernel = None
    _wd.next_at = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    # The interpreter restores SIGALRM's default action (terminate) while finalizing: a tick of an
    # armed timer after that would kill the exiting process ("Alarm clock", status 142).
    if _wd.armed:
        _disarm()


atexit.register(_at_exit)


def tick_of(thresh: float) -> float:
    """Seconds between two samples for a threshold (W2): a quarter of it, within bounds."""
    return MAX_TICK if not thresh else min(MAX_TICK, max(MIN_TICK, thresh / 4))


def _arm() -> bool:
    if threading.get_ident() != _MAIN_THREAD:
        return False
    old = signal.getsignal(signal.SIGALRM)
    if old is not _on_alarm:  # a forked child inherits ours (and the disposition before it)
        if old not in (signal.SIG_DFL, signal.SIG_IGN, None):
            return False  # W5: someone else's alarm
        _wd.old = old
        signal.signal(signal.SIGALRM, _on_alarm)
    _wd.armed = True
    _wd.next_at = None
    return True


def _disarm() -> None:
    _wd.armed = False
    _wd.next_at = None
    if signal.getsignal(signal.SIGALRM) is _on_alarm:  # not replaced since: ours to undo
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, _wd.old if _wd.old is not None else signal.SIG_DFL)


def _set_timer(delay: float, now: float) -> None:
    _wd.next_at = now + delay
    signal.setitimer(signal.ITIMER_REAL, delay)


def watch(k: Kernel) -> None:
    """Watch ``k``'s execution from now on (called by ``Kernel.run``)."""
    thresh = k.config.softlockup_thresh
    deadline = k.deadline
    wd = _wd
    if not thresh and deadline is None:
        return
    if threading.get_ident() != _MAIN_THREAD:
        return  # W5
    if not wd.armed:
        if not _arm():
            return
    elif _getsignal(signal.SIGALRM) is not _on_alarm:
        wd.armed = False  # replaced by someone else since: theirs now (W5)
        return
    wd.kernel = k
    wd.sample = None
    wd.idle = 0
    wd.expired_at = None
    if deadline is None and wd.next_at is not None and thresh == wd.thresh:
        return  # the timer already runs at this pace (the executions of an exploration)
    wd.thresh = thresh
    now = time.monotonic()
    delay = tick_of(thresh)
    if deadline is not None:
        if now >= deadline:  # W4: already past it
            wd.expired_at = now
            k.halt("time-limit")
        delay = min(delay, max(MIN_TICK, deadline - now))
    if wd.next_at is None or now + delay < wd.next_at - MIN_TICK:
        _set_timer(delay, now)


def unwatch(k: Kernel) -> None:
    """Stop watching ``k`` (its threads stopped running: W1 and W4 no longer raise into it)."""
    if _wd.kernel is k:
        _wd.kernel = None


def _progress(k: Kernel) -> tuple[int, int, int, int]:
    cur = k._current
    return (k.steps, -1 if cur is None else cur.tid, k.now, len(k._choices))


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    """The ``SIGALRM`` handler: sample, and fire W1 / W4 when due."""
    wd = _wd
    now = time.monotonic()
    wd.next_at = None
    k = wd.kernel
    if k is None or k._dead:
        wd.idle += 1
        if wd.idle >= 2:
            _disarm()
        else:
            _set_timer(MAX_TICK, now)
        return
    wd.idle = 0
    thresh = k.config.softlockup_thresh
    delay = tick_of(thresh)
    sample = _progress(k)
    if sample != wd.sample:
        wd.sample = sample
        wd.since = now
    elif thresh and now - wd.since >= thresh:
        _set_timer(delay, now)
        _soft_lockup(k, frame, now - wd.since)  # raises
    deadline = k.deadline
    if deadline is not None:
        if now >= deadline:
            if wd.expired_at is None:
                wd.expired_at = now
                k.halt("time-limit")  # W4: at the next scheduling point
                delay = min(delay, EXPIRY_GRACE)
            elif now - wd.expired_at >= EXPIRY_GRACE:
                _set_timer(delay, now)
                _stop_here(k, "time-limit")  # raises
        else:
            delay = min(delay, max(MIN_TICK, deadline - now))
    _set_timer(delay, now)


def _stop_here(k: Kernel, outcome: str) -> None:
    if not k._stopping:
        k._stopping = outcome
    k.halt(outcome)
    raise WatchdogStop()


def _seconds(s: float) -> str:
    return f"{int(s)}" if s >= 2 else f"{s:.1f}"


def _soft_lockup(k: Kernel, frame: FrameType | None, stuck: float) -> None:
    """W1: report the stuck thread (or timer callback) and stop it where it is."""
    t = k._current
    if t is not None and t.glet is not greenlet.getcurrent():
        t = None  # the hub is running: a timer callback (or the strategy) is stuck on the idle task
    # A timer callback run from a thread's schedule() is in interrupt context on that thread's
    # CPU: as in the kernel, the report names the interrupted task (and says it is an interrupt).
    name, pid = (t.name, t.tid) if t is not None else IDLE_TASK
    stack = scenario_stack(frame=frame) if frame is not None else ()
    rip = Frame(frame.f_code.co_filename, frame.f_lineno or 0, frame.f_code.co_name) if frame is not None else None
    where = stack[0] if stack else rip
    title = f"watchdog: BUG: soft lockup - CPU#0 stuck for {_seconds(stuck)}s! [{name}:{pid}]"
    lines = [title, f"CPU: 0 PID: {pid} Comm: {name}"]
    if k._in_timer:
        lines.append("in a timer callback (timer interrupt)")
    if rip is not None:
        lines.append(f"RIP: {rip}")
    lines.append("Call Trace:")
    lines.extend(f" {fr}" for fr in stack)
    lines.append(
        f"(no scheduling point for {stuck:.1f} s of wall time; threshold {k.config.softlockup_thresh:g} s: "
        "this finding depends on the wall clock, see watchdog W3)"
    )
    k._stopping = "soft-lockup"  # before report(): stop_on_first must not switch from a signal handler
    k.report(
        "soft-lockup",
        title,
        details={
            "thread": name,
            "tid": pid,
            "stuck_for": round(stuck, 3),
            "threshold": k.config.softlockup_thresh,
            "file": where.filename if where is not None else "",
            "line": where.lineno if where is not None else 0,
            "function": where.function if where is not None else "",
            "in_timer": k._in_timer,
            "deterministic": False,
        },
        rule="watchdog W1: a kthread reached no scheduling point within softlockup_thresh",
        signature=f"soft-lockup:{name}",
        threads=(ThreadInfo(pid, name, stack),),
        text="\n".join(lines),
    )
    _stop_here(k, "soft-lockup")
