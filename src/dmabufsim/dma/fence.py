"""Models ``drivers/dma-buf/dma-fence.c`` (``struct dma_fence``, Linux 6.12).

A fence is the promise that some work (a GPU job, a copy, a page-table
update) will complete. It goes from unsignalled to signalled exactly once;
whoever depends on the work waits on the fence or hangs a callback on it.

Rules:

* R1 (init): a fence has ops naming its driver and its timeline, a lock
  (a :class:`SpinLock`, possibly shared by every fence of a timeline), a
  context and a seqno. Contexts come from :func:`context_alloc`, which never
  hands out 0 (the stub fence's context) and is per execution.
* R2 (signal once): ``signal()`` moves the fence to signalled, stores the
  timestamp and runs the callbacks. A second explicit ``signal()`` is refused
  the kernel's way (returns ``-EINVAL``, nothing runs again) and is a
  ``fence-double-signal`` finding: two completion paths both believed they
  owned the fence. Opportunistic signalling (``is_signaled`` through
  ``ops.signaled``, ``enable_signaling`` returning False) never counts as
  the first owner of the fence.
* R3 (callbacks): callbacks run in FIFO order in the *signaller's* context
  with the fence lock held and interrupts off: they are atomic, and hardirq
  when the signaller is an interrupt handler (``k.raise_irq``). A callback
  that sleeps is ``sleep-in-atomic`` (runtime R5).
* R4 (late callbacks): ``add_callback`` on a signalled fence raises
  ``ENOENT`` and never calls the callback; ``remove_callback`` returns
  whether the callback was still queued (it then never runs).
* R5 (errors): ``set_error`` only before signalling, with ``-4095 <= err < 0``;
  anything else is a kernel WARN (``assertion`` finding) and is ignored.
* R6 (waits): ``wait_timeout`` may sleep (``might_sleep``) and is a fence
  wait for lockdep (``dma_fence_might_wait``: every lock held now is ordered
  before ``dma_fence_map``). It returns the time left (>= 1), 0 on timeout,
  and raises ``ERESTARTSYS`` when interruptible and a signal is pending;
  a negative timeout is ``EINVAL``. A waiter woken by the signal only reads
  the fence: ``dma_fence_signal_timestamp_locked`` unlinked its callback
  (``INIT_LIST_HEAD`` of its node) and ``dma_fence_default_wait`` then
  tests that node and the fence's flags under the fence lock, touching
  nothing another waiter touches; so its wake-up step is a read of the
  fence (``Kernel.block(woken_reads=True)``), and the waiters one signal
  wakes are independent steps.
* R7 (signalling sections): ``signal()`` runs inside
  ``dma_fence_begin_signalling()`` / ``end``, so what it does (and what its
  callbacks do) is ordered after ``dma_fence_map``: a GFP_KERNEL allocation
  or a resv lock taken there closes a cycle lockdep reports.
* R8 (never signalled): a fence that something depended on (a waiter, a
  callback, a reservation object) and that is still unsignalled when the
  execution ends is a ``fence-never-signalled`` finding (cross-driver
  contract rule 1: fences complete in reasonable time). The bookkeeping is
  bounded: signalled fences are pruned from it as it grows.
* R9 (release): dropping the last reference of an unsignalled fence with
  callbacks still queued is a WARN ("released with pending signals"); the
  fence is then signalled with ``-EDEADLK`` so that nobody hangs.
* R11 (lifetime): a fence is freed when its last reference is put
  (``dma_fence_release``: ``ops.release``, whose default is
  ``dma_fence_free``; a driver's release frees the fence itself with
  :meth:`DmaFence.free`). Any later get, put, signal, callback, wait or
  declared access of it, or of the lock it owns, is a ``use-after-free``
  (kernel.lifetime L4). ``get_rcu`` (``kref_get_unless_zero``) fails on a
  count of zero; ``get_rcu_safe`` re-reads the pointer after the get and
  retries when the fence it got is no longer the one published there. A fence
  from a :class:`FenceCache` created ``typesafe_by_rcu`` may be freed and
  reused for a new fence inside an RCU read section (L5): reading it stays
  legal, and only ``get_rcu_safe``'s re-check notices the recycling. Fences of
  a cache are leak-checked at the end of the execution (L6).
* R10 (reduced steps): a fence-lock critical section that takes no
  scheduling point inside is one step (a Lipton reduction: the acquire is a
  right-mover, the release a left-mover, and what lies between touches only
  data the lock protects). ``add_callback`` is the lock's ``spin_lock``
  point plus ``dma_fence_add_callback`` (the fence, written) and
  ``spin_unlock`` events; ``signal`` keeps its point on the fence and the
  lock's point, and releases without a point when nothing inside took one
  (no callback, or callbacks that only wake, as ``dma_fence_default_wait_cb``).
  ``enable_sw_signaling`` (``dma_fence_enable_sw_signaling``) and
  ``default_wait``'s queueing section (``dma_fence_default_wait``: it
  tests the SIGNALED bit under the lock, then links the waiter) are one
  step each the same way, so a wait on a pending fence is two steps
  before it sleeps.
  Lockdep sees every acquire and release; the trace still pairs them.
* R12 (parts): a fence is declared as several objects, as the kernel keeps
  them apart: its ``error`` and ``timestamp`` (the fence's own oid), its
  callback list (``fence->cb_list``: :func:`cb_list_oid`, a ``part_oid`` of
  the fence) and each bit of its flags (R13). Queueing a callback or a
  waiter on an unsignalled fence whose ENABLE_SIGNAL bit is set reads
  SIGNALED and ENABLE_SIGNAL and writes the list, so it commutes with
  ``dma_fence_is_signaled``. The signal writes SIGNALED, TIMESTAMP, the
  timestamp and (``list_replace``) the list; removing a callback
  (``dma_fence_remove_callback``, a waiter's ``list_del``) writes only the
  list. A waiter sleeps queued on the list: its wait is on the list, which
  the signal writes, and once woken it reads SIGNALED.
* R13 (flag bits): each bit of ``fence->flags`` the model uses is a
  pseudo-object of its own (:func:`flag_oid`, a ``part_oid`` of the fence
  after the callback list's), as the kernel's atomic bitops touch one bit
  each: ``test_bit`` reads one, ``set_bit`` and ``test_and_set_bit`` write
  one. ``dma_fence_is_signaled`` reads SIGNALED only; the first
  ``__dma_fence_enable_signaling`` writes ENABLE_SIGNAL and reads SIGNALED
  (a driver's ``enable_signaling`` that signals declares the signal
  itself), a later one reads both; so a poll and the first enable commute.
  A fence array's ``signaled`` reads ENABLE_SIGNAL. Drivers' bits
  (``DMA_FENCE_FLAG_USER_BITS`` and up) go through :meth:`DmaFence.test_bit`,
  :meth:`DmaFence.set_bit` and :meth:`DmaFence.test_and_set_bit`, which
  declare the bit. The model's own owner bit of R2 (EXPLICIT) is one more:
  only explicit signals write it. ``flags`` is a bit-field for the access
  checker (accesses A6), which compares each bit on its own.
* R14 (waiters commute): the node ``dma_fence_default_wait`` links on the
  callback list only wakes its thread (``dma_fence_default_wait_cb``), and
  the signal that runs it wakes every such node in its one step, so the
  order of two waiters' nodes leaves no trace: the threads it makes
  runnable are kept by tid, and a waiter unlinks its own node by identity.
  Linking a waiter's node (on an enabled, unsignalled fence) is therefore a
  commuting update of the list, as an increment of a count away from its
  threshold is (``kernel/counter.py`` C5): the queueing section declares a
  read of the list, and the sleep on it is a read too (runtime R16). Two
  waiters' links each declare a read after the other, and end in the same
  state but for the order of two wake-only nodes. Every other change of
  the list writes it -- ``add_callback``'s link of a driver's callback
  (its place decides when it runs), ``remove_callback``, a waiter's unlink
  after a timeout or a signal, the signal's ``list_replace`` -- so a
  waiter's link is ordered with each of them, and the signal after every
  sleep it ends. The access checker records the link as an update of
  ``cb_list`` (accesses A3, A4: updates commute with each other only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from ..kernel import accesses
from ..kernel.errors import EINVAL, ENOENT, ERESTARTSYS, UsageError
from ..kernel.lifetime import REFCOUNT_SATURATED, FreeRecord, KmemCache, drop_ref, lifetimes, note_ref
from ..kernel.lockdep_map import lockdep_assert_held
from ..kernel.runtime import Kernel, current_kernel, register_extension
from ..kernel.stack import Frame
from ..kernel.thread import KThread
from ..kernel.trace import op_word, part_oid, refcount_oid
from ..locking.annotations import dma_fence_might_wait, signalling_enter, signalling_exit
from ..locking.spinlock import SpinLock, atomic_exit_fast

_oga = object.__getattribute__

#: Flag bits of ``fence.flags`` (``enum dma_fence_flag_bits``).
DMA_FENCE_FLAG_SIGNALED_BIT = 0
DMA_FENCE_FLAG_TIMESTAMP_BIT = 1
DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT = 2
#: First bit a driver may use for its own purposes.
DMA_FENCE_FLAG_USER_BITS = 3

SIGNALED = 1 << DMA_FENCE_FLAG_SIGNALED_BIT
TIMESTAMP = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT
ENABLE_SIGNAL = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT
#: Model-private bits (above any bit a driver model would use).
_EXPLICIT_BIT = 30
_EXPLICIT = 1 << _EXPLICIT_BIT  #: signalled by an explicit signal() (R2 owner)
#: The names of the bits the access checker reports (accesses A6).
FLAG_NAMES = {DMA_FENCE_FLAG_SIGNALED_BIT: "SIGNALED", DMA_FENCE_FLAG_TIMESTAMP_BIT: "TIMESTAMP",
              DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT: "ENABLE_SIGNAL", _EXPLICIT_BIT: "EXPLICIT"}
#: The depended-on list is first pruned of signalled fences at this length (R8).
_PRUNE_MIN = 4096

#: ``LONG_MAX``: what ``schedule_timeout(MAX_SCHEDULE_TIMEOUT)`` returns, so
#: an unbounded wait that succeeds returns it as its "remaining time".
LONG_MAX = (1 << 63) - 1
#: ``MAX_ERRNO``: ``set_error`` accepts ``-MAX_ERRNO <= err < 0``.
MAX_ERRNO = 4095
_EINVAL = -EINVAL.errno_value
_EDEADLK = -35

#: The part of a fence declared apart for its callback list (R12, ``part_oid``).
_CB_PART = 1
#: The part of flag bit 0; bit ``b`` is part ``_FLAG_PART + b`` (R13).
_FLAG_PART = 2


def cb_list_oid(oid: int) -> int:
    """The pseudo-object of the callback list (``fence->cb_list``) of the fence ``oid`` (R12)."""
    return part_oid(oid, _CB_PART)


def flag_oid(oid: int, bit: int) -> int:
    """The pseudo-object of flag bit ``bit`` (``test_bit(bit, &fence->flags)``) of the fence ``oid`` (R13)."""
    if not 0 <= bit < 64:
        raise UsageError(f"dma_fence flag bit {bit}: flags is an unsigned long (bits 0..63)")
    return part_oid(oid, _FLAG_PART + bit)


#: The first part number a subclass of a fence may use for its own state (after the flag bits).
FENCE_PARTS_END = _FLAG_PART + 64


def _signaled_oid(oid: int) -> int:
    return part_oid(oid, _FLAG_PART + DMA_FENCE_FLAG_SIGNALED_BIT)


def _enable_oid(oid: int) -> int:
    return part_oid(oid, _FLAG_PART + DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT)


#: Trace words of the hot scheduling points (``Kernel.point``'s ``word=``), less the fence's ``oid << 1``.
_W_IS_SIGNALED = op_word("dma_fence_is_signaled")
_W_SIGNAL = op_word("dma_fence_signal") ^ 1

#: Lock class of the per-fence spinlock created when no lock is passed.
FENCE_LOCK_CLASS = "dma_fence.lock"


class FenceOps:
    """``struct dma_fence_ops``: what a driver provides for its fences.

    Extension contract (subclass and override):

    * MUST override :meth:`get_driver_name` and :meth:`get_timeline_name`
      (R1); they must not touch model state.
    * :meth:`enable_signaling` is called at most once per fence, with the
      fence lock held and interrupts off (atomic). It arms whatever will
      call ``fence.signal()`` later (an interrupt, a callback on another
      fence) and returns True; it returns False when the fence is already
      complete (it may ``set_error`` first), and the fence is then signalled.
      It MUST NEVER sleep, allocate with GFP_KERNEL, take the fence's own
      lock, or call ``signal()`` (it holds the lock: use the ``_locked``
      variant, or return False).
    * :meth:`signaled` is a lock-free poll of the hardware ("has seqno N
      passed?"); it may be called from any context, MUST NEVER sleep or
      take locks, and must stay true once true.
    * :meth:`wait` replaces the default wait (deprecated in the kernel;
      the selftests' mock fence uses it). It must return like
      ``dma_fence_wait_timeout`` (remaining, 0, or a negative errno) and
      raise ``ERESTARTSYS`` for an interrupted interruptible wait.
    * :meth:`release` runs at the last ``put()``: free driver state; it MUST
      NEVER signal or wait.
    * ``use_64bit_seqno``: seqnos compare as 64-bit (no wrap-around).
    """

    #: Compare seqnos as plain 64-bit numbers instead of 32-bit wrap-around.
    use_64bit_seqno: bool = False
    #: True only for the container ops (array, chain): ``dma_fence_is_container``.
    container: bool = False

    def get_driver_name(self, fence: DmaFence) -> str:
        """``get_driver_name`` (mandatory)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_driver_name (dma_fence R1)")

    def get_timeline_name(self, fence: DmaFence) -> str:
        """``get_timeline_name`` (mandatory)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_timeline_name (dma_fence R1)")

    def enable_signaling(self, fence: DmaFence) -> bool:
        """``enable_signaling`` (optional): the default has nothing to arm."""
        return True

    def signaled(self, fence: DmaFence) -> bool:
        """``signaled`` (optional): the default cannot poll, so answers False."""
        return False

    def wait(self, fence: DmaFence, intr: bool, timeout: int | None) -> int:
        """``wait`` (optional): the default is :meth:`DmaFence.default_wait`."""
        return fence.default_wait(intr, timeout)

    def release(self, fence: DmaFence) -> None:
        """``release`` (optional): the default is ``dma_fence_free`` (R11); a driver's
        release that overrides it frees the fence with ``fence.free()`` when done."""
        fence.free()

    def set_deadline(self, fence: DmaFence, deadline: int) -> None:
        """``set_deadline`` (optional hint): ignored by default."""


class NamedFenceOps(FenceOps):
    """Ops with fixed driver and timeline names and otherwise default behaviour."""

    __slots__ = ("driver", "timeline")

    def __init__(self, driver: str = "dmabufsim", timeline: str = "timeline") -> None:
        self.driver = driver
        self.timeline = timeline

    def get_driver_name(self, fence: DmaFence) -> str:
        return self.driver

    def get_timeline_name(self, fence: DmaFence) -> str:
        return self.timeline


class StubFenceOps(FenceOps):
    """``dma_fence_stub_ops``: the always-signalled stub."""

    def get_driver_name(self, fence: DmaFence) -> str:
        return "stub"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "stub"


_DEFAULT_OPS = NamedFenceOps()
_STUB_OPS = StubFenceOps()


class DmaFenceCb:
    """``struct dma_fence_cb``: a callback slot, queued on at most one fence at a time.

    ``func(fence, cb)`` runs in the signaller's context, atomic (R3).
    """

    __slots__ = ("func", "queued")

    def __init__(self, func: Callable[[DmaFence, DmaFenceCb], object]) -> None:
        self.func = func
        #: The fence this callback is queued on, or None (never queued, ran, removed).
        self.queued: DmaFence | None = None


class _FenceState:
    """Per-execution bookkeeping of the fence room (installed at every run)."""

    __slots__ = ("depended", "k", "next_context", "prune_at", "stub")
    #: The end check's list of fences (R8), not model state (accesses A3).
    __untracked__ = ("depended", "prune_at")

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: Context 0 belongs to the stub fence (6.12 starts handing out at 1).
        self.next_context = 1
        self.stub: DmaFence | None = None
        #: Fences something depended on, in the order that first happened (R8);
        #: signalled ones are pruned as the list grows (they can no longer be
        #: never-signalled), so a long run that waits on its fences stays bounded.
        self.depended: list[DmaFence] = []
        self.prune_at = _PRUNE_MIN

    def depend(self, f: DmaFence) -> None:
        """Remember ``f`` for the end check; amortised O(1) pruning of signalled fences."""
        dep = self.depended
        dep.append(f)
        if len(dep) >= self.prune_at:
            dep[:] = [g for g in dep if not g.flags & SIGNALED]
            self.prune_at = max(_PRUNE_MIN, 2 * len(dep))

    def check_never_signalled(self) -> None:
        """R8, run at the end of the execution."""
        for f in self.depended:
            if f.flags & SIGNALED:
                continue
            drv, tl = f.driver_name, f.timeline_name
            self.k.report(
                "fence-never-signalled",
                f"dma_fence {drv}:{tl} {f.context}:{f.seqno} never signalled",
                details={
                    "driver": drv,
                    "timeline": tl,
                    "context": f.context,
                    "seqno": f.seqno,
                    "callbacks": len(f.cb_list or ()),
                    "fence": f.oid,
                },
                rule="dma_fence R8: a fence something depends on must signal in reasonable time",
                signature=f"fence-never-signalled:{drv}:{tl}:{f.context}:{f.seqno}",
                threads=(),
            )


def _setup(k: Kernel) -> None:
    st = _FenceState(k)
    k.ext["dma_fence"] = st
    k.at_exit.append(st.check_never_signalled)


def _reset(k: Kernel, st: _FenceState) -> None:
    """A reused Kernel's next execution (runtime R13): the state :class:`_FenceState` starts with."""
    st.next_context = 1
    st.stub = None
    st.depended = []
    st.prune_at = _PRUNE_MIN


register_extension("dma_fence", _setup, _reset)


def _state(k: Kernel) -> _FenceState:
    st: _FenceState | None = k.ext.get("dma_fence")
    if st is None:  # a Kernel started before this module was imported
        _setup(k)
        st = k.ext["dma_fence"]
    return st


def context_alloc(num: int = 1) -> int:
    """``dma_fence_context_alloc``: the first of ``num`` fresh consecutive contexts (R1)."""
    if num <= 0:
        raise UsageError(f"dma_fence_context_alloc({num}): need at least one context")
    st = _state(current_kernel())
    first = st.next_context
    st.next_context += num
    return first


class DmaFence:
    """``struct dma_fence``: a one-shot completion with callbacks and waiters.

    State machine (``flags``)::

        unsignalled ──enable_signaling (add_callback, wait)──▶ unsignalled + ENABLE_SIGNAL
             │                                                   │
             └───────────── signal(): SIGNALED, TIMESTAMP, run callbacks FIFO ◀──┘
                                          │ second signal(): -EINVAL, finding (R2)
                                          ▼
                                      signalled (final; callbacks list gone)

    ``error`` may be set only while unsignalled (R5). ``cb_list`` is None once
    signalled (the kernel reuses its storage for the timestamp).
    """

    #: ``refcount``: a kref, declared as its own pseudo-object (``refcount_oid``); the
    #: attribute is not checked itself (accesses A3: increments commute).
    #: ``depended``: the end check's bookkeeping (R8), set once, never cleared.
    #: ``freed``, ``ref_sites``, ``cache``, ``own_lock``: the lifetime room's bookkeeping (R11).
    __untracked__ = ("refcount", "depended", "freed", "ref_sites", "cache", "own_lock")
    #: ``flags``: one pseudo-object per bit (R13), compared bit by bit (accesses A6).
    __bitfields__: ClassVar[dict[str, dict[int, str]]] = {"flags": FLAG_NAMES}
    __slots__ = (
        "cache",
        "cb_list",
        "context",
        "depended",
        "error",
        "flags",
        "freed",
        "k",
        "lock",
        "oid",
        "ops",
        "own_lock",
        "ref_sites",
        "refcount",
        "seqno",
        "timestamp",
    )

    def __init__(
        self,
        ops: FenceOps | None = None,
        lock: SpinLock | None = None,
        context: int = 0,
        seqno: int = 0,
    ) -> None:
        """``dma_fence_init(fence, ops, lock, context, seqno)``.

        Without ``lock`` the fence gets its own spinlock (class
        ``dma_fence.lock``); without ``ops`` it gets named default ops.
        """
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        self.ops = ops if ops is not None else _DEFAULT_OPS
        self.own_lock = lock is None
        self.lock = lock if lock is not None else SpinLock(FENCE_LOCK_CLASS)
        self.context = context
        self.seqno = seqno
        self.flags = 0
        #: Something waited on / hooked a callback on / published it (R8): the end
        #: check's bookkeeping, set once and never cleared (untracked, accesses A3).
        self.depended = False
        #: 0 or a negative errno (R5).
        self.error = 0
        self.refcount = 1
        self.timestamp = 0
        # Invariant: cb_list is None iff SIGNALED is set.
        self.cb_list: list[DmaFenceCb] | None = []
        #: Who freed it (R11), None while alive.
        self.freed: FreeRecord | None = None
        #: Where its counted references were taken, when leak-checked (R11), else None.
        self.ref_sites: list[tuple[str, tuple[Frame, ...]]] | None = None
        #: The cache it came from (R11), or None (``kmalloc``).
        self.cache: FenceCache | None = None

    # ------------------------------------------------------------------ lifetime

    def lifetime_name(self) -> str:
        return f"dma_fence {self.ops.get_driver_name(self)}:{self.ops.get_timeline_name(self)} #{self.oid}"

    def lifetime_ids(self) -> tuple[int, ...]:
        """The fence, its count, its parts (R12, R13: the list, every bit the model or a driver used)
        and the lock it owns."""
        oid = self.oid
        used = self.flags | SIGNALED | TIMESTAMP | ENABLE_SIGNAL | _EXPLICIT
        bits = [flag_oid(oid, b) for b in range(64) if used >> b & 1]
        base = (oid, refcount_oid(oid), cb_list_oid(oid), *bits)
        return (*base, self.lock.oid) if self.own_lock else base

    def lifetime_count(self) -> int:
        return self.refcount

    def touched_after_free(self, op: str) -> bool:
        """The explicit check of the get/put/signal/callback paths (R11): True (and a
        ``use-after-free`` finding) when the fence is freed and not reused, and the caller is not
        an RCU reader its ``kfree_rcu`` still waits for (kernel.lifetime L3a)."""
        rec = self.freed
        if rec is None:
            return False
        return lifetimes(self.k).report(rec, op)  # False: an RCU reader the kfree_rcu waits for

    def free(self) -> None:
        """``dma_fence_free``: hand the memory back (to its cache, or ``kfree_rcu``: valid for the
        RCU readers in progress, kernel.lifetime L3a) (R11)."""
        if self.freed is not None:
            self.touched_after_free("dma_fence_free")
            return
        cache = self.cache
        if cache is not None:
            cache.free(self)
        else:
            lifetimes(self.k).free(self, "dma_fence_free", rcu=True)  # kfree_rcu

    # ------------------------------------------------------------------ names

    @property
    def driver_name(self) -> str:
        return self.ops.get_driver_name(self)

    @property
    def timeline_name(self) -> str:
        return self.ops.get_timeline_name(self)

    @property
    def signaled_flag(self) -> bool:
        """The SIGNALED bit, read without a scheduling point (for invariants and tests);
        a thread's step that reads it declares it (an event, R13)."""
        self.k.event("dma_fence_test_signaled", _signaled_oid(self.oid), False)
        return bool(self.flags & SIGNALED)

    # ------------------------------------------------------------------ flag bits (R13)

    def _bit_touched(self, bit: int, write: bool, op: str) -> None:
        if self.freed is not None:
            self.touched_after_free(op)
        self.k.event(op, flag_oid(self.oid, bit), write)

    def test_bit(self, bit: int) -> bool:
        """``test_bit(bit, &fence->flags)``: the step reads that bit (R13); no scheduling point."""
        self._bit_touched(bit, False, "test_bit")
        return bool(self.flags & 1 << bit)

    def set_bit(self, bit: int) -> None:
        """``set_bit(bit, &fence->flags)`` (a driver's bit, R13): the step writes that bit."""
        if bit < DMA_FENCE_FLAG_USER_BITS:
            raise UsageError(f"set_bit({bit}) on a fence: bits below DMA_FENCE_FLAG_USER_BITS are dma-fence.c's")
        self._bit_touched(bit, True, "set_bit")
        self.flags |= 1 << bit

    def test_and_set_bit(self, bit: int) -> bool:
        """``test_and_set_bit(bit, &fence->flags)`` (a driver's bit, R13): the old value; writes the bit."""
        if bit < DMA_FENCE_FLAG_USER_BITS:
            raise UsageError(
                f"test_and_set_bit({bit}) on a fence: bits below DMA_FENCE_FLAG_USER_BITS are dma-fence.c's")
        self._bit_touched(bit, True, "test_and_set_bit")
        flags = self.flags
        self.flags = flags | 1 << bit
        return bool(flags & 1 << bit)

    def __repr__(self) -> str:
        state = "signalled" if self.flags & SIGNALED else "pending"
        return f"<DmaFence #{self.oid} {self.timeline_name} {self.context}:{self.seqno} {state}>"

    # ------------------------------------------------------------------ refcount

    def get(self) -> DmaFence:
        """``dma_fence_get``: one more reference; returns the fence.

        Declares a read of the count (``refcount_oid``) when it is not zero: gets
        commute with each other (``kernel/counter.py`` C3: increments move away
        from zero); a get of a count at zero (a use-after-free) writes it."""
        k = self.k
        k.event("dma_fence_get", refcount_oid(self.oid), self.refcount <= 0)
        if self.refcount <= 0 or self.freed is not None:
            self._get_dead("dma_fence_get")
            return self
        self.refcount += 1
        if self.ref_sites is not None:
            note_ref(self, k)
        return self

    def _get_dead(self, op: str) -> None:
        """``kref_get`` of a freed fence (a use-after-free), or of one whose count already
        reached zero: ``refcount_t: addition on 0; use-after-free.``, the count saturates (R11)."""
        if self.freed is not None and self.touched_after_free(op):
            return
        self.refcount = REFCOUNT_SATURATED
        name = self.lifetime_name()
        self.k.report(
            "use-after-free",
            "refcount_t: addition on 0; use-after-free.",
            details={"object": name, "op": op},
            rule="dma_fence R11: a reference is taken only while another one is held",
            signature=f"refcount-addition-on-0:{name}",
        )

    def get_rcu(self) -> DmaFence | None:
        """``dma_fence_get_rcu``: get unless the count already reached zero
        (``kref_get_unless_zero``; legal on a freed fence of a type-safe-by-RCU cache, R11).

        A scheduling point of its own (the atomic increment of a count a lockless
        reader does not own: the fence may be freed or recycled just before it)."""
        k = self.k
        k.point("dma_fence_get_rcu", refcount_oid(self.oid), False)
        if self.refcount <= 0:
            k.event("dma_fence_get_rcu", refcount_oid(self.oid), True)  # refused at zero (kernel/counter.py C3)
            return None
        self.refcount += 1
        if self.ref_sites is not None:
            note_ref(self, k)
        return self

    def put(self) -> None:
        """``dma_fence_put``: drop a reference; the last one releases the fence (R9).

        Every put writes the count (``refcount_oid``): decrements move towards
        zero, and which of two puts releases depends on their order
        (``kernel/counter.py`` C3, C5). A put of a freed fence is a
        ``use-after-free`` (R11) and changes nothing."""
        if self.freed is not None and self.touched_after_free("dma_fence_put"):
            return
        self.refcount -= 1
        if self.ref_sites is not None:
            drop_ref(self, self.k)
        if self.refcount > 0:
            self.k.event("dma_fence_put", refcount_oid(self.oid), True)
            return
        self.k.event("dma_fence_release", refcount_oid(self.oid), True)
        if self.refcount < 0:
            self.k.report(
                "use-after-free",
                "refcount_t: underflow; use-after-free.",
                details={"fence": self.oid, "timeline": self.timeline_name},
                rule="dma_fence: one put per reference",
                signature=f"dma-fence-underflow:{self.timeline_name}:{self.context}:{self.seqno}",
            )
            return
        self._release()

    def _release(self) -> None:
        # dma_fence_release tests the callback list and SIGNALED (R12, R13)
        self.k.event("dma_fence_release", cb_list_oid(self.oid), False)
        self.k.event("dma_fence_release", _signaled_oid(self.oid), False)
        if not (self.flags & SIGNALED) and self.cb_list:
            drv, tl = self.driver_name, self.timeline_name
            self.k.report(
                "assertion",
                f"WARNING: Fence {drv}:{tl}:{self.context}:{self.seqno} released with pending signals!",
                details={"fence": self.oid, "driver": drv, "timeline": tl, "callbacks": len(self.cb_list)},
                rule="dma_fence R9: release with callbacks queued on an unsignalled fence",
                signature=f"dma-fence-release-pending:{drv}:{tl}:{self.context}:{self.seqno}",
            )
            flags = self.lock.lock_irqsave()
            self.error = _EDEADLK
            self._signal_locked(self.k.now, False)
            self.lock.unlock_irqrestore(flags)
        self.ops.release(self)

    # ------------------------------------------------------------------ signalling

    def _signal_locked(self, ts: int, explicit: bool) -> int:
        """``dma_fence_signal_timestamp_locked`` (lock held). Returns 0 or -EINVAL.

        The step writes SIGNALED (``test_and_set_bit``: an event, the caller's point was the
        lock's, and lockless readers of the bit must be ordered with this), then the list
        (``list_replace``), the timestamp and TIMESTAMP (R12, R13); an explicit signal its
        owner bit (R2)."""
        k = self.k
        oid = self.oid
        k.event("dma_fence_signal", _signaled_oid(oid), True)
        flags = self.flags
        if flags & SIGNALED:
            if explicit:
                k.event("dma_fence_signal", flag_oid(oid, _EXPLICIT_BIT), True)
                if flags & _EXPLICIT:
                    self._double_signal()
                else:
                    self.flags = flags | _EXPLICIT
            return _EINVAL
        k.event("dma_fence_signal", part_oid(oid, _CB_PART), True)  # list_replace of cb_list (R12)
        k.event("dma_fence_signal", oid, True)  # fence->timestamp (R12)
        k.event("dma_fence_signal", flag_oid(oid, DMA_FENCE_FLAG_TIMESTAMP_BIT), True)  # set_bit(TIMESTAMP)
        if explicit:
            k.event("dma_fence_signal", flag_oid(oid, _EXPLICIT_BIT), True)
        cbs = self.cb_list
        self.cb_list = None
        self.timestamp = ts
        self.flags = flags | SIGNALED | TIMESTAMP | (_EXPLICIT if explicit else 0)
        self.k.progress("dma_fence_signal")  # runtime progress P1: a fence signalled
        if cbs:
            k = self.k
            last = len(cbs) - 1
            for i, cb in enumerate(cbs):
                cb.queued = None
                steps = k.steps
                cb.func(self, cb)
                if k.steps != steps and i != last and self.freed is None:
                    # A callback took a scheduling point (queue_work, a nested signal): the
                    # rest of the list still runs in this fence's signalling (accesses A1).
                    # Not after a callback dropped the last reference: the kernel's loop
                    # walks its private list and touches the fence no more (R11).
                    k.event("dma_fence_signal", _signaled_oid(self.oid), True)
                    k.event("dma_fence_signal", part_oid(self.oid, _CB_PART), True)
        return 0

    def _double_signal(self) -> None:
        drv, tl = self.driver_name, self.timeline_name
        self.k.report(
            "fence-double-signal",
            f"dma_fence {drv}:{tl} {self.context}:{self.seqno} signalled twice",
            details={
                "driver": drv,
                "timeline": tl,
                "context": self.context,
                "seqno": self.seqno,
                "first_signalled_at": self.timestamp,
                "fence": self.oid,
            },
            rule="dma_fence R2: a fence is signalled exactly once",
            signature=f"fence-double-signal:{drv}:{tl}:{self.context}:{self.seqno}",
        )

    def signal_timestamp(self, timestamp: int) -> int:
        """``dma_fence_signal_timestamp``: signal with a given virtual timestamp (ns).

        Returns 0, or ``-EINVAL`` if the fence was already signalled (R2).
        Runs inside a fence-signalling section (R7); callbacks run under the
        fence lock with interrupts off (R3).
        """
        k = self.k
        oid = self.oid
        # the fence, written (R12); the lock's step declares the bits it sets (R13)
        k.point("dma_fence_signal", oid, True, "", _W_SIGNAL ^ (oid << 1))
        if self.freed is not None and self.touched_after_free("dma_fence_signal"):
            return _EINVAL
        t = k.current
        section = signalling_enter(k, t)  # dma_fence_begin_signalling (R7)
        lock = self.lock
        lock.lock_irqsave()
        steps = k.steps
        try:
            ret = self._signal_locked(timestamp, True)
        except BaseException:
            lock.unlock_irqrestore()
            signalling_exit(k, t, section)
            raise
        if k.steps == steps:
            # R10: no scheduling point inside (callbacks that only wake their waiters, as
            # dma_fence_default_wait_cb does, take none): the release joins the step
            _unlock_irqrestore_in_step(k, lock)
        else:
            lock.unlock_irqrestore()
        signalling_exit(k, t, section)  # dma_fence_end_signalling
        return ret

    def signal(self) -> int:
        """``dma_fence_signal``: signal now. Returns 0, or ``-EINVAL`` if already signalled (R2)."""
        return self.signal_timestamp(self.k.now)

    def signal_timestamp_locked(self, timestamp: int) -> int:
        """``dma_fence_signal_timestamp_locked``: the caller holds ``fence.lock``."""
        k = self.k
        k.point("dma_fence_signal", self.oid, True)
        if self.freed is not None and self.touched_after_free("dma_fence_signal_locked"):
            return _EINVAL
        lockdep_assert_held(self.lock)
        return self._signal_locked(timestamp, True)

    def signal_locked(self) -> int:
        """``dma_fence_signal_locked``: the caller holds ``fence.lock``."""
        return self.signal_timestamp_locked(self.k.now)

    def set_error(self, error: int) -> None:
        """``dma_fence_set_error``: record a negative errno before signalling (R5)."""
        if self.flags & SIGNALED or not (-MAX_ERRNO <= error < 0):
            why = "already signalled" if self.flags & SIGNALED else f"error {error} not in [-{MAX_ERRNO}, -1]"
            self.k.report(
                "assertion",
                f"WARNING: dma_fence_set_error: {why}",
                details={"fence": self.oid, "error": error, "signalled": bool(self.flags & SIGNALED)},
                rule="dma_fence R5: set_error only before signalling, with a negative errno",
                signature=f"dma-fence-set-error:{self.timeline_name}:{why}",
            )
            return
        self.error = error

    def get_status_locked(self) -> int:
        """``dma_fence_get_status_locked``: 0 pending, 1 signalled, or the error."""
        if self._is_signaled_locked():
            return self.error or 1
        return 0

    def get_status(self) -> int:
        """``dma_fence_get_status``: 0 pending, 1 signalled, or the (negative) error."""
        self.k.point("dma_fence_get_status", self.oid, False)
        lock = self.lock
        lock.lock_irqsave()
        try:
            return self.get_status_locked()
        finally:
            lock.unlock_irqrestore()

    def _is_signaled_locked(self) -> bool:
        if self.flags & SIGNALED:
            return True
        if self.ops.signaled(self):
            self._signal_locked(self.k.now, False)
            return True
        return False

    def is_signaled(self) -> bool:
        """``dma_fence_is_signaled``: True if signalled; polls ``ops.signaled`` and
        signals on its say-so. Does not enable signalling."""
        soid = _signaled_oid(self.oid)  # test_bit(SIGNALED) (R13)
        self.k.point("dma_fence_is_signaled", soid, False, "", _W_IS_SIGNALED ^ (soid << 1))
        if self.flags & SIGNALED:
            return True
        if self.ops.signaled(self):
            lock = self.lock
            lock.lock_irqsave()
            try:
                self._signal_locked(self.k.now, False)
            finally:
                lock.unlock_irqrestore()
            return True
        return False

    def is_signaled_locked(self) -> bool:
        """``dma_fence_is_signaled_locked``: the caller holds the fence lock."""
        self.k.point("dma_fence_is_signaled", _signaled_oid(self.oid), False)
        lockdep_assert_held(self.lock)
        return self._is_signaled_locked()

    def get_timestamp(self) -> int:
        """``dma_fence_timestamp``: the signal time; WARN and "now" if unsignalled."""
        if not (self.flags & SIGNALED):
            self.k.report(
                "assertion",
                "WARNING: dma_fence_timestamp on an unsignalled fence",
                details={"fence": self.oid},
                rule="dma_fence: the timestamp exists only once signalled",
                signature=f"dma-fence-timestamp:{self.timeline_name}",
            )
            return self.k.now
        return self.timestamp

    # ------------------------------------------------------------------ callbacks

    def _depend(self) -> None:
        if not self.depended:
            self.depended = True
            _state(self.k).depend(self)

    def _enable_signaling_locked(self) -> bool:
        """``__dma_fence_enable_signaling``: False when (now) signalled.

        ``test_and_set_bit(ENABLE_SIGNAL)`` on a bit already set changes nothing,
        then ``test_bit(SIGNALED)``: the caller's step declared reads of both bits.
        The first enable writes ENABLE_SIGNAL (R13); a driver's ``enable_signaling``
        that signals declares the signal itself."""
        flags = self.flags
        if flags & ENABLE_SIGNAL:
            return not (flags & SIGNALED)
        self.k.event("dma_fence_enable_signaling", _enable_oid(self.oid), True)
        self.flags = flags | ENABLE_SIGNAL
        if flags & SIGNALED:
            return False
        if not (flags & ENABLE_SIGNAL) and not self.ops.enable_signaling(self):
            self._signal_locked(self.k.now, False)
            return False
        return True

    def enable_sw_signaling(self) -> None:
        """``dma_fence_enable_sw_signaling``: ask the driver for a software notification."""
        k = self.k
        lock = self.lock
        lock.lock_irqsave()  # the operation's scheduling point (the lock, written)
        oid = self.oid
        # test_and_set_bit(ENABLE_SIGNAL) (the first enable writes it), test_bit(SIGNALED) (R13)
        k.event("dma_fence_enable_signaling", _enable_oid(oid), False)
        k.event("dma_fence_enable_signaling", _signaled_oid(oid), False)
        steps = k.steps
        try:
            self._enable_signaling_locked()
        except BaseException:
            lock.unlock_irqrestore()
            raise
        if k.steps == steps:
            _unlock_irqrestore_in_step(k, lock)
        else:
            lock.unlock_irqrestore()

    def add_callback(
        self, cb: DmaFenceCb | Callable[[DmaFence, DmaFenceCb], object]
    ) -> DmaFenceCb:
        """``dma_fence_add_callback``: run ``cb`` when the fence signals (R3, R4).

        Takes a :class:`DmaFenceCb` or a bare ``func(fence, cb)`` (wrapped);
        returns the callback slot for :meth:`remove_callback`. Raises
        ``ENOENT`` (without calling it) when the fence is already signalled.

        One scheduling point (R10, a Lipton reduction): the kernel tests the
        SIGNALED bit without the lock, then takes ``fence.lock``, enables
        signalling, links the callback and unlocks. Here the lock's
        ``spin_lock`` point (the lock, written) carries the whole operation:
        the fence is declared written by a ``dma_fence_add_callback`` event
        in the same step, and the release is a ``spin_unlock`` event, not a
        second point. Lockdep still sees the acquire and the release (edges
        from the held locks, irq usage), and the trace still pairs them. The
        release only joins the step when no scheduling point happened inside
        the section (a driver's ``enable_signaling`` may take some); then it
        is a normal ``unlock_irqrestore``. The lockless test itself runs in
        the caller's step before that point, and that step declares a read of
        SIGNALED (R13): which path the operation takes (the lock or not) is
        then ordered with the signal. A fence already signalled (the bit never
        clears) takes a point on SIGNALED instead and raises without touching
        the lock, as the kernel's lockless test.
        """
        k = self.k
        if not isinstance(cb, DmaFenceCb):
            cb = DmaFenceCb(cb)
        elif cb.queued is not None:
            raise UsageError("this dma_fence_cb is already queued on a fence (one fence at a time)")
        if self.freed is not None and self.touched_after_free("dma_fence_add_callback"):
            raise ENOENT("dma_fence_add_callback: fence freed")
        if not self.depended:  # _depend(), inlined
            self.depended = True
            _state(k).depend(self)
        soid = _signaled_oid(self.oid)
        # the lockless test_bit(SIGNALED) runs in the caller's step, which declares it (R13)
        k.event("dma_fence_add_callback", soid, False)
        flags = self.flags
        if flags & SIGNALED:  # still true at the point: the bit never clears
            k.point("dma_fence_add_callback", soid, False)  # SIGNALED, read (R13)
            raise ENOENT("dma_fence_add_callback: fence already signalled")
        lock = self.lock
        lock.lock_irqsave()  # the operation's scheduling point (the lock, written)
        oid = self.oid
        # __dma_fence_enable_signaling: ENABLE_SIGNAL (the first enable writes it) and SIGNALED (R13)
        k.event("dma_fence_add_callback", _enable_oid(oid), False)
        k.event("dma_fence_add_callback", _signaled_oid(oid), False)
        steps = k.steps
        flags = self.flags
        if flags & ENABLE_SIGNAL:
            ok = not (flags & SIGNALED)
            in_step = True
        else:
            try:
                ok = self._enable_signaling_locked()  # the driver's enable_signaling (once)
            except BaseException:
                lock.unlock_irqrestore()
                raise
            in_step = ok  # not ok: it signalled the fence, and callbacks ran inside
        if ok:
            k.event("dma_fence_add_callback", part_oid(oid, _CB_PART), True)  # list_add_tail (R12)
            cbs = self.cb_list
            assert cbs is not None
            cbs.append(cb)
            cb.queued = self
        if in_step and k.steps == steps:
            _unlock_irqrestore_in_step(k, lock)
        else:
            lock.unlock_irqrestore()
        if not ok:
            raise ENOENT("dma_fence_add_callback: fence already signalled")
        return cb

    def remove_callback(self, cb: DmaFenceCb) -> bool:
        """``dma_fence_remove_callback``: True if ``cb`` was still queued (now it never runs)."""
        k = self.k
        cbs_oid = part_oid(self.oid, _CB_PART)
        k.point("dma_fence_remove_callback", cbs_oid, True)
        lock = self.lock
        lock.lock_irqsave()
        k.event("dma_fence_remove_callback", cbs_oid, True)  # the lock's step: list_del_init (R12)
        try:
            if cb.queued is not self:
                return False
            cbs = self.cb_list
            assert cbs is not None
            cbs.remove(cb)
            cb.queued = None
            return True
        finally:
            lock.unlock_irqrestore()

    def set_deadline(self, deadline: int) -> None:
        """``dma_fence_set_deadline``: a hint passed to ``ops.set_deadline`` if unsignalled."""
        if not (self.flags & SIGNALED):
            self.ops.set_deadline(self, deadline)

    # ------------------------------------------------------------------ waiting

    def default_wait(self, intr: bool, timeout: int | None) -> int:
        """``dma_fence_default_wait``: sleep until signalled, timeout or signal (R6)."""
        k = self.k
        me = k.current
        lock = self.lock
        lock.lock_irqsave()  # the operation's scheduling point (the lock, written)
        oid = self.oid
        soid = _signaled_oid(oid)
        k.event("dma_fence_wait", soid, False)  # the step tests SIGNALED (R13) and queues the waiter
        steps = k.steps
        ok = False
        try:
            if self.flags & SIGNALED:
                return _left_when_done(timeout)
            if intr and me.signal_pending:
                raise ERESTARTSYS("dma_fence_wait interrupted by a signal")
            if timeout == 0:
                return 0
            k.event("dma_fence_wait", _enable_oid(oid), False)  # the model enables if needed (R13)
            if self._enable_signaling_locked():
                cb = DmaFenceCb(_WakeWaiter(k, me))
                # list_add of a wake-only node: commutes with the other waiters' (R14)
                k.event("dma_fence_wait", part_oid(oid, _CB_PART), False)
                cbs = _oga(self, "cb_list")
                assert cbs is not None
                cbs.append(cb)
                accesses.note_counter(self, "cb_list", False)  # an update of the list (R14)
                cb.queued = self
                ok = True
        finally:
            if k.steps == steps:
                _unlock_irqrestore_in_step(k, lock)
            else:
                lock.unlock_irqrestore()
        if not ok:
            return _left_when_done(timeout)
        deadline = None if timeout is None else k.now + timeout
        name = self.timeline_name
        while not (self.flags & SIGNALED):
            left = None if deadline is None else deadline - k.now
            if left is not None and left <= 0:
                self._drop_waiter(cb)
                return 0
            # R6: woken by the signal, the waiter only reads the fence (its callback was unlinked)
            # R12: it sleeps queued on the callback list, which the signal writes; then reads the flags
            # R14: the sleep queued on the list only reads it (runtime R16)
            reason = k.block("dma_fence_wait", part_oid(oid, _CB_PART), interruptible=intr, timeout=left,
                             name=name, woken_reads=True, sleep_reads=True)
            k.event("dma_fence_wait", soid, False)
            if reason == "signal" and not (self.flags & SIGNALED):
                self._drop_waiter(cb)
                raise ERESTARTSYS("dma_fence_wait interrupted by a signal")
        if cb.queued is not None:
            self._drop_waiter(cb)
        if deadline is None:
            return LONG_MAX
        return max(1, deadline - k.now)

    def _drop_waiter(self, cb: DmaFenceCb) -> None:
        lock = self.lock
        lock.lock_irqsave()
        # the lock's step unlinks it from the list (list_del, R12)
        self.k.event("dma_fence_remove_callback", part_oid(self.oid, _CB_PART), True)
        try:
            if cb.queued is self:
                cbs = self.cb_list
                assert cbs is not None
                cbs.remove(cb)
                cb.queued = None
        finally:
            lock.unlock_irqrestore()

    def wait_timeout(self, intr: bool, timeout: int | None) -> int:
        """``dma_fence_wait_timeout`` (R6): time left (>= 1), 0 on timeout, or what
        a custom ``ops.wait`` returns; raises ``ERESTARTSYS`` when interrupted.

        ``timeout`` is virtual ns; ``None`` is ``MAX_SCHEDULE_TIMEOUT`` (success
        then returns ``LONG_MAX``). A negative timeout raises ``EINVAL``.
        """
        if timeout is not None and timeout < 0:
            raise EINVAL(f"dma_fence_wait_timeout: negative timeout {timeout}")
        k = self.k
        k.might_sleep("dma_fence_wait_timeout")
        dma_fence_might_wait()
        self._depend()
        self.enable_sw_signaling()
        return self.ops.wait(self, intr, timeout)

    def wait(self, intr: bool = False) -> int:
        """``dma_fence_wait``: wait without a timeout; 0 on success (R6).

        Raises ``ERESTARTSYS`` if ``intr`` and a signal interrupts the wait; a
        custom ``ops.wait`` error (negative) is returned as is.
        """
        ret = self.wait_timeout(intr, None)
        return ret if ret < 0 else 0

    # ------------------------------------------------------------------ ordering

    def is_later(self, other: DmaFence) -> bool:
        """``dma_fence_is_later``: is this fence after ``other`` on their common timeline?"""
        if self.context != other.context:
            self.k.report(
                "assertion",
                "WARNING: dma_fence_is_later on fences of different contexts",
                details={"contexts": [self.context, other.context]},
                rule="dma_fence R1: seqnos of different contexts are not comparable",
                signature=f"dma-fence-is-later:{self.timeline_name}:{other.timeline_name}",
            )
            return False
        return seqno_is_later(self.seqno, other.seqno, self.ops.use_64bit_seqno)

    def is_later_or_same(self, other: DmaFence) -> bool:
        """``dma_fence_is_later_or_same``."""
        return self is other or self.is_later(other)


def seqno_is_later(a: int, b: int, use_64bit: bool) -> bool:
    """``__dma_fence_is_later``: 64-bit compare, or 32-bit with wrap-around."""
    if use_64bit:
        return a > b
    d = (a - b) & 0xFFFFFFFF
    return d != 0 and d < 0x80000000


def later(f1: DmaFence, f2: DmaFence) -> DmaFence | None:
    """``dma_fence_later``: the later of two same-context fences, or None if it is signalled."""
    if f1.context != f2.context:
        f1.is_later(f2)  # reports the WARN
        return None
    pick = f1 if f1.is_later(f2) else f2
    return None if pick.is_signaled() else pick


def _left_when_done(timeout: int | None) -> int:
    if timeout is None:
        return LONG_MAX
    return timeout if timeout > 0 else 1


def _unlock_irqrestore_in_step(k: Kernel, lock: SpinLock) -> None:
    """``spin_unlock_irqrestore`` as part of the current step (R10): no scheduling point.

    Valid only when no scheduling point happened since the lock's own
    ``spin_lock`` point: a release is a left-mover (Lipton), so letting
    other threads run just before it adds no behaviour. Everything else is
    :meth:`SpinLock.unlock_irqrestore`'s: the ``spin_unlock`` event (so the
    step writes the lock and the trace pairs the acquisition), lockdep's
    release, the end of the atomic sections, and waking spinners.
    """
    dep_map = lock.dep_map
    name = dep_map.name
    k.event("spin_unlock", lock.oid, True, name)
    t = k.current
    k.lockdep.lock_release(t, dep_map)
    if lock.owner is t:
        lock.owner = None
        atomic_exit_fast(k, t, "spinlock", name)
        lock.released(k, t)  # wakes the spinners, or tells the runtime of a whole section (L6)
    atomic_exit_fast(k, t, "irqs_disabled", name)


class _WakeWaiter:
    """The default wait's callback: wake the sleeping thread (``dma_fence_default_wait_cb``)."""

    __slots__ = ("k", "t")

    def __init__(self, k: Kernel, t: KThread) -> None:
        self.k = k
        self.t = t

    def __call__(self, fence: DmaFence, cb: DmaFenceCb) -> None:
        self.k.wake(self.t)


# ---------------------------------------------------------------------- stub


def get_stub() -> DmaFence:
    """``dma_fence_get_stub``: a reference to the execution's signalled stub (context 0, seqno 0)."""
    k = current_kernel()
    st = _state(k)
    if st.stub is None:
        st.stub = allocate_private_stub(k.now)
    return st.stub.get()


def allocate_private_stub(timestamp: int | None = None) -> DmaFence:
    """``dma_fence_allocate_private_stub``: a fresh signalled fence with timestamp ``timestamp``."""
    f = DmaFence(_STUB_OPS, None, 0, 0)
    f.flags = SIGNALED | TIMESTAMP | ENABLE_SIGNAL
    f.cb_list = None
    f.timestamp = f.k.now if timestamp is None else timestamp
    return f


# ---------------------------------------------------------------------- timelines


class FenceContext:
    """A timeline: one context number, a shared lock and increasing seqnos.

    The usual driver pattern (a ring, an engine): ``dma_fence_context_alloc(1)``
    once, one spinlock for the timeline, ``dma_fence_init(f, ops, &lock,
    context, ++seqno)`` per job.
    """

    __slots__ = ("context", "lock", "name", "ops", "seqno")

    def __init__(self, name: str = "timeline", *, driver: str = "dmabufsim", ops: FenceOps | None = None,
                 lock: SpinLock | None = None) -> None:
        self.name = name
        self.ops = ops if ops is not None else NamedFenceOps(driver, name)
        # One lockdep class per driver (the kernel: one per spin_lock_init site).
        self.lock = lock if lock is not None else SpinLock(f"{name}.fence_lock", key=f"{driver}.fence_lock")
        self.context = context_alloc(1)
        #: The last seqno handed out.
        self.seqno = 0

    def create(self, seqno: int | None = None) -> DmaFence:
        """A new fence on this timeline: the next seqno, or ``seqno`` if given."""
        if seqno is None:
            self.seqno += 1
            seqno = self.seqno
        elif seqno > self.seqno:
            self.seqno = seqno
        return DmaFence(self.ops, self.lock, self.context, seqno)

    def __repr__(self) -> str:
        return f"<FenceContext {self.name} ctx={self.context} seqno={self.seqno}>"


# ---------------------------------------------------------------------- lifetimes


class FenceCache(KmemCache):
    """A ``kmem_cache`` of fences (``i915``'s request slab, ``amdgpu_fence_slab``), R11.

    ``FenceCache(name, typesafe_by_rcu=True)`` is ``SLAB_TYPESAFE_BY_RCU``: a
    freed fence may be reused by :meth:`create` while a lockless reader still
    holds its old pointer; the reader's ``get_rcu`` then succeeds on the new
    fence, which only a re-check of the pointer (``get_rcu_safe``) notices.
    """

    __slots__ = ()

    def create(self, ops: FenceOps | None = None, lock: SpinLock | None = None, context: int = 0,
               seqno: int = 0) -> DmaFence:
        """``kmem_cache_alloc`` + ``dma_fence_init``: a fence with one reference."""
        obj = self.take()
        if obj is None:
            f = DmaFence(ops, lock, context, seqno)
        else:
            assert isinstance(obj, DmaFence)
            f = obj
            mem = f.oid
            DmaFence.__init__(f, ops, lock, context, seqno)
            # The id names the memory (what a stale pointer reaches, what the declared
            # accesses order): a recycled fence keeps it; context and seqno tell the fences apart.
            f.oid = mem
        f.cache = self
        self.allocated(f)
        return f


def get_rcu_safe(load: Callable[[], DmaFence | None]) -> DmaFence | None:
    """``dma_fence_get_rcu_safe(fencep)``: a reference to the fence published at ``*fencep`` (R11).

    ``load()`` is ``rcu_dereference(*fencep)`` (the caller's read of the
    pointer, a scheduling point of its own); the caller is inside
    ``rcu_read_lock``. After a successful ``get_rcu`` the pointer is read
    again: when it no longer points at the fence got (replaced, or freed and
    recycled from a type-safe-by-RCU cache), the reference is put and the
    lookup retries.
    """
    while True:
        f = load()
        if f is None:
            return None
        if f.get_rcu() is None:
            continue
        if load() is f:
            return f
        f.put()


# ---------------------------------------------------------------------- wait_any


def wait_any_timeout(fences: Sequence[DmaFence], intr: bool, timeout: int | None) -> tuple[int, int | None]:
    """``dma_fence_wait_any_timeout``: wait until any fence signals.

    Returns ``(ret, idx)``: ``ret`` is the time left (>= 1; ``LONG_MAX`` for
    an unbounded wait), 0 on timeout (``idx`` None); ``idx`` is the index of
    the first signalled fence. Raises ``ERESTARTSYS`` when interrupted and
    ``EINVAL`` for no fences or a negative timeout.
    """
    if not fences:
        raise EINVAL("dma_fence_wait_any_timeout: no fences")
    if timeout is not None and timeout < 0:
        raise EINVAL(f"dma_fence_wait_any_timeout: negative timeout {timeout}")
    k = current_kernel()
    k.might_sleep("dma_fence_wait_any_timeout")
    if timeout == 0:
        for i, f in enumerate(fences):
            if f.is_signaled():
                return 1, i
        return 0, None
    dma_fence_might_wait()
    me = k.current
    waiter = _WakeWaiter(k, me)
    cbs: list[tuple[DmaFence, DmaFenceCb]] = []
    deadline = None if timeout is None else k.now + timeout
    try:
        for i, f in enumerate(fences):
            try:
                cb = f.add_callback(DmaFenceCb(waiter))
            except ENOENT:
                return (LONG_MAX if timeout is None else timeout), i
            cbs.append((f, cb))
        while True:
            for i, f in enumerate(fences):
                k.event("dma_fence_wait_any", _signaled_oid(f.oid), False)  # test_bit(SIGNALED) (R13)
                if f.flags & SIGNALED:
                    return (LONG_MAX if deadline is None else max(1, deadline - k.now)), i
            if intr and me.signal_pending:
                raise ERESTARTSYS("dma_fence_wait_any_timeout interrupted by a signal")
            left = None if deadline is None else deadline - k.now
            if left is not None and left <= 0:
                return 0, None
            k.block("dma_fence_wait_any", fences[0].oid, interruptible=intr, timeout=left, name="wait_any")
    finally:
        for f, cb in cbs:
            if cb.queued is not None:
                f.remove_callback(cb)


wait_any = wait_any_timeout


def depended_fences(k: Kernel | None = None) -> list[DmaFence]:
    """The fences something depended on in this execution and that were unsignalled when last pruned (R8), in order.

    Signalled fences are dropped as the list grows (they cannot be
    never-signalled); an unsignalled one stays until the end.
    """
    return list(_state(k or current_kernel()).depended)
