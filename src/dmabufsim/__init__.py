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

# -- device: SVA bonds; drivers, mm: the SVM driver, HMM, device-private migration
from .device.sva import IommuSva, iommu_sva_bind_device

# -- device: the TTM-like memory manager
from .device.ttm import BufferObject, MemType, OperationCtx, TTMDevice, TTMShrinker

# -- dma: fences and reservation objects
from .dma import (
    DmaFence,
    DmaFenceArray,
    DmaFenceCb,
    DmaFenceChain,
    DmaResv,
    DmaResvUsage,
    FenceCache,
    FenceContext,
    FenceOps,
    ReservationObject,
    get_rcu_safe,
    reservation_ww_class,
)

# -- dma-buf: exporters, attachments, dynamic importers, revocation
from .dma.dma_buf import DmaBuf, DmaBufAttachment, DmaBufAttachOps, DmaBufOps, DmaBufRevocation, SgTable

# -- drivers: the dma-buf reference drivers
from .drivers.amdgpu_exporter import AmdgpuExporter
from .drivers.dma_buf_importers import DynamicImporter, StaticImporter

# -- drivers: a GEM shmem driver with PRIME, dma-buf mmap
from .drivers.gem_shmem import DrmDevice, GemShmemObject, mmap_dma_buf

# -- drivers: the SVM driver
from .drivers.svm import SvmDriver

# -- drivers: the userptr helper and the userptr designs of the thread
from .drivers.userptr_common import UserptrBo
from .drivers.userptr_helper import Userptr
from .drivers.userptr_modern import ModernUserptrDriver
from .explore import DPOR, PCT, ExploreOptions, OptimalDPOR, RandomWalk, Report

# -- kernel: the simulated machine
# -- kernel: deferred contexts (work items, irq_work, timer_list, kthread parking)
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
    TIMER_IRQSAFE,
    Completion,
    Config,
    DelayedWork,
    DmabufsimError,
    Event,
    Execution,
    Finding,
    FirstStrategy,
    Frame,
    IrqWork,
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
    TimerList,
    UsageError,
    WaitQueue,
    Workqueue,
    WorkStruct,
    cancel_work_sync,
    current,
    current_kernel,
    flush_work,
    kthread_park,
    kthread_parkme,
    kthread_should_park,
    kthread_unpark,
    schedule_work,
    system_wq,
)

# -- kernel: object lifetimes (kref, refcount_t, kmem caches; use-after-free and leak)
from .kernel.lifetime import REFCOUNT_SATURATED, KmemCache, Kref

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
from .mm.hmm import HmmRange, hmm_range_fault
from .mm.memory import VM_FAULT_NOPAGE, VM_FAULT_RETRY, VM_FAULT_SIGBUS, VmFault, VmOperations

# -- mm: MMU notifiers and interval notifiers
from .mm.memremap import DevicePagemap, DevPagemapOps
from .mm.migrate_device import (
    MigrateVma,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
    remove_migration_ptes,
)
from .mm.mmu_notifier import (
    MMUIntervalNotifier,
    MMUIntervalNotifierOps,
    MMUNotifier,
    MMUNotifierOps,
    mmu_notifier_variant,
)

# -- mm: the fault path (driver fault handlers, user copies that fault) and the page lock
from .mm.page_lock import (
    lock_page,
    migration_entry_wait_on_locked,
    set_page_dirty_lock,
    trylock_page,
    unlock_page,
    wait_on_page_locked,
)
from .mm.rmap import shrink_page, try_to_migrate, try_to_unmap
from .mm.uaccess import copy_from_user, copy_from_user_inatomic, copy_to_user, fault_in_readable, get_user, put_user

__version__ = "0.1.0"
