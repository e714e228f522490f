"""Work items and workqueues: deferred work in process context, run by kworker threads.

Models ``kernel/workqueue.c`` (6.12): ``INIT_WORK``, ``alloc_workqueue`` /
``alloc_ordered_workqueue``, ``queue_work``, ``schedule_work``,
``flush_work``, ``cancel_work_sync``, ``flush_workqueue``, and the
kworker threads that run the items (``worker_thread`` /
``process_one_work``). Delayed work (``queue_delayed_work``,
``cancel_delayed_work_sync``) is a work item queued by a ``timer_list``
(``timer_list.py``).

Rules:

* W1 (pending): queueing a work that is already pending does nothing and
  returns False (``WORK_STRUCT_PENDING``); the bit clears when a worker
  takes the item off the queue, so a work may be queued again while it
  runs, and then runs once more.
* W2 (workers): a workqueue has ``workers`` kworker threads (the model's
  pool; ``alloc_ordered_workqueue`` has one, so its items run one at a
  time in queueing order). A worker takes the first queued item that is not
  running on another worker (a work is non-reentrant: the kernel gives it to
  the worker already running it). Workers run in process context (they may
  sleep); the explorer decides when they run. An idle worker sleeps like
  ``TASK_IDLE`` (no hung task, no deadlock); a worker stuck *inside* an item
  is not idle.
* W3 (lockdep, ``process_one_work``): around the work function the worker
  holds the workqueue's map ``(wq_completion)NAME`` and then the work's map
  ``(work_completion)NAME``, so every lock the function takes is ordered
  after both.
* W4 (lockdep, flushing): ``flush_work`` and ``cancel_work_sync`` acquire
  and release the work's map (``__flush_work``), and ``flush_work`` also the
  workqueue's map when the workqueue is ordered (``start_flush_work``);
  ``flush_workqueue`` acquires the workqueue's map. So flushing a work from
  inside itself is ``possible recursive locking detected`` on its map, and
  flushing it while holding a lock the work takes closes a cycle
  (``possible circular locking dependency detected``), as the kernel
  reports them -- before the wait that would hang.
* W5 (waits): ``flush_work`` waits until the last queued instance of the
  work has finished (True if it waited); ``cancel_work_sync`` takes a
  pending work off the queue and waits for a running one (True if it was
  pending); ``flush_workqueue`` waits until every item queued before it
  has run. All may sleep (``might_sleep``).
* W6 (declarations): queueing writes the work and the workqueue; a worker
  taking an item writes both; the end of an item writes the work (and wakes
  its flushers); flushes read and wait on the work (or the workqueue).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import UsageError
from .lockdep_map import LockdepMap
from .runtime import Kernel, current_kernel
from .thread import KThread

#: How many kworkers a concurrent workqueue gets when the caller names none.
DEFAULT_WORKERS = 2


class WorkStruct:
    """``struct work_struct``: a function to run later in process context (``INIT_WORK``).

    ``func(work)`` is called by a kworker; closures or ``functools.partial``
    carry what the kernel reaches by ``container_of``.
    """

    __slots__ = (
        "dep_map",
        "done_seq",
        "exec_seq",
        "flushers",
        "func",
        "k",
        "name",
        "oid",
        "pending",
        "queued_seq",
        "running",
        "wq",
    )

    def __init__(self, func: Callable[[WorkStruct], Any], name: str | None = None) -> None:
        """``INIT_WORK(work, func)``: one lockdep class per name (the kernel: per call site)."""
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.func = func
        self.name = name or str(getattr(func, "__name__", "work"))
        self.dep_map = LockdepMap(f"(work_completion)({self.name})")
        #: ``WORK_STRUCT_PENDING`` (W1).
        self.pending = False
        #: The workqueue it was last queued on.
        self.wq: Workqueue | None = None
        #: The worker running it, or None.
        self.running: KThread | None = None
        #: Instances queued, the one now running, the last one finished (W5).
        self.queued_seq = 0
        self.exec_seq = 0
        self.done_seq = 0
        self.flushers: list[KThread] = []

    def __repr__(self) -> str:
        state = "pending" if self.pending else "running" if self.running is not None else "idle"
        return f"<WorkStruct {self.name} {state}>"


class Workqueue:
    """``struct workqueue_struct`` with its pool of kworkers (W2)."""

    __slots__ = ("barrier_seq", "dep_map", "done_count", "flushers", "idle", "k", "name", "oid", "ordered",
                 "queue", "queued_count", "workers")

    def __init__(self, name: str, *, ordered: bool = False, workers: int | None = None) -> None:
        """``alloc_workqueue(name, flags, max_active)``; ``ordered``: ``alloc_ordered_workqueue``."""
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        self.name = name
        self.ordered = ordered
        n = 1 if ordered else (workers if workers is not None else DEFAULT_WORKERS)
        if n < 1:
            raise UsageError("a workqueue needs at least one worker")
        if ordered and workers not in (None, 1):
            raise UsageError("an ordered workqueue has exactly one worker")
        self.dep_map = LockdepMap(f"(wq_completion){name}")
        self.queue: list[WorkStruct] = []
        #: Items queued and items finished, ever (``flush_workqueue``'s colour, W5).
        self.queued_count = 0
        self.done_count = 0
        self.barrier_seq = 0
        self.idle: list[KThread] = []
        self.flushers: list[tuple[KThread, int]] = []
        self.workers: list[KThread] = []
        for i in range(n):
            self.workers.append(k.spawn(self._worker_thread, name=f"kworker/{name}:{i}", daemon=True))

    # ------------------------------------------------------------------ queueing

    def queue_work(self, work: WorkStruct) -> bool:
        """``queue_work``: queue ``work`` unless it is pending (W1); wakes an idle worker."""
        k = self.k
        k.point("queue_work", work.oid, True, work.name)
        k.event("queue_work", self.oid, True, self.name)  # W6
        return self._insert(work)

    def _insert(self, work: WorkStruct) -> bool:
        if work.pending:
            return False
        work.pending = True
        work.wq = self
        work.queued_seq += 1
        self.queue.append(work)
        self.queued_count += 1
        if self.idle:
            self.k.wake(self.idle[0])
        return True

    def _take(self, me: KThread) -> WorkStruct | None:
        for i, w in enumerate(self.queue):
            if w.running is None:
                del self.queue[i]
                return w
            if self.ordered:
                return None
        return None

    def _worker_thread(self) -> None:
        """``worker_thread``: take items off the queue and run them (W2, W3)."""
        k = self.k
        me = k.current
        while True:
            k.point("worker_thread", self.oid, True, self.name)
            work = self._take(me)
            if work is None:
                self.idle.append(me)
                me.data["daemon"] = True  # idle: TASK_IDLE (W2)
                k.block("worker_thread", self.oid, interruptible=True, name=self.name)
                if me in self.idle:
                    self.idle.remove(me)
                continue
            me.data["daemon"] = False
            k.event("process_one_work", work.oid, True, work.name)  # W6
            self._process_one_work(me, work)

    def _process_one_work(self, me: KThread, work: WorkStruct) -> None:
        """``process_one_work``: clear PENDING, run the function under the maps (W3)."""
        k = self.k
        work.pending = False
        work.running = me
        seq = work.exec_seq = work.queued_seq
        self.dep_map.acquire()
        work.dep_map.acquire()
        try:
            work.func(work)
        finally:
            work.dep_map.release()
            self.dep_map.release()
        k.point("process_one_work_done", work.oid, True, work.name)
        k.event("process_one_work_done", self.oid, True, self.name)
        work.running = None
        work.done_seq = seq
        self.done_count += 1
        for t in list(work.flushers):
            k.wake(t)
        for t, target in list(self.flushers):
            if self.done_count >= target:
                k.wake(t)
        if self.queue and self.idle:
            k.wake(self.idle[0])  # an item skipped while this one ran (W2)

    # ------------------------------------------------------------------ flushing

    def flush_workqueue(self) -> None:
        """``flush_workqueue``: wait until every item queued so far has run (W4, W5)."""
        k = self.k
        k.might_sleep("flush_workqueue")
        self.dep_map.acquire()
        self.dep_map.release()
        k.point("flush_workqueue", self.oid, True, self.name)
        me = k.current
        target = self.queued_count
        entry = (me, target)
        while self.done_count < target:
            self.flushers.append(entry)
            k.block("flush_workqueue", self.oid, name=self.name)
            self.flushers.remove(entry)

    def __repr__(self) -> str:
        return f"<Workqueue {self.name} queued={len(self.queue)}>"


def _wait_done(k: Kernel, work: WorkStruct, target: int, what: str) -> None:
    me = k.current
    while work.done_seq < target and (work.pending or work.running is not None):
        work.flushers.append(me)
        k.block(what, work.oid, name=work.name)
        work.flushers.remove(me)


def flush_work(work: WorkStruct) -> bool:
    """``flush_work``: wait for the last queued instance of ``work`` to finish (W4, W5)."""
    k = work.k
    k.might_sleep("flush_work")
    k.point("flush_work", work.oid, False, work.name)
    wq = work.wq
    if work.pending:
        target = work.queued_seq
    elif work.running is not None:
        target = work.exec_seq
    else:
        return False
    if wq is not None and wq.ordered:  # start_flush_work
        wq.dep_map.acquire()
        wq.dep_map.release()
    work.dep_map.acquire()  # __flush_work
    work.dep_map.release()
    _wait_done(k, work, target, "flush_work")
    return True


def cancel_work_sync(work: WorkStruct) -> bool:
    """``cancel_work_sync``: unqueue a pending ``work`` and wait for a running one (W4, W5).

    Returns True if it was pending. Afterwards the work is neither pending nor running.
    """
    k = work.k
    k.might_sleep("cancel_work_sync")
    k.point("cancel_work_sync", work.oid, True, work.name)
    was = work.pending
    if was:
        wq = work.wq
        assert wq is not None
        k.event("cancel_work_sync", wq.oid, True, wq.name)
        wq.queue.remove(work)
        work.pending = False
        wq.done_count += 1  # flush_workqueue's colour: the item will never run
        for t, target in list(wq.flushers):
            if wq.done_count >= target:
                k.wake(t)
        if work.running is None:
            for t in list(work.flushers):
                k.wake(t)
    work.dep_map.acquire()  # __flush_work(work, true)
    work.dep_map.release()
    if work.running is not None:
        _wait_done(k, work, work.exec_seq, "cancel_work_sync")
    return was


def system_wq() -> Workqueue:
    """``system_wq``: the shared concurrent workqueue, created at its first use in an execution."""
    k = current_kernel()
    wq = k.ext.get("system_wq")
    if wq is None:
        wq = k.ext["system_wq"] = Workqueue("events")
    assert isinstance(wq, Workqueue)
    return wq


def schedule_work(work: WorkStruct) -> bool:
    """``schedule_work``: ``queue_work(system_wq, work)``."""
    return system_wq().queue_work(work)


class DelayedWork:
    """``struct delayed_work``: a work item queued by a ``timer_list`` after a delay.

    ``delayed_work_timer_fn`` runs in the timer's softirq and queues the work
    (``timer_list`` T1); the work then runs in a kworker like any other (W2).
    """

    __slots__ = ("k", "timer", "work", "wq")

    def __init__(self, func: Callable[[WorkStruct], Any], name: str | None = None) -> None:
        """``INIT_DELAYED_WORK(dwork, func)``."""
        from .timer_list import TimerList

        self.k = current_kernel()
        self.work = WorkStruct(func, name)
        self.wq: Workqueue | None = None
        self.timer = TimerList(self._timer_fn, f"{self.work.name}.timer")

    def _timer_fn(self, timer: Any) -> None:
        """``delayed_work_timer_fn``: queue the work (in the timer softirq)."""
        wq = self.wq
        assert wq is not None
        work = self.work
        k = self.k
        k.point("delayed_work_timer_fn", work.oid, True, work.name)
        k.event("queue_work", wq.oid, True, wq.name)
        work.pending = False  # the PENDING bit was held by the timer; __queue_work sets it again
        wq._insert(work)

    def queue(self, wq: Workqueue, delay: int) -> bool:
        """``queue_delayed_work(wq, dwork, delay)``: False if already pending (timer or queue)."""
        k = self.k
        work = self.work
        k.point("queue_delayed_work", work.oid, True, work.name)
        if work.pending:
            return False
        if delay <= 0:
            k.event("queue_work", wq.oid, True, wq.name)
            return wq._insert(work)
        work.pending = True
        work.wq = self.wq = wq
        self.timer.mod_timer(k.now + delay)
        return True

    def mod(self, wq: Workqueue, delay: int) -> bool:
        """``mod_delayed_work``: (re)arm the delay whether or not it was pending; True if it was."""
        was = self.cancel()
        self.queue(wq, delay)
        return was

    def cancel(self) -> bool:
        """``cancel_delayed_work``: take it off the timer or the queue, without waiting."""
        k = self.k
        work = self.work
        if self.timer.del_timer():
            k.point("cancel_delayed_work", work.oid, True, work.name)
            work.pending = False
            return True
        k.point("cancel_delayed_work", work.oid, True, work.name)
        if work.pending and work.wq is not None and work in work.wq.queue:
            k.event("cancel_delayed_work", work.wq.oid, True, work.wq.name)
            work.wq.queue.remove(work)
            work.wq.done_count += 1
            work.pending = False
            return True
        return False

    def cancel_sync(self) -> bool:
        """``cancel_delayed_work_sync``: as :meth:`cancel`, then wait for a running callback and work."""
        was = False
        if self.timer.del_timer_sync():
            k = self.k
            k.point("cancel_delayed_work", self.work.oid, True, self.work.name)
            self.work.pending = False
            was = True
        return cancel_work_sync(self.work) or was

    def flush(self) -> bool:
        """``flush_delayed_work``: queue it now if its timer is pending, then ``flush_work``."""
        if self.timer.del_timer():
            wq = self.wq
            assert wq is not None
            k = self.k
            k.point("flush_delayed_work", self.work.oid, True, self.work.name)
            k.event("queue_work", wq.oid, True, wq.name)
            self.work.pending = False
            wq._insert(self.work)
        return flush_work(self.work)

    def __repr__(self) -> str:
        return f"<DelayedWork {self.work.name}>"
