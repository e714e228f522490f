"""The simulated machine: runtime, kthreads, time, waits, errors, findings, trace.

This room imports nothing from the rooms above it (a test enforces it).
"""

from .completion import Completion
from .errors import (
    EAGAIN,
    EALREADY,
    EBUSY,
    EDEADLK,
    EFAULT,
    EINTR,
    EINVAL,
    ENOENT,
    ENOMEM,
    ERESTARTSYS,
    ETIME,
    DmabufsimError,
    KernelError,
    NotRunningError,
    ReplayError,
    SimulatorError,
    ThreadKilled,
    UsageError,
)
from .execution import Config, Execution, ThreadSummary
from .findings import KINDS, Finding, ThreadInfo
from .held import HeldLock, LockTracker
from .runtime import (
    MAX_SCHEDULE_TIMEOUT,
    NSEC_PER_MSEC,
    NSEC_PER_SEC,
    NSEC_PER_USEC,
    Kernel,
    current,
    current_kernel,
    register_extension,
)
from .stack import Frame
from .strategy import FirstStrategy, RandomStrategy, ReplayStrategy, Strategy
from .thread import KThread, ThreadState
from .timer import Timer
from .trace import Event, Trace
from .wait import WaitQueue

# -- deferred contexts
from .irq_work import IrqWork  # isort: skip
from .kthread_park import kthread_park, kthread_parkme, kthread_should_park, kthread_unpark  # isort: skip
from .lockdep_map import LockdepMap, lockdep_assert_held, lockdep_assert_not_held  # isort: skip
from .timer_list import TIMER_IRQSAFE, TimerList  # isort: skip
from .workqueue import (  # isort: skip
    DelayedWork, WorkStruct, Workqueue, cancel_work_sync, flush_work, schedule_work, system_wq,
)

__all__ = [
    "EAGAIN", "EALREADY", "EBUSY", "EDEADLK", "EFAULT", "EINTR", "EINVAL", "ENOENT", "ENOMEM",
    "ERESTARTSYS", "ETIME", "KINDS", "MAX_SCHEDULE_TIMEOUT", "NSEC_PER_MSEC", "NSEC_PER_SEC",
    "NSEC_PER_USEC", "Completion", "Config", "DmabufsimError", "Event", "Execution", "Finding",
    "FirstStrategy", "Frame", "HeldLock", "KThread", "Kernel", "KernelError", "LockTracker",
    "NotRunningError", "RandomStrategy", "ReplayError", "ReplayStrategy", "SimulatorError",
    "Strategy", "ThreadInfo", "ThreadKilled", "ThreadState", "ThreadSummary", "Timer", "Trace",
    "UsageError", "WaitQueue", "current", "current_kernel", "register_extension",
]
__all__ += [
    "TIMER_IRQSAFE", "DelayedWork", "IrqWork", "LockdepMap", "TimerList", "WorkStruct", "Workqueue",
    "cancel_work_sync", "flush_work", "kthread_park", "kthread_parkme", "kthread_should_park", "kthread_unpark",
    "lockdep_assert_held", "lockdep_assert_not_held", "schedule_work", "system_wq",
]
