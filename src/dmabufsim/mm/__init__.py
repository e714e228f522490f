"""Memory: page frames, the allocator and reclaim, shrinkers, process address spaces, gup.

Models ``mm/``: ``page_alloc.c``, ``shrinker.c``/``vmscan.c``, ``memory.c``
(with driver fault handlers), ``mmap.c``, ``mprotect.c``,
``madvise.c``, ``gup.c``, ``rmap.c`` (``try_to_unmap``), the page lock of
``pagemap.h``, ``uaccess.h`` and the core-mm side of ``mmu_notifier.h``. Imports only ``kernel`` and ``locking``.
"""

from .gup import (
    FOLL,
    FOLL_GET,
    FOLL_LONGTERM,
    FOLL_PIN,
    FOLL_WRITE,
    get_user_pages,
    get_user_pages_fast,
    mark_page_accessed,
    pin_user_pages,
    pin_user_pages_fast,
    put_page,
    release_pages,
    set_page_dirty,
    set_page_dirty_lock,
    unpin_user_page,
    unpin_user_pages,
    unpin_user_pages_dirty_lock,
)
from .memory import (
    FAULT_FLAG_ALLOW_RETRY,
    FAULT_FLAG_TRIED,
    FAULT_FLAG_WRITE,
    MADV_DONTNEED,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    VM_FAULT_NOPAGE,
    VM_FAULT_RETRY,
    VM_FAULT_SIGBUS,
    MmStruct,
    Process,
    Pte,
    ShmemObject,
    Vma,
    VmFault,
    VmOperations,
)
from .notifier_hooks import (
    MmuNotifierRange,
    MmuNotifyEvent,
    MmuSubscriber,
    invalidate_range_end,
    invalidate_range_start,
)
from .page import (
    PAGE_SHIFT,
    PAGE_SIZE,
    Page,
    PageAllocator,
    PageWatcher,
    alloc_page,
    free_page,
    init_memory,
    kswapd_reclaim,
    owner_name,
    page_allocator,
)
from .page_lock import (
    PageLocked,
    lock_page,
    migration_entry_wait_on_locked,
    trylock_page,
    unlock_page,
    wait_on_page_locked,
)
from .rmap import shrink_page, try_to_migrate, try_to_unmap
from .shrinker import SHRINK_BATCH, SHRINK_EMPTY, SHRINK_STOP, LegacyShrinker, ShrinkControl, Shrinker, ShrinkerRegistry
from .uaccess import (
    copy_from_user,
    copy_from_user_inatomic,
    copy_to_user,
    fault_in_readable,
    get_user,
    might_fault,
    put_user,
)

__all__ = [
    "FOLL", "FOLL_GET", "FOLL_LONGTERM", "FOLL_PIN", "FOLL_WRITE", "MADV_DONTNEED", "PAGE_SHIFT",
    "PAGE_SIZE", "PROT_NONE", "PROT_READ", "PROT_WRITE", "SHRINK_BATCH", "SHRINK_EMPTY", "SHRINK_STOP",
    "TASK_SIZE", "MmStruct", "MmuNotifierRange", "MmuNotifyEvent", "MmuSubscriber", "Page",
    "PageAllocator", "PageWatcher", "Process", "Pte", "ShmemObject", "ShrinkControl", "Shrinker",
    "ShrinkerRegistry", "Vma", "alloc_page", "free_page", "get_user_pages", "get_user_pages_fast",
    "init_memory", "invalidate_range_end", "invalidate_range_start", "mark_page_accessed", "owner_name",
    "page_allocator", "pin_user_pages", "pin_user_pages_fast", "put_page", "release_pages",
    "set_page_dirty", "set_page_dirty_lock", "unpin_user_page", "unpin_user_pages",
    "unpin_user_pages_dirty_lock",
    "FAULT_FLAG_ALLOW_RETRY", "FAULT_FLAG_TRIED", "FAULT_FLAG_WRITE", "VM_FAULT_NOPAGE", "VM_FAULT_RETRY",
    "VM_FAULT_SIGBUS", "LegacyShrinker", "PageLocked", "VmFault", "VmOperations", "copy_from_user",
    "copy_from_user_inatomic", "copy_to_user", "fault_in_readable", "get_user", "lock_page", "might_fault",
    "kswapd_reclaim", "put_user", "shrink_page", "trylock_page", "try_to_unmap", "unlock_page",
    "wait_on_page_locked", "migration_entry_wait_on_locked", "try_to_migrate",
]
