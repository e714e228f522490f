"""dmabufsim: an executable model of Linux's cross-device buffer-sharing stack.

``import dmabufsim as ds``; write a scenario as a function of a
:class:`Kernel`, create model objects inside it, spawn threads, and run::

    def scenario(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        k.spawn(worker, a, b, name="t1")
        k.spawn(worker, b, a, name="t2")

    ex = ds.Kernel(seed=1).run(scenario)
    ex.findings, ex.token, ex.trace_digest
    ds.Kernel(replay=ex.token).run(scenario)   # the identical execution

The package is laid out as rooms (see DESIGN.md): ``kernel`` (the machine),
``locking``, ``dma``, ``mm``, ``device``, ``drivers``, ``check``,
``explore``, ``scenarios``, ``report``. Each room's public names are
re-exported here.
"""

# -- check: the isolation checker (importing it installs it in every execution)
# -- explore: the interleaving explorer; the room is callable: ds.explore(scenario, strategy=..., budget=...)
from . import explore
from .check import IsolationChecker

# -- device: IOMMU domains, GPU VMs, engines doing DMA
from .device import Device, GpuVm, IommuDomain

# -- device: the TTM-like memory manager (issue 6)
from .device.ttm import BufferObject, MemType, OperationCtx, TTMDevice

# -- dma: fences and reservation objects
from .dma import (
    DmaFence,
    DmaFenceArray,
    DmaFenceCb,
    DmaFenceChain,
    DmaResv,
    DmaResvUsage,
    FenceContext,
    FenceOps,
    ReservationObject,
    reservation_ww_class,
)

# -- dma-buf: exporters, attachments, dynamic importers, revocation (issue 6)
from .dma.dma_buf import DmaBuf, DmaBufAttachment, DmaBufAttachOps, DmaBufOps, DmaBufRevocation, SgTable

# -- drivers: the dma-buf reference drivers (issue 6)
from .drivers.amdgpu_exporter import AmdgpuExporter
from .drivers.dma_buf_importers import DynamicImporter, StaticImporter

# -- drivers: the userptr helper and the userptr designs of the thread (issue 7)
from .drivers.userptr_common import UserptrBo
from .drivers.userptr_helper import Userptr
from .drivers.userptr_modern import ModernUserptrDriver
from .explore import DPOR, PCT, ExploreOptions, OptimalDPOR, RandomWalk, Report

# -- kernel: the simulated machine
from .kernel import (
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
    KINDS,
    MAX_SCHEDULE_TIMEOUT,
    NSEC_PER_MSEC,
    NSEC_PER_SEC,
    NSEC_PER_USEC,
    Completion,
    Config,
    DmabufsimError,
    Event,
    Execution,
    Finding,
    FirstStrategy,
    Frame,
    Kernel,
    KernelError,
    KThread,
    NotRunningError,
    RandomStrategy,
    ReplayError,
    ReplayStrategy,
    SimulatorError,
    Strategy,
    ThreadInfo,
    ThreadKilled,
    UsageError,
    WaitQueue,
    current,
    current_kernel,
)

# -- locking
from .locking import LockdepMap, Mutex, SpinLock, lockdep_assert_held, lockdep_assert_not_held

# -- locking: lockdep (importing it registers the validator as the "lockdep" extension)
from .locking.annotations import might_lock, might_lock_nested, might_lock_read
from .locking.lockdep import Lockdep
from .locking.lockdep_graph import LockGraph
from .locking.lockdep_priming import dma_resv_lockdep
from .locking.rcu import rcu_read_lock, rcu_read_lock_held, rcu_read_section, rcu_read_unlock, synchronize_rcu
from .locking.rwlock import RwLock
from .locking.rwsem import RwSem
from .locking.seqcount import SeqCount
from .locking.ww_mutex import WWAcquireCtx, WWClass, WWMutex

# -- mm: page frames, allocator and reclaim, shrinkers, address spaces, gup
from .mm import (
    FOLL_LONGTERM,
    FOLL_PIN,
    FOLL_WRITE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    MmuNotifierRange,
    MmuNotifyEvent,
    Page,
    Process,
    Shrinker,
    alloc_page,
    init_memory,
)

# -- mm: MMU notifiers and interval notifiers (issue 7)
from .mm.interval_notifier import MMUIntervalNotifier, MMUIntervalNotifierOps
from .mm.mmu_notifier import MMUNotifier, MMUNotifierOps

__version__ = "0.1.0"
