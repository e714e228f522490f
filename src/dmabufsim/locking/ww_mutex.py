"""Wound/wait mutexes: deadlock-avoiding lock sets with acquire contexts.

Models ``kernel/locking/ww_mutex.h`` and the ww parts of
``kernel/locking/mutex.c`` (6.12), ``include/linux/ww_mutex.h`` and the
``DEBUG_WW_MUTEXES`` checks. ``dma_resv`` is built on it.

A *class* (:class:`WWClass`, ``DEFINE_WW_CLASS`` / ``DEFINE_WD_CLASS``)
hands out stamps; an *acquire context* (:class:`WWAcquireCtx`) takes one
stamp for a whole transaction (smaller stamp = older = wins); a
:class:`WWMutex` records the context of its holder. When two contexts
contend, the algorithm of the class decides who backs off:

* **wait-die**: a younger context that holds locks and meets an older
  holder, or an older waiter ahead of it, *dies* (``EDEADLK``).
* **wound-wait**: an older context that holds locks and waits for a
  younger holder *wounds* it; the wounded context notices the next time it
  contends while holding locks and gets ``EDEADLK``.

Rules:

* R1 (stamps): ``WWAcquireCtx(cls)`` takes ``++stamp`` of its class (per
  execution); the older context always makes progress if every context
  backs off correctly and keeps its stamp across retries.
* R2 (EALREADY): locking a mutex the same context holds raises
  ``EALREADY`` at once and changes nothing.
* R3 (EDEADLK only with locks held): a context holding nothing
  (``acquired == 0``) always waits; only a context with ``acquired > 0``
  is told to back off. The wounded flag is cleared when a lock attempt
  starts with ``acquired == 0``.
* R4 (wait list): waiters with a context are sorted by stamp, oldest
  first; waiters without one keep their FIFO position and are skipped by
  the ordering logic. An unlock wakes the first waiter; a waiter that finds
  the lock free takes it (stealing is allowed, as in the kernel).
* R5 (wait-die decisions): die on insertion if an older context waits
  ahead; die on any wake-up if the holder is older or an older context
  waits ahead; inserting or acquiring wakes younger waiters that hold locks
  so they die.
* R6 (wound-wait decisions): waiting for a younger holder while holding
  locks wounds it (and wakes it if it is waiting for a ww_mutex); a context
  that acquired a lock by stealing re-checks the waiters, which may wound
  it; a wounded context dies at its next contended attempt.
* R7 (back-off contract, ``ww-usage`` findings): after ``EDEADLK`` the
  context must unlock everything, then take the contended lock (with
  ``lock_slow`` or ``lock``) before any other; ``lock_slow`` needs a
  preceding ``EDEADLK``; a second ``EDEADLK`` without backing off, a lock
  after ``done()``, a second ``done()``/``fini()``, ``fini()`` with locks
  held, a mutex of another class, a stale ``ctx`` on a free mutex, an
  unlock of an unlocked mutex and an ``acquired`` underflow are each one
  ``ww-usage`` finding whose ``details["check"]`` names the check.
* R8 (lockdep): a context acquires its class's ``<name>_acquire`` map; each
  mutex acquisition under a context is made with ``nest_lock`` = that map
  (the validator allows many ``<name>_mutex`` under it). Lockdep, not this
  module, reports two live contexts of a class in one thread and mixing
  context and context-less blocking locks.
* R9 (sleeping): ``lock*`` may sleep (``might_sleep``); ``trylock`` never
  sleeps and never returns ``EDEADLK``.
* R10 (lock_stat): an attempt that sleeps calls ``lock_contended`` before
  its first sleep and ``lock_acquired`` once it owns the lock; one that
  gives up (``EDEADLK``, ``EALREADY``, ``EINTR``) calls ``lock_failed``
  (``Kernel.lock_stat``, kept only while recording).
* R11 (the base mutex): ``ww.base`` is the plain ``struct mutex`` inside the
  ww_mutex (same owner, wait list and lockdep map). ``mutex_lock`` /
  ``mutex_trylock`` / ``mutex_unlock`` on it never read or write ``ww.ctx``
  nor any acquire context's counters; a base waiter queues at the tail like
  a context-less waiter (R4). ``mutex_lock_nest_lock(&ww->base, ctx)``
  acquires the mutex under the context's ``<name>_acquire`` map (R8) and
  still leaves the context's bookkeeping alone.
* R12 (attempts that only wait): an attempt on an owned mutex made without
  a context, or by a wound-wait context holding nothing (``acquired == 0``),
  can only queue and sleep: it wounds nobody (R6 needs locks held), is told
  to back off never (R3), and as a waiter it changes no other attempt's
  decision (R5/R6 skip context-less waiters and wound only for a waiter
  holding locks) but by its place in the wake order. Around its scheduling
  point such an attempt is the thread's ``gate``
  (:class:`~dmabufsim.kernel.thread.LockGate`): while the mutex is owned by
  another thread (and, interruptible, no signal is pending) optimal DPOR
  does not count the thread as enabled, as for a plain ``mutex_lock``, so a
  busy attempt is no event of its own. Every other attempt on an owned
  mutex may wound, die, or wake a waiter that must die (wait-die), and
  stays an event: the wound/wait decisions are made exactly as before.
  Every attempt (trylocks included) has a gate, so the explorers see where a
  free mutex is taken.
"""

from __future__ import annotations

from typing import Any

from ..kernel.errors import EALREADY, EDEADLK, EINTR, UsageError
from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.thread import KThread, ThreadState

#: The block reasons of ww_mutex waits: a wound wakes its victim only from these
#: (every other kernel wait would just re-check its condition and sleep again).
_WW_WAIT = "ww_mutex_lock"
_RULE = "ww_mutex R7: acquire-context usage (DEBUG_WW_MUTEXES)"


class _ClassState:
    """Per-execution state of a :class:`WWClass`: its stamp counter."""

    __slots__ = ("oid", "stamp")

    def __init__(self, oid: int) -> None:
        self.oid = oid
        #: The last stamp handed out (``ww_class->stamp``); the first context gets 1.
        self.stamp = 0


class WWClass:
    """``struct ww_class`` (``DEFINE_WW_CLASS`` / ``DEFINE_WD_CLASS``).

    ``WWClass("reservation_ww_class")`` is wound-wait; ``wait_die=True``
    makes a wait-die class. May be created at module level (like the
    kernel's static classes): the stamp counter lives in the running
    execution, so every execution starts from stamp 1 (R1).
    """

    __slots__ = ("acquire_name", "mutex_name", "name", "wait_die")

    def __init__(self, name: str, wait_die: bool = False) -> None:
        self.name = name
        self.wait_die = wait_die
        #: Lockdep class of every acquire context of this class.
        self.acquire_name = f"{name}_acquire"
        #: Lockdep class of every mutex of this class.
        self.mutex_name = f"{name}_mutex"

    @property
    def is_wait_die(self) -> bool:
        return self.wait_die

    def _state(self, k: Kernel) -> _ClassState:
        states: dict[WWClass, _ClassState] = k.ext.setdefault("ww_classes", {})
        st = states.get(self)
        if st is None:
            st = states[self] = _ClassState(k.new_oid())
        return st

    def __repr__(self) -> str:
        algo = "wait-die" if self.wait_die else "wound-wait"
        return f"<WWClass {self.name} {algo}>"


def _report(k: Kernel, check: str, title: str, what: str, **details: Any) -> None:
    details["check"] = check
    k.report(
        "ww-usage",
        title,
        details=details,
        rule=_RULE,
        signature=f"ww-usage:{check}:{what}",
        text=f"{title}\n{k.current.name}/{k.current.tid}: {check} ({what})",
    )


class WWAcquireCtx:
    """``struct ww_acquire_ctx``: one transaction's stamp and bookkeeping.

    Creating it is ``ww_acquire_init``; :meth:`done` is ``ww_acquire_done``
    and :meth:`fini` ``ww_acquire_fini``. ``with WWAcquireCtx(cls) as ctx:``
    calls ``fini`` on exit.

    State: ``acquired`` counts the ww_mutexes held through this context;
    ``wounded`` is set by an older context (wound-wait); ``contending_lock``
    is the mutex that returned ``EDEADLK`` and must be taken next (R7).
    """

    __slots__ = (
        "acquired",
        "contending_lock",
        "dep_map",
        "done_acquire",
        "finished",
        "k",
        "stamp",
        "task",
        "wounded",
        "ww_class",
    )

    def __init__(self, ww_class: WWClass) -> None:
        if not isinstance(ww_class, WWClass):
            raise UsageError(f"WWAcquireCtx needs a WWClass, got {ww_class!r}")
        k = self.k = current_kernel()
        self.ww_class = ww_class
        st = ww_class._state(k)
        k.point("ww_acquire_init", st.oid, True, ww_class.acquire_name)
        st.stamp += 1
        #: Smaller is older (higher priority).
        self.stamp = st.stamp
        self.task: KThread = k.current
        self.acquired = 0
        self.wounded = False
        self.done_acquire = False
        self.finished = False
        self.contending_lock: WWMutex | None = None
        self.dep_map = LockdepMap(ww_class.acquire_name)
        k.lockdep.acquire(self.dep_map)

    @property
    def is_wait_die(self) -> bool:
        return self.ww_class.wait_die

    def done(self) -> None:
        """``ww_acquire_done``: the acquire phase is over; no more locks with this context."""
        k = self.k
        if self.finished:
            _report(k, "done-after-fini", "WARNING: ww_acquire_done after ww_acquire_fini", self.ww_class.name)
            return
        if self.done_acquire:
            _report(k, "done-twice", "WARNING: ww_acquire_done called twice", self.ww_class.name)
            return
        self.done_acquire = True

    def fini(self) -> None:
        """``ww_acquire_fini``: end the transaction; every lock must have been unlocked."""
        k = self.k
        if self.finished:
            _report(k, "fini-twice", "WARNING: ww_acquire_fini called twice", self.ww_class.name)
            return
        if self.acquired:
            _report(
                k,
                "fini-locks-held",
                "WARNING: ww_acquire_fini with ww_mutexes still held",
                self.ww_class.name,
                acquired=self.acquired,
            )
        self.finished = True
        self.done_acquire = True
        k.event("ww_acquire_fini", self.dep_map.oid, True, self.ww_class.acquire_name)
        k.lockdep.release(self.dep_map)

    def __enter__(self) -> WWAcquireCtx:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.finished:
            self.fini()

    def __repr__(self) -> str:
        return f"<WWAcquireCtx {self.ww_class.name} stamp={self.stamp} acquired={self.acquired}>"


class _Waiter:
    """``struct mutex_waiter`` with its ``ww_ctx``."""

    __slots__ = ("ctx", "task")

    def __init__(self, task: KThread, ctx: WWAcquireCtx | None) -> None:
        self.task = task
        self.ctx = ctx


class _Gate:
    """R12: a ww_mutex attempt as the explorers see it at its point
    (:class:`~dmabufsim.kernel.thread.LockGate`); one per mutex and kind of attempt: one that
    can only wait (uninterruptible, interruptible), or any other (it never only waits, but
    the explorers still learn that a free mutex is taken there)."""

    __slots__ = ("interruptible", "only", "ww")

    def __init__(self, ww: WWMutex, interruptible: bool, only: bool = True) -> None:
        self.ww = ww
        self.interruptible = interruptible
        self.only = only

    @property
    def owner(self) -> KThread | None:
        return self.ww.owner

    @property
    def oid(self) -> int:
        return self.ww.oid

    def waits(self, t: KThread) -> bool:
        """Would ``t``'s attempt only queue and sleep now? The mutex is owned by another
        thread, and no pending signal would end an interruptible attempt at once."""
        owner = self.ww.owner
        return (self.only and owner is not None and owner is not t
                and not (self.interruptible and t.signal_pending))


def _only_waits(ctx: WWAcquireCtx | None) -> bool:
    """R12: is an attempt with ``ctx`` on an owned mutex one that can only wait?"""
    return ctx is None or (ctx.acquired == 0 and not ctx.ww_class.wait_die)


def _younger(a: WWAcquireCtx, b: WWAcquireCtx) -> bool:
    """``__ww_ctx_less(a, b)``: is ``a`` younger (larger stamp) than ``b``?"""
    return a.stamp > b.stamp


class WWMutexBase:
    """``struct ww_mutex::base``: the plain ``struct mutex`` a ww_mutex wraps (R11).

    ``ww.base.lock()`` is ``mutex_lock(&ww->base)``; ``lock(nest_lock=ctx)`` /
    :meth:`lock_nest_lock` is ``mutex_lock_nest_lock(&ww->base, &ctx->dep_map)``.
    """

    __slots__ = ("ww",)

    def __init__(self, ww: WWMutex) -> None:
        self.ww = ww

    @property
    def dep_map(self) -> LockdepMap:
        """``ww->base.dep_map``: the ww_mutex's own lockdep map."""
        return self.ww.dep_map

    def _lock(self, interruptible: bool, subclass: int, nest_lock: Any, fn: str) -> None:
        ww = self.ww
        k = ww.k
        k.might_sleep(fn)
        k.lockdep.acquire(ww.dep_map, subclass=subclass, nest_lock=nest_lock)
        me = k.current
        me.gate = ww._gates[interruptible]  # R12: a base waiter only waits (R11)
        k.point(fn, ww.oid, True, ww.dep_map.name)
        me.gate = None
        if ww.owner is None:
            ww.owner = me  # __mutex_lock_common without a ww_ctx: ww->ctx is not touched
            return
        w = _Waiter(me, None)
        waiters = ww.waiters
        waiters.append(w)  # __mutex_add_waiter at the tail (R4)
        while True:
            if ww.owner is None:
                waiters.remove(w)
                ww.owner = me
                return
            if interruptible and me.signal_pending:
                waiters.remove(w)
                k.lockdep.release(ww.dep_map)
                raise EINTR(f"{fn}({ww.name}) interrupted by a signal")
            k.block(_WW_WAIT, ww.oid, interruptible=interruptible, name=ww.name)

    def lock(self, subclass: int = 0, *, nest_lock: Any = None) -> None:
        """``mutex_lock(&ww->base)`` (``mutex_lock_nested``, ``mutex_lock_nest_lock``)."""
        self._lock(False, subclass, nest_lock, "mutex_lock")

    def lock_nest_lock(self, nest_lock: Any) -> None:
        """``mutex_lock_nest_lock(&ww->base, nest_lock)``: e.g. under an acquire context."""
        self._lock(False, 0, nest_lock, "mutex_lock")

    def lock_interruptible(self) -> None:
        """``mutex_lock_interruptible(&ww->base)``: raises ``EINTR`` on a pending signal."""
        self._lock(True, 0, None, "mutex_lock_interruptible")

    def lock_killable(self) -> None:
        """``mutex_lock_killable(&ww->base)`` (every signal is fatal in the model)."""
        self._lock(True, 0, None, "mutex_lock_killable")

    def trylock(self) -> bool:
        """``mutex_trylock(&ww->base)``: take it if free; never sleeps."""
        ww = self.ww
        k = ww.k
        me = k.current
        me.gate = ww._gates[2]  # R12: a free mutex is taken here
        k.point("mutex_trylock", ww.oid, True, ww.dep_map.name)
        me.gate = None
        if ww.owner is not None:
            return False
        ww.owner = k.current
        k.lockdep.acquire(ww.dep_map, trylock=True)
        return True

    def unlock(self) -> None:
        """``mutex_unlock(&ww->base)``: release and wake the first waiter; ``ww->ctx`` stays."""
        ww = self.ww
        k = ww.k
        k.point("mutex_unlock", ww.oid, True, ww.dep_map.name)
        if ww.owner is not k.current:
            k.lockdep.release(ww.dep_map)  # "bad unlock balance"
            return
        k.lockdep.release(ww.dep_map)
        ww.owner = None
        if ww.waiters:
            k.wake(ww.waiters[0].task)

    def is_locked(self) -> bool:
        """``mutex_is_locked(&ww->base)``."""
        return self.ww.owner is not None

    def __repr__(self) -> str:
        return f"<WWMutexBase of {self.ww!r}>"


class WWMutex:
    """``struct ww_mutex``: a sleeping mutex that knows its holder's acquire context.

    ``lock(ctx)`` returns None or raises ``EDEADLK`` / ``EALREADY``;
    ``lock(None)`` (and ``with m:``) is a plain mutex lock. ``ctx`` is the
    holder's context (None when free or held without one).
    """

    __slots__ = ("_gates", "base", "ctx", "dep_map", "k", "name", "oid", "owner", "waiters", "ww_class")

    def __init__(self, ww_class: WWClass, name: str | None = None) -> None:
        if not isinstance(ww_class, WWClass):
            raise UsageError(f"WWMutex needs a WWClass, got {ww_class!r}")
        self.k = current_kernel()
        self.ww_class = ww_class
        self.dep_map = LockdepMap(ww_class.mutex_name)
        self.oid = self.dep_map.oid
        #: The object's own name (shown in deadlock reports); the lockdep class is ``<class>_mutex``.
        self.name = name or f"{ww_class.mutex_name}#{self.oid}"
        self.owner: KThread | None = None
        self.ctx: WWAcquireCtx | None = None
        #: Sorted by R4: context waiters by stamp, context-less ones in FIFO position.
        self.waiters: list[_Waiter] = []
        #: ``ww->base``: the plain mutex inside (R11).
        self.base = WWMutexBase(self)
        #: R12: the explorers' view of an attempt that can only wait (uninterruptible, interruptible).
        self._gates = (_Gate(self, False), _Gate(self, True), _Gate(self, False, only=False))

    # ------------------------------------------------------------ checks (R7)

    def _check_ctx(self, ctx: WWAcquireCtx, fn: str) -> None:
        """Debug checks on entry of a lock call with a context."""
        k = self.k
        if ctx.finished:
            _report(k, "lock-after-fini", f"WARNING: {fn} with a finished acquire context", self.name)
        elif ctx.done_acquire:
            _report(k, "lock-after-done", "WARNING: ww_mutex: lock after ww_acquire_done", self.name)
        if ctx.ww_class is not self.ww_class:
            _report(
                k,
                "class-mismatch",
                "WARNING: ww_mutex: acquire context and mutex of different ww_class",
                self.name,
                ctx_class=ctx.ww_class.name,
                mutex_class=self.ww_class.name,
            )
        if ctx.task is not k.current:
            _report(
                k,
                "ctx-other-task",
                "WARNING: ww_mutex: acquire context used by a task that did not init it",
                self.name,
                owner=ctx.task.name,
            )

    def _acquired(self, ctx: WWAcquireCtx) -> None:
        """``ww_mutex_lock_acquired``: bookkeeping and checks once the lock is ours."""
        k = self.k
        if self.ctx is not None:
            _report(k, "stale-ctx", "WARNING: ww_mutex: acquired a free mutex with a stale ctx", self.name)
        cl = ctx.contending_lock
        if cl is not None:
            if cl is not self:
                _report(
                    k,
                    "wrong-lock-after-edeadlk",
                    "WARNING: ww_mutex: acquired a different lock after -EDEADLK",
                    self.name,
                    contended=cl.name,
                )
            elif ctx.acquired > 0:
                _report(
                    k,
                    "no-backoff-after-edeadlk",
                    "WARNING: ww_mutex: took the contended lock without releasing the others after -EDEADLK",
                    self.name,
                    acquired=ctx.acquired,
                )
            ctx.contending_lock = None
        ctx.acquired += 1
        self.ctx = ctx

    # ------------------------------------------------------------ algorithm (R3-R6)

    def _kill(self, ctx: WWAcquireCtx) -> bool:
        """``__ww_mutex_kill``: must ``ctx`` back off? Only when it holds locks (R3)."""
        if ctx.acquired == 0:
            return False
        if ctx.contending_lock is not None:
            _report(
                self.k,
                "edeadlk-twice",
                "WARNING: ww_mutex: -EDEADLK twice without backing off",
                self.name,
                contended=ctx.contending_lock.name,
            )
        ctx.contending_lock = self
        return True

    def _die(self, waiter: _Waiter, ctx: WWAcquireCtx) -> bool:
        """``__ww_mutex_die``: wait-die: wake a younger waiter holding locks so it dies."""
        if not ctx.ww_class.wait_die:
            return False
        wctx = waiter.ctx
        assert wctx is not None
        if wctx.acquired > 0 and _younger(wctx, ctx):
            self.k.wake(waiter.task)
        return True

    def _wound(self, ctx: WWAcquireCtx, hold_ctx: WWAcquireCtx | None) -> bool:
        """``__ww_mutex_wound``: wound-wait: an older ``ctx`` holding locks wounds a younger holder."""
        if hold_ctx is None:
            return False
        owner = self.owner
        if owner is None:
            return False
        if ctx.acquired > 0 and _younger(hold_ctx, ctx):
            hold_ctx.wounded = True
            k = self.k
            if owner is not k.current and owner.state is ThreadState.BLOCKED:
                on = owner.blocked_on
                if on is not None and on[0] == _WW_WAIT:
                    k.wake(owner)
            return True
        return False

    def _check_waiters(self, ctx: WWAcquireCtx) -> None:
        """``__ww_mutex_check_waiters``: ``ctx`` just took the lock; let waiters die or wound."""
        for w in self.waiters:
            wctx = w.ctx
            if wctx is None:
                continue
            if self._die(w, ctx) or self._wound(wctx, ctx):
                break

    def _add_waiter(self, w: _Waiter) -> bool:
        """``__ww_mutex_add_waiter``: insert by stamp; True when the caller must die (wait-die)."""
        ctx = w.ctx
        waiters = self.waiters
        if ctx is None:
            waiters.append(w)
            return False
        wait_die = ctx.ww_class.wait_die
        pos = len(waiters)
        for i in range(len(waiters) - 1, -1, -1):
            cur = waiters[i]
            cctx = cur.ctx
            if cctx is None:
                continue
            if _younger(ctx, cctx):
                if wait_die and self._kill(ctx):
                    return True
                break
            pos = i
            self._die(cur, ctx)
        waiters.insert(pos, w)
        if not wait_die:
            self._wound(ctx, self.ctx)
        return False

    def _check_kill(self, w: _Waiter, ctx: WWAcquireCtx) -> bool:
        """``__ww_mutex_check_kill``: on each wake-up, must this waiter back off?"""
        if ctx.acquired == 0:
            return False
        if not ctx.ww_class.wait_die:
            return self._kill(ctx) if ctx.wounded else False
        hold = self.ctx
        if hold is not None and _younger(ctx, hold):
            return self._kill(ctx)
        for cur in self.waiters:
            if cur is w:
                break
            if cur.ctx is not None:
                return self._kill(ctx)
        return False

    def _take(self, me: KThread, ctx: WWAcquireCtx | None) -> None:
        self.owner = me
        if ctx is not None:
            self._acquired(ctx)

    # ------------------------------------------------------------ API

    def _lock(self, ctx: WWAcquireCtx | None, interruptible: bool, fn: str) -> None:
        k = self.k
        k.might_sleep(fn)
        if ctx is not None:
            self._check_ctx(ctx, fn)
        me = k.current
        me.gate = self._gates[interruptible if _only_waits(ctx) else 2]  # R12
        k.point("ww_mutex_lock", self.oid, True, self.dep_map.name)
        me.gate = None
        if ctx is not None:
            if self.ctx is ctx:
                k.lock_stat("lock_failed", self.oid)
                raise EALREADY(f"{fn}({self.name}): already held by this acquire context")
            if ctx.acquired == 0:
                ctx.wounded = False
            k.lockdep.acquire(self.dep_map, nest_lock=ctx.dep_map)
        else:
            k.lockdep.acquire(self.dep_map)
        if self.owner is None:
            self._take(me, ctx)
            if ctx is not None:
                self._check_waiters(ctx)
            return
        w = _Waiter(me, ctx)
        if self._add_waiter(w):
            k.lockdep.release(self.dep_map)
            k.lock_stat("lock_failed", self.oid)
            raise EDEADLK(f"{fn}({self.name}): stamp {ctx.stamp if ctx else 0} must back off (wait-die)")
        waiters = self.waiters
        contended = False  # lock_stat's lock_contended ... lock_acquired / lock_failed
        while True:
            if self.owner is None:
                stole = waiters[0] is not w
                waiters.remove(w)
                self._take(me, ctx)
                if ctx is not None and stole and not ctx.ww_class.wait_die:
                    self._check_waiters(ctx)
                if contended:
                    k.lock_stat("lock_acquired", self.oid)
                return
            if interruptible and me.signal_pending:
                waiters.remove(w)
                k.lockdep.release(self.dep_map)
                k.lock_stat("lock_failed", self.oid)
                raise EINTR(f"{fn}({self.name}) interrupted by a signal")
            if ctx is not None and self._check_kill(w, ctx):
                waiters.remove(w)
                k.lockdep.release(self.dep_map)
                k.lock_stat("lock_failed", self.oid)
                algo = "wait-die" if ctx.ww_class.wait_die else "wounded"
                raise EDEADLK(f"{fn}({self.name}): stamp {ctx.stamp} must back off ({algo})")
            if not contended:
                contended = True
                k.lock_stat("lock_contended", self.oid)
            k.block(_WW_WAIT, self.oid, interruptible=interruptible, name=self.name)

    def lock(self, ctx: WWAcquireCtx | None = None) -> None:
        """``ww_mutex_lock``: raises ``EDEADLK`` (back off) or ``EALREADY`` (R2, R3)."""
        self._lock(ctx, False, "ww_mutex_lock")

    def lock_interruptible(self, ctx: WWAcquireCtx | None = None) -> None:
        """``ww_mutex_lock_interruptible``: as :meth:`lock`, or ``EINTR`` on a pending signal."""
        self._lock(ctx, True, "ww_mutex_lock_interruptible")

    def lock_slow(self, ctx: WWAcquireCtx) -> None:
        """``ww_mutex_lock_slow``: take the contended lock after backing off (R7).

        Blocks until acquired (a context holding nothing never dies).
        """
        self._slow_check(ctx, "ww_mutex_lock_slow")
        self._lock(ctx, False, "ww_mutex_lock_slow")

    def lock_slow_interruptible(self, ctx: WWAcquireCtx) -> None:
        """``ww_mutex_lock_slow_interruptible``: :meth:`lock_slow`, or ``EINTR``."""
        self._slow_check(ctx, "ww_mutex_lock_slow_interruptible")
        self._lock(ctx, True, "ww_mutex_lock_slow_interruptible")

    def _slow_check(self, ctx: WWAcquireCtx, fn: str) -> None:
        if ctx is None:
            raise UsageError(f"{fn} needs an acquire context")
        if ctx.contending_lock is None:
            _report(self.k, "slow-without-edeadlk", f"WARNING: {fn} without a preceding -EDEADLK", self.name)

    def trylock(self, ctx: WWAcquireCtx | None = None) -> bool:
        """``ww_mutex_trylock``: take the lock if free; never sleeps, never ``EDEADLK`` (R9).

        Fails (False) when the lock is held, also by ``ctx`` itself.
        """
        k = self.k
        if ctx is not None:
            self._check_ctx(ctx, "ww_mutex_trylock")
        me = k.current
        me.gate = self._gates[2]  # R12: a free mutex is taken here
        k.point("ww_mutex_trylock", self.oid, True, self.dep_map.name)
        me.gate = None
        if self.owner is not None:
            return False
        if ctx is None:
            self.owner = k.current
            k.lockdep.acquire(self.dep_map, trylock=True)
            return True
        if ctx.acquired == 0:
            ctx.wounded = False
        self._take(k.current, ctx)
        self._check_waiters(ctx)
        k.lockdep.acquire(self.dep_map, trylock=True, nest_lock=ctx.dep_map)
        return True

    def unlock(self) -> None:
        """``ww_mutex_unlock``: release, drop the context's count, wake the first waiter."""
        k = self.k
        k.point("ww_mutex_unlock", self.oid, True, self.dep_map.name)
        if self.owner is None:
            _report(k, "unlock-twice", "WARNING: ww_mutex_unlock of an unlocked ww_mutex", self.name)
            return
        if self.owner is not k.current:
            k.lockdep.release(self.dep_map)
            return
        ctx = self.ctx
        if ctx is not None:
            if ctx.acquired <= 0:
                _report(
                    k,
                    "acquired-underflow",
                    "WARNING: ww_mutex_unlock: acquire context count underflow",
                    self.name,
                    acquired=ctx.acquired,
                )
            else:
                ctx.acquired -= 1
            self.ctx = None
        k.lockdep.release(self.dep_map)
        self.owner = None
        if self.waiters:
            # __mutex_unlock_slowpath wakes the first waiter only; if it is already
            # running it finds the lock free at the top of its loop and takes it.
            k.wake(self.waiters[0].task)

    def is_locked(self) -> bool:
        """``ww_mutex_is_locked``."""
        return self.owner is not None

    def __enter__(self) -> WWMutex:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def __repr__(self) -> str:
        owner = self.owner.name if self.owner else None
        stamp = self.ctx.stamp if self.ctx else None
        return f"<WWMutex {self.name} owner={owner} ctx_stamp={stamp}>"
