"""Sequence counters: lockless readers that retry when a writer got in between.

Models ``seqcount_t`` and ``seqcount_LOCKNAME_t`` (``include/linux/seqlock.h``):
the reader side of ``dma_resv``'s lockless fence walk (claim C18) and the
pattern behind ``mmu_interval_read_begin`` / ``read_retry``.

Rules:

* R1: a write section (``write_begin`` ... ``write_end``) makes the count
  odd while it runs and bumps it to the next even value when it ends.
* R2: writers must be serialised and must not be preempted by a reader of
  the same count: a plain ``SeqCount`` is written in atomic context
  (``lockdep_assert_preemption_disabled``); one with an associated lock
  (``SeqCount(name, lock=...)``, ``seqcount_mutex_t`` and friends) is
  written with that lock held (``lockdep_assert_held``). A write section
  outside both is an ``assertion`` finding; a write section starting while
  another one is open (the count already odd) is an ``assertion`` finding
  (concurrent writers).
* R3: ``read_begin`` waits while a write is in progress (the reader
  spins; in the model it blocks without sleeping until ``write_end``) and
  returns an even start value; ``read_retry(start)`` is True when a write
  section began since, so the reader must discard what it read and retry.
* R4 (lockdep): a write section acquires the count's map; a reader
  acquires and releases it as a recursive read
  (``seqcount_lockdep_reader_access``), so a reader that can run inside the
  writer (an interrupt) is a dependency lockdep sees.
* R5: ``write_end`` by a thread not inside a write section of the count
  is an ``assertion`` finding and changes nothing.
* R6 (what a retry reads): the count only grows, so
  ``read_seqcount_retry(s, start)`` -- ``READ_ONCE(s->sequence) != start``
  -- is decided by one write: the one that moves the count off ``start``.
  Before it the answer is "unchanged", after it "changed", whatever other
  writes follow. Each value of the count is therefore a part of its own
  (:func:`~dmabufsim.kernel.trace.part_oid`): a write section's begin and
  end (and ``invalidate``) declare the count and the value they leave; a
  retry declares only the value it started from (the start value that
  ``read_begin`` / ``raw_read`` returned remembers it; any other start
  value declares the whole count). A retry that found the count changed
  then commutes with the writes after the one that changed it, and one
  that found it unchanged is still ordered before that write.
* R7 (a reader waiting for a writer only waits): ``read_begin`` with a
  write section open (an odd count) can only spin until ``write_end``
  (``raw_read_seqcount_begin``'s ``cpu_relax`` loop): it changes nothing
  another thread sees. Around its scheduling point the attempt is the
  thread's ``gate`` (:class:`~dmabufsim.kernel.thread.LockGate`, as
  ``ww_mutex`` R12): while another thread's write section is open optimal
  DPOR does not count the reader as enabled, so a spin is no event of its
  own and ``write_end`` is the gate's release; the reader's attempt is
  ordered against the section as a whole (before ``write_begin`` or after
  ``write_end``). The write side's begin is the matching acquisition.
"""

from __future__ import annotations

from typing import Any

from ..kernel.lockdep_map import LockdepMap, lockdep_assert_held
from ..kernel.runtime import current_kernel
from ..kernel.thread import KThread
from ..kernel.trace import part_oid

_RULE = "seqcount R2: writers are serialised and non-preemptible"


class _Epoch:
    """One value of the count while it lasts (R6): ``left`` is set by the write that moves the count off it."""

    __slots__ = ("left", "value")

    def __init__(self, value: int) -> None:
        self.value = value
        self.left = False


class _Start(int):
    """A value of the count as a reader read it (``read_begin``, ``raw_read``): the reader's own copy,
    which remembers the :class:`_Epoch` it was read in, so ``read_retry`` loads only that (R6)."""

    # The reader's register: never shared with another thread.
    __untracked__ = "*"
    epoch: _Epoch


def _start(epoch: _Epoch) -> int:
    s = _Start(epoch.value)
    s.epoch = epoch
    return s


class _Gate:
    """R7: the explorers' view of a reader at its ``read_seqcount_begin`` point, or of a writer at its
    ``write_seqcount_begin`` point (:class:`~dmabufsim.kernel.thread.LockGate`): the count is "owned"
    by the thread inside a write section."""

    __slots__ = ("reader", "sc")

    def __init__(self, sc: SeqCount, reader: bool) -> None:
        self.sc = sc
        self.reader = reader

    @property
    def owner(self) -> KThread | None:
        return self.sc.writer

    @property
    def oid(self) -> int:
        return self.sc.oid

    def waits(self, t: KThread) -> bool:
        """Would ``t``'s ``read_begin`` only spin now? Another thread's write section is open (a
        writer never waits here: writers are serialised by their lock, R2)."""
        sc = self.sc
        w = sc.writer
        return self.reader and bool(sc.sequence & 1) and w is not None and w is not t


class SeqCount:
    """``seqcount_t`` (with ``lock``: ``seqcount_LOCKNAME_t``). ``with sc:`` is a write section."""

    __slots__ = ("_gates", "dep_map", "epoch", "k", "lock", "oid", "sequence", "spinners", "writer")

    def __init__(self, name: str = "seqcount", *, lock: Any = None, key: object | None = None) -> None:
        self.k = current_kernel()
        self.dep_map = LockdepMap(name, key)
        self.oid = self.dep_map.oid
        #: Even: no write in progress. Odd: a writer is inside.
        self.sequence = 0
        #: The lock that serialises writers (None: plain seqcount_t, writers must be atomic).
        self.lock = lock
        self.writer: KThread | None = None
        #: Readers waiting in read_begin for the write section to end.
        self.spinners: list[KThread] = []
        #: The current value's epoch (R6).
        self.epoch = _Epoch(0)
        self._gates = (_Gate(self, True), _Gate(self, False))

    @property
    def name(self) -> str:
        return self.dep_map.name

    # ------------------------------------------------------------ write side

    def write_begin(self) -> None:
        """``write_seqcount_begin``: enter a write section (R1, R2)."""
        k = self.k
        me = k.current
        if self.lock is not None:
            lockdep_assert_held(self.lock)
        elif not me.is_atomic:
            k.report(
                "assertion",
                "WARNING: write_seqcount_begin in preemptible context",
                details={"seqcount": self.name, "check": "preemptible-writer"},
                rule=_RULE,
                signature=f"seqcount-preemptible:{self.name}",
                text=(
                    f"WARNING: lockdep_assert_preemption_disabled() failed: {me.name}/{me.tid} writes "
                    f"seqcount {self.name} with preemption enabled and no associated lock"
                ),
            )
        me.gate = self._gates[1]  # R7: where the section is taken
        k.point("write_seqcount_begin", self.oid, True, self.dep_map.name)
        me.gate = None
        self._leave()
        if self.sequence & 1:
            other = self.writer.name if self.writer else "?"
            k.report(
                "assertion",
                "WARNING: seqcount: concurrent write sections",
                details={"seqcount": self.name, "check": "concurrent-writers", "other": other},
                rule=_RULE,
                signature=f"seqcount-concurrent:{self.name}",
                text=f"{me.name}/{me.tid} begins a write section of {self.name} while {other} is inside one",
            )
        self.sequence += 1
        self.epoch = _Epoch(self.sequence)
        self.writer = me
        k.lockdep.acquire(self.dep_map)

    def write_end(self) -> None:
        """``write_seqcount_end``: leave the write section; waiting readers go on (R1, R3)."""
        k = self.k
        k.point("write_seqcount_end", self.oid, True, self.dep_map.name)
        if not k.lockdep.is_held(self.dep_map):
            k.report(
                "assertion",
                "WARNING: write_seqcount_end without write_seqcount_begin",
                details={"seqcount": self.name, "check": "unbalanced-end"},
                rule="seqcount R5: balanced write sections",
                signature=f"seqcount-unbalanced:{self.name}",
            )
            return
        k.lockdep.release(self.dep_map)
        self._leave()
        self.sequence += 1
        self.epoch = _Epoch(self.sequence)
        self.writer = None
        if self.spinners:
            for t in self.spinners:
                k.wake(t)
            self.spinners.clear()

    def invalidate(self) -> None:
        """``write_seqcount_invalidate``: make every reader in flight retry (+2, stays even)."""
        k = self.k
        k.point("write_seqcount_invalidate", self.oid, True, self.dep_map.name)
        self._leave()
        self.sequence += 2
        self.epoch = _Epoch(self.sequence)

    def _leave(self) -> None:
        """The count moves off its value (R6): in the running step, which writes that value's part."""
        self.k.event("seqcount_leave", part_oid(self.oid, self.sequence), True)
        self.epoch.left = True

    # ------------------------------------------------------------ read side

    def read_begin(self) -> int:
        """``read_seqcount_begin``: the even start value, after any write in progress (R3, R4)."""
        k = self.k
        k.lockdep.acquire(self.dep_map, read=2)
        k.lockdep.release(self.dep_map)
        me = k.current
        while True:
            me.gate = self._gates[0]  # R7: while a writer is inside, this attempt only spins
            k.point("read_seqcount_begin", self.oid, False, self.dep_map.name)
            me.gate = None
            seq = self.sequence
            if not seq & 1:
                return _start(self.epoch)
            self.spinners.append(me)
            k.block("read_seqcount_begin", self.oid, name=self.dep_map.name)
            if me in self.spinners:
                self.spinners.remove(me)

    def raw_read(self) -> int:
        """``raw_read_seqcount``: the current value, odd if a writer is inside (no waiting)."""
        self.k.point("raw_read_seqcount", self.oid, False, self.dep_map.name)
        return _start(self.epoch)

    def read_retry(self, start: int) -> bool:
        """``read_seqcount_retry``: True if the section read since ``start`` must be retried (R3).

        A ``start`` that ``read_begin`` or ``raw_read`` returned declares only its own value's part
        and loads only whether the count left it (R6); any other value, the whole count.
        """
        epoch = start.epoch if type(start) is _Start else None
        if epoch is not None:
            self.k.point("read_seqcount_retry", part_oid(self.oid, epoch.value), False, self.dep_map.name)
            return epoch.left
        self.k.point("read_seqcount_retry", self.oid, False, self.dep_map.name)
        return self.sequence != start

    def __enter__(self) -> SeqCount:
        self.write_begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.write_end()

    def __repr__(self) -> str:
        return f"<SeqCount {self.name} seq={self.sequence}>"
