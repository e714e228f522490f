"""Spinlocks: short critical sections in atomic context.

Models ``spinlock_t`` (``include/linux/spinlock.h``).

Rules:

* R1: holding a spinlock makes the thread atomic (preemption off): any
  sleeping call inside is a ``sleep-in-atomic`` finding naming the lock.
* R2: ``lock_irqsave`` / ``lock_irq`` also disable interrupts; lockdep
  learns from this which locks are irq-safe.
* R3: a contended spinlock spins (it does not sleep); a thread spinning on
  a lock it holds itself never gets it (AA deadlock).
* R4: only the holder unlocks; anything else is reported and changes nothing.
"""

from __future__ import annotations

from ..kernel.runtime import current_kernel
from ..kernel.thread import KThread
from .lockdep_map import LockdepMap


class SpinLock:
    """``spinlock_t``. ``with s:`` is ``spin_lock`` / ``spin_unlock``."""

    __slots__ = ("dep_map", "k", "oid", "owner", "waiters")

    def __init__(self, name: str = "spinlock", *, key: object | None = None) -> None:
        self.k = current_kernel()
        self.dep_map = LockdepMap(name, key)
        self.oid = self.dep_map.oid
        self.owner: KThread | None = None
        self.waiters: list[KThread] = []

    @property
    def name(self) -> str:
        return self.dep_map.name

    def lock(self, subclass: int = 0, *, nest_lock: object = None) -> None:
        """``spin_lock`` (``spin_lock_nested``, ``spin_lock_nest_lock``)."""
        k = self.k
        k.atomic_enter("spinlock", self.dep_map.name)
        k.lockdep.acquire(self.dep_map, subclass=subclass, nest_lock=nest_lock)
        k.point("spin_lock", self.oid, True, self.dep_map.name)
        me = k.current
        while self.owner is not None:
            self.waiters.append(me)
            k.block("spin_lock", self.oid, name=self.dep_map.name)
            self.waiters.remove(me)
        self.owner = me

    def lock_irqsave(self) -> int:
        """``spin_lock_irqsave``: disable interrupts, then lock. Returns the flags to restore."""
        self.k.atomic_enter("irqs_disabled", self.dep_map.name)
        self.lock()
        return 1

    def lock_irq(self) -> None:
        """``spin_lock_irq``."""
        self.lock_irqsave()

    def trylock(self) -> bool:
        """``spin_trylock``: take the lock if free; never spins."""
        k = self.k
        k.point("spin_trylock", self.oid, True, self.dep_map.name)
        if self.owner is not None:
            return False
        k.atomic_enter("spinlock", self.dep_map.name)
        self.owner = k.current
        k.lockdep.acquire(self.dep_map, trylock=True)
        return True

    def unlock(self) -> None:
        """``spin_unlock``."""
        k = self.k
        k.point("spin_unlock", self.oid, True, self.dep_map.name)
        if self.owner is not k.current:
            k.lockdep.release(self.dep_map)
            return
        k.lockdep.release(self.dep_map)
        self.owner = None
        k.atomic_exit("spinlock", self.dep_map.name)
        for t in list(self.waiters):
            k.wake(t)

    def unlock_irqrestore(self, flags: int = 1) -> None:
        """``spin_unlock_irqrestore``."""
        self.unlock()
        self.k.atomic_exit("irqs_disabled", self.dep_map.name)

    def unlock_irq(self) -> None:
        """``spin_unlock_irq``."""
        self.unlock_irqrestore()

    def is_locked(self) -> bool:
        """``spin_is_locked``."""
        return self.owner is not None

    def __enter__(self) -> SpinLock:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def __repr__(self) -> str:
        owner = self.owner.name if self.owner else None
        return f"<SpinLock {self.name} owner={owner}>"
