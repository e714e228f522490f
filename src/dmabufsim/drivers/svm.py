"""A modern SVM driver: ``drm_gpusvm`` + ``xe_svm`` / amdgpu SVM, reduced to what coherence depends on.

The GPU shares the process's address space: a GPU access at a user
address that has no GPU PTE is a recoverable page fault
(``device.py`` R7) that the driver services on its fault thread
(``xe_svm_handle_pagefault``): find or create the *range* around the
address (``drm_gpusvm_range_find_or_insert``, an interval notifier per
range), migrate it to VRAM if it is not there (``drm_pagemap`` /
``xe_svm_alloc_vram``: ``migrate_vma_setup`` / ``_pages`` / ``_finalize``,
evicting another range back to system memory when VRAM is full), get its
pages with ``hmm_range_fault`` and program the GPU PTEs under the notifier
lock after ``mmu_interval_read_retry`` (``drm_gpusvm_range_get_pages``,
the ``Documentation/mm/hmm.rst`` pattern). The notifier
(``drm_gpusvm_notifier_invalidate`` -> ``xe_svm_invalidate``) zaps the
GPU PTEs, flushes the GPU TLB and removes the DMA mappings of the
invalidated part under the notifier lock; an ``UNMAP`` marks the range
unmapped and hands it to the garbage collector thread
(``xe_svm_garbage_collector``), which removes the interval notifier and
frees the range -- never from the callback itself. The CPU touching a
page that lives in VRAM faults it back (``dev_pagemap_ops.migrate_to_ram``
-> ``drm_gpusvm_migrate_to_ram``).

Rules:

* R1 (sequence): GPU PTEs are programmed, and the pages DMA-mapped, only
  under the notifier lock after ``read_retry`` said no invalidation
  touched the range since ``hmm_range_fault`` looked its pages up.
* R2 (invalidation): when ``invalidate`` returns, the GPU can no longer
  reach the invalidated pages: PTEs zapped, GPU TLB flushed, IOMMU
  entries unmapped and synced (and the VRAM aperture entries removed).
* R3 (garbage collection): an unmapped range is removed by the garbage
  collector (or by the next fault, first), which calls
  ``mmu_interval_notifier_remove`` outside every callback.
* R4 (migration): data moves only inside the migration window (sources
  locked and unmapped, ``migrate_device.py`` R3), by the device's copy
  engine; destination pages are locked before ``migrate_vma_pages``.
  A migration moves data, not ownership: the destination frame belongs to
  the process that owned the source (``_data_owner``; after ``fork`` the
  parent, as an anonymous page's frame does until copy-on-write or an
  unmap moves it, memory R3), whichever process's fault or driver moved
  it. Only a source with no owning process (a range never populated) gets
  the migrating mm.
* R5 (eviction): VRAM is a fixed pool; when a range needs more pages
  than are free, the least recently faulted range in VRAM is migrated
  back to system memory first (``drm_pagemap_evict_to_ram``).
* R6 (locks): ``svm_lock`` (``vm->lock``) serialises the fault handler and
  the garbage collector; the notifier takes only ``notifier_lock``; no
  allocation happens under ``notifier_lock``.

The classic mistakes are subclasses that change one step:
:class:`NoRetrySvmDriver` (PTEs programmed without re-checking the
sequence), :class:`CopyUnlockedSvmDriver` (data copied before the pages
are locked and unmapped), :class:`NotifierTeardownSvmDriver` (the range
torn down from the notifier callback).
"""

from __future__ import annotations

from typing import Any

from ..device.device import LOCAL_MEM_BASE, Device
from ..device.iommu import DmaMapping, IommuDomain
from ..kernel.completion import Completion
from ..kernel.errors import EBUSY, EFAULT, ENOMEM, UsageError
from ..kernel.gfp import GFP_KERNEL
from ..locking.mutex import Mutex
from ..mm.hmm import HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_WRITE, HmmRange, hmm_range_fault
from ..mm.memory import MmStruct
from ..mm.memremap import DevicePagemap, DevPagemapOps, is_device_private_page
from ..mm.migrate_device import (
    MIGRATE_PFN_MIGRATE,
    MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    MIGRATE_VMA_SELECT_SYSTEM,
    MigrateVma,
    migrate_vma_finalize,
    migrate_vma_pages,
    migrate_vma_setup,
)
from ..mm.mmu_notifier import MMUIntervalNotifier, MMUIntervalNotifierOps, MMUNotifierRange
from ..mm.notifier_hooks import MmuNotifyEvent
from ..mm.page import PAGE_SHIFT, PAGE_SIZE, Page, contents_oid
from ..mm.page_lock import trylock_page

#: Lock classes (``gpusvm->notifier_lock``, ``vm->lock``).
SVM_NOTIFIER_LOCK = "gpusvm_notifier_lock"
SVM_LOCK = "gpusvm_vm_lock"


class SvmRange:
    """``struct drm_gpusvm_range``: ``[start, end)`` of the mm with its notifier and GPU mappings."""

    __slots__ = ("devmem", "end", "maps", "notifier", "start", "unmapped")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.notifier: MMUIntervalNotifier | None = None
        #: GPU VA page number -> the DMA / VRAM-aperture entry its GPU PTE points at.
        self.maps: dict[int, DmaMapping] = {}
        #: The range was last migrated to VRAM (a placement hint; HMM says where pages are).
        self.devmem = False
        #: An UNMAP invalidation hit it: only the garbage collector may touch it now.
        self.unmapped = False

    def __repr__(self) -> str:
        return f"<SvmRange [{self.start:#x}, {self.end:#x}){' devmem' if self.devmem else ''}" \
               f"{' unmapped' if self.unmapped else ''}>"


def _copy(k: Any, src: Page, dst: Page) -> None:
    """The copy engine moves one page (``xe_migrate_copy``); the step reads ``src`` and writes ``dst``."""
    k.event("page_read", contents_oid(src.oid), False)  # page R7: the contents, not the bookkeeping
    k.event("page_write", contents_oid(dst.oid), True)
    dst.data = dict(src.data) if src.data else None


class SvmDriver(MMUIntervalNotifierOps, DevPagemapOps):
    """One GPU's SVM for one process (R1-R6); see the module docstring.

    ``SvmDriver(dev, mm, vram_pages=2, range_pages=1, migrate=True)``:
    ``dev`` needs a GPU VM; ``range_pages`` is the range granularity (the
    ``chunk_sizes`` of ``drm_gpusvm_init``); ``migrate=False`` keeps every
    range in system memory. Threads: ``<dev>-svm-fault`` and
    ``<dev>-svm-gc`` (daemons); ``threads=False`` services a fault on the
    faulting thread and leaves garbage to the next fault and :meth:`fini`. Counters: ``nr_faults``, ``nr_retries``,
    ``nr_migrations``, ``nr_evictions``, ``nr_collected``.
    """

    def __init__(self, dev: Device, mm: MmStruct, *, vram_pages: int = 2, range_pages: int = 1,
                 migrate: bool = True, threads: bool = True) -> None:
        if dev.vm is None:
            raise UsageError(f"{dev.name}: an SVM device needs a GPU VM")
        if range_pages < 1:
            raise UsageError(f"range_pages must be >= 1, got {range_pages}")
        self.dev = dev
        self.vm = dev.vm
        self.mm = mm
        self.k = dev.k
        self.oid = self.k.new_oid()
        #: Separate objects for DPOR: the fault queue, the garbage list, the range list.
        self.fault_oid = self.k.new_oid()
        self.gc_oid = self.k.new_oid()
        self.ranges_oid = self.k.new_oid()
        self.range_pages = range_pages
        self.migrate = migrate
        self.notifier_lock = Mutex(f"{dev.name}.svm.notifier_lock", key=SVM_NOTIFIER_LOCK)
        self.svm_lock = Mutex(f"{dev.name}.svm.lock", key=SVM_LOCK)
        self.pgmap = DevicePagemap(f"{dev.name}.vram", vram_pages, owner=self, ops=self)
        if dev.local is None:
            dev.local = IommuDomain(f"{dev.name}.vram")
        self.ranges: list[SvmRange] = []
        self._by_notifier: dict[int, SvmRange] = {}
        #: Pending GPU faults: (va, write, completion, result slot).
        self.fault_queue: list[tuple[int, bool, Completion, list[int]]] = []
        self.gc_list: list[SvmRange] = []
        self.nr_faults = 0
        self.nr_retries = 0
        self.nr_migrations = 0
        self.nr_evictions = 0
        self.nr_collected = 0
        from ..kernel.wait import WaitQueue

        self.fault_wq = WaitQueue(f"{dev.name}.svm.faults")
        self.gc_wq = WaitQueue(f"{dev.name}.svm.gc")
        #: With ``threads=False`` (a smaller configuration for proofs) the faulting thread services
        #: its own fault and garbage waits for the next fault or :meth:`fini` (R3).
        self.threads = threads
        if threads:
            self.k.spawn(self._fault_main, name=f"{dev.name}-svm-fault", daemon=True)
            self.k.spawn(self._gc_main, name=f"{dev.name}-svm-gc", daemon=True)

    def __repr__(self) -> str:
        return f"<SvmDriver {self.dev.name} {len(self.ranges)} ranges>"

    # ------------------------------------------------------------------ the GPU side

    def gpu_access(self, va: int, write: bool, value: object = None) -> object:
        """A GPU access at user address ``va`` (run on a job's thread): faults are serviced and retried.

        Raises ``EFAULT`` when the fault handler cannot map the address
        (the job would be killed).
        """
        while True:
            ok, got = self.dev.access_recoverable(va, write, value)
            if ok:
                return got
            if not self.threads:
                self.handle_fault(va, write)
                continue
            done = Completion(f"{self.dev.name}.svm.fault")
            err: list[int] = []
            self.k.point("svm_fault_queue", self.fault_oid, True)
            self.fault_queue.append((va, write, done, err))
            self.fault_wq.wake_up()
            done.wait_for_completion()
            if err:
                raise EFAULT(f"{self.dev.name}: GPU fault at {va:#x} could not be serviced")

    def gpu_write(self, va: int, value: object) -> None:
        self.gpu_access(va, True, value)

    def gpu_read(self, va: int) -> object:
        return self.gpu_access(va, False)

    def _has_faults(self) -> bool:
        return bool(self.fault_queue)

    def _fault_main(self) -> None:
        """The fault thread (the GuC page-fault worker, ``xe_pagefault_queue_work``)."""
        while True:
            self.fault_wq.wait_event(self._has_faults, reads=self.fault_oid)
            self.k.event("svm_fault_dequeue", self.fault_oid, True)
            va, write, done, err = self.fault_queue.pop(0)
            try:
                self.handle_fault(va, write)
            except EFAULT:
                err.append(1)
            done.complete()

    # ------------------------------------------------------------------ fault handling

    def handle_fault(self, va: int, write: bool) -> None:
        """``xe_svm_handle_pagefault``: range, placement, pages, bind (R1, R3-R5)."""
        self.nr_faults += 1
        with self.svm_lock:
            self._collect_garbage()
            rng = self._find_or_insert(va)
            if self.migrate and not rng.devmem:
                self._migrate_to_vram(rng)
            self._get_pages_and_bind(rng, write)
            self.k.event("svm_lru", self.ranges_oid, True)
            self.ranges.remove(rng)
            self.ranges.append(rng)  # most recently faulted last (R5)

    def _find_or_insert(self, va: int) -> SvmRange:
        """``drm_gpusvm_range_find_or_insert``: the range around ``va``, with its interval notifier."""
        size = self.range_pages * PAGE_SIZE
        start = va - va % size
        self.k.event("svm_ranges", self.ranges_oid, True)
        for r in self.ranges:
            if r.start <= va < r.end and not r.unmapped:
                return r
        mm = self.mm
        mm.mmap_lock.down_read()
        try:
            vma = mm.find_vma(va)
            if vma is None:
                raise EFAULT(f"{self.dev.name}: GPU fault at {va:#x}: no CPU mapping")
            start = max(start, vma.start)
            end = min(start + size, vma.end)
        finally:
            mm.mmap_lock.up_read()
        rng = SvmRange(start, end)
        rng.notifier = MMUIntervalNotifier.insert(mm, start, end - start, self)
        self._by_notifier[rng.notifier.oid] = rng
        self.k.event("svm_ranges", self.ranges_oid, True)
        self.ranges.append(rng)
        return rng

    def _dma_map(self, page: Page, writable: bool) -> tuple[int, DmaMapping]:
        """``drm_gpusvm`` DMA mapping: system pages through the IOMMU, VRAM through the local aperture; each
        entry is for this driver's process (``iommu`` R6)."""
        dev = self.dev
        if is_device_private_page(page):
            local = dev.local
            assert local is not None
            addr = LOCAL_MEM_BASE + page.phys
            return addr, local.map(addr, page, writable, mm=self.mm)
        # iommu R6: the mapping is for this process, whoever owns a frame fork left shared (R4).
        iova = dev.domain.dma_map_page(page, writable, mm=self.mm)
        return iova, dev.domain.pt[iova >> PAGE_SHIFT]

    def _get_pages_and_bind(self, rng: SvmRange, write: bool) -> None:
        """``drm_gpusvm_range_get_pages`` + the bind, in the ``hmm.rst`` pattern (R1)."""
        mm = self.mm
        assert rng.notifier is not None
        flags = HMM_PFN_REQ_FAULT | (HMM_PFN_REQ_WRITE if write else 0)
        while True:
            hr = HmmRange(rng.notifier, rng.start, rng.end, flags, dev_private_owner=self)
            hr.notifier_seq = rng.notifier.read_begin()
            mm.mmap_lock.down_read()
            try:
                hmm_range_fault(hr)
            except EBUSY:
                self.nr_retries += 1
                continue
            finally:
                mm.mmap_lock.up_read()
            with self.notifier_lock:
                if self._stale(rng, hr.notifier_seq):
                    self.nr_retries += 1
                    continue
                self._bind_locked(rng, hr)
                return

    def _stale(self, rng: SvmRange, seq: int) -> bool:
        """``mmu_interval_read_retry`` under the notifier lock (R1)."""
        assert rng.notifier is not None
        return rng.notifier.read_retry(seq, self.notifier_lock)

    def _bind_locked(self, rng: SvmRange, hr: HmmRange) -> None:
        """DMA-map the snapshot's pages and program the GPU PTEs (the notifier lock held)."""
        vm = self.vm
        for i, page in enumerate(hr.pages):
            if page is None:
                continue
            va = hr.start + (i << PAGE_SHIFT)
            vpn = va >> PAGE_SHIFT
            if vpn in rng.maps:
                self._unmap_locked(rng, va, va + PAGE_SIZE)
            writable = bool(hr.hmm_pfns[i] & HMM_PFN_WRITE)
            addr, rec = self._dma_map(page, writable)
            vm.map(va, addr, writable)
            rng.maps[vpn] = rec

    def _unmap_locked(self, rng: SvmRange, start: int, end: int) -> None:
        """Zap the GPU PTEs of ``[start, end)``, flush the GPU TLB, remove the DMA mappings (R2)."""
        vm = self.vm
        vpns = sorted(v for v in rng.maps if start >> PAGE_SHIFT <= v < (end + PAGE_SIZE - 1) >> PAGE_SHIFT)
        if not vpns:
            return
        for vpn in vpns:
            vm.zap(vpn << PAGE_SHIFT)
        vm.flush_tlb()
        for vpn in vpns:
            rec = rng.maps.pop(vpn)
            rec.domain.unmap(rec.iova, 1, sync=True)

    # ------------------------------------------------------------------ the notifier (R2, R3)

    def invalidate(self, sub: MMUIntervalNotifier, range: MMUNotifierRange, cur_seq: int) -> bool:
        """``drm_gpusvm_notifier_invalidate`` -> ``xe_svm_invalidate``."""
        if not range.blockable:
            return False
        rng = self._by_notifier[sub.oid]
        with self.notifier_lock:
            sub.set_seq(cur_seq)
            self._unmap_locked(rng, max(range.start, rng.start), min(range.end, rng.end))
            if range.event is MmuNotifyEvent.UNMAP or range.event is MmuNotifyEvent.RELEASE:
                self._range_unmapped_locked(rng)
        return True

    def _range_unmapped_locked(self, rng: SvmRange) -> None:
        """``drm_gpusvm_range_set_unmapped`` + ``xe_svm_garbage_collector_add_range``: defer the teardown (R3)."""
        if not rng.unmapped:
            self.k.event("svm_range_unmapped", self.ranges_oid, True)  # read by range_find_or_insert
            rng.unmapped = True
            self.k.event("svm_gc_add", self.gc_oid, True)
            self.gc_list.append(rng)
            if self.threads:
                self.gc_wq.wake_up()

    # ------------------------------------------------------------------ garbage collection (R3)

    def _has_garbage(self) -> bool:
        return bool(self.gc_list)

    def _gc_main(self) -> None:
        while True:
            self.gc_wq.wait_event(self._has_garbage, reads=self.gc_oid)
            with self.svm_lock:
                self._collect_garbage()

    def _collect_garbage(self) -> None:
        """``xe_svm_garbage_collector``: remove every unmapped range (``svm_lock`` held)."""
        while True:
            self.k.event("svm_gc_take", self.gc_oid, True)
            if not self.gc_list:
                return
            rng = self.gc_list.pop(0)
            self._remove_range(rng)

    def _remove_range(self, rng: SvmRange) -> None:
        """``drm_gpusvm_range_remove``: notifier removed (waits for a running invalidation), mappings gone."""
        assert rng.notifier is not None
        rng.notifier.remove()
        with self.notifier_lock:
            self._unmap_locked(rng, rng.start, rng.end)
        self.k.event("svm_ranges", self.ranges_oid, True)
        if rng in self.ranges:
            self.ranges.remove(rng)
        self.nr_collected += 1

    # ------------------------------------------------------------------ migration (R4, R5)

    def _pre_copy(self, rng: SvmRange) -> dict[int, dict[int, object] | None] | None:
        """Contents read before the migration starts; the correct driver reads none (R4)."""
        return None

    def _migrate_to_vram(self, rng: SvmRange) -> None:
        """``drm_pagemap_migrate_to_devmem``: move the range's system pages into VRAM (R4, R5)."""
        npages = (rng.end - rng.start) >> PAGE_SHIFT
        self._make_room(rng, npages)
        pre = self._pre_copy(rng)
        mm = self.mm
        mm.mmap_lock.down_read()
        try:
            args = MigrateVma(mm, rng.start, rng.end, MIGRATE_VMA_SELECT_SYSTEM, pgmap_owner=self)
            migrate_vma_setup(args)
            for i, src in enumerate(args.src):
                if not args.src_flags[i] & MIGRATE_PFN_MIGRATE:
                    continue
                try:
                    dst = self.pgmap.alloc_page(_data_owner(src, mm))
                except ENOMEM:
                    continue  # stays in system memory
                trylock_page(dst)  # a fresh page: never contended (zone_device_page_init locks it)
                if pre is not None and src is not None:
                    self.k.event("page_write", contents_oid(dst.oid), True)  # page R7
                    dst.data = pre.get(i)
                elif src is not None:
                    _copy(self.k, src, dst)
                args.dst[i] = dst
            migrate_vma_pages(args)
            migrate_vma_finalize(args)
        finally:
            mm.mmap_lock.up_read()
        rng.devmem = True
        self.nr_migrations += 1

    def _make_room(self, rng: SvmRange, npages: int) -> None:
        """Evict least recently faulted VRAM ranges until ``npages`` are free (R5)."""
        for victim in list(self.ranges):
            if self.pgmap.nr_free >= npages:
                return
            if victim is rng or not victim.devmem or victim.unmapped:
                continue
            self.evict(victim)

    def evict(self, rng: SvmRange) -> None:
        """``drm_pagemap_evict_to_ram``: migrate the range's VRAM pages back to system memory (R5)."""
        mm = self.mm
        mm.mmap_lock.down_read()
        try:
            args = MigrateVma(mm, rng.start, rng.end, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmap_owner=self)
            migrate_vma_setup(args)
            self._to_ram_copy(args)
            migrate_vma_pages(args)
            migrate_vma_finalize(args)
        finally:
            mm.mmap_lock.up_read()
        rng.devmem = False
        self.nr_evictions += 1

    def _to_ram_copy(self, args: MigrateVma) -> None:
        for i, src in enumerate(args.src):
            if src is None or not args.src_flags[i] & MIGRATE_PFN_MIGRATE:
                continue
            # a forked child's fault too: the copy keeps the device page's owner (R4)
            dst = args.mm.alloc.alloc_page(GFP_KERNEL, _data_owner(src, args.mm))
            trylock_page(dst)
            _copy(self.k, src, dst)
            args.dst[i] = dst

    def migrate_to_ram(self, pgmap: DevicePagemap, mm: Any, addr: int, page: Page) -> None:
        """``dev_pagemap_ops.migrate_to_ram`` -> ``drm_gpusvm_migrate_to_ram``: the CPU touched a VRAM page."""
        args = MigrateVma(mm, addr - addr % PAGE_SIZE, addr - addr % PAGE_SIZE + PAGE_SIZE,
                          MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmap_owner=self, fault_page=page)
        migrate_vma_setup(args)
        self._to_ram_copy(args)
        migrate_vma_pages(args)
        migrate_vma_finalize(args)

    # ------------------------------------------------------------------ teardown

    def fini(self) -> None:
        """``drm_gpusvm_fini``: remove every range (the process's GPU VM is closed)."""
        with self.svm_lock:
            self._collect_garbage()
            for rng in list(self.ranges):
                self._remove_range(rng)


def _data_owner(src: Page | None, mm: MmStruct) -> MmStruct:
    """Who owns the copy of ``src`` that a migration of ``mm``'s range makes (R4): the process that owns
    ``src`` (shared by ``fork``, that is the one memory R3 names), else ``mm``."""
    owner = src.owner if src is not None else None
    return owner if isinstance(owner, MmStruct) else mm


class NoRetrySvmDriver(SvmDriver):
    """Mistake: the GPU PTEs are programmed without re-checking the notifier sequence under the lock.

    The pages ``hmm_range_fault`` returned may have been unmapped, freed
    or migrated between the lookup and the bind; the GPU then reaches a
    page the process no longer has.
    """

    def _stale(self, rng: SvmRange, seq: int) -> bool:
        return False


class CopyUnlockedSvmDriver(SvmDriver):
    """Mistake: the range's data is copied before the pages are locked and unmapped.

    The copy reads the CPU's pages while the CPU can still write them; a
    store between the copy and ``migrate_vma_setup`` goes to the old page,
    which the migration then frees: the CPU's write is lost.
    """

    def _pre_copy(self, rng: SvmRange) -> dict[int, dict[int, object] | None] | None:
        mm = self.mm
        out: dict[int, dict[int, object] | None] = {}
        for i in range((rng.end - rng.start) >> PAGE_SHIFT):
            page = mm.lookup(rng.start + (i << PAGE_SHIFT))
            if page is not None and not is_device_private_page(page):
                self.k.point("page_read", contents_oid(page.oid), False)  # page R7
                out[i] = dict(page.data) if page.data else None
        return out


class NotifierTeardownSvmDriver(SvmDriver):
    """Mistake: an ``UNMAP`` invalidation tears the range down from inside the notifier callback.

    ``mmu_interval_notifier_remove`` waits for the invalidation in progress
    -- the one running this callback -- so the thread never returns
    (lockdep: recursive acquisition of ``mmu_notifier_invalidate_range_start``).
    """

    def _range_unmapped_locked(self, rng: SvmRange) -> None:
        self.k.event("svm_range_unmapped", self.ranges_oid, True)  # read by range_find_or_insert
        rng.unmapped = True
        self._remove_range(rng)
