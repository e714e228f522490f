"""HMM: mirroring a process's page table into a device, ``hmm_range_fault``.

Models ``mm/hmm.c`` (``struct hmm_range``, ``hmm_range_fault``,
``hmm_vma_walk_pmd`` / ``hmm_vma_handle_pte``, ``hmm_vma_fault``) and the
driver pattern of ``Documentation/mm/hmm.rst``::

    again:
        range.notifier_seq = mmu_interval_read_begin(range.notifier)
        mmap_read_lock(mm)
        ret = hmm_range_fault(range)          # -EBUSY: goto again
        mmap_read_unlock(mm)
        take_lock(driver->update)
        if mmu_interval_read_retry(range.notifier, range.notifier_seq):
            release_lock(driver->update); goto again
        use range.hmm_pfns to program the device page table
        release_lock(driver->update)

Rules:

* R1 (context): ``hmm_range_fault`` needs ``mmap_lock`` held (read).
* R2 (snapshot): for every page of ``[start, end)`` it reports the frame
  the CPU page table maps and whether it is writable (``HMM_PFN_VALID``,
  ``HMM_PFN_WRITE``), faulting in what ``default_flags`` asks for
  (``HMM_PFN_REQ_FAULT``, ``HMM_PFN_REQ_WRITE``) through
  ``handle_mm_fault``. A device-private entry whose pagemap owner is
  ``dev_private_owner`` is reported as is (the device's own memory); any
  other device-private entry is faulted back to system memory first.
  No reference is taken: the snapshot is only good until the next
  invalidation of the interval (that is what the sequence is for).
* R3 (sequence): the walk starts over after every fault; before each walk,
  and at the end, a collision with an invalidation
  (``mmu_interval_check_retry``) raises ``EBUSY``, as does meeting a
  migration entry (after waiting for the migration). A fault the mm
  refuses raises ``EFAULT``.
"""

from __future__ import annotations

from ..kernel.errors import EBUSY
from ..kernel.lockdep_map import lockdep_assert_held
from .memory import PTE_DEVICE_PRIVATE, PTE_MIGRATION, PTE_PRESENT
from .memremap import page_pgmap
from .mmu_notifier import MMUIntervalNotifier
from .page import PAGE_SHIFT, PAGE_SIZE, Page
from .page_lock import migration_entry_wait_on_locked

#: ``HMM_PFN_VALID``: the entry maps a page.
HMM_PFN_VALID = 1 << 0
#: ``HMM_PFN_WRITE``: the CPU may write it.
HMM_PFN_WRITE = 1 << 1
#: ``HMM_PFN_REQ_FAULT``: fault the page in if it is not present.
HMM_PFN_REQ_FAULT = HMM_PFN_VALID
#: ``HMM_PFN_REQ_WRITE``: fault it in writable.
HMM_PFN_REQ_WRITE = HMM_PFN_WRITE


class HmmRange:
    """``struct hmm_range``: an interval of a notifier's mm and the snapshot of its pages."""

    __slots__ = ("default_flags", "dev_private_owner", "end", "hmm_pfns", "notifier", "notifier_seq", "pages",
                 "start")

    def __init__(self, notifier: MMUIntervalNotifier, start: int, end: int, default_flags: int = HMM_PFN_REQ_FAULT,
                 *, dev_private_owner: object = None) -> None:
        self.notifier = notifier
        self.start = start
        self.end = end
        self.default_flags = default_flags
        self.dev_private_owner = dev_private_owner
        self.notifier_seq = 0
        n = (end - start + PAGE_SIZE - 1) >> PAGE_SHIFT
        #: ``HMM_PFN_*`` flags per page.
        self.hmm_pfns = [0] * n
        #: The frame of each valid entry (``hmm_pfn_to_page``).
        self.pages: list[Page | None] = [None] * n


_indices = range  # the builtin: ``hmm_range_fault``'s parameter keeps the kernel's name


def hmm_range_fault(range: HmmRange) -> None:
    """``hmm_range_fault`` (R1-R3): fill ``range.hmm_pfns`` / ``range.pages``; EBUSY or EFAULT."""
    sub = range.notifier
    mm = sub.mm
    k = mm.k
    lockdep_assert_held(mm.mmap_lock)
    req = range.default_flags
    while True:
        if sub.check_retry(range.notifier_seq):
            raise EBUSY("hmm_range_fault: the interval was invalidated")
        k.point("hmm_range_fault", mm.oid, False, f"{range.start:#x}")
        faulted = False
        for i in _indices(len(range.pages)):
            va = range.start + (i << PAGE_SHIFT)
            pte = mm.ptes.get(va >> PAGE_SHIFT)
            if pte is not None and pte.swp == PTE_DEVICE_PRIVATE:
                pgmap = page_pgmap(pte.page)
                if pgmap is not None and pgmap.owner is range.dev_private_owner:
                    range.pages[i] = pte.page
                    range.hmm_pfns[i] = HMM_PFN_VALID | (HMM_PFN_WRITE if pte.writable else 0)
                    continue
            elif pte is not None and pte.swp == PTE_MIGRATION:
                # hmm_vma_handle_pte: migration_entry_wait, queued under the page-table lock in this
                # step; it declares the page lock it waits on (page_lock R10), not the frame.
                migration_entry_wait_on_locked(pte.page)
                raise EBUSY("hmm_range_fault: a migration entry")
            elif pte is not None and pte.swp == PTE_PRESENT and (pte.writable or not req & HMM_PFN_REQ_WRITE):
                range.pages[i] = pte.page
                range.hmm_pfns[i] = HMM_PFN_VALID | (HMM_PFN_WRITE if pte.writable else 0)
                continue
            if not req & HMM_PFN_REQ_FAULT:
                range.pages[i] = None
                range.hmm_pfns[i] = 0
                continue
            mm.handle_mm_fault(va, bool(req & HMM_PFN_REQ_WRITE))  # hmm_vma_fault; EFAULT propagates
            faulted = True
            break
        if faulted:
            continue  # -EBUSY from the walk: start over (and check the sequence)
        if sub.check_retry(range.notifier_seq):
            raise EBUSY("hmm_range_fault: the interval was invalidated")
        return
