"""Simulated kernel threads (kthreads) and their execution context.

Models ``struct task_struct`` as far as the rules need it: a name and pid,
a state, the locks held (the runtime's held-lock stack, which lockdep reads),
and the context the thread runs in -- process context, or atomic (a
spinlock held, preemption or interrupts disabled, an RCU read section, an
interrupt handler). Each thread runs on its own greenlet; only the runtime
switches between them.

State machine::

    NEW --first switch--> RUNNABLE <--wake-- BLOCKED
                              |  \\--block-->/
                              v
                           EXITED
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from types import CodeType
from typing import TYPE_CHECKING, Any, Protocol

from .stack import Frame, LazySite

if TYPE_CHECKING:
    from greenlet import greenlet


class ThreadState(Enum):
    RUNNABLE = "R"
    BLOCKED = "D"
    EXITED = "X"


# The members as module globals: an Enum member's lookup costs several times a global's.
_RUNNABLE = ThreadState.RUNNABLE
_EXITED = ThreadState.EXITED


class AtomicReason(LazySite):
    """Why a thread is in atomic context, and where that started (for reports).

    ``site`` may be given lazily, as :class:`~dmabufsim.kernel.held.HeldLock`
    takes it: the scenario frame's code object and, in ``lasti`` (>= 0),
    its instruction offset; the Frame is built when a report reads ``site``.
    """

    __slots__ = ("name", "what")

    def __init__(self, what: str, name: str, site: Frame | CodeType | None, lasti: int = -1) -> None:
        #: "spinlock", "preempt_disable", "irqs_disabled", "bh_disabled", "rcu_read_lock",
        #: "hardirq", "softirq".
        self.what = what
        #: The lock or section name.
        self.name = name
        self._site: Any = site
        self._lasti = lasti

    def __repr__(self) -> str:
        return f"{self.what} {self.name} at {self.site}"


class ParkLock(Protocol):
    """What ``Kernel._park`` needs of a sleeping lock a thread waits for at its point.

    The lock's ``lock()`` sets ``t.park = lock`` around its scheduling point
    (op ``park_on[0]`` on ``park_on[1]``, event word ``park_word``) and then,
    after the point, does exactly: while ``owner`` is set, append ``t`` to
    ``waiters``, ``block(*park_on)`` uninterruptibly without a timeout, and
    remove ``t`` from ``waiters``. When the point returns with ``t.parked``
    set, the runtime did the first append and block for it (perhaps more
    rounds of the loop too: woken, the mutex owned again, requeued and
    blocked): ``t`` was woken since, and the lock clears ``t.park`` and
    ``t.parked``, removes ``t`` from ``waiters`` and goes on with its loop.
    """

    owner: Any
    waiters: list[KThread]
    #: The lock point's precomputed event word (``Kernel.point(..., word=)``).
    park_word: int
    #: ``blocked_on`` while waiting: (operation, object id, lock name).
    park_on: tuple[str, int, str]


class LockGate(Protocol):
    """What an explorer needs of a lock attempt a thread waits at, when the lock does its
    own blocking (``t.gate``; the runtime never blocks such a thread for it, unlike
    :class:`ParkLock`).

    ``waits(t)`` is true while all the attempt of ``t`` could do, were it run,
    is to queue on the lock and sleep (no exception, no effect on another
    thread; a thread queued that way affects no other attempt but by its
    place in the wake order). Optimal DPOR then treats ``t`` as not
    enabled, as it does a thread at a :class:`ParkLock` point while the lock
    is owned. ``owner is None`` means the attempt takes the lock; ``oid`` is
    the lock's object id.
    """

    @property
    def owner(self) -> Any: ...

    @property
    def oid(self) -> int: ...

    def waits(self, t: KThread) -> bool: ...


#: The exit pseudo-objects of the explorers and the join gate: a thread's exit is a write of
#: ``EXIT_OID - tid``, below every real object id (``odpor`` R1).
EXIT_OID = -(1 << 41)


class JoinGate:
    """What a joiner waits for at its ``join`` point (``Kernel.join``, runtime R15), as a
    :class:`LockGate`: the exit of the joined thread ``thread``.

    While ``thread`` runs, all the joiner could do at its point is queue on
    it and sleep (``kthread_stop``'s ``wait_for_completion``): nothing
    another thread sees but its place among the joiners, which the exit
    wakes together. ``oid`` is the exit's pseudo-object; ``owner`` is the
    thread waited for while it runs, None once it exited (the join then
    goes on: it reads the exit, which its step "acquires"; the exit was the
    release, ``odpor`` R3).
    """

    __slots__ = ("oid", "thread")

    def __init__(self, thread: KThread) -> None:
        self.thread = thread
        self.oid = EXIT_OID - thread.tid

    @property
    def owner(self) -> KThread | None:
        t = self.thread
        return None if t.state is _EXITED else t

    def waits(self, t: KThread) -> bool:
        """Would ``t``'s join only wait now? The joined thread has not exited."""
        return self.thread.state is not _EXITED


class KThread:
    """One simulated kernel thread.

    Invariants: ``state is RUNNABLE`` iff the thread is in the runtime's
    runnable list; ``blocked_on`` is set iff ``state is BLOCKED``;
    ``atomic`` lists every reason the thread is atomic, innermost last.
    """

    __slots__ = (
        "args",
        "atomic",
        "blocked_on",
        "data",
        "error",
        "fn",
        "gate",
        "gfp_scope",
        "glet",
        "held",
        "in_irq",
        "in_reclaim",
        "in_softirq",
        "interruptible",
        "joiners",
        "name",
        "park",
        "parked",
        "pending",
        "result",
        "signal_pending",
        "sleep_reads",
        "stall",
        "stall_since",
        "state",
        "tid",
        "tid_word",
        "timer",
        "wake_reason",
    )

    def __init__(self, tid: int, name: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.tid = tid
        #: The thread's part of its events' trace word: ``(tid + 1) << 52``.
        self.tid_word = (tid + 1) << 52
        self.name = name
        self.fn = fn
        self.args = args
        self.glet: greenlet | None = None
        self.state = _RUNNABLE
        self.result: Any = None
        #: The exception that ended the thread, if any.
        self.error: BaseException | None = None
        #: Locks (lockdep maps) held, outermost first: maintained by lockdep.
        self.held: list[Any] = []
        #: Reasons the thread is atomic, innermost last; empty = process context.
        self.atomic: list[AtomicReason] = []
        #: True while running an interrupt handler (hardirq context).
        self.in_irq = False
        #: True while running a softirq handler (softirq context: atomic, hardirqs on).
        self.in_softirq = False
        #: Depth of direct-reclaim sections (shrinkers run with it > 0).
        self.in_reclaim = 0
        #: The uninterruptible sleep the thread is stalled in (its ``blocked_on`` when the
        #: stall began), or None, and the virtual time it began (``hung_task`` H1-H2).
        self.stall: tuple[str, int, str] | None = None
        self.stall_since = 0
        #: memalloc_noio/nofs scope flags stack (strings "noio", "nofs").
        self.gfp_scope: list[str] = []
        self.signal_pending = False
        #: What a blocked thread waits on: (operation, object id, object name).
        self.blocked_on: tuple[str, int, str] | None = None
        #: The sleep on ``blocked_on`` only read its object (``Kernel.block(sleep_reads=True)``,
        #: runtime R16): the thread queued a node whose place among the others nothing observes.
        self.sleep_reads = False
        self.interruptible = False
        #: Why the last block ended: "wake", "timeout", "signal", "killed".
        self.wake_reason = ""
        self.timer: Any = None
        #: The operation the thread will perform when it next runs:
        #: (op, object id, write). Strategies (DPOR) read it.
        self.pending: tuple[str, int, bool] = ("start", -1, True)
        #: At its scheduling point inside ``mutex_lock``: the mutex (a
        #: :class:`ParkLock`), so the runtime may run the rest of that point
        #: and the sleep on the owned mutex without switching to the thread
        #: (``Kernel._park``); None otherwise.
        self.park: Any = None
        #: True from when ``Kernel._park`` blocked the thread at its point
        #: until the lock, woken and run again, takes note.
        self.parked = False
        #: At its scheduling point inside a lock that blocks on its own (``ww_mutex_lock``):
        #: the attempt (a :class:`LockGate`), for the explorers; None otherwise.
        self.gate: Any = None
        self.joiners: list[KThread] = []
        #: Scratch space for higher rooms (per-thread model state), by key.
        self.data: dict[str, Any] = {}

    @property
    def is_atomic(self) -> bool:
        """True in atomic context (sleeping is a bug here)."""
        return bool(self.atomic) or self.in_irq

    @property
    def exited(self) -> bool:
        return self.state is _EXITED

    def __repr__(self) -> str:
        return f"<KThread {self.tid} {self.name!r} {self.state.value}>"
