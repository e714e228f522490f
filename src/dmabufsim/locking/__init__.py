"""Locks and lockdep: spinlock, mutex, rwsem, seqcount, RCU, ww_mutex, the validator."""

from .lockdep_map import LockdepMap, lockdep_assert_held, lockdep_assert_not_held
from .mutex import Mutex
from .rcu import rcu_read_lock, rcu_read_lock_held, rcu_read_section, rcu_read_unlock, synchronize_rcu
from .rwsem import RwSem
from .seqcount import SeqCount
from .spinlock import SpinLock
from .ww_mutex import WWAcquireCtx, WWClass, WWMutex

__all__ = ["LockdepMap", "Mutex", "SpinLock", "lockdep_assert_held", "lockdep_assert_not_held"]
__all__ += ["WWAcquireCtx", "WWClass", "WWMutex"]
__all__ += ["RwSem", "SeqCount", "rcu_read_lock", "rcu_read_lock_held", "rcu_read_section", "rcu_read_unlock"]
__all__ += ["synchronize_rcu"]
