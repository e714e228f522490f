"""Process address spaces: VMAs, page tables, faults, fork with copy-on-write.

Models ``struct mm_struct`` / ``struct vm_area_struct`` (with a driver
mapping's ``struct vm_operations_struct`` and ``struct vm_fault``) and the paths of
``mm/mmap.c`` (``do_mmap``, ``do_munmap``), ``mm/memory.c``
(``handle_mm_fault``, ``do_wp_page``/``wp_page_copy``, ``copy_page_range``,
``zap_page_range``, ``exit_mmap``), ``mm/mprotect.c`` and ``mm/madvise.c``
(``MADV_DONTNEED``). A :class:`Process` is the user side: it maps memory
and reads and writes it by address.

Rules:

* R1 (locking): mmap/munmap/mprotect/fork/exit take ``mmap_lock`` for
  write; faults and ``MADV_DONTNEED`` take it for read. ``handle_mm_fault``
  and ``get_user_pages`` require it held (``lockdep_assert_held``).
* R2 (faults populate): the first access to an anonymous page allocates a
  frame (``GFP_KERNEL``, owner: the mm) under ``mmap_lock``; a shared
  mapping's pages belong to its :class:`ShmemObject` and are found again by
  every process sharing it.
* R3 (fork / COW): ``fork`` shares private pages read-only between parent
  and child (the parent's PTEs are write-protected inside a
  ``PROTECTION_PAGE`` notifier bracket); a write to a shared page copies it
  (``wp_page_copy``, inside a ``CLEAR`` bracket) unless the writer is its
  only mapper. A pinned page (FOLL_PIN) is copied for the child at fork time
  (``page_needs_cow_for_dma``), so the pinning parent keeps its page. When
  the old page's owner leaves it, ownership passes to the first remaining
  mapper: after the *parent* breaks COW, the old page belongs to the child.
* R4 (permissions): a write through a mapping without ``PROT_WRITE`` or a
  read without ``PROT_READ`` or an access outside every VMA raises
  ``EFAULT`` (userspace would get SIGSEGV); nothing changes.
* R5 (unmapping): munmap, DONTNEED and exit drop each PTE's reference; a
  frame with no other reference (no pin, no gup reference, no other
  mapper) is freed; a pinned frame survives until unpinned.
* R6 (notifiers): every removal or downgrade of PTEs is bracketed by
  ``invalidate_range_start`` / ``invalidate_range_end``
  (:mod:`dmabufsim.mm.notifier_hooks`), under ``mmap_lock`` (the rmap walks,
  ``try_to_unmap`` and ``unmap_mapping_range``, hold the page lock or the
  mapping instead).
* R7 (driver mappings): a VMA made with ``vm_ops`` (a buffer object's CPU
  mapping: TTM's ``ttm_bo_vm_fault``, i915's GTT mmap, ``drm_gem_shmem``;
  :class:`VmOperations`, ``struct vm_operations_struct``) gets its pages
  from the driver's fault handler (``vm_ops->fault``, with a
  :class:`VmFault`, ``struct vm_fault``), run by ``handle_mm_fault`` with
  the faulting thread holding ``mmap_lock`` for read, so every lock a
  handler takes is ordered after ``mmap_lock`` (lockdep sees it); ``fork``
  gives the child the VMA without its PTEs (they fault again);
  ``get_user_pages`` on it fails with ``EFAULT`` (``VM_IO | VM_PFNMAP``,
  ``check_vma_flags``).
* R8 (user faults): a user access with no usable PTE enters
  :meth:`MmStruct.do_user_addr_fault`: ``mmap_lock`` for read, then
  ``handle_mm_fault`` with ``FAULT_FLAG_ALLOW_RETRY``; after a handler's
  ``VM_FAULT_RETRY`` (it dropped the lock) the lock is taken again and the
  fault retried with ``FAULT_FLAG_TRIED``.
* R9 (users): ``mm_users`` counts the users of the address space (the
  process, and whoever pinned it with ``mmget`` / ``mmget_not_zero``);
  ``mmput`` may sleep and the last one runs ``exit_mmap`` (the notifiers'
  ``release``, then the teardown) in the caller's context. ``mmget`` of a
  count at zero is "refcount_t: addition on 0; use-after-free." and a put
  below zero "refcount_t: underflow; use-after-free." (``use-after-free``
  findings); ``mmget_not_zero`` fails on zero. ``Process.exit`` is the
  process's own ``mmput``.
* R10 (secondary TLBs): zapping (munmap, DONTNEED, exit, the OOM reaper)
  first clears every PTE of the range, then calls
  ``mmu_notifier_arch_invalidate_secondary_tlbs`` for the range, then drops
  the pages' references (``tlb_finish_mmu``: pages are freed only after the
  flush); a copy-on-write break points the PTE at the new page, calls the
  hook for the page, then drops the old page (``ptep_clear_flush_notify``).
  Migration (``migrate_device.py``) follows the same order.
* R11 (non-present entries): a PTE may hold a *device-private* entry (the
  page lives in device memory, ``memremap.py``) or a *migration* entry (the
  page is being migrated; its page lock is held). A CPU access never goes
  through either: the fault of a device-private entry calls the owner's
  ``migrate_to_ram`` (``do_swap_page``), the fault of a migration entry
  waits for the page lock and retries (``migration_entry_wait``, which
  queues on the page under the page-table lock and takes no page reference:
  the migration's own reference keeps the frame while any migration entry
  names it, ``page_lock`` R9). Zapping a device-private entry drops the
  device page's reference; a migration entry holds none (zapping it only
  takes it off the frame's ``migration_ptes``, what the migration's
  ``remove_migration_ptes`` walks).
* R13 (fork of non-present entries, ``copy_nonpresent_pte``): the child
  gets the parent's device-private entry with a reference of its own and an
  rmap entry (``folio_get`` + ``folio_try_dup_anon_rmap_pte``: device pages
  are never pinned, so the dup never fails); a migration entry is copied
  without a reference and joins the frame's ``migration_ptes``, so the
  migration in progress restores the child's entry too. In a private
  (copy-on-write) mapping a writable entry becomes read-only in both
  (``make_readable_device_private_entry`` / ``_migration_entry``): a later
  write faults (``do_swap_page`` -> ``migrate_to_ram``), and once the page
  is back in system memory, mapped by both, it breaks copy-on-write as any
  shared page does (R3).
* R16 (what a fault declares after a wait): ``handle_mm_fault`` declares
  a write of the page tables at its scheduling point; when it waited in
  ``do_swap_page`` (a migration, ``migrate_to_ram``) and looks the entry up
  again, that second look only reads them (``pte_offset_map`` in the
  retried fault), and each change it then makes declares its own write
  under the page-table lock (``set_pte_at``, the reuse of ``do_wp_page``,
  ``wp_page_copy``). So a fault that finds the page back in place commutes
  with a concurrent walk that only reads the tables (``hmm_range_fault``).
* R12 (anon_vma): the reverse-map walk of an anonymous page
  (``rmap_walk_anon``, :mod:`dmabufsim.mm.rmap`) holds the address space's
  ``anon_vma`` lock for read around each unmap (and its notifier bracket);
  ``exit_mmap`` takes it for write when it frees the page tables
  (``free_pgtables`` -> ``unlink_anon_vmas``). So an ``exit_mmap`` run from
  inside a notifier called by the rmap walk (the last ``mmput`` in the
  callback) waits for the lock its own thread holds.
* R14 (fault results): the handler returns :data:`VM_FAULT_NOPAGE` after
  :meth:`VmFault.insert_page` (the PTE is made, a reference taken), or
  :data:`VM_FAULT_SIGBUS` (the access fails: ``EFAULT``), or
  :data:`VM_FAULT_RETRY`, only when ``vmf.flags`` has
  :data:`FAULT_FLAG_ALLOW_RETRY`, and only after dropping ``mmap_lock``
  itself (:meth:`VmFault.release_mmap_lock`: ``mmap_read_unlock``, so it can
  sleep without it); the fault entry then retakes the lock and retries with
  :data:`FAULT_FLAG_TRIED`. Returning RETRY with the lock still held, or
  without ALLOW_RETRY, is a ``UsageError`` (the kernel would leak or double
  unlock the lock).
* R15 (revocation): ``unmap_mapping_range`` zaps the PTEs of every VMA that
  maps the object, in every mm that mapped it, each inside a ``CLEAR``
  notifier bracket (``zap_page_range_single``); the next access faults again.
"""

from __future__ import annotations

from typing import Any

from ..kernel.errors import EAGAIN, EFAULT, EINVAL, UsageError
from ..kernel.gfp import GFP_KERNEL
from ..kernel.lockdep_map import lockdep_assert_held
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.trace import refcount_oid
from ..locking.annotations import MMAP_LOCK
from ..locking.rwsem import RwSem
from .notifier_hooks import (
    MmuNotifierRange,
    MmuNotifyEvent,
    arch_invalidate_secondary_tlbs,
    invalidate_range_end,
    invalidate_range_start,
)
from .page import (
    PAGE_SHIFT,
    PAGE_SIZE,
    Page,
    PageAllocator,
    contents_oid,
    page_allocator,
    page_count_observe,
    page_ref_inc,
)
from .page_lock import migration_entry_wait_on_locked, trylock_page_atomic, unlock_page

PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
#: ``MADV_DONTNEED``: drop the pages of the range (they read back as zero / from shmem).
MADV_DONTNEED = 4
#: Top of the user address space (``TASK_SIZE`` on x86-64).
TASK_SIZE = 1 << 47
#: Lock class of every address space's ``anon_vma`` lock (R12): one ``init_rwsem`` site.
ANON_VMA_LOCK = "&anon_vma->rwsem"
#: Where the model's ``mmap`` starts placing mappings.
MMAP_BASE = 0x10_0000


def _page_align(x: int) -> int:
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


class ShmemObject:
    """A shared anonymous memory object (``shmem_file_setup`` behind ``MAP_SHARED|MAP_ANONYMOUS``).

    Owns its frames (a kernel object owner); every mapping of it sees the
    same pages.
    """

    #: A page-cache object: its pages have a mapping (``page_lock`` R6).
    is_page_cache = True

    def __init__(self, nr_pages: int, name: str = "shmem") -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.nr_pages = nr_pages
        self.pages: dict[int, Page] = {}
        #: Mappings (VMAs) using the object; the pages are freed with the last one.
        self.users = 0

    def find_or_alloc(self, pgoff: int, alloc: PageAllocator) -> Page:
        """``shmem_get_folio``: the page at ``pgoff``, allocated on first use."""
        page = self.pages.get(pgoff)
        if page is None:
            page = self.pages[pgoff] = alloc.alloc_page(GFP_KERNEL, self)
        return page

    def put_user(self) -> None:
        """A mapping went away; the last one frees the object's pages (drops its references)."""
        self.users -= 1
        if self.users == 0:
            for pgoff in sorted(self.pages):
                pg = self.pages[pgoff]
                pg.alloc.put_ref(pg)
            self.pages.clear()


class Vma:
    """``struct vm_area_struct``: ``[start, end)`` with a protection, private or shared."""

    __slots__ = ("end", "pgoff", "prot", "shmem", "start", "vm_ops")

    def __init__(self, start: int, end: int, prot: int, shmem: ShmemObject | None, pgoff: int = 0,
                 vm_ops: VmOperations | None = None) -> None:
        self.start = start
        self.end = end
        self.prot = prot
        #: The shared object behind a MAP_SHARED mapping, None for private anonymous memory.
        self.shmem = shmem
        #: Page offset of ``start`` within ``shmem`` (or within the driver object).
        self.pgoff = pgoff
        #: ``vma->vm_ops`` of a driver mapping (R7), None for anonymous and shmem memory.
        self.vm_ops = vm_ops

    @property
    def shared(self) -> bool:
        return self.shmem is not None or self.vm_ops is not None

    def __repr__(self) -> str:
        p = ("r" if self.prot & PROT_READ else "-") + ("w" if self.prot & PROT_WRITE else "-")
        return f"<Vma {self.start:#x}-{self.end:#x} {p}{'s' if self.shared else 'p'}>"


#: ``VM_FAULT_NOPAGE``: the handler installed the PTE itself.
VM_FAULT_NOPAGE = 0x100
#: ``VM_FAULT_SIGBUS``: the access fails.
VM_FAULT_SIGBUS = 0x2
#: ``VM_FAULT_RETRY``: the handler dropped ``mmap_lock``; fault again.
VM_FAULT_RETRY = 0x400

#: ``FAULT_FLAG_WRITE``: the access is a write.
FAULT_FLAG_WRITE = 0x1
#: ``FAULT_FLAG_ALLOW_RETRY``: the handler may drop ``mmap_lock`` and return RETRY.
FAULT_FLAG_ALLOW_RETRY = 0x4
#: ``FAULT_FLAG_TRIED``: this is a retry.
FAULT_FLAG_TRIED = 0x20


class VmFaultRetry(Exception):
    """Raised by ``handle_mm_fault`` after ``VM_FAULT_RETRY``: ``mmap_lock`` is no longer held (R14)."""


class VmFault:
    """``struct vm_fault``: one fault on a driver mapping."""

    __slots__ = ("address", "flags", "mm", "page", "pgoff", "vma")

    def __init__(self, mm: MmStruct, vma: Vma, address: int, pgoff: int, flags: int) -> None:
        self.mm = mm
        self.vma = vma
        #: The page-aligned faulting address.
        self.address = address
        #: The page offset within the object (``vma->vm_pgoff`` plus the offset in the VMA).
        self.pgoff = pgoff
        self.flags = flags
        #: The page the handler inserted (``vmf_insert_page``), or None.
        self.page: Page | None = None

    @property
    def write(self) -> bool:
        return bool(self.flags & FAULT_FLAG_WRITE)

    def insert_page(self, page: Page) -> int:
        """``vmf_insert_page``: map ``page`` at the faulting address (R14). Returns VM_FAULT_NOPAGE."""
        if page.owner is None:
            raise UsageError(f"vmf_insert_page of a free page {page!r}")
        self.page = page
        return VM_FAULT_NOPAGE

    def release_mmap_lock(self) -> None:
        """``mmap_read_unlock(vmf->vma->vm_mm)`` before returning ``VM_FAULT_RETRY`` (R14)."""
        if not self.flags & FAULT_FLAG_ALLOW_RETRY:
            raise UsageError("a fault handler may drop mmap_lock only with FAULT_FLAG_ALLOW_RETRY")
        self.mm.mmap_lock.up_read()


class VmOperations:
    """``struct vm_operations_struct`` of a driver mapping (extension contract).

    Subclass and override :meth:`fault`. The object is the mapping's
    ``address_space`` too: it remembers which mms mapped it, for
    :meth:`unmap_mapping_range` (R15).
    """

    name = "vm_ops"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        #: ``mapping->i_mmap``: the mms with a VMA of this object (registration order).
        self.i_mmap: list[Any] = []

    def fault(self, vmf: VmFault) -> int:
        """``vm_ops->fault``: called with ``mmap_lock`` held for read (R7); returns a VM_FAULT_* code (R14)."""
        raise NotImplementedError(f"{type(self).__name__} must implement fault()")

    def unmap_mapping_range(self) -> int:
        """``unmap_mapping_range``: zap every CPU mapping of the object (R15). Returns PTEs zapped."""
        n = 0
        for mm in list(self.i_mmap):
            n += mm.zap_vm_ops(self)
        return n


#: ``Pte.swp``: a present entry (the CPU translates through it).
PTE_PRESENT = 0
#: ``Pte.swp``: a device-private swap entry (``make_writable_device_private_entry``, R11).
PTE_DEVICE_PRIVATE = 1
#: ``Pte.swp``: a migration entry (``make_writable_migration_entry``, R11).
PTE_MIGRATION = 2


class Pte:
    """A user page-table entry: the frame, the write bit, and what kind of entry it is (R11)."""

    __slots__ = ("page", "swp", "writable")

    def __init__(self, page: Page, writable: bool, swp: int = PTE_PRESENT) -> None:
        self.page = page
        self.writable = writable
        #: PTE_PRESENT, PTE_DEVICE_PRIVATE or PTE_MIGRATION.
        self.swp = swp


def _migration_pte_remove(page: Page, mm: MmStruct, addr: int) -> None:
    """Take ``(mm, addr)`` off ``page.migration_ptes`` (a migration entry zapped meanwhile, R11)."""
    mig = page.migration_ptes
    for i, (m, a) in enumerate(mig):
        if m is mm and a == addr:
            del mig[i]
            return


class MmStruct:
    """``struct mm_struct``: one address space (the owner of its anonymous pages).

    Invariants: ``vmas`` sorted and disjoint; every PTE lies inside a VMA;
    every PTE's page lists ``(self, address)`` in its ``rmap``.
    """

    #: Bookkeeping the model writes and never reads back (the ranges between
    #: invalidate start and end, a counter): not model state (accesses A3).
    #: ``mm_users`` is a refcount declared as its own pseudo-object (``refcount_oid``, R9):
    #: increments commute, the decrement-and-test is a write.
    __untracked__ = ("active_ranges", "stats_invalidations", "mm_users")

    def __init__(self, name: str = "mm", alloc: PageAllocator | None = None) -> None:
        self.k: Kernel = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.alloc = alloc or page_allocator(self.k)
        #: ``mmap_lock``: an rw_semaphore of lock class ``mmap_lock`` (R1).
        self.mmap_lock = RwSem(MMAP_LOCK)
        #: The root ``anon_vma``'s rw_semaphore of the private mappings (R12): one per address
        #: space in the model (the kernel's anon_vma chains share a root per fork family).
        self.anon_vma_lock = RwSem(f"{name}.anon_vma", key=ANON_VMA_LOCK)
        self.vmas: list[Vma] = []
        #: Page tables: virtual page number -> PTE.
        self.ptes: dict[int, Pte] = {}
        #: Notifier subscribers (see notifier_hooks), in registration order.
        self.subscribers: list[Any] = []
        #: Invalidation ranges between start and end.
        self.active_ranges: list[MmuNotifierRange] = []
        self.stats_invalidations = 0
        self.dead = False
        #: ``mm_users`` (R7): the process's own reference.
        self.mm_users = 1
        self._next_addr = MMAP_BASE
        #: Secondary MMUs that walk these page tables in hardware (SVA bonds, R10): while
        #: there are any, clearing PTEs is a scheduling point of its own (the walker can
        #: refill its TLB between ``invalidate_range_start`` and the clear).
        self.pt_walkers = 0

    def __repr__(self) -> str:
        return f"<MmStruct {self.name}#{self.oid}{' dead' if self.dead else ''}>"

    # ------------------------------------------------------------------ users (R7)

    def mmget(self) -> None:
        """``mmget``: one more user; the caller already holds one (R7)."""
        self.k.event("mmget", refcount_oid(self.oid), False)
        if self.mm_users <= 0:
            self._users_warn("mmget", "refcount_t: addition on 0; use-after-free.")
            return
        self.mm_users += 1

    def mmget_not_zero(self) -> bool:
        """``mmget_not_zero``: a user reference unless the address space is already going away (R7)."""
        self.k.point("mmget_not_zero", refcount_oid(self.oid), False)
        if self.mm_users <= 0:
            return False
        self.mm_users += 1
        return True

    def mmput(self) -> None:
        """``mmput``: drop a user; the last one runs ``exit_mmap`` here (R7). May sleep."""
        k = self.k
        k.might_sleep("mmput")
        last = self.mm_users == 1
        k.event("mmput", refcount_oid(self.oid), True)  # a decrement-and-test: puts do not commute
        if self.mm_users <= 0:
            self._users_warn("mmput", "refcount_t: underflow; use-after-free.")
            return
        self.mm_users -= 1
        if last:
            self.exit_mmap()

    def _users_warn(self, op: str, title: str) -> None:
        self.k.report(
            "use-after-free",
            title,
            details={"object": f"mm {self.name}", "op": op},
            rule="mm R7: mm_users never goes through zero",
            signature=f"mm-users:{self.name}:{op}",
        )

    # ------------------------------------------------------------------ notifier subscriptions

    def notifier_subscribe(self, sub: Any) -> None:
        """Add a subscriber (the core of ``__mmu_notifier_register``; caller handles mmap_lock)."""
        self.k.point("mmu_notifier_register", self.oid, True)
        if self.dead:
            raise UsageError(f"{self.name}: subscribing to a dead mm")
        self.subscribers.append(sub)

    def notifier_unsubscribe(self, sub: Any) -> None:
        """Remove a subscriber (``mmu_notifier_unregister``)."""
        self.k.point("mmu_notifier_unregister", self.oid, True)
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    # ------------------------------------------------------------------ lookup

    def find_vma(self, addr: int) -> Vma | None:
        """``vma_lookup``: the VMA containing ``addr``."""
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
            if v.start > addr:
                break
        return None

    def lookup(self, addr: int) -> Page | None:
        """The frame mapped at ``addr`` now (``follow_page`` without faulting), or None."""
        pte = self.ptes.get(addr >> PAGE_SHIFT)
        return pte.page if pte is not None else None

    def maps_page_at(self, page: Page, addr: int) -> bool:
        """Is ``page`` what this address space maps at ``addr``?"""
        pte = self.ptes.get(addr >> PAGE_SHIFT)
        return pte is not None and pte.page is page

    # ------------------------------------------------------------------ mapping changes

    def _split(self, addr: int) -> None:
        """Split the VMA containing ``addr`` so that a VMA starts there."""
        for i, v in enumerate(self.vmas):
            if v.start < addr < v.end:
                pgoff = v.pgoff + ((addr - v.start) >> PAGE_SHIFT)
                right = Vma(addr, v.end, v.prot, v.shmem, pgoff, v.vm_ops)
                if v.shmem is not None:
                    v.shmem.users += 1
                v.end = addr
                self.vmas.insert(i + 1, right)
                return

    def _vmas_in(self, start: int, end: int) -> list[Vma]:
        self._split(start)
        self._split(end)
        return [v for v in self.vmas if start <= v.start and v.end <= end]

    def mmap(self, length: int, prot: int = PROT_READ | PROT_WRITE, *, shared: bool = False,
             addr: int | None = None, vm_ops: VmOperations | None = None) -> int:
        """``mmap(addr, length, prot, MAP_ANONYMOUS | MAP_PRIVATE/MAP_SHARED)``: returns the address.

        With ``vm_ops``: a driver's mapping of its object (``drm_gem_mmap``), faulted by the driver (R7).
        """
        if length <= 0:
            raise EINVAL(f"mmap: length {length}")
        length = _page_align(length)
        self.mmap_lock.down_write()
        try:
            self.k.point("mmap", self.oid, True)
            if self.dead:
                raise EFAULT("mmap on an exited mm")
            if addr is None:
                addr = self._next_addr
                self._next_addr += length + PAGE_SIZE  # a guard gap between mappings
            elif addr & (PAGE_SIZE - 1) or any(v.start < addr + length and addr < v.end for v in self.vmas):
                raise EINVAL(f"mmap: address {addr:#x} unaligned or overlapping")
            else:
                self._next_addr = max(self._next_addr, addr + length + PAGE_SIZE)
            shmem = ShmemObject(length >> PAGE_SHIFT, f"shmem@{self.name}") if shared and vm_ops is None else None
            if shmem is not None:
                shmem.users = 1
            if vm_ops is not None and self not in vm_ops.i_mmap:
                vm_ops.i_mmap.append(self)
            self.vmas.append(Vma(addr, addr + length, prot, shmem, 0, vm_ops))
            self.vmas.sort(key=lambda v: v.start)
            return addr
        finally:
            self.mmap_lock.up_write()

    def _zap(self, start: int, end: int) -> int:
        """``zap_page_range``: drop the PTEs of ``[start, end)`` (R5, R10, R11). Returns the number zapped.

        Clears every PTE first, flushes the secondary TLBs
        (``mmu_notifier_arch_invalidate_secondary_tlbs``), then drops the
        pages' references (``tlb_finish_mmu``).
        """
        ptes = self.ptes
        lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        if hi - lo > len(ptes):
            vpns = sorted(v for v in ptes if lo <= v < hi)
        else:
            vpns = [v for v in range(lo, hi) if v in ptes]
        gather: list[Page] = []
        if vpns and self.pt_walkers:
            self.k.point("zap_pte_range", self.oid, True, f"{start:#x}")
        else:
            # zap_pte_range under the page-table lock: the notifier callbacks before it may have
            # been scheduling points, so this step declares the tables it writes.
            self.k.event("zap_pte_range", self.oid, True)
        for vpn in vpns:
            pte = ptes.pop(vpn)
            if pte.swp == PTE_MIGRATION:
                # The migrating thread holds the page (R11); the entry is simply gone.
                self.k.event("zap_migration_entry", pte.page.oid, True)
                _migration_pte_remove(pte.page, self, vpn << PAGE_SHIFT)
                continue
            page = pte.page
            self._rmap_remove(page, vpn << PAGE_SHIFT)
            gather.append(page)
        if vpns and self.subscribers:
            arch_invalidate_secondary_tlbs(self, start, end)
        for page in gather:
            page.alloc.put_ref(page)
        return len(vpns)

    def zap_page_at(self, page: Page, addr: int) -> int:
        """Remove the PTE mapping ``page`` at ``addr`` (``try_to_unmap_one``'s ``ptep_clear_flush``).

        The caller brackets it with the notifiers (R6). Returns 1 if it was mapped there, else 0.
        """
        va = addr & ~(PAGE_SIZE - 1)
        pte = self.ptes.get(va >> PAGE_SHIFT)
        if pte is None or pte.page is not page:
            return 0
        return self._zap(va, va + PAGE_SIZE)

    def try_to_migrate_one(self, page: Page, addr: int) -> bool:
        """``try_to_migrate_one``: replace this mm's mapping of the locked ``page`` by a migration entry.

        The caller brackets it with the notifiers (``rmap`` R4). The PTE is
        cleared and flushed (present entries: ``ptep_clear_flush``, then the
        secondary TLBs, R10), the migration entry keeps the write bit, the
        rmap entry and the mapping's reference go (``folio_remove_rmap_pte``
        + ``folio_put``: the migration's reference holds the frame) and the
        entry joins ``page.migration_ptes`` (R11). False if ``page`` is no
        longer mapped at ``addr``.
        """
        va = addr & ~(PAGE_SIZE - 1)
        vpn = va >> PAGE_SHIFT
        pte = self.ptes.get(vpn)
        if pte is None or pte.page is not page or pte.swp == PTE_MIGRATION:
            return False
        self.k.event("set_migration_pte", page.oid, True)
        self.ptes[vpn] = Pte(page, pte.writable, PTE_MIGRATION)
        self._rmap_remove(page, va)
        page.migration_ptes.append((self, va))
        if pte.swp == PTE_PRESENT and self.subscribers:
            arch_invalidate_secondary_tlbs(self, va, va + PAGE_SIZE)
        page.alloc.put_ref(page)
        return True

    def remove_migration_pte(self, src: Page, new: Page, addr: int, swp: int) -> bool:
        """``remove_migration_pte``: the migration entry for ``src`` at ``addr`` maps ``new`` now.

        ``swp`` is the new entry's kind (a device-private entry for a device
        page); the write bit is the migration entry's. The caller takes the
        entry off ``src.migration_ptes``. False if the entry is gone (zapped).
        """
        vpn = addr >> PAGE_SHIFT
        pte = self.ptes.get(vpn)
        if pte is None or pte.swp != PTE_MIGRATION or pte.page is not src:
            return False
        self.ptes[vpn] = Pte(new, pte.writable, swp)
        page_ref_inc(new, "get_page")
        new.rmap.append((self, addr))
        return True

    def _rmap_remove(self, page: Page, addr: int) -> None:
        self.k.event("page_remove_rmap", page.oid, True)  # the frame's reverse map and owner (R3)
        rmap = page.rmap
        for i, (mm, a) in enumerate(rmap):
            if mm is self and a == addr:
                del rmap[i]
                break
        if page.owner is self and rmap:
            # R3: the remaining mapper owns the page now.
            page.owner = rmap[0][0]

    def munmap(self, addr: int, length: int) -> None:
        """``munmap``: remove the mappings of ``[addr, addr+length)`` (R1, R5, R6: UNMAP)."""
        if addr & (PAGE_SIZE - 1) or length <= 0:
            raise EINVAL(f"munmap({addr:#x}, {length})")
        end = addr + _page_align(length)
        self.mmap_lock.down_write()
        try:
            self.k.point("munmap", self.oid, True)
            rng = MmuNotifierRange(self, addr, end, MmuNotifyEvent.UNMAP)
            invalidate_range_start(rng)
            self._zap(addr, end)
            for v in self._vmas_in(addr, end):
                self.vmas.remove(v)
                if v.shmem is not None:
                    v.shmem.put_user()
            invalidate_range_end(rng)
        finally:
            self.mmap_lock.up_write()

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """``mprotect``: change the protection of whole VMAs in the range (R6: PROTECTION_VMA)."""
        if addr & (PAGE_SIZE - 1) or length <= 0:
            raise EINVAL(f"mprotect({addr:#x}, {length})")
        end = addr + _page_align(length)
        self.mmap_lock.down_write()
        try:
            self.k.point("mprotect", self.oid, True)
            vmas = self._vmas_in(addr, end)
            covered = sum(v.end - v.start for v in vmas)
            if covered != end - addr:
                raise EFAULT(f"mprotect: [{addr:#x}, {end:#x}) is not fully mapped")
            rng = MmuNotifierRange(self, addr, end, MmuNotifyEvent.PROTECTION_VMA)
            invalidate_range_start(rng)
            for v in vmas:
                v.prot = prot
                if not prot & PROT_WRITE:
                    for vpn in range(v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT):
                        pte = self.ptes.get(vpn)
                        if pte is not None:
                            pte.writable = False
            if self.subscribers and not prot & PROT_WRITE:
                arch_invalidate_secondary_tlbs(self, addr, end)  # change_protection's TLB flush (R10)
            invalidate_range_end(rng)
        finally:
            self.mmap_lock.up_write()

    def madvise(self, addr: int, length: int, advice: int) -> None:
        """``madvise(MADV_DONTNEED)``: drop the pages, keep the VMAs (R6: CLEAR)."""
        if advice != MADV_DONTNEED:
            # A model limit, not the kernel's answer (it accepts MADV_FREE, ...).
            raise NotImplementedError(f"madvise: advice {advice} is not modelled (only MADV_DONTNEED)")
        end = addr + _page_align(length)
        self.mmap_lock.down_read()
        try:
            self.k.point("madvise", self.oid, True)
            rng = MmuNotifierRange(self, addr, end, MmuNotifyEvent.CLEAR)
            invalidate_range_start(rng)
            self._zap(addr, end)
            invalidate_range_end(rng)
        finally:
            self.mmap_lock.up_read()

    # ------------------------------------------------------------------ faults

    def handle_mm_fault(self, addr: int, write: bool, flags: int = 0) -> Pte:
        """``handle_mm_fault``: make ``addr`` accessible for the access, or raise EFAULT (R2-R4, R7).

        The caller holds ``mmap_lock`` (R1). A driver mapping runs its
        ``vm_ops->fault``; after ``VM_FAULT_RETRY`` (the handler dropped
        ``mmap_lock``) this raises :class:`VmFaultRetry`.
        """
        lockdep_assert_held(self.mmap_lock)
        self.k.point("handle_mm_fault", self.oid, True)
        vma = self.find_vma(addr)
        if vma is None:
            raise EFAULT(f"{self.name}: no mapping at {addr:#x}")
        if write and not vma.prot & PROT_WRITE:
            raise EFAULT(f"{self.name}: write to read-only {addr:#x}")
        if not write and not vma.prot & PROT_READ:
            raise EFAULT(f"{self.name}: read of inaccessible {addr:#x}")
        vpn = addr >> PAGE_SHIFT
        va = vpn << PAGE_SHIFT
        pte = self.ptes.get(vpn)
        while pte is not None and pte.swp != PTE_PRESENT:
            self._do_swap_page(va, pte)
            # The page tables again, after do_swap_page's waits: a read (R16); what follows declares its writes.
            self.k.event("handle_mm_fault", self.oid, False)
            pte = self.ptes.get(vpn)
        if pte is None and vma.vm_ops is not None:
            return self._driver_fault(vma, va, write, flags)
        if pte is None:
            if vma.shmem is not None:
                page = vma.shmem.find_or_alloc(vma.pgoff + ((va - vma.start) >> PAGE_SHIFT), self.alloc)
                page_ref_inc(page, "filemap_fault")
            else:
                page = self.alloc.alloc_page(GFP_KERNEL, self)
            # set_pte_at under the page-table lock: the allocation above was a scheduling point, so
            # this step declares the tables it writes (another reader of mmap_lock may fault too).
            self.k.event("set_pte_at", self.oid, True)
            page.rmap.append((self, va))
            pte = self.ptes[vpn] = Pte(page, bool(vma.prot & PROT_WRITE) and (vma.shared or write))
            return pte
        if write and not pte.writable:
            self.k.event("do_wp_page", pte.page.oid, False)  # the frame's reverse map (page R7)
            if vma.shared or len(pte.page.rmap) == 1:
                self.k.event("do_wp_page", self.oid, True)  # under the page-table lock: the entry (R16)
                pte.writable = True  # do_wp_page: reuse, the writer is the only mapper
            else:
                self._wp_page_copy(va, pte)
        return pte

    def _do_swap_page(self, va: int, pte: Pte) -> None:
        """``do_swap_page`` for the non-present entries of R11 (the caller holds ``mmap_lock``).

        The entry is first checked to be still in place (``pte_same``: a
        migration may have replaced it, and freed its page, meanwhile). A
        device-private entry: the page's ``dev_pagemap`` owner migrates it
        back to system memory (``pgmap->ops->migrate_to_ram``), with the
        page locked by this fault and a reference taken while the entry
        still pins it (a page someone else has locked: wait for it and
        retry; the kernel returns and faults again). A migration entry: wait until the migration unlocks
        the page (``migration_entry_wait_on_locked``: queued in the step of
        the ``pte_same`` check, no page reference, ``page_lock`` R9). Either
        way the caller looks the PTE up again.
        """
        page = pte.page
        self.k.point("do_swap_page", page.oid, True, f"{va:#x}")
        self.k.event("do_swap_page", self.oid, False)  # pte_same(), under the page-table lock
        if self.ptes.get(va >> PAGE_SHIFT) is not pte:
            return  # the entry changed meanwhile (the migration it waited for is done): fault again
        if pte.swp == PTE_MIGRATION:
            migration_entry_wait_on_locked(page)  # queued in this step, under the page-table lock
            return
        pgmap = getattr(page.alloc, "pgmap", None)
        if pgmap is None:
            raise UsageError(f"{self.name}: a device-private entry at {va:#x} whose page has no dev_pagemap")
        # Still under the page-table lock of the pte_same() check: trylock and reference atomically.
        if not trylock_page_atomic(page):
            # The kernel returns and faults again at once; the model sleeps until the holder
            # unlocks (page_lock R7: no polling loop), queued in this step (R9), no reference.
            migration_entry_wait_on_locked(page)
            return
        page_ref_inc(page, "get_page")  # the fault's reference while the owner migrates it
        try:
            pgmap.migrate_to_ram(self, va, page)
        finally:
            unlock_page(page)
            page.alloc.put_ref(page)

    def _driver_fault(self, vma: Vma, va: int, write: bool, flags: int) -> Pte:
        """``__do_fault``: ``vma->vm_ops->fault`` under ``mmap_lock`` (R7, R14)."""
        assert vma.vm_ops is not None
        vmf = VmFault(self, vma, va, vma.pgoff + ((va - vma.start) >> PAGE_SHIFT),
                      flags | (FAULT_FLAG_WRITE if write else 0))
        ret = vma.vm_ops.fault(vmf)
        if ret & VM_FAULT_RETRY:
            if not flags & FAULT_FLAG_ALLOW_RETRY:
                raise UsageError(f"{type(vma.vm_ops).__name__}.fault returned VM_FAULT_RETRY without ALLOW_RETRY")
            if self.k.lockdep.is_held(self.mmap_lock.dep_map):
                raise UsageError(f"{type(vma.vm_ops).__name__}.fault returned VM_FAULT_RETRY holding mmap_lock")
            raise VmFaultRetry(f"{self.name}: fault at {va:#x} to retry")
        if not ret & VM_FAULT_NOPAGE or vmf.page is None:
            raise EFAULT(f"{self.name}: {type(vma.vm_ops).__name__}.fault at {va:#x} returned {ret:#x}")
        self.k.point("vmf_insert_page", self.oid, True)
        pte = self.ptes.get(va >> PAGE_SHIFT)
        if pte is not None:
            return pte  # another thread's fault inserted it first
        page = vmf.page
        page_ref_inc(page, "get_page")
        self.k.event("page_add_file_rmap", page.oid, True)
        page.rmap.append((self, va))
        pte = self.ptes[va >> PAGE_SHIFT] = Pte(page, bool(vma.prot & PROT_WRITE))
        return pte

    def do_user_addr_fault(self, addr: int, write: bool) -> Pte:
        """``do_user_addr_fault`` (arch fault entry): ``mmap_lock`` for read, fault, retry (R8)."""
        flags = FAULT_FLAG_ALLOW_RETRY
        while True:
            self.mmap_lock.down_read()
            try:
                pte = self.handle_mm_fault(addr, write, flags)
            except VmFaultRetry:
                flags |= FAULT_FLAG_TRIED  # the handler released mmap_lock
                continue
            except BaseException:
                self.mmap_lock.up_read()
                raise
            self.mmap_lock.up_read()
            return pte

    def zap_vm_ops(self, vm_ops: VmOperations) -> int:
        """``unmap_mapping_range`` on this mm: zap the PTEs of every VMA of ``vm_ops`` (R15)."""
        n = 0
        self.k.point("unmap_mapping_range", self.oid, True)
        for v in list(self.vmas):
            if v.vm_ops is not vm_ops:
                continue
            rng = MmuNotifierRange(self, v.start, v.end, MmuNotifyEvent.CLEAR)
            invalidate_range_start(rng)
            n += self._zap(v.start, v.end)
            invalidate_range_end(rng)
        return n

    def _wp_page_copy(self, va: int, pte: Pte) -> None:
        """``wp_page_copy``: give this mm its own copy of a COW-shared page (R3)."""
        old = pte.page
        new = self.alloc.alloc_page(GFP_KERNEL, self)
        # copy_user_highpage: the old frame's contents, read; the new frame's, written (page R7)
        self.k.event("page_read", contents_oid(old.oid), False)
        self.k.event("page_write", contents_oid(new.oid), True)
        if old.data is not None:
            new.data = dict(old.data)
        rng = MmuNotifierRange(self, va, va + PAGE_SIZE, MmuNotifyEvent.CLEAR)
        invalidate_range_start(rng)
        self.k.event("wp_page_copy", self.oid, True)  # under the page-table lock: the step writes the tables
        if self.ptes.get(va >> PAGE_SHIFT) is not pte or pte.page is not old or pte.writable:
            # pte_same() failed under the page-table lock: another thread (a
            # concurrent fault, get_user_pages) already broke COW; drop the copy.
            invalidate_range_end(rng)
            self.alloc.put_ref(new)
            return
        pte.page = new
        pte.writable = True
        new.rmap.append((self, va))
        self._rmap_remove(old, va)
        if self.subscribers:
            # ptep_clear_flush_notify: the secondary TLBs drop the old page before it can go (R10).
            arch_invalidate_secondary_tlbs(self, va, va + PAGE_SIZE)
        self.alloc.put_ref(old)
        invalidate_range_end(rng)

    # ------------------------------------------------------------------ fork / exit

    def dup_mmap(self, child_name: str) -> MmStruct:
        """``dup_mmap`` (fork): a child address space sharing private pages copy-on-write (R3)."""
        child = MmStruct(child_name, self.alloc)
        self.mmap_lock.down_write()
        try:
            self.k.point("fork", self.oid, True)
            if self.dead:
                raise EFAULT("fork of an exited mm")
            child._next_addr = self._next_addr
            for v in self.vmas:
                if v.shmem is not None:
                    v.shmem.users += 1
                child.vmas.append(Vma(v.start, v.end, v.prot, v.shmem, v.pgoff, v.vm_ops))
                if v.vm_ops is not None:
                    if child not in v.vm_ops.i_mmap:
                        v.vm_ops.i_mmap.append(child)
                    continue  # R7: a driver mapping's PTEs fault again in the child
                lo, hi = v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT
                vpns = [n for n in range(lo, hi) if n in self.ptes] if hi - lo <= len(self.ptes) else \
                    sorted(n for n in self.ptes if lo <= n < hi)
                if not vpns:
                    continue
                rng = None
                if v.shmem is None:
                    rng = MmuNotifierRange(self, v.start, v.end, MmuNotifyEvent.PROTECTION_PAGE)
                    invalidate_range_start(rng)
                for vpn in vpns:
                    pte = self.ptes[vpn]
                    page = pte.page
                    va = vpn << PAGE_SHIFT
                    if pte.swp != PTE_PRESENT:
                        self._copy_nonpresent_pte(child, vpn, pte, cow=v.shmem is None)
                        continue
                    if v.shmem is not None:
                        page_ref_inc(page, "copy_present_pte")
                        page.rmap.append((child, va))
                        child.ptes[vpn] = Pte(page, pte.writable)
                        continue
                    page_count_observe(page, "page_maybe_dma_pinned")
                    if page.pincount:
                        # page_needs_cow_for_dma: the child gets its copy now.
                        cp = self.alloc.alloc_page(GFP_KERNEL, child)
                        # copy_user_highpage: the pinned frame's contents, read; the copy's, written (page R7)
                        self.k.event("page_read", contents_oid(page.oid), False)
                        self.k.event("page_write", contents_oid(cp.oid), True)
                        if page.data is not None:
                            cp.data = dict(page.data)
                        cp.rmap.append((child, va))
                        child.ptes[vpn] = Pte(cp, bool(v.prot & PROT_WRITE))
                    else:
                        page_ref_inc(page, "copy_present_pte")
                        page.rmap.append((child, va))
                        pte.writable = False
                        child.ptes[vpn] = Pte(page, False)
                if rng is not None:
                    if self.subscribers:
                        arch_invalidate_secondary_tlbs(self, v.start, v.end)  # the write-protect flush (R10)
                    invalidate_range_end(rng)
            return child
        finally:
            self.mmap_lock.up_write()

    def _copy_nonpresent_pte(self, child: MmStruct, vpn: int, pte: Pte, *, cow: bool) -> None:
        """``copy_nonpresent_pte``: fork of a device-private or migration entry (R13).

        Runs in fork's step under the parent's page-table lock; the frame's
        reverse maps are declared written here, its reference count by
        ``page_ref_inc`` (page R6).
        """
        page = pte.page
        va = vpn << PAGE_SHIFT
        self.k.event("copy_nonpresent_pte", page.oid, True)
        if cow and pte.writable:
            pte.writable = False  # make_readable_*_entry: the parent's entry, read-only from now on
        if pte.swp == PTE_DEVICE_PRIVATE:
            page_ref_inc(page, "folio_get")  # the child's mapping holds the device page too
            page.rmap.append((child, va))  # folio_try_dup_anon_rmap_pte
        else:
            page.migration_ptes.append((child, va))  # found by remove_migration_ptes' rmap walk
        child.ptes[vpn] = Pte(page, pte.writable, pte.swp)

    def exit_mmap(self) -> None:
        """``exit_mmap``: tear the address space down (R5, R6: RELEASE).

        Subscribers with a ``release(mm)`` method get it first
        (``mmu_notifier_release``), then every subscriber sees one RELEASE
        bracket over the whole address space while the pages are unmapped;
        then the subscriber list is emptied.
        """
        self.mmap_lock.down_write()
        try:
            self.k.point("exit_mmap", self.oid, True)
            if self.dead:
                return
            for sub in list(self.subscribers):
                rel = getattr(sub, "release", None)
                if rel is not None:
                    rel(self)
            rng = MmuNotifierRange(self, 0, TASK_SIZE, MmuNotifyEvent.RELEASE)
            invalidate_range_start(rng)
            self._zap(0, TASK_SIZE)
            # free_pgtables -> unlink_anon_vmas: the anon_vma lock, for write (R12).
            self.anon_vma_lock.down_write()
            self.anon_vma_lock.up_write()
            for v in self.vmas:
                if v.shmem is not None:
                    v.shmem.put_user()
            self.vmas.clear()
            self.dead = True
            invalidate_range_end(rng)
            self.subscribers.clear()
        finally:
            self.mmap_lock.up_write()

    def oom_reap(self) -> bool:
        """``__oom_reap_task_mm``: free the private memory of a dying address space without sleeping.

        Takes ``mmap_lock`` with a trylock only (False if busy); each private
        VMA is unmapped inside a *non-blockable* ``UNMAP`` range: a subscriber
        refusing with ``EAGAIN`` leaves that VMA alone (notifier_hooks R3).
        Returns True when every VMA was reaped.
        """
        if not self.mmap_lock.down_read_trylock():
            return False
        done = True
        try:
            self.k.point("oom_reap", self.oid, True)
            for v in list(self.vmas):
                if v.shmem is not None:
                    continue
                rng = MmuNotifierRange(self, v.start, v.end, MmuNotifyEvent.UNMAP, blockable=False)
                try:
                    invalidate_range_start(rng)
                except EAGAIN:
                    done = False
                    continue
                self._zap(v.start, v.end)
                invalidate_range_end(rng)
        finally:
            self.mmap_lock.up_read()
        return done

    def oom_reap_task(self, retries: int = 10) -> bool:
        """``oom_reap_task``: ``__oom_reap_task_mm`` up to ``retries`` times (``MAX_OOM_REAP_RETRIES``).

        Between attempts the reaper sleeps ``HZ/10`` (``schedule_timeout_idle``);
        a subscriber that answered ``EAGAIN`` gets another chance. Returns
        True once every private VMA was reaped, False when it gave up (the
        kernel logs "oom_reaper: unable to reap pid" and sets ``MMF_OOM_SKIP``).
        """
        for attempt in range(retries):
            if self.oom_reap():
                return True
            if attempt + 1 < retries:
                self.k.msleep(100)
        return False

    # ------------------------------------------------------------------ user access

    def _access(self, addr: int, write: bool) -> Pte:
        """The PTE for a user access, faulting (under ``mmap_lock`` for read) as needed."""
        pte = self.ptes.get(addr >> PAGE_SHIFT)
        if pte is not None and pte.swp == PTE_PRESENT and (pte.writable or not write):
            vma = self.find_vma(addr)
            if vma is not None and vma.prot & (PROT_WRITE if write else PROT_READ):
                return pte
        return self.do_user_addr_fault(addr, write)

    def write(self, addr: int, value: object) -> None:
        """A user store of ``value`` at ``addr`` (faulting, breaking COW as needed; R4: EFAULT)."""
        self.k.point("user_write", self.oid, True, f"{addr:#x}")
        pte = self._access(addr, True)
        pte.page.write(addr & (PAGE_SIZE - 1), value)

    def read(self, addr: int) -> object:
        """A user load from ``addr`` (R4: EFAULT)."""
        self.k.point("user_read", self.oid, True, f"{addr:#x}")
        pte = self._access(addr, False)
        return pte.page.read(addr & (PAGE_SIZE - 1))


class Process:
    """A user process: a name and an address space (``struct task_struct`` + its ``mm``).

    The user-facing calls are the system calls: :meth:`mmap`, :meth:`munmap`,
    :meth:`mprotect`, :meth:`madvise`, :meth:`fork`, :meth:`exit`, plus
    :meth:`read` / :meth:`write` for loads and stores.
    """

    def __init__(self, name: str = "proc", *, mm: MmStruct | None = None) -> None:
        self.k = current_kernel()
        self.name = name
        self.mm = mm if mm is not None else MmStruct(name)
        self.exited = False

    def __repr__(self) -> str:
        return f"<Process {self.name} {self.mm!r}>"

    def mmap(self, length: int, prot: int = PROT_READ | PROT_WRITE, *, shared: bool = False,
             addr: int | None = None, vm_ops: VmOperations | None = None) -> int:
        """``mmap``: see :meth:`MmStruct.mmap` (``vm_ops``: a driver's mapping, R7)."""
        return self.mm.mmap(length, prot, shared=shared, addr=addr, vm_ops=vm_ops)

    def munmap(self, addr: int, length: int) -> None:
        self.mm.munmap(addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        self.mm.mprotect(addr, length, prot)

    def madvise(self, addr: int, length: int, advice: int = MADV_DONTNEED) -> None:
        self.mm.madvise(addr, length, advice)

    def fork(self, name: str | None = None) -> Process:
        """``fork``: a child process with a copy-on-write copy of the address space."""
        child_name = name or f"{self.name}-child"
        return Process(child_name, mm=self.mm.dup_mmap(child_name))

    def exit(self) -> None:
        """``do_exit``: tear down the address space."""
        if self.exited:
            raise UsageError(f"process {self.name} exited twice")
        self.exited = True
        self.mm.mmput()  # the process's own user reference (R7)

    def read(self, addr: int) -> object:
        return self.mm.read(addr)

    def write(self, addr: int, value: object) -> None:
        self.mm.write(addr, value)

    def populate(self, addr: int, length: int, value: object | None = None) -> None:
        """Touch every page of the range (write ``value`` at offset 0 of each when given, else read)."""
        for a in range(addr, addr + _page_align(length), PAGE_SIZE):
            if value is None:
                self.mm.read(a)
            else:
                self.mm.write(a, value)
