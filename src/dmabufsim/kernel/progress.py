"""Forward progress: livelock as *no progress*, and the runaway cap.

The kernel's own detectors measure lack of progress, not amount of work:
the soft-lockup watchdog (``kernel/watchdog.c``) fires when a CPU does not
schedule for 20 s, the hung-task detector (``kernel/hung_task.c``) when a
task stays in D state for 120 s, RCU when a grace period does not end. A
long, legitimate workload (signalling 4096 fence-chain links in reverse)
trips none of them. The model's counterpart:

Rules:

* P1 (progress): the execution makes progress when something happens that
  cannot be undone and that other threads may be waiting for: a fence is
  signalled (``dma_fence_signal``, first time only), a completion is
  completed (``complete`` / ``complete_all``), a thread exits, or virtual
  time advances (a timer fires at a later instant). Taking and releasing a
  lock, a trylock that fails, a wake-up, a seqcount write or a retried read
  are *not* progress: a loop of them can go on forever without changing
  anything another thread is waiting for.
* P2 (livelock): when the runnable threads take more than ``max_steps``
  scheduling points since the last progress, the execution is a
  ``livelock`` finding ("livelock: no progress within N scheduling
  points") with every runnable thread's position (its pending operation and
  stack), every sleeping thread's wait (a starved reader is woken and put
  back to sleep by each write) and the last progress made; the execution
  ends.
* P3 (runaway cap): independently of progress, an execution longer than
  ``runaway_steps`` scheduling points (much larger than ``max_steps``) is a
  ``runaway`` finding ("runaway: more than N scheduling points") -- an
  execution that keeps making progress and never ends (a producer that
  never stops, a poller whose sleeps keep time moving) -- and it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .thread import ThreadState
from .trace import part_owner

if TYPE_CHECKING:
    from .runtime import Kernel

#: Scheduling points in one execution before it is a ``runaway`` (P3).
RUNAWAY_STEPS = 100_000_000


def report_livelock(k: Kernel) -> None:
    """P2: the runnable threads made no progress within ``max_steps`` scheduling points."""
    window = k.config.max_steps
    run = list(k._runnable)
    since = k.steps - k._progress_step
    last = k._progress_what
    lines = [
        f"livelock: no progress within {window} scheduling points "
        f"(last progress: {last} at step {k._progress_step}, {since} points ago); runnable threads:"
    ]
    positions: dict[str, str] = {}
    infos = [k.thread_info(t) for t in run]
    for t, info in zip(run, infos, strict=True):
        op, obj, _ = t.pending
        positions[t.name] = f"{op} #{obj}"
        if t.glet is not None:
            state = f"next: {op} #{obj}"
        else:
            state = "not started yet, will start in:" if info.stack else "not started yet"
        lines.append(f"  {t.name}/{t.tid} {state}")
        lines.extend(f"      {fr}" for fr in info.stack)  # where it loops, as in the deadlock report
    # Threads asleep meanwhile (a starved reader woken and put back to sleep by every write).
    blocked: dict[str, str] = {}
    sleepers = [t for t in k._threads if t.state is ThreadState.BLOCKED and t.blocked_on is not None]
    if sleepers:
        lines.append("blocked threads:")
    for t in sleepers:
        what, obj, name = t.blocked_on  # type: ignore[misc]  # checked above
        obj = part_owner(obj)  # a part declared apart (a page's lock, page R8) is shown as its object
        blocked[t.name] = f"{what} #{obj}"
        lines.append(f"  {t.name}/{t.tid} waits: {what} #{obj} {name}".rstrip())
    k.report(
        "livelock",
        f"livelock: no progress within {window} scheduling points",
        details={
            "max_steps": window,
            "runnable": [t.name for t in run],
            "positions": positions,
            "blocked": blocked,
            "last_progress": last,
            "last_progress_step": k._progress_step,
        },
        rule="progress P2: no progress within max_steps scheduling points",
        signature="livelock",
        threads=(*infos, *(k.thread_info(t) for t in sleepers)),
        text="\n".join(lines),
    )


def report_runaway(k: Kernel) -> None:
    """P3: the execution exceeded the runaway cap while still making progress."""
    cap = k.config.runaway_steps
    run = list(k._runnable)
    lines = [f"runaway: more than {cap} scheduling points in one execution; runnable threads:"]
    for t in run:
        op, obj, _ = t.pending
        lines.append(f"  {t.name}/{t.tid} next: {op} #{obj}")
    k.report(
        "runaway",
        f"runaway: more than {cap} scheduling points",
        details={
            "runaway_steps": cap,
            "runnable": [t.name for t in run],
            "last_progress": k._progress_what,
            "last_progress_step": k._progress_step,
        },
        rule="progress P3: runaway cap",
        signature="runaway",
        threads=tuple(k.thread_info(t) for t in run),
        text="\n".join(lines),
    )
