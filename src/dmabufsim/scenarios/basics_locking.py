"""Kernel basics: the locking bugs every kernel developer knows, as catalog rows.

Not claims of the thread: they are the calibration of the catalog. Each bug
has its broken design (the checker must find it) and its fixed design (it
must run clean), so a catalog run shows the tools work before it settles
the claims built on them.

* B1: two threads take two mutexes in opposite orders (ABBA). Some
  schedules block both forever: the scheduler's ``deadlock`` finding
  (kernel R4), the only report with lockdep off. With lockdep on, every
  schedule that takes both orders gets "possible circular locking
  dependency detected" on ``lock_A -> lock_B``, whether or not it
  deadlocked. Taking them in one global order is clean.
* B2: a mutex (a sleeping lock) taken under a spinlock:
  "BUG: sleeping function called from invalid context" (kernel R5). A
  ``mutex_trylock`` there never sleeps and is clean.
* B3: a thread that exits with a mutex held: "still has locks held!"
  (held-lock tracker R2).
"""

from __future__ import annotations

from ..kernel.runtime import Kernel
from ..locking.mutex import Mutex
from ..locking.spinlock import SpinLock
from .catalog import Verdict


def _take_in_order(first: Mutex, second: Mutex) -> None:
    first.lock()
    second.lock()  # the other thread may hold it, waiting for `first`
    second.unlock()
    first.unlock()


def abba_mutexes(k: Kernel) -> None:
    """Thread t1 locks A then B, thread t2 locks B then A: the classic ABBA deadlock."""
    a, b = Mutex("lock_A"), Mutex("lock_B")
    k.spawn(_take_in_order, a, b, name="t1")
    k.spawn(_take_in_order, b, a, name="t2")


def ordered_mutexes(k: Kernel) -> None:
    """Both threads lock A before B: one global lock order, no deadlock possible."""
    a, b = Mutex("lock_A"), Mutex("lock_B")
    k.spawn(_take_in_order, a, b, name="t1")
    k.spawn(_take_in_order, a, b, name="t2")


def _update_under_spinlock(lock: SpinLock, m: Mutex, sleeps: bool, k: Kernel) -> None:
    with lock:  # spin_lock: atomic context from here
        if sleeps:
            m.lock()  # mutex_lock may sleep: a bug under a spinlock
            m.unlock()
        elif m.trylock():  # mutex_trylock never sleeps
            m.unlock()
    k.point("work", lock.oid, False)


def mutex_under_spinlock(k: Kernel) -> None:
    """A thread takes a mutex while holding a spinlock; another contends for both."""
    lock, m = SpinLock("list_lock"), Mutex("obj_mutex")
    k.spawn(_update_under_spinlock, lock, m, True, k, name="updater")
    k.spawn(_take_in_order, m, m.__class__("other_mutex"), name="user")


def trylock_under_spinlock(k: Kernel) -> None:
    """The same update with ``mutex_trylock`` (which never sleeps) under the spinlock."""
    lock, m = SpinLock("list_lock"), Mutex("obj_mutex")
    k.spawn(_update_under_spinlock, lock, m, False, k, name="updater")
    k.spawn(_take_in_order, m, m.__class__("other_mutex"), name="user")


def _lock_and_forget(m: Mutex) -> None:
    m.lock()  # the error path forgot mutex_unlock


def lock_held_at_exit(k: Kernel) -> None:
    """A kthread returns with a mutex held (a missing unlock on an error path)."""
    m = Mutex("config_mutex")
    k.spawn(_lock_and_forget, m, name="leaker")


CLAIMS = [
    {
        "id": "B1",
        "title": "ABBA mutex order deadlocks",
        "who": "basics",
        "design": "abba-mutexes",
        "scenario": abba_mutexes,
        "expected": Verdict(kinds=frozenset({"deadlock"})),
        "budget": 100,
        "kernel_options": {"lockdep": False},
    },
    {
        "id": "B1",
        "title": "ABBA mutex order deadlocks",
        "who": "basics",
        "design": "abba-mutexes-lockdep",
        "scenario": abba_mutexes,
        "expected": Verdict(kinds=frozenset({"circular-locking", "deadlock"}), chain=("lock_A", "lock_B")),
        "budget": 100,
    },
    {
        "id": "B1",
        "title": "ABBA mutex order deadlocks",
        "who": "basics",
        "design": "ordered-mutexes",
        "scenario": ordered_mutexes,
        "expected": "clean",
        "strategy": "odpor",  # every schedule, no bound: 2 executions
        "budget": 200,
    },
    {
        "id": "B2",
        "title": "sleeping under a spinlock",
        "who": "basics",
        "design": "mutex-under-spinlock",
        "scenario": mutex_under_spinlock,
        "expected": Verdict(kinds=frozenset({"sleep-in-atomic"})),
        "budget": 50,
    },
    {
        "id": "B2",
        "title": "sleeping under a spinlock",
        "who": "basics",
        "design": "trylock-under-spinlock",
        "scenario": trylock_under_spinlock,
        "expected": "clean",
        "strategy": "odpor",  # every schedule, no bound: 3 executions
        "budget": 100,
    },
    {
        "id": "B3",
        "title": "a kthread exits holding a lock",
        "who": "basics",
        "design": "lock-held-at-exit",
        "scenario": lock_held_at_exit,
        "expected": Verdict(kinds=frozenset({"leak"})),
        "budget": 10,
    },
]
