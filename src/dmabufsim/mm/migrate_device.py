"""Migration to and from device memory: ``migrate_vma_setup`` / ``_pages`` / ``_finalize``.

Models ``mm/migrate_device.c`` (``struct migrate_vma``,
``migrate_vma_collect``, ``migrate_vma_unmap`` / ``migrate_device_unmap``,
``migrate_vma_check_page``, ``migrate_vma_pages``,
``migrate_vma_insert_page``, ``migrate_vma_finalize``) and
``remove_migration_ptes`` of ``mm/migrate.c``. A driver migrates ``[start, end)`` of a process
in three calls, with its copy in between::

    mmap_read_lock(mm)
    args = MigrateVma(mm, start, end, MIGRATE_VMA_SELECT_SYSTEM, pgmap_owner=drv)
    migrate_vma_setup(args)           # sources locked, unmapped (migration entries)
    for i: if args.src_flags[i] & MIGRATE_PFN_MIGRATE:
        dst = alloc device page; lock_page(dst); copy src -> dst; args.dst[i] = dst
    migrate_vma_pages(args)           # the new pages take the sources' place
    migrate_vma_finalize(args)        # PTEs point at the new pages; old pages unlocked and freed
    mmap_read_unlock(mm)

Rules:

* R1 (context): every call needs ``mmap_lock`` held (read is enough).
* R2 (collect): ``setup`` runs inside one ``MIGRATE`` notifier bracket
  (``range.owner = pgmap_owner``, so a driver may recognise its own
  migration). It selects present private anonymous pages
  (``MIGRATE_VMA_SELECT_SYSTEM``) of private anonymous VMAs or
  device-private pages of ``pgmap_owner``
  (``MIGRATE_VMA_SELECT_DEVICE_PRIVATE``); an empty PTE of a private
  anonymous VMA is a *hole* that may be populated (``MIGRATE_PFN_MIGRATE``
  without a source). A page whose page lock another thread holds
  (``trylock_page`` fails) is not collected. The collection is one step
  (the kernel holds the page-table lock across it). Each selected page is
  locked (the ``fault_page`` is locked by the caller), gets a migration
  reference, and its PTE becomes a migration entry (the mapping's rmap
  entry and reference go); then the secondary TLBs are flushed
  (``notifier_hooks`` R5) before the bracket ends.
* R6 (every mapping, ``migrate_device_unmap``): after the bracket, a
  collected page still mapped elsewhere -- copy-on-write shared with a
  forked child or parent (``memory`` R13) -- is unmapped from every other
  address space through the rmap (``try_to_migrate``, ``rmap`` R4: each
  mm's own ``CLEAR`` bracket). A page then still mapped, or holding a
  reference besides the migration's and the fault's
  (``migrate_vma_check_page``: pinned, a ``get_user_pages`` reference), is
  not migrated: its migration entries are restored
  (``remove_migration_ptes(page, page)``), it is unlocked and released, and
  its ``src`` entry cleared. ``remove_migration_ptes`` (here and in R5)
  walks every migration entry of the page (``page.migration_ptes``, in every
  mm, forked children included): the migrating mm's entries in the step
  that holds its page-table lock, every other mm's under that mm's
  ``anon_vma`` lock (``rmap_walk``; the migrating mm's own ``mmap_lock``
  already keeps its ``exit_mmap`` away).
* R3 (copy window): between ``setup`` and ``pages`` the sources are locked
  and unmapped: a CPU access waits (``memory.py`` R11), so a copy made in
  this window is the page's last contents. Destination pages must be
  locked by the driver (an unlocked one is an ``assertion`` finding when
  ``finalize`` unlocks it).
* R4 (pages): an entry migrates only if its migration entry is still in
  place (an unmap meanwhile cancels it); a hole is populated only if its
  PTE is still empty.
* R5 (finalize): each migration entry of a source, in every mm (R6),
  becomes a PTE to the new page (a device-private entry for device memory,
  the entry's write bit kept) or back to the source when the entry did not
  migrate; then the sources are unlocked and their migration
  references dropped (a migrated source frees here: clear PTE -> flush ->
  free, as every unmap), and the destinations unlocked and the driver's
  references dropped.
* R7 (what ``pages`` declares): ``migrate_vma_pages`` only reads the
  page tables (``__migrate_device_pages`` moves each source's mapping and
  flags to its destination, ``folio_migrate_mapping``, and leaves the PTEs
  to ``finalize``): its step declares a read of the address space, and a
  write only where it fills a hole (``migrate_vma_insert_page`` takes the
  page-table lock and sets the PTE). So it commutes with a concurrent
  ``hmm_range_fault`` walk or fault that only reads the same tables.
"""

from __future__ import annotations

from ..kernel.errors import UsageError
from ..kernel.lockdep_map import lockdep_assert_held
from .memory import PTE_DEVICE_PRIVATE, PTE_MIGRATION, PTE_PRESENT, MmStruct, Pte
from .memremap import is_device_private_page, page_pgmap
from .notifier_hooks import (
    MmuNotifierRange,
    MmuNotifyEvent,
    arch_invalidate_secondary_tlbs,
    invalidate_range_end,
    invalidate_range_start,
)
from .page import PAGE_SHIFT, PAGE_SIZE, Page, page_count_observe, page_ref_inc
from .page_lock import PageLocked, trylock_page_atomic, unlock_page
from .rmap import try_to_migrate

#: ``MIGRATE_PFN_VALID``: ``src[i]`` is a page.
MIGRATE_PFN_VALID = 1 << 0
#: ``MIGRATE_PFN_MIGRATE``: the entry may migrate.
MIGRATE_PFN_MIGRATE = 1 << 1
#: ``MIGRATE_PFN_WRITE``: the PTE was writable.
MIGRATE_PFN_WRITE = 1 << 3
#: ``MIGRATE_VMA_SELECT_SYSTEM``: migrate system memory pages (to the device).
MIGRATE_VMA_SELECT_SYSTEM = 1 << 0
#: ``MIGRATE_VMA_SELECT_DEVICE_PRIVATE``: migrate the owner's device pages (to system memory).
MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1


class MigrateVma:
    """``struct migrate_vma``: the range, what to select, and the ``src`` / ``dst`` arrays."""

    __slots__ = ("cpages", "dst", "end", "fault_page", "flags", "mm", "pgmap_owner", "src", "src_flags", "start")

    def __init__(self, mm: MmStruct, start: int, end: int, flags: int, *, pgmap_owner: object = None,
                 fault_page: Page | None = None) -> None:
        if start & (PAGE_SIZE - 1) or end & (PAGE_SIZE - 1) or end <= start:
            raise UsageError(f"migrate_vma: bad range [{start:#x}, {end:#x})")
        self.mm = mm
        self.start = start
        self.end = end
        self.flags = flags
        self.pgmap_owner = pgmap_owner
        self.fault_page = fault_page
        n = (end - start) >> PAGE_SHIFT
        #: Source pages (None: a hole or not selected).
        self.src: list[Page | None] = [None] * n
        #: ``MIGRATE_PFN_*`` flags of each source entry.
        self.src_flags = [0] * n
        #: Destination pages the driver fills in between setup and pages.
        self.dst: list[Page | None] = [None] * n
        #: Entries collected (``args->cpages``).
        self.cpages = 0

    def addr(self, i: int) -> int:
        return self.start + (i << PAGE_SHIFT)


def _selectable(args: MigrateVma, pte: Pte, va: int) -> bool:
    page = pte.page
    if pte.swp == PTE_PRESENT:
        if not args.flags & MIGRATE_VMA_SELECT_SYSTEM or is_device_private_page(page):
            return False
        vma = args.mm.find_vma(va)
        return vma is not None and vma.shmem is None and vma.vm_ops is None
    if pte.swp == PTE_DEVICE_PRIVATE:
        pgmap = page_pgmap(page)
        return bool(args.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) and pgmap is not None \
            and pgmap.owner is args.pgmap_owner
    return False


def migrate_vma_setup(args: MigrateVma) -> None:
    """``migrate_vma_setup``: collect, lock and unmap the sources (R1, R2)."""
    mm = args.mm
    k = mm.k
    lockdep_assert_held(mm.mmap_lock)
    k.point("migrate_vma_setup", mm.oid, True, f"{args.start:#x}")
    rng = MmuNotifierRange(mm, args.start, args.end, MmuNotifyEvent.MIGRATE, owner=args.pgmap_owner)
    invalidate_range_start(rng)
    k.event("migrate_vma_collect", mm.oid, True)  # the page tables, under the PTE lock
    cleared = False
    for i in range(len(args.src)):
        va = args.addr(i)
        vpn = va >> PAGE_SHIFT
        pte = mm.ptes.get(vpn)
        if pte is None:
            vma = mm.find_vma(va)
            if args.flags & MIGRATE_VMA_SELECT_SYSTEM and vma is not None and vma.shmem is None:
                args.src_flags[i] = MIGRATE_PFN_MIGRATE  # a hole: the driver may populate it
                args.cpages += 1
            continue
        if not _selectable(args, pte, va):
            continue
        page = pte.page
        # Under the page-table lock (the whole collection is one step): a trylock, never a sleep.
        if page is not args.fault_page and not trylock_page_atomic(page):
            continue  # someone else holds it (another migration, a fault): not this time
        page_ref_inc(page, "folio_get")  # the migration reference
        k.event("migrate_vma_unmap", page.oid, True)
        mm.ptes[vpn] = Pte(page, pte.writable, PTE_MIGRATION)
        mm._rmap_remove(page, va)
        page.migration_ptes.append((mm, va))
        page.alloc.put_ref(page)  # the mapping's reference; the migration reference holds the page
        args.src[i] = page
        args.src_flags[i] = MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | (MIGRATE_PFN_WRITE if pte.writable else 0)
        args.cpages += 1
        cleared = True
    if cleared and mm.subscribers:
        arch_invalidate_secondary_tlbs(mm, args.start, args.end)
    invalidate_range_end(rng)
    _migrate_device_unmap(args)


def _check_page(page: Page, fault_page: Page | None) -> bool:
    """``migrate_vma_check_page``: no reference left but the migration's (and the fault's) (R6)."""
    page_count_observe(page, "migrate_vma_check_page")
    extra = 1 + (page is fault_page)
    return page.refcount - extra <= len(page.rmap)


def _migrate_device_unmap(args: MigrateVma) -> None:
    """``migrate_device_unmap``: unmap the collected pages from every other mm, or give them back (R6)."""
    k = args.mm.k
    for i, page in enumerate(args.src):
        if page is None:
            continue
        k.event("migrate_device_unmap", page.oid, False)  # folio_mapped: the frame's rmap
        if page.rmap:
            try_to_migrate(page)  # mapped in other address spaces too (a forked child, a parent)
            k.event("migrate_vma_check_page", page.oid, False)
        if not page.rmap and _check_page(page, args.fault_page):
            continue
        k.event("migrate_vma_restore", args.mm.oid, True)  # the migrating mm's tables, as in finalize
        remove_migration_ptes(args.mm, page, page)
        args.src[i] = None
        args.src_flags[i] = 0
        if page is not args.fault_page:
            unlock_page(page)
        page.alloc.put_ref(page)  # the migration reference


def remove_migration_ptes(mm: MmStruct, src: Page, new: Page) -> None:
    """``remove_migration_ptes(src, new)``: every migration entry of ``src`` maps ``new`` (R5, R6).

    ``mm`` is the migrating address space: the caller's step declares its
    page tables; every other mm's entries are restored one by one under that
    mm's ``anon_vma`` lock (``rmap_walk``). An entry a ``fork`` copies
    meanwhile joins ``src.migration_ptes`` and is restored too (the walk
    meets the child after the parent, as the anon_vma chain orders them).
    """
    k = mm.k
    swp = PTE_DEVICE_PRIVATE if is_device_private_page(new) else PTE_PRESENT
    k.event("remove_migration_ptes", new.oid, True)
    if new is not src:
        k.event("remove_migration_ptes", src.oid, True)
    mig = src.migration_ptes
    i = 0
    while i < len(mig):
        m, va = mig[i]
        if m is mm:
            del mig[i]
            mm.remove_migration_pte(src, new, va, swp)
        else:
            i += 1
    while mig:
        other, va = mig[0]
        assert isinstance(other, MmStruct)
        other.anon_vma_lock.down_read()  # rmap_walk_anon (memory R12)
        try:
            k.point("remove_migration_pte", other.oid, True)  # under that mm's page-table lock
            k.event("remove_migration_ptes", src.oid, True)
            if new is not src:
                k.event("remove_migration_ptes", new.oid, True)
            if mig and mig[0][0] is other and mig[0][1] == va:
                del mig[0]
                other.remove_migration_pte(src, new, va, swp)
        finally:
            other.anon_vma_lock.up_read()


def migrate_vma_pages(args: MigrateVma) -> None:
    """``migrate_vma_pages``: the destinations take the sources' place (R4)."""
    mm = args.mm
    k = mm.k
    lockdep_assert_held(mm.mmap_lock)
    # R7: the page tables are read (is each migration entry still in place?); only a hole's
    # insertion writes them, declared where it happens.
    k.point("migrate_vma_pages", mm.oid, False, f"{args.start:#x}")
    for i, src in enumerate(args.src):
        if not args.src_flags[i] & MIGRATE_PFN_MIGRATE:
            continue
        dst = args.dst[i]
        vpn = args.addr(i) >> PAGE_SHIFT
        pte = mm.ptes.get(vpn)
        if dst is None:
            args.src_flags[i] &= ~MIGRATE_PFN_MIGRATE
        elif src is None:
            if pte is not None:
                args.src_flags[i] &= ~MIGRATE_PFN_MIGRATE  # populated meanwhile
                continue
            # migrate_vma_insert_page: the hole becomes the new page (under the page-table lock).
            k.event("migrate_vma_insert_page", mm.oid, True)
            k.event("migrate_vma_insert_page", dst.oid, True)
            swp = PTE_DEVICE_PRIVATE if is_device_private_page(dst) else PTE_PRESENT
            mm.ptes[vpn] = Pte(dst, True, swp)
            page_ref_inc(dst, "get_page")
            dst.rmap.append((mm, args.addr(i)))
        elif pte is None or pte.swp != PTE_MIGRATION or pte.page is not src:
            args.src_flags[i] &= ~MIGRATE_PFN_MIGRATE  # unmapped meanwhile


def migrate_vma_finalize(args: MigrateVma) -> None:
    """``migrate_vma_finalize``: new PTEs, then unlock and release both sides (R3, R5)."""
    mm = args.mm
    k = mm.k
    lockdep_assert_held(mm.mmap_lock)
    k.point("migrate_vma_finalize", mm.oid, True, f"{args.start:#x}")
    for i, src in enumerate(args.src):
        dst = args.dst[i]
        k.event("migrate_vma_finalize", mm.oid, True)  # the page tables (unlock_page below is a point)
        if src is not None:
            migrated = bool(args.src_flags[i] & MIGRATE_PFN_MIGRATE) and dst is not None
            new = dst if migrated and dst is not None else src
            remove_migration_ptes(mm, src, new)
            if src is not args.fault_page:
                unlock_page(src)
            src.alloc.put_ref(src)  # the migration reference: a migrated source frees here
        if dst is not None:
            if not PageLocked(dst):
                k.report(
                    "assertion",
                    "BUG: migrate_vma_finalize of an unlocked destination page",
                    details={"pfn": dst.pfn, "addr": f"{args.addr(i):#x}"},
                    rule="migrate_device R3: destination pages are locked by the driver",
                    signature="migrate-dst-unlocked",
                )
            else:
                unlock_page(dst)
            dst.alloc.put_ref(dst)  # the driver's allocation reference
