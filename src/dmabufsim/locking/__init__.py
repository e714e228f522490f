"""Locks and lockdep: spinlock, mutex, rwsem, seqcount, RCU, ww_mutex, the validator."""

from ..kernel.lockdep_map import LockdepMap, lockdep_assert_held, lockdep_assert_not_held
from .mutex import Mutex
from .rcu import rcu_read_lock, rcu_read_lock_held, rcu_read_section, rcu_read_unlock, synchronize_rcu
from .rwlock import RwLock
from .rwsem import RwSem
from .seqcount import SeqCount
from .spinlock import SpinLock
from .ww_mutex import WWAcquireCtx, WWClass, WWMutex

# -- lockdep: the validator (importing lockdep_priming registers its per-execution installation)
from .annotations import might_lock, might_lock_nested, might_lock_read  # isort: skip
from .lockdep import Lockdep  # isort: skip
from .lockdep_graph import LockGraph  # isort: skip
from .lockdep_priming import dma_resv_lockdep  # isort: skip

__all__ = ["LockdepMap", "Mutex", "SpinLock", "lockdep_assert_held", "lockdep_assert_not_held"]
__all__ += ["WWAcquireCtx", "WWClass", "WWMutex"]
__all__ += ["RwLock", "RwSem", "SeqCount", "rcu_read_lock", "rcu_read_lock_held", "rcu_read_section", "rcu_read_unlock"]
__all__ += ["synchronize_rcu"]

__all__ += ["LockGraph", "Lockdep", "dma_resv_lockdep", "might_lock", "might_lock_nested", "might_lock_read"]
