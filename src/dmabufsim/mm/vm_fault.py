"""Faults on driver mappings: ``vm_operations_struct`` and ``struct vm_fault``.

Models the driver side of ``mm/memory.c``'s fault path: a VMA created by a
driver's ``mmap`` (a buffer object's CPU mapping: TTM's ``ttm_bo_vm_fault``,
i915's GTT mmap, ``drm_gem_shmem``) carries ``vm_ops``; a CPU access to a
page of it that has no PTE runs ``vm_ops->fault`` under ``mmap_lock`` (read),
from ``handle_mm_fault``. The handler finds the backing page and inserts it
(``vmf_insert_page`` / ``vmf_insert_pfn``), or gives up the lock and asks
for a retry (``VM_FAULT_RETRY``). ``unmap_mapping_range`` revokes every CPU
mapping of the object (a move, an eviction, a GTT fence change).

Rules:

* R1 (context): ``fault`` runs with the faulting mm's ``mmap_lock`` held for
  read by the faulting thread (``memory`` R1), so every lock a handler takes
  is ordered after ``mmap_lock`` (lockdep sees it).
* R2 (results): the handler returns :data:`VM_FAULT_NOPAGE` after
  :meth:`VmFault.insert_page` (the PTE is made, a reference taken), or
  :data:`VM_FAULT_SIGBUS` (the access fails: ``EFAULT``), or
  :data:`VM_FAULT_RETRY`, only when ``vmf.flags`` has
  :data:`FAULT_FLAG_ALLOW_RETRY`, and only after dropping ``mmap_lock``
  itself (:meth:`VmFault.release_mmap_lock`: ``mmap_read_unlock``, so it can
  sleep without it); the fault entry then retakes the lock and retries with
  :data:`FAULT_FLAG_TRIED`. Returning RETRY with the lock still held, or
  without ALLOW_RETRY, is a ``UsageError`` (the kernel would leak or double
  unlock the lock).
* R3 (revocation): ``unmap_mapping_range`` zaps the PTEs of every VMA that
  maps the object, in every mm that mapped it, each inside a ``CLEAR``
  notifier bracket (``zap_page_range_single``); the next access faults again.
* R4 (no gup): a driver mapping is ``VM_IO | VM_PFNMAP``: ``get_user_pages``
  on it fails with ``EFAULT`` (``check_vma_flags``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..kernel.errors import UsageError
from .page import Page

if TYPE_CHECKING:
    from .memory import MmStruct, Vma

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
    """Raised by ``handle_mm_fault`` after ``VM_FAULT_RETRY``: ``mmap_lock`` is no longer held (R2)."""


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
        """``vmf_insert_page``: map ``page`` at the faulting address (R2). Returns VM_FAULT_NOPAGE."""
        if page.owner is None:
            raise UsageError(f"vmf_insert_page of a free page {page!r}")
        self.page = page
        return VM_FAULT_NOPAGE

    def release_mmap_lock(self) -> None:
        """``mmap_read_unlock(vmf->vma->vm_mm)`` before returning ``VM_FAULT_RETRY`` (R2)."""
        if not self.flags & FAULT_FLAG_ALLOW_RETRY:
            raise UsageError("a fault handler may drop mmap_lock only with FAULT_FLAG_ALLOW_RETRY")
        self.mm.mmap_lock.up_read()


class VmOperations:
    """``struct vm_operations_struct`` of a driver mapping (extension contract).

    Subclass and override :meth:`fault`. The object is the mapping's
    ``address_space`` too: it remembers which mms mapped it, for
    :meth:`unmap_mapping_range` (R3).
    """

    name = "vm_ops"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        #: ``mapping->i_mmap``: the mms with a VMA of this object (registration order).
        self.i_mmap: list[Any] = []

    def fault(self, vmf: VmFault) -> int:
        """``vm_ops->fault``: called with ``mmap_lock`` held for read (R1); returns a VM_FAULT_* code (R2)."""
        raise NotImplementedError(f"{type(self).__name__} must implement fault()")

    def unmap_mapping_range(self) -> int:
        """``unmap_mapping_range``: zap every CPU mapping of the object (R3). Returns PTEs zapped."""
        n = 0
        for mm in list(self.i_mmap):
            n += mm.zap_vm_ops(self)
        return n
