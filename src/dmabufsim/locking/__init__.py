"""Locks and lockdep: spinlock, mutex, rwsem, seqcount, RCU, ww_mutex, the validator."""

from .lockdep_map import LockdepMap, lockdep_assert_held, lockdep_assert_not_held
from .mutex import Mutex
from .spinlock import SpinLock

__all__ = ["LockdepMap", "Mutex", "SpinLock", "lockdep_assert_held", "lockdep_assert_not_held"]
