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
"""

from __future__ import annotations

from typing import Any

from ..kernel.lockdep_map import LockdepMap, lockdep_assert_held
from ..kernel.runtime import current_kernel
from ..kernel.thread import KThread

_RULE = "seqcount R2: writers are serialised and non-preemptible"


class SeqCount:
    """``seqcount_t`` (with ``lock``: ``seqcount_LOCKNAME_t``). ``with sc:`` is a write section."""

    __slots__ = ("dep_map", "k", "lock", "oid", "sequence", "spinners", "writer")

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
        k.point("write_seqcount_begin", self.oid, True, self.dep_map.name)
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
        self.sequence += 1
        self.writer = None
        if self.spinners:
            for t in self.spinners:
                k.wake(t)
            self.spinners.clear()

    def invalidate(self) -> None:
        """``write_seqcount_invalidate``: make every reader in flight retry (+2, stays even)."""
        k = self.k
        k.point("write_seqcount_invalidate", self.oid, True, self.dep_map.name)
        self.sequence += 2

    # ------------------------------------------------------------ read side

    def read_begin(self) -> int:
        """``read_seqcount_begin``: the even start value, after any write in progress (R3, R4)."""
        k = self.k
        k.lockdep.acquire(self.dep_map, read=2)
        k.lockdep.release(self.dep_map)
        while True:
            k.point("read_seqcount_begin", self.oid, False, self.dep_map.name)
            seq = self.sequence
            if not seq & 1:
                return seq
            me = k.current
            self.spinners.append(me)
            k.block("read_seqcount_begin", self.oid, name=self.dep_map.name)
            if me in self.spinners:
                self.spinners.remove(me)

    def raw_read(self) -> int:
        """``raw_read_seqcount``: the current value, odd if a writer is inside (no waiting)."""
        self.k.point("raw_read_seqcount", self.oid, False, self.dep_map.name)
        return self.sequence

    def read_retry(self, start: int) -> bool:
        """``read_seqcount_retry``: True if the section read since ``start`` must be retried (R3)."""
        self.k.point("read_seqcount_retry", self.oid, False, self.dep_map.name)
        return self.sequence != start

    def __enter__(self) -> SeqCount:
        self.write_begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.write_end()

    def __repr__(self) -> str:
        return f"<SeqCount {self.name} seq={self.sequence}>"
