"""The hung-task detector: a thread in uninterruptible sleep for too long.

Models ``kernel/hung_task.c`` (``khungtaskd``, ``check_hung_uninterruptible_tasks``)
over the model's virtual clock. Many driver deadlocks are not a lock cycle
but a stall: a worker holds a mutex and waits -- with a timeout, in a loop,
as drivers do -- for an event whose producer needs that mutex. No cycle is
ever closed and time keeps moving, so neither the deadlock check nor the
livelock window sees it; the kernel reports it as "INFO: task ... blocked
for more than 120 seconds".

Rules:

* H1 (D state): a thread is *stalled* while it sleeps uninterruptibly: on a
  mutex, an rwsem, a ww_mutex, ``wait_for_completion``, ``wait_event``, an
  uninterruptible fence wait, ``kthread_stop``/join, ``synchronize_rcu``,
  ``msleep``. Interruptible and killable sleeps are not (``TASK_WAKEKILL``),
  nor is spinning (a spinlock, an rwlock, a seqcount reader: the thread
  runs, which is the soft-lockup watchdog's business), nor a daemon thread
  (an engine, a worker) idling on its wait queue for work (``TASK_IDLE``).
* H2 (same wait): the stall starts when the thread goes to sleep and ends
  when it is woken -- except that a timed wait that timed out and sleeps
  again on the same object at the same virtual instant (it only re-checked
  its condition: CPU work takes no time) keeps waiting for the same thing,
  and its stall goes on. A real wake-up, or a sleep on something else,
  starts a new stall. ``msleep`` / ``schedule_timeout`` wait for nothing,
  so each one is a stall of its own.
* H3 (report): when virtual time passes a stall's start plus
  ``Config.hung_task_timeout`` (virtual ns, 120 s by default as the
  kernel's ``hung_task_timeout_secs``; 0 turns the detector off), the
  execution has a ``hung-task`` finding ("INFO: task NAME:TID blocked for
  more than N seconds.") naming every hung thread, with every blocked
  thread's stack, what it waits on, since when, and the locks it holds
  (``debug_show_all_locks``); the execution then ends with outcome
  ``hung-task`` (the kernel's ``hung_task_panic``): the stall would
  otherwise go on until the runaway cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .thread import ThreadState

if TYPE_CHECKING:
    from .runtime import Kernel
    from .thread import KThread

#: No check pending (the detector's next deadline when nothing is stalled).
NEVER = 1 << 62
#: Waits that spin rather than sleep (H1).
SPINNING = frozenset({"spin_lock", "rwlock_spin", "read_seqcount_begin"})
#: Sleeps that wait for no object (H2).
PLAIN_SLEEPS = frozenset({"msleep", "schedule_timeout"})
_NSEC_PER_SEC = 1_000_000_000


def stall_begin(k: Kernel, t: KThread, on: tuple[str, int, str], interruptible: bool) -> None:
    """``t`` goes to sleep on ``on`` (its new ``blocked_on``): start or continue its stall (H1, H2).

    Called by the runtime before the sleep's ``wake_reason`` is cleared.
    """
    what = on[0]
    if interruptible or what in SPINNING:
        t.stall = None
        return
    st = t.stall
    # A thread woken by its timeout is runnable until it sleeps again, so virtual time has
    # not moved since (runtime R3): only its condition was re-checked.
    if (st is not None and t.wake_reason == "timeout" and st[1] == on[1] and st[0] == what
            and what not in PLAIN_SLEEPS):
        return  # H2: the same timed wait, again
    t.stall = on
    since = t.stall_since = k.now
    deadline = since + k._hung_timeout
    if deadline < k._hung_check_at:
        k._hung_check_at = deadline


def _counted(k: Kernel, t: KThread) -> bool:
    if t.state is not ThreadState.BLOCKED or t.stall is None or t.interruptible:
        return False
    return not (k._is_daemon(t) and t.stall[0] == "wait_event")  # H1: an idle worker


def check_hung_tasks(k: Kernel) -> None:
    """``check_hung_uninterruptible_tasks`` at virtual time ``k.now`` (H3)."""
    now = k.now
    timeout = k._hung_timeout
    hung: list[KThread] = []
    blocked: list[KThread] = []
    nxt = NEVER
    for t in k._threads:
        if t.state is not ThreadState.BLOCKED:
            continue
        blocked.append(t)
        if not _counted(k, t):
            continue
        since = t.stall_since
        if now - since > timeout:
            hung.append(t)
        elif since + timeout < nxt:
            nxt = since + timeout
    k._hung_check_at = nxt
    if hung:
        report_hung(k, hung, blocked)
        k._stop("hung-task")


def report_hung(k: Kernel, hung: list[KThread], blocked: list[KThread]) -> None:
    """H3: the ``hung-task`` finding, in the kernel's words."""
    secs = k._hung_timeout // _NSEC_PER_SEC
    limit = f"{secs} seconds" if k._hung_timeout % _NSEC_PER_SEC == 0 else f"{k._hung_timeout} ns"
    first = hung[0]
    title = f"INFO: task {first.name}:{first.tid} blocked for more than {limit}."
    waits: list[dict[str, Any]] = []
    lines: list[str] = []
    for t in hung:
        lines.append(f"INFO: task {t.name}:{t.tid} blocked for more than {limit}.")
    lines.append('"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.')
    lines.append("Blocked threads:")
    for t in blocked:
        what, obj, name = t.blocked_on or ("?", -1, "")
        since = t.stall_since if _counted(k, t) else None
        held = [getattr(hl.map, "name", "?") for hl in t.held]
        waits.append({
            "thread": t.name,
            "tid": t.tid,
            "waits": what,
            "on": name or f"#{obj}",
            "since": since,
            "blocked_ns": None if since is None else k.now - since,
            "hung": t in hung,
            "held": held,
        })
        span = "" if since is None else f" for {k.now - since} ns"
        lines.append(f"  {t.name}/{t.tid} waits: {what} {name or f'#{obj}'}{span}; holds: {', '.join(held) or '-'}")
    k.report(
        "hung-task",
        title,
        details={
            "timeout_ns": k._hung_timeout,
            "hung": [t.name for t in hung],
            "blocked": waits,
        },
        rule="hung_task H3: uninterruptible sleep longer than hung_task_timeout",
        signature="hung-task:" + ",".join(sorted(f"{t.name}@{t.stall[0] if t.stall else '?'}" for t in hung)),
        threads=tuple(k.thread_info(t) for t in blocked),
        text="\n".join(lines),
    )
