"""Read-write semaphores: many readers or one writer, sleeping.

Models ``struct rw_semaphore`` (``kernel/locking/rwsem.c``), e.g.
``mmap_lock`` and ``i_mmap_rwsem``.

Rules:

* R1: ``down_read`` / ``down_write`` may sleep (``might_sleep``): calling
  them in atomic context is a ``sleep-in-atomic`` finding. The trylocks
  never sleep.
* R2: readers share the semaphore; a writer excludes everyone. A reader
  arriving while anyone waits queues behind the waiters (a waiting writer
  is not starved by a stream of readers), as the kernel's fast path fails
  when ``RWSEM_FLAG_WAITERS`` is set.
* R3 (handoff): a release hands the semaphore to the waiters directly: a
  first waiter that is a writer gets it once no one holds it; when the
  first waiter is a reader, every waiting reader is granted at once
  (``rwsem_mark_wake``). Trylocks fail while anyone waits.
* R4 (lockdep): ``down_read`` is a non-recursive shared acquisition
  (``read=1``): taking it twice in one thread, or in both orders with
  another lock, is reportable (a writer queued in between deadlocks it).
  ``downgrade_write`` turns the held write acquisition into a read one
  (``lock_downgrade``) and grants the waiting readers.
* R5: only a holder releases; ``up_read`` / ``up_write`` by a thread that
  does not hold it in that mode is reported ("bad unlock balance") and
  changes nothing.
* R6: the killable / interruptible variants raise ``EINTR`` when a signal
  is pending while waiting, leaving the semaphore and the queue as if they
  never came (a queued writer that leaves may let readers in).
* R7 (lock_stat): a queued acquisition calls ``lock_contended``, then
  ``lock_acquired`` when granted or ``lock_failed`` when a signal ends it
  (``Kernel.lock_stat``, kept only while recording).
* R8 (what a step touches, for the explorers): the semaphore's owner and
  queue are its object (``oid``); the reader count is a pseudo-object of
  its own (``refcount_oid(oid)``), as the kernel's ``sem->count`` reader
  bias is an atomic add. A reader that gets in at once (``down_read``'s fast
  path, a successful ``down_read_trylock``) reads the object -- no writer,
  nobody queued -- and reads the count (an increment); an ``up_read`` reads
  the object (does anyone wait?) and the count (a decrement), unless it
  drops the last reader while someone waits: that one hands over and writes
  both. With nobody queued the count's value decides nothing a reader
  does, so its increments and decrements commute; whoever is queued was
  queued by a write of the object, which orders it with every reader.
  Every other operation -- a writer (its test for no readers), a grant, a
  downgrade -- writes both, and a reader that must queue writes the
  object. So two readers of an uncontended semaphore are independent, as
  they are in the kernel.
"""

from __future__ import annotations

from ..kernel.errors import EINTR
from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import current_kernel
from ..kernel.thread import KThread
from ..kernel.trace import refcount_oid

_WAIT = "rwsem_down"


class _RwWaiter:
    """``struct rwsem_waiter``: who waits, for which mode, and whether it was granted."""

    __slots__ = ("granted", "task", "write")

    def __init__(self, task: KThread, write: bool) -> None:
        self.task = task
        self.write = write
        self.granted = False


class _Guard:
    """``with sem.reading():`` / ``with sem.writing():`` (preallocated, no per-use objects)."""

    __slots__ = ("sem", "write")

    def __init__(self, sem: RwSem, write: bool) -> None:
        self.sem = sem
        self.write = write

    def __enter__(self) -> RwSem:
        if self.write:
            self.sem.down_write()
        else:
            self.sem.down_read()
        return self.sem

    def __exit__(self, *exc: object) -> None:
        if self.write:
            self.sem.up_write()
        else:
            self.sem.up_read()


class RwSem:
    """``struct rw_semaphore``. ``with sem:`` is ``down_write`` / ``up_write``.

    ``with sem.reading():`` and ``with sem.writing():`` are the read and
    write sections. State: ``writer`` holds it exclusively, or ``readers``
    (one entry per ``down_read``) share it; ``waiters`` is the FIFO queue.
    """

    __slots__ = ("_count", "_rguard", "_wguard", "dep_map", "k", "oid", "readers", "waiters", "writer")

    #: The readers are declared through the count's own pseudo-object (R8), not the semaphore's.
    __untracked__ = ("readers",)

    def __init__(self, name: str = "rwsem", *, key: object | None = None) -> None:
        self.k = current_kernel()
        self.dep_map = LockdepMap(name, key)
        self.oid = self.dep_map.oid
        #: The reader count's pseudo-object (R8).
        self._count = refcount_oid(self.oid)
        self.writer: KThread | None = None
        self.readers: list[KThread] = []
        self.waiters: list[_RwWaiter] = []
        self._rguard = _Guard(self, False)
        self._wguard = _Guard(self, True)

    @property
    def name(self) -> str:
        return self.dep_map.name

    # ------------------------------------------------------------ internals

    def _grant(self) -> None:
        """``rwsem_wake`` / ``rwsem_mark_wake``: hand the semaphore to waiters (R3)."""
        waiters = self.waiters
        if not waiters or self.writer is not None:
            return
        k = self.k
        k.event("rwsem_wake", self._count, True, self.dep_map.name)  # R8: a handover looks at and changes the readers
        first = waiters[0]
        if first.write:
            if not self.readers:
                del waiters[0]
                first.granted = True
                self.writer = first.task
                k.wake(first.task)
            return
        keep: list[_RwWaiter] = []
        for w in waiters:
            if w.write:
                keep.append(w)
            else:
                w.granted = True
                self.readers.append(w.task)
                k.wake(w.task)
        self.waiters = keep

    def _down(self, write: bool, killable: bool, subclass: int, fn: str) -> None:
        k = self.k
        k.might_sleep(fn)
        k.lockdep.acquire(self.dep_map, read=0 if write else 1, subclass=subclass)
        k.point(fn, self.oid, write, self.dep_map.name)  # R8: a reader looks first
        me = k.current
        if write:
            k.event(fn, self._count, True, self.dep_map.name)  # R8: the test for no readers
        if self.writer is None and not self.waiters and (not write or not self.readers):
            if write:
                self.writer = me
            else:
                k.event(fn, self._count, False, self.dep_map.name)  # R8: the reader bias, an increment
                self.readers.append(me)
            return
        if not write:
            k.event(fn, self.oid, True, self.dep_map.name)  # R8: a reader queues
        w = _RwWaiter(me, write)
        self.waiters.append(w)
        k.lock_stat("lock_contended", self.oid)
        while not w.granted:
            reason = k.block(_WAIT, self.oid, interruptible=killable, name=self.dep_map.name)
            if reason == "signal" and not w.granted:
                self.waiters.remove(w)
                k.lockdep.release(self.dep_map)
                # A writer leaving the head of the queue may let the readers behind it in.
                self._grant()
                k.lock_stat("lock_failed", self.oid)
                raise EINTR(f"{fn}({self.name}) interrupted by a signal")
        k.lock_stat("lock_acquired", self.oid)

    # ------------------------------------------------------------ API

    def down_read(self, subclass: int = 0) -> None:
        """``down_read`` (``down_read_nested`` with a subclass)."""
        self._down(False, False, subclass, "down_read")

    def down_read_killable(self) -> None:
        """``down_read_killable``: raises EINTR on a signal while waiting (R6)."""
        self._down(False, True, 0, "down_read_killable")

    def down_read_interruptible(self) -> None:
        """``down_read_interruptible``: raises EINTR on a signal while waiting (R6)."""
        self._down(False, True, 0, "down_read_interruptible")

    def down_write(self, subclass: int = 0) -> None:
        """``down_write`` (``down_write_nested`` with a subclass)."""
        self._down(True, False, subclass, "down_write")

    def down_write_killable(self) -> None:
        """``down_write_killable``: raises EINTR on a signal while waiting (R6)."""
        self._down(True, True, 0, "down_write_killable")

    def down_read_trylock(self) -> bool:
        """``down_read_trylock``: share it if no writer holds it and no one waits."""
        k = self.k
        k.point("down_read_trylock", self.oid, False, self.dep_map.name)  # R8
        if self.writer is not None or self.waiters:
            return False
        k.event("down_read_trylock", self._count, False, self.dep_map.name)  # R8: the reader bias, an increment
        self.readers.append(k.current)
        k.lockdep.acquire(self.dep_map, read=1, trylock=True)
        return True

    def down_write_trylock(self) -> bool:
        """``down_write_trylock``: take it if nobody holds or waits for it."""
        k = self.k
        k.point("down_write_trylock", self.oid, True, self.dep_map.name)
        k.event("down_write_trylock", self._count, True, self.dep_map.name)  # R8: the test for no readers
        if self.writer is not None or self.readers or self.waiters:
            return False
        self.writer = k.current
        k.lockdep.acquire(self.dep_map, trylock=True)
        return True

    def up_read(self) -> None:
        """``up_read``: drop one read hold; the last reader hands over to a waiting writer (R3, R5)."""
        k = self.k
        k.point("up_read", self.oid, False, self.dep_map.name)  # R8: does anyone wait?
        me = k.current
        if me not in self.readers:
            k.lockdep.release(self.dep_map)
            return
        k.event("up_read", self._count, False, self.dep_map.name)  # R8: the decrement
        self.readers.remove(me)
        k.lockdep.release(self.dep_map)
        if not self.readers and self.waiters:
            # R8: the last reader with someone waiting hands over (rwsem_wake)
            k.event("up_read", self.oid, True, self.dep_map.name)
            self._grant()

    def up_write(self) -> None:
        """``up_write``: release the write hold and hand over (R3, R5)."""
        k = self.k
        k.point("up_write", self.oid, True, self.dep_map.name)
        if self.writer is not k.current:
            k.lockdep.release(self.dep_map)
            return
        self.writer = None
        k.lockdep.release(self.dep_map)
        self._grant()

    def downgrade_write(self) -> None:
        """``downgrade_write``: turn the write hold into a read hold atomically (R4)."""
        k = self.k
        k.point("downgrade_write", self.oid, True, self.dep_map.name)
        k.event("downgrade_write", self._count, True, self.dep_map.name)  # R8: the writer becomes a reader
        me = k.current
        if self.writer is not me:
            k.report(
                "assertion",
                "WARNING: downgrade_write of a rw_semaphore not write-held by current",
                details={"lock": self.name},
                rule="rwsem R5: only the writer may downgrade",
                signature=f"rwsem-downgrade:{self.name}",
            )
            return
        self.writer = None
        self.readers.append(me)
        for hl in reversed(me.held):
            if hl.map is self.dep_map:
                hl.read = 1  # lock_downgrade: the held entry becomes a shared one
                break
        self._grant()

    def is_locked(self) -> bool:
        """``rwsem_is_locked``."""
        return self.writer is not None or bool(self.readers)

    def is_contended(self) -> bool:
        """``rwsem_is_contended``: someone waits."""
        return bool(self.waiters)

    def reading(self) -> _Guard:
        """``with sem.reading():`` is ``down_read`` ... ``up_read``."""
        return self._rguard

    def writing(self) -> _Guard:
        """``with sem.writing():`` is ``down_write`` ... ``up_write``."""
        return self._wguard

    def __enter__(self) -> RwSem:
        self.down_write()
        return self

    def __exit__(self, *exc: object) -> None:
        self.up_write()

    def __repr__(self) -> str:
        w = self.writer.name if self.writer else None
        return f"<RwSem {self.name} writer={w} readers={[t.name for t in self.readers]}>"
