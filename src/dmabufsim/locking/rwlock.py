"""Reader-writer spinlocks: many spinning readers or one spinning writer.

Models ``rwlock_t`` as the queued rwlock (``include/linux/rwlock.h``,
``include/linux/rwlock_api_smp.h``, ``kernel/locking/qrwlock.c``) and
lockdep's view of it (``rwlock_acquire`` / ``rwlock_acquire_read``,
``read_lock_is_recursive`` in ``kernel/locking/lockdep.c``).

Rules:

* R1 (atomic): holding an rwlock in either mode makes the thread atomic
  (preemption off), as a spinlock does: any sleeping call inside is a
  ``sleep-in-atomic`` finding naming the lock. The ``_irq`` /
  ``_irqsave`` variants also disable interrupts, the ``_bh`` ones
  softirqs, before taking the lock, and restore them after the release.
* R2 (spinning, queued): a contended rwlock spins, it never sleeps. A
  writer takes it when nobody holds it and nobody is queued
  (``queued_write_lock``); otherwise it queues (``wait_lock``) and, at the
  head of the queue, waits for the readers to drain (``_QW_WAITING``).
  A reader in process context takes it when no writer holds it and nobody
  is queued; otherwise it queues behind the waiters in FIFO order
  (``queued_read_lock_slowpath``), so a waiting writer is not starved.
* R3 (interrupt readers): a reader in interrupt context (hardirq, softirq,
  or bottom halves disabled: ``in_interrupt()``) does not queue: it counts
  itself as a reader at once and spins only while a writer *holds* the
  lock, so it may overtake a waiting writer (this is what makes
  ``read_lock`` recursive in interrupts).
* R4 (lockdep): ``write_lock`` is an exclusive acquisition; ``read_lock``
  is a recursive read (``read=2``) when ``read_lock_is_recursive()`` holds
  -- in interrupt context, or with the selftests' ``force_read_lock_recursive``
  set on the validator -- and a non-recursive shared acquisition
  (``read=1``) otherwise: in process context a queued reader blocks behind
  a waiting writer, so ``read_lock(A); ...; read_lock(A)`` with a writer in
  between deadlocks, and lockdep treats it like ``down_read``.
* R5 (trylock): ``read_trylock`` succeeds when no writer holds the lock
  (``queued_read_trylock`` ignores waiters), ``write_trylock`` when nobody
  holds it; neither spins, and a failure leaves no trace in lockdep.
* R6: only a holder unlocks; anything else is reported by lockdep
  ("bad unlock balance") and changes nothing.
"""

from __future__ import annotations

from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import current_kernel
from ..kernel.thread import KThread

_WAIT = "rwlock_spin"


def in_interrupt(t: KThread) -> bool:
    """``in_interrupt()``: hardirq or softirq context, or bottom halves disabled."""
    if t.in_irq or t.in_softirq:
        return True
    return any(r.what == "bh_disabled" or r.what == "softirq" or r.what == "hardirq" for r in t.atomic)


class _Waiter:
    """One spinner queued on ``wait_lock``: who, for which mode, and whether it got the lock."""

    __slots__ = ("granted", "task", "write")

    def __init__(self, task: KThread, write: bool) -> None:
        self.task = task
        self.write = write
        self.granted = False


class RwLock:
    """``rwlock_t`` (``DEFINE_RWLOCK`` / ``rwlock_init``).

    State: ``writer`` holds it exclusively, or ``readers`` (one entry per
    ``read_lock``, interrupt readers that are still spinning included, R3)
    share it; ``queue`` is the FIFO of spinners on the queued lock's
    ``wait_lock`` (R2).
    """

    __slots__ = ("dep_map", "k", "oid", "queue", "readers", "writer")

    def __init__(self, name: str = "rwlock", *, key: object | None = None) -> None:
        """``rwlock_init``."""
        self.k = current_kernel()
        self.dep_map = LockdepMap(name, key)
        self.oid = self.dep_map.oid
        self.writer: KThread | None = None
        self.readers: list[KThread] = []
        self.queue: list[_Waiter] = []

    @property
    def name(self) -> str:
        return self.dep_map.name

    # ------------------------------------------------------------ internals

    def _handover(self) -> None:
        """The queue head advances (``queued_*_lock_slowpath`` leaving ``wait_lock``): grant
        readers at the head while no writer holds the lock, then a writer once nobody does."""
        k = self.k
        queue = self.queue
        while queue and self.writer is None:
            w = queue[0]
            if w.write:
                if self.readers:
                    return  # _QW_WAITING: the writer waits for the readers to drain
                del queue[0]
                w.granted = True
                self.writer = w.task
                k.wake(w.task)
                return
            del queue[0]
            w.granted = True
            self.readers.append(w.task)
            k.wake(w.task)

    def _wake_interrupt_readers(self) -> None:
        """A writer released: interrupt readers spinning on ``_QW_LOCKED`` proceed (R3)."""
        k = self.k
        for t in self.readers:
            k.wake(t)  # only those still spinning are blocked

    def _read(self, section: str | None, fn: str) -> None:
        k = self.k
        t = k.current
        name = self.dep_map.name
        if section is not None:
            k.atomic_enter(section, name)
        k.atomic_enter("rwlock", name)
        irq_reader = in_interrupt(t)
        recursive = irq_reader or k.lockdep.force_read_lock_recursive
        k.lockdep.acquire(self.dep_map, read=2 if recursive else 1)
        k.point(fn, self.oid, True, name)
        if irq_reader:
            self.readers.append(t)  # the reader bias is added before spinning (R3)
            while self.writer is not None:
                k.block(_WAIT, self.oid, name=name)
            return
        if self.writer is None and not self.queue:
            self.readers.append(t)
            return
        self._spin_queued(t, False)

    def _write(self, section: str | None, fn: str) -> None:
        k = self.k
        t = k.current
        name = self.dep_map.name
        if section is not None:
            k.atomic_enter(section, name)
        k.atomic_enter("rwlock", name)
        k.lockdep.acquire(self.dep_map, read=0)
        k.point(fn, self.oid, True, name)
        if self.writer is None and not self.readers and not self.queue:
            self.writer = t
            return
        self._spin_queued(t, True)

    def _spin_queued(self, t: KThread, write: bool) -> None:
        w = _Waiter(t, write)
        self.queue.append(w)
        self._handover()  # a lone queued waiter may be granted at once (readers only)
        while not w.granted:
            self.k.block(_WAIT, self.oid, name=self.dep_map.name)

    def _unlock(self, write: bool, section: str | None, fn: str) -> None:
        k = self.k
        name = self.dep_map.name
        k.point(fn, self.oid, True, name)
        t = k.current
        held = self.writer is t if write else t in self.readers
        k.lockdep.release(self.dep_map)
        if not held:
            return  # R6: lockdep reported the bad unlock balance
        if write:
            self.writer = None
            self._wake_interrupt_readers()
        else:
            self.readers.remove(t)
        self._handover()
        k.atomic_exit("rwlock", name)
        if section is not None:
            k.atomic_exit(section, name)

    # ------------------------------------------------------------ API

    def read_lock(self) -> None:
        """``read_lock`` (R2-R4)."""
        self._read(None, "read_lock")

    def read_lock_irq(self) -> None:
        """``read_lock_irq``: disable interrupts, then ``read_lock``."""
        self._read("irqs_disabled", "read_lock_irq")

    def read_lock_irqsave(self) -> int:
        """``read_lock_irqsave``: returns the flags for ``read_unlock_irqrestore``."""
        self._read("irqs_disabled", "read_lock_irqsave")
        return 1

    def read_lock_bh(self) -> None:
        """``read_lock_bh``: disable softirqs, then ``read_lock`` (an interrupt reader, R3)."""
        self._read("bh_disabled", "read_lock_bh")

    def write_lock(self) -> None:
        """``write_lock`` (R2, R4)."""
        self._write(None, "write_lock")

    def write_lock_irq(self) -> None:
        """``write_lock_irq``."""
        self._write("irqs_disabled", "write_lock_irq")

    def write_lock_irqsave(self) -> int:
        """``write_lock_irqsave``: returns the flags for ``write_unlock_irqrestore``."""
        self._write("irqs_disabled", "write_lock_irqsave")
        return 1

    def write_lock_bh(self) -> None:
        """``write_lock_bh``."""
        self._write("bh_disabled", "write_lock_bh")

    def read_unlock(self) -> None:
        """``read_unlock`` (R6)."""
        self._unlock(False, None, "read_unlock")

    def read_unlock_irq(self) -> None:
        """``read_unlock_irq``."""
        self._unlock(False, "irqs_disabled", "read_unlock_irq")

    def read_unlock_irqrestore(self, flags: int = 1) -> None:
        """``read_unlock_irqrestore``."""
        self._unlock(False, "irqs_disabled", "read_unlock_irqrestore")

    def read_unlock_bh(self) -> None:
        """``read_unlock_bh``."""
        self._unlock(False, "bh_disabled", "read_unlock_bh")

    def write_unlock(self) -> None:
        """``write_unlock`` (R6)."""
        self._unlock(True, None, "write_unlock")

    def write_unlock_irq(self) -> None:
        """``write_unlock_irq``."""
        self._unlock(True, "irqs_disabled", "write_unlock_irq")

    def write_unlock_irqrestore(self, flags: int = 1) -> None:
        """``write_unlock_irqrestore``."""
        self._unlock(True, "irqs_disabled", "write_unlock_irqrestore")

    def write_unlock_bh(self) -> None:
        """``write_unlock_bh``."""
        self._unlock(True, "bh_disabled", "write_unlock_bh")

    def read_trylock(self) -> bool:
        """``read_trylock``: share it unless a writer holds it (R5)."""
        k = self.k
        name = self.dep_map.name
        k.point("read_trylock", self.oid, True, name)
        if self.writer is not None:
            return False
        t = k.current
        k.atomic_enter("rwlock", name)
        self.readers.append(t)
        recursive = in_interrupt(t) or k.lockdep.force_read_lock_recursive
        k.lockdep.acquire(self.dep_map, read=2 if recursive else 1, trylock=True)
        return True

    def write_trylock(self) -> bool:
        """``write_trylock``: take it if nobody holds it (R5)."""
        k = self.k
        name = self.dep_map.name
        k.point("write_trylock", self.oid, True, name)
        if self.writer is not None or self.readers:
            return False
        k.atomic_enter("rwlock", name)
        self.writer = k.current
        k.lockdep.acquire(self.dep_map, trylock=True)
        return True

    def is_locked(self) -> bool:
        """``rwlock_is_contended``'s sibling ``queued_rwlock_is_locked``: anyone holds it."""
        return self.writer is not None or bool(self.readers)

    def is_contended(self) -> bool:
        """``rwlock_is_contended``: someone spins on ``wait_lock``."""
        return bool(self.queue)

    def __repr__(self) -> str:
        w = self.writer.name if self.writer else None
        return f"<RwLock {self.name} writer={w} readers={[t.name for t in self.readers]}>"
