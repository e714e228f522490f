"""Models ``drivers/dma-buf/dma-resv.c`` (``struct dma_resv``, Linux 6.12) and its 2018 names.

A reservation object guards a buffer: a ww_mutex of class
``reservation_ww_class`` (wait-die) plus the list of fences of everyone who
uses the buffer, each with a *usage* saying who must wait for it.

Rules:

* R1 (writers hold the lock): ``reserve_fences``, ``add_fence``,
  ``replace_fences``, ``copy_fences`` (destination) and the locked
  iteration assert the reservation lock (``dma_resv_assert_held``): calling
  them without it is an ``assertion`` finding.
* R2 (reserve, then add): every ``add_fence`` needs a slot reserved by
  ``reserve_fences`` under the *same* lock hold (an unlock resets the
  reservation, as ``CONFIG_DEBUG_MUTEXES`` does). Adding without a slot is
  the kernel's ``BUG_ON``: here an ``assertion`` finding, and the fence is
  not added. ``reserve_fences(0)`` is a WARN and ``EINVAL``.
* R3 (usage order): ``KERNEL < WRITE < READ < BOOKKEEP``; asking for usage
  U returns the fences of usage <= U, in list order.
* R4 (one fence per context): ``add_fence`` replaces in place the first
  entry that has the same context, a usage >= the new one and an older or
  same fence, or that holds a signalled fence; otherwise it appends.
  Containers (arrays, chains) are a WARN: add their leaves.
* R5 (pruning): growing the list (``reserve_fences``), ``copy_fences``,
  the unlocked iterator and everything built on it (``get_fences``,
  ``get_singleton``, ``test_signaled``, ``wait_timeout``) never return or
  keep a signalled fence; the locked iterator returns signalled ones too.
* R6 (lockless readers, claim C18): every change of the list is a write
  section of the object's :class:`SeqCount` (whose writers hold the ww_mutex);
  a lockless reader restarts from the beginning (``is_restarted``) when a
  write section began since it started or the list was reallocated, so it
  never returns a mix of two states of the list; with finitely many writes
  it terminates. Each step of the walk is an RCU read section (atomic: a
  ``signaled`` op that sleeps there is ``sleep-in-atomic``); the caller
  holds a reference to the fence it got, so it may wait on it outside.
  Declarations: a lockless reader touches only the seqcount, the published
  list and the fences, never the ww_mutex; so a writer's lock, unlock and
  what it only reads under the lock (``reserve_fences`` without growing,
  ``add_fence``'s scan) commute with the reader, and each write section is
  the step that stores into the list. The list is declared field by field,
  as the kernel keeps it: the ``obj->fences`` pointer (``published_oid``,
  written by a reallocation), its ``num_fences`` and each slot of its table
  (:func:`~dmabufsim.kernel.trace.part_oid` 0 and ``1 + i`` of the object:
  an append writes its slot and ``num_fences``, an in-place replacement
  only its slot). A reader loads the pointer and ``num_fences`` when it
  (re)starts (``dma_resv_iter_restart_unlocked`` keeps ``num_fences`` in the
  cursor, as ``reservation_object_wait_timeout_rcu`` kept ``shared_count``)
  and each slot as it walks, so a write to slot ``i`` races only with the
  loads of slot ``i``. Slot ``i`` of a reallocated list shares the
  pseudo-object of slot ``i`` of the old one (an order more, never less).
* R7 (published fences are depended on): a fence added to a reservation
  object must signal (dma_fence R8) and from that moment its signalling path
  is a fence-signalling critical section.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum

from ..kernel.errors import EINVAL
from ..kernel.lockdep_map import LockdepMap, lockdep_assert_held
from ..kernel.runtime import current_kernel
from ..kernel.trace import part_oid, published_oid
from ..locking.rcu import rcu_read_lock, rcu_read_unlock
from ..locking.seqcount import SeqCount
from ..locking.ww_mutex import WWAcquireCtx, WWClass, WWMutex
from .fence import LONG_MAX, DmaFence, context_alloc
from .fence_array import DmaFenceArray

#: ``reservation_ww_class``: ``DEFINE_WD_CLASS`` (wait-die) since v4.19; before
#: that ``DEFINE_WW_CLASS`` meant wait-die too.
reservation_ww_class = WWClass("reservation_ww_class", wait_die=True)

_RULE_HELD = "dma_resv R1: writers hold the reservation lock"


class DmaResvUsage(IntEnum):
    """``enum dma_resv_usage``: who must wait for a fence (R3)."""

    #: Kernel memory management (moves, clears): everyone waits, unless pinned.
    KERNEL = 0
    #: Implicit-sync writers.
    WRITE = 1
    #: Implicit-sync readers.
    READ = 2
    #: No implicit sync (preemption fences, page-table updates, TLB flushes).
    BOOKKEEP = 3


def usage_rw(write: bool) -> DmaResvUsage:
    """``dma_resv_usage_rw``: a new writer waits for readers and writers (READ), a reader for writers (WRITE)."""
    return DmaResvUsage.READ if write else DmaResvUsage.WRITE


class DmaResvSlot:
    """One element of ``dma_resv_list::table``: a fence with its usage packed into the pointer.

    ``entry`` is ``(fence, usage)``, replaced whole (``RCU_INIT_POINTER``: an
    entry is never torn), or None for a slot not yet filled.
    """

    __slots__ = ("entry",)

    def __init__(self, entry: tuple[DmaFence, DmaResvUsage] | None = None) -> None:
        self.entry = entry


class DmaResvList:
    """``struct dma_resv_list``: the published fence list.

    ``table`` is allocated once with room for the list's fences (its slots
    are filled in place, never moved); ``num_fences`` of them are in use.
    Invariant: ``num_fences <= max_fences <= len(table)`` (``max_fences``
    drops to ``num_fences`` at unlock, R2).
    """

    __slots__ = ("max_fences", "num_fences", "table")

    def __init__(self, max_fences: int, entries: list[tuple[DmaFence, DmaResvUsage]] | None = None) -> None:
        entries = entries if entries is not None else []
        self.max_fences = max_fences
        self.num_fences = len(entries)
        self.table = [DmaResvSlot(e) for e in entries] + [
            DmaResvSlot() for _ in range(max(max_fences, len(entries)) - len(entries))
        ]

    @property
    def entries(self) -> list[tuple[DmaFence, DmaResvUsage]]:
        """The ``(fence, usage)`` of the slots in use, in order (a copy)."""
        return [e for e in (slot.entry for slot in self.table[: self.num_fences]) if e is not None]

    def set(self, i: int, fence: DmaFence, usage: DmaResvUsage) -> None:
        """``dma_resv_list_set``: fill or replace slot ``i`` (the caller declares it, R6)."""
        self.table[i].entry = (fence, usage)

    def entry(self, i: int) -> tuple[DmaFence, DmaResvUsage]:
        """``dma_resv_list_entry``: the fence and usage in slot ``i`` (below ``num_fences``)."""
        e = self.table[i].entry
        assert e is not None, f"dma_resv_list slot {i} read before it was filled"
        return e


def _roundup_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class DmaResv:
    """``struct dma_resv``: ``DmaResv()`` is ``dma_resv_init``; :meth:`fini` is ``dma_resv_fini``.

    Attributes: ``ww`` (the :class:`WWMutex`, the kernel's ``obj->lock``:
    the method names ``lock``/``unlock`` are the calls ``dma_resv_lock``/
    ``dma_resv_unlock``), ``seq`` (the readers' :class:`SeqCount`, R6),
    ``fences`` (the published :class:`DmaResvList`, None before the first
    reservation).
    """

    __slots__ = ("fences", "k", "list_oid", "name", "oid", "seq", "states", "ww")

    def __init__(self, name: str | None = None) -> None:
        self.k = current_kernel()
        self.ww = WWMutex(reservation_ww_class, name)
        self.oid = self.ww.oid
        self.name = name or f"resv#{self.oid}"
        self.seq = SeqCount(f"{self.name}.seq", lock=self.ww, key="dma_resv.seq")
        #: The published list and its entries, declared apart from the ww_mutex (R6).
        self.list_oid = published_oid(self.oid)
        self.fences: DmaResvList | None = None
        #: Debug mode (:meth:`record_states`): every state the list went through.
        self.states: list[tuple[tuple[int, int], ...]] | None = None

    def __repr__(self) -> str:
        n = self.fences.num_fences if self.fences else 0
        return f"<DmaResv {self.name} fences={n}>"

    # ------------------------------------------------------------------ locking

    @property
    def dep_map(self) -> LockdepMap:
        """The ww_mutex's lockdep map (so ``lockdep_assert_held(resv)`` works)."""
        return self.ww.dep_map

    def lock(self, ctx: WWAcquireCtx | None = None) -> None:
        """``dma_resv_lock``: raises ``EDEADLK`` (back off) or ``EALREADY`` (same ctx)."""
        self.ww.lock(ctx)

    def lock_interruptible(self, ctx: WWAcquireCtx | None = None) -> None:
        """``dma_resv_lock_interruptible``: as :meth:`lock`, or ``EINTR``."""
        self.ww.lock_interruptible(ctx)

    def lock_slow(self, ctx: WWAcquireCtx) -> None:
        """``dma_resv_lock_slow``: take the contended lock after backing off."""
        self.ww.lock_slow(ctx)

    def lock_slow_interruptible(self, ctx: WWAcquireCtx) -> None:
        """``dma_resv_lock_slow_interruptible``."""
        self.ww.lock_slow_interruptible(ctx)

    def trylock(self) -> bool:
        """``dma_resv_trylock``: no context, never sleeps, never ``EDEADLK``."""
        return self.ww.trylock()

    def unlock(self) -> None:
        """``dma_resv_unlock``: reservations are reset first (R2), then the ww_mutex is released."""
        if self.ww.owner is self.k.current:
            self.reset_max_fences()
        self.ww.unlock()

    def is_held(self) -> bool:
        """``dma_resv_held``: does the current thread hold the lock (lockdep's view)?"""
        return self.k.lockdep.is_held(self.ww.dep_map)

    held = is_held

    def assert_held(self) -> None:
        """``dma_resv_assert_held``: an ``assertion`` finding if the lock is not held (R1)."""
        lockdep_assert_held(self.ww)

    def is_locked(self) -> bool:
        """``dma_resv_is_locked``."""
        return self.ww.is_locked()

    def locking_ctx(self) -> WWAcquireCtx | None:
        """``dma_resv_locking_ctx``: the acquire context of the holder, or None (the step reads the lock)."""
        self.k.event("dma_resv_locking_ctx", self.ww.oid, False)
        return self.ww.ctx

    def __enter__(self) -> DmaResv:
        self.lock(None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def reset_max_fences(self) -> None:
        """``dma_resv_reset_max_fences``: reservations do not survive an unlock (R2)."""
        if self.fences is not None:
            self.fences.max_fences = self.fences.num_fences

    # ------------------------------------------------------------------ debug: list states

    def snapshot(self) -> tuple[tuple[int, int], ...]:
        """The list as ``((fence oid, usage), ...)``, read without a scheduling point."""
        fobj = self.fences
        return tuple((f.oid, int(u)) for f, u in fobj.entries) if fobj is not None else ()

    def record_states(self) -> list[tuple[tuple[int, int], ...]]:
        """Debug mode: record the list after every write section (the states a reader may see).

        Claim C18 checks every lockless result against these.
        """
        self.states = [self.snapshot()]
        return self.states

    def _write_end(self) -> None:
        self.seq.write_end()
        states = self.states
        if states is not None:
            states.append(self.snapshot())

    # ------------------------------------------------------------------ writers

    def _publish(self, new: DmaResvList) -> None:
        self.seq.write_begin()
        # rcu_assign_pointer(obj->fences), in the seqcount's step (R6).
        self.k.event("dma_resv_publish", self.list_oid, True)
        self.fences = new
        self._write_end()

    def reserve_fences(self, num_fences: int) -> None:
        """``dma_resv_reserve_fences``: make room for ``num_fences`` more ``add_fence`` (R2, R5).

        Growing the list drops the signalled fences of the old one.
        """
        k = self.k
        self.assert_held()
        if num_fences <= 0:
            k.report(
                "assertion",
                "WARNING: dma_resv_reserve_fences(0)",
                details={"resv": self.name},
                rule="dma_resv R2: reserve at least one slot",
                signature=f"dma-resv-reserve-zero:{self.name}",
            )
            raise EINVAL("dma_resv_reserve_fences: num_fences must be positive")
        k.point("dma_resv_reserve_fences", self.oid, True, self.name)
        old = self.fences
        if old is not None:
            if old.num_fences + num_fences <= old.max_fences:
                return
            cap = max(old.num_fences + num_fences, 2 * old.max_fences)
        else:
            cap = max(4, _roundup_pow2(num_fences))
        kept: list[tuple[DmaFence, DmaResvUsage]] = []
        if old is not None:
            for fence, usage in old.entries:
                if fence.is_signaled():
                    fence.put()
                else:
                    kept.append((fence, usage))
        self._publish(DmaResvList(cap, kept))

    def add_fence(self, fence: DmaFence, usage: DmaResvUsage) -> None:
        """``dma_resv_add_fence``: publish ``fence`` with ``usage`` (R2, R4, R7). Takes its own reference."""
        k = self.k
        self.assert_held()
        if fence.ops.container:
            k.report(
                "assertion",
                "WARNING: dma_resv_add_fence with a container fence",
                details={"resv": self.name, "fence": fence.oid, "kind": type(fence).__name__},
                rule="dma_resv R4: add the leaves of arrays and chains individually",
                signature=f"dma-resv-add-container:{self.name}",
            )
        k.point("dma_resv_add_fence", self.oid, True, self.name)
        fence._depend()
        fobj = self.fences
        count = fobj.num_fences if fobj is not None else 0
        for i in range(count):
            assert fobj is not None
            old, old_usage = fobj.entry(i)
            if (old.context == fence.context and old_usage >= usage and fence.is_later_or_same(old)) or (
                old.is_signaled()
            ):
                fence.get()
                self.seq.write_begin()
                k.event("dma_resv_add_fence", part_oid(self.oid, 1 + i), True)  # RCU_INIT_POINTER of slot i (R6)
                fobj.set(i, fence, usage)
                self._write_end()
                old.put()
                return
        if fobj is None or count >= fobj.max_fences:
            cap = fobj.max_fences if fobj is not None else 0
            k.report(
                "assertion",
                "kernel BUG at drivers/dma-buf/dma-resv.c: dma_resv_add_fence without a reserved slot",
                details={"resv": self.name, "num_fences": count, "max_fences": cap, "fence": fence.oid,
                         "usage": usage.name},
                rule="dma_resv R2: reserve_fences before add_fence, under the same lock hold",
                signature=f"dma-resv-no-slot:{self.name}",
                text=(
                    f"kernel BUG at drivers/dma-buf/dma-resv.c: BUG_ON(fobj->num_fences >= fobj->max_fences)\n"
                    f"dma_resv {self.name}: {count} fences, {cap} reserved; the fence "
                    f"{fence.timeline_name}:{fence.context}:{fence.seqno} was not added"
                ),
            )
            return
        fence.get()
        self.seq.write_begin()
        k.event("dma_resv_add_fence", part_oid(self.oid, 1 + count), True)  # the new slot (R6)
        fobj.set(count, fence, usage)
        k.event("dma_resv_add_fence", part_oid(self.oid, 0), True)  # smp_store_mb(fobj->num_fences, ...)
        fobj.num_fences = count + 1
        self._write_end()

    def replace_fences(self, context: int, replacement: DmaFence, usage: DmaResvUsage) -> None:
        """``dma_resv_replace_fences``: every entry of ``context`` becomes ``(replacement, usage)``."""
        k = self.k
        self.assert_held()
        k.point("dma_resv_replace_fences", self.oid, True, self.name)
        fobj = self.fences
        if fobj is None:
            return
        replacement._depend()
        for i in range(fobj.num_fences):
            old, _old_usage = fobj.entry(i)
            if old.context != context:
                continue
            self.seq.write_begin()
            k.event("dma_resv_replace_fences", part_oid(self.oid, 1 + i), True)  # slot i (R6)
            fobj.set(i, replacement.get(), usage)
            self._write_end()
            old.put()

    def copy_fences(self, src: DmaResv) -> None:
        """``dma_resv_copy_fences``: replace this object's list by the unsignalled fences of ``src`` (R5)."""
        self.assert_held()
        new: list[tuple[DmaFence, DmaResvUsage]] = []
        it = DmaResvIter(src, DmaResvUsage.BOOKKEEP)
        for fence in it:
            if it.is_restarted:
                for f, _ in new:
                    f.put()
                new = []
            new.append((fence.get(), it.fence_usage))
        it.end()
        self.k.point("dma_resv_copy_fences", self.oid, True, self.name)
        old = self.fences
        self._publish(DmaResvList(len(new), new))
        if old is not None:
            for f, _ in old.entries:
                f.put()

    def fini(self) -> None:
        """``dma_resv_fini``: drop every fence reference."""
        old = self.fences
        self.k.event("dma_resv_fini", self.list_oid, True)
        self.fences = None
        if old is not None:
            for f, _ in old.entries:
                f.put()

    # ------------------------------------------------------------------ locked readers

    def for_each_fence(self, usage: DmaResvUsage) -> Iterator[tuple[DmaFence, DmaResvUsage]]:
        """``dma_resv_for_each_fence``: ``(fence, usage)`` of usage <= ``usage``, signalled ones
        included, in list order; the lock must be held (R1, R3)."""
        self.assert_held()
        self.k.point("dma_resv_iter_first", self.oid, False, self.name)
        fobj = self.fences
        if fobj is None:
            return
        for fence, u in list(fobj.entries):
            if u <= usage:
                yield fence, u

    def get_excl(self) -> DmaFence | None:
        """2018 ``reservation_object_get_excl``: the newest KERNEL/WRITE fence (lock held)."""
        excl = None
        for f, _ in self.for_each_fence(DmaResvUsage.WRITE):
            excl = f
        return excl

    # ------------------------------------------------------------------ lockless readers

    def iter_unlocked(self, usage: DmaResvUsage) -> DmaResvIter:
        """``dma_resv_iter_begin``: a lockless cursor over the unsignalled fences of usage <= ``usage`` (R6)."""
        return DmaResvIter(self, usage)

    def get_fences(self, usage: DmaResvUsage) -> list[DmaFence]:
        """``dma_resv_get_fences``: references to the unsignalled fences of usage <= ``usage`` (R5, R6)."""
        out: list[DmaFence] = []
        it = DmaResvIter(self, usage)
        for fence in it:
            if it.is_restarted:
                for f in out:
                    f.put()
                out = []
            out.append(fence.get())
        it.end()
        return out

    def get_singleton(self, usage: DmaResvUsage) -> DmaFence | None:
        """``dma_resv_get_singleton``: None, the one fence, or a new signal-on-all array."""
        fences = self.get_fences(usage)
        if not fences:
            return None
        if len(fences) == 1:
            return fences[0]
        return DmaFenceArray(fences, context_alloc(1), 1, False)

    def test_signaled(self, usage: DmaResvUsage) -> bool:
        """``dma_resv_test_signaled``: no unsignalled fence of usage <= ``usage``."""
        it = DmaResvIter(self, usage)
        for _ in it:
            it.end()
            return False
        it.end()
        return True

    def wait_timeout(self, usage: DmaResvUsage, intr: bool, timeout: int | None) -> int:
        """``dma_resv_wait_timeout``: wait for every unsignalled fence of usage <= ``usage``.

        Returns the time left (>= 1; ``LONG_MAX`` when ``timeout`` is None),
        0 on timeout; raises ``ERESTARTSYS`` when interrupted. ``timeout == 0``
        is a poll: 1 when idle, 0 when anything is pending. Lockless (R6).
        """
        if timeout is not None and timeout < 0:
            raise EINVAL(f"dma_resv_wait_timeout: negative timeout {timeout}")
        k = self.k
        k.might_sleep("dma_resv_wait_timeout")
        if timeout == 0:
            return 1 if self.test_signaled(usage) else 0
        ret: int | None = timeout
        it = DmaResvIter(self, usage)
        try:
            for fence in it:
                left = fence.wait_timeout(intr, ret)
                if left <= 0:
                    return left
                if ret is not None:
                    ret = left
        finally:
            it.end()
        return LONG_MAX if ret is None else ret

    def set_deadline(self, usage: DmaResvUsage, deadline: int) -> None:
        """``dma_resv_set_deadline``."""
        it = DmaResvIter(self, usage)
        for fence in it:
            fence.set_deadline(deadline)
        it.end()


    # ------------------------------------------------------------------ the 2018 vocabulary
    # reservation_object (v4.15-v4.19): exclusive fence ~ WRITE (KERNEL for
    # moves), shared fences ~ READ. These are aliases onto the usage model so
    # the seed thread's sentences can be written literally; the differences
    # are stated in each docstring.

    def reserve_shared(self, num_fences: int = 1) -> None:
        """``reservation_object_reserve_shared``: alias of :meth:`reserve_fences`."""
        self.reserve_fences(num_fences)

    def add_shared_fence(self, fence: DmaFence) -> None:
        """``reservation_object_add_shared_fence``: alias of ``add_fence(fence, READ)`` (slot reserved)."""
        self.add_fence(fence, DmaResvUsage.READ)

    def add_excl_fence(self, fence: DmaFence, usage: DmaResvUsage = DmaResvUsage.WRITE) -> None:
        """``reservation_object_add_excl_fence``: alias of ``reserve_fences(1)`` + ``add_fence(fence, WRITE)``.

        2018 needed no reservation for the exclusive slot, hence the implicit
        ``reserve_fences(1)``. Unlike 2018 the shared (READ) fences are kept,
        not dropped: the 2018 rule was that shared fences are older than and
        implied by the exclusive one, so keeping them only makes waits at
        READ wait for already-implied work (this is what the v5.19
        conversion did too). Pass ``usage=KERNEL`` for a move's fence.
        """
        self.reserve_fences(1)
        self.add_fence(fence, usage)

    def get_excl_rcu(self) -> DmaFence | None:
        """``reservation_object_get_excl_rcu``: the newest unsignalled KERNEL/WRITE fence, lockless."""
        excl = None
        for f in self.get_fences(DmaResvUsage.WRITE):
            if excl is not None:
                excl.put()
            excl = f
        return excl

    def get_fences_rcu(self) -> tuple[DmaFence | None, list[DmaFence]]:
        """``reservation_object_get_fences_rcu``: ``(exclusive, shared)`` from one consistent snapshot."""
        excl: DmaFence | None = None
        shared: list[DmaFence] = []
        it = DmaResvIter(self, DmaResvUsage.READ)
        for f in it:
            if it.is_restarted:
                excl, shared = None, []
            if it.fence_usage <= DmaResvUsage.WRITE:
                excl = f
            else:
                shared.append(f)
        it.end()
        return excl, shared

    def wait_timeout_rcu(self, wait_all: bool, intr: bool, timeout: int | None) -> int:
        """``reservation_object_wait_timeout_rcu``: ``wait_timeout(READ if wait_all else WRITE, ...)``."""
        return self.wait_timeout(DmaResvUsage.READ if wait_all else DmaResvUsage.WRITE, intr, timeout)

    def test_signaled_rcu(self, test_all: bool) -> bool:
        """``reservation_object_test_signaled_rcu``: ``test_signaled(READ if test_all else WRITE)``.

        (2018 skipped the exclusive fence when shared ones existed and
        ``test_all``; by the 2018 rule it is implied by them, so the answers agree.)
        """
        return self.test_signaled(DmaResvUsage.READ if test_all else DmaResvUsage.WRITE)


#: The 2018 name of the same object (``struct reservation_object``).
ReservationObject = DmaResv


def reservation_object_wait_timeout_rcu(obj: DmaResv, wait_all: bool, intr: bool, timeout: int | None) -> int:
    """The 2018 function the seed thread names: :meth:`DmaResv.wait_timeout_rcu`."""
    return obj.wait_timeout_rcu(wait_all, intr, timeout)


class DmaResvIter:
    """``struct dma_resv_iter``: the lockless cursor (R5, R6).

    Iterate it (``for fence in it``) and call :meth:`end`. After each
    ``next``, ``fence``, ``fence_usage`` and ``is_restarted`` describe the
    current fence; ``is_restarted`` is True when the walk started over (the
    first fence, or after the list changed): accumulate nothing across it.
    ``seq`` and ``fences`` are the snapshot (the selftest corrupts them to
    force a restart).
    """

    __slots__ = ("fence", "fence_usage", "fences", "index", "is_restarted", "num_fences", "obj", "restarts", "seq",
                 "started", "usage")

    def __init__(self, obj: DmaResv, usage: DmaResvUsage) -> None:
        self.obj = obj
        self.usage = usage
        self.fence: DmaFence | None = None
        self.fence_usage = DmaResvUsage.KERNEL
        self.fences: DmaResvList | None = None
        #: ``num_fences`` of ``fences`` when the walk (re)started (the cursor's copy).
        self.num_fences = 0
        self.index = 0
        self.seq = 0
        self.is_restarted = False
        self.started = False
        #: How many times the walk started over because of a writer (for C18 statistics).
        self.restarts = 0

    def __iter__(self) -> DmaResvIter:
        return self

    def _restart(self) -> None:
        obj = self.obj
        self.seq = obj.seq.read_begin()
        k = obj.k
        k.point("dma_resv_iter_restart", obj.list_oid, False, obj.name)
        fobj = self.fences = obj.fences
        self.num_fences = 0
        if fobj is not None:
            k.event("dma_resv_iter_restart", part_oid(obj.oid, 0), False)  # fobj->num_fences (R6)
            self.num_fences = fobj.num_fences
        self.index = 0
        self.is_restarted = True

    def _changed(self) -> bool:
        obj = self.obj
        if obj.seq.read_retry(self.seq):
            return True
        obj.k.event("dma_resv_fences_list", obj.list_oid, False)  # rcu_dereference(obj->fences), same step
        return obj.fences is not self.fences

    def _walk(self) -> None:
        """``dma_resv_iter_walk_unlocked``: advance to the next unsignalled fence of a usage <= ours."""
        obj = self.obj
        k = obj.k
        fobj = self.fences
        usage = self.usage
        while True:
            if fobj is None or self.index >= self.num_fences:
                self.fence = None
                return
            k.point("dma_resv_iter_walk", part_oid(obj.oid, 1 + self.index), False, obj.name)
            fence, u = fobj.entry(self.index)
            self.index += 1
            got = fence.get_rcu()
            if got is None:  # released under us: start over (kernel: get_rcu failed)
                self.restarts += 1
                self._restart()
                fobj = self.fences
                continue
            if u <= usage and not fence.is_signaled():
                self.fence = fence
                self.fence_usage = u
                return
            fence.put()

    def __next__(self) -> DmaFence:
        """``dma_resv_iter_first_unlocked`` / ``dma_resv_iter_next_unlocked``."""
        if self.fence is not None:
            self.fence.put()
            self.fence = None
        rcu_read_lock()  # the walk is an RCU read section: nothing in it may sleep
        try:
            if not self.started:
                self.started = True
                self._restart()
            else:
                self.is_restarted = False
                if self._changed():
                    self.restarts += 1
                    self._restart()
            while True:
                self._walk()
                if not self._changed():
                    break
                if self.fence is not None:
                    self.fence.put()
                    self.fence = None
                self.restarts += 1
                self._restart()
        finally:
            rcu_read_unlock()
        if self.fence is None:
            raise StopIteration
        return self.fence

    def end(self) -> None:
        """``dma_resv_iter_end``: drop the reference to the current fence."""
        if self.fence is not None:
            self.fence.put()
            self.fence = None

