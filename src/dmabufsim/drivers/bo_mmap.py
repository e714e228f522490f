"""CPU mmaps of buffer objects: the drivers' fault handlers, as designs of several years.

A GEM / TTM buffer object is mapped into a process with ``mmap`` on the
DRM file; the first CPU access of each page faults and runs the driver's
``vm_ops->fault`` with ``mmap_lock`` held for read (``mm/memory.py`` R7, R14).
What the handler locks decides the lock order against every path that
touches user memory while holding the same lock (``copy_from_user`` in an
ioctl, ``get_user_pages``, a notifier). The handlers here are those of the
kernel's history:

* :class:`StructMutexFault`: i915's GTT fault (``i915_gem_fault``, 2010-2019)
  takes the device's big lock, ``struct_mutex``, blockingly: ``mmap_lock ->
  struct_mutex``.
* :class:`TtmFault` with ``retry=False``: TTM's fault before 2013
  (``ttm_bo_vm_fault``) reserved the buffer blockingly: ``mmap_lock ->
  reservation``. With ``retry=True`` (c58f009e01c9, "drm/ttm: Remove
  set_need_resched from the ttm fault handler", and ``ttm_bo_vm_reserve``
  since): trylock the reservation; when it is busy and the fault may be
  retried, drop ``mmap_lock``, wait until the buffer is unreserved (lock and
  unlock it without ``mmap_lock``), and return ``VM_FAULT_RETRY``.

Rules:

* R1: a :class:`GemObject` owns its backing pages from creation (one
  reference each, owner the object); :meth:`GemObject.mmap` maps it into a
  process (``drm_gem_mmap``) and returns the address.
* R2: a handler inserts the object's page at the faulting offset
  (``vmf_insert_page``) under the lock its design takes; an offset past the
  object is ``VM_FAULT_SIGBUS``.
* R3 (revocation): :meth:`GemObject.release_mmap` zaps every CPU mapping of
  the object (``unmap_mapping_range``; i915's ``i915_gem_release_mmap``),
  which invalidates the mms' notifiers over those addresses.
"""

from __future__ import annotations

from ..dma.resv import DmaResv
from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import current_kernel
from ..locking.mutex import Mutex
from ..mm import (
    FAULT_FLAG_ALLOW_RETRY,
    VM_FAULT_NOPAGE,
    VM_FAULT_RETRY,
    VM_FAULT_SIGBUS,
    VmFault,
    VmOperations,
)
from ..mm.memory import PROT_READ, PROT_WRITE, Process
from ..mm.page import PAGE_SIZE, Page, alloc_page


class GemObject:
    """``struct drm_gem_object`` with its backing pages and reservation object (R1)."""

    def __init__(self, name: str, nr_pages: int, vm_ops: VmOperations | None = None) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        #: ``obj->resv``.
        self.resv = DmaResv(f"{name}.resv")
        self.pages: list[Page] = [alloc_page(GFP_KERNEL, self) for _ in range(nr_pages)]
        self.vm_ops = vm_ops

    def mmap(self, proc: Process, prot: int = PROT_READ | PROT_WRITE) -> int:
        """``drm_gem_mmap``: map the whole object into ``proc`` with the object's ``vm_ops`` (R1)."""
        if self.vm_ops is None:
            raise TypeError(f"{self.name}: no vm_ops to mmap with")
        return proc.mm.mmap(len(self.pages) * PAGE_SIZE, prot, shared=True, vm_ops=self.vm_ops)

    def release_mmap(self) -> int:
        """``i915_gem_release_mmap`` / ``ttm_bo_unmap_virtual``: revoke every CPU mapping (R3)."""
        if self.vm_ops is None:
            return 0
        return self.vm_ops.unmap_mapping_range()

    def __repr__(self) -> str:
        return f"<GemObject {self.name} pages={len(self.pages)}>"


def _insert(obj: GemObject, vmf: VmFault) -> int:
    """R2: map the object's page at the faulting offset."""
    if vmf.pgoff >= len(obj.pages):
        return VM_FAULT_SIGBUS
    return vmf.insert_page(obj.pages[vmf.pgoff])


class StructMutexFault(VmOperations):
    """``i915_gem_fault`` (2010-2019): the GTT mmap's fault takes ``struct_mutex`` blockingly."""

    def __init__(self, struct_mutex: Mutex) -> None:
        super().__init__("i915_gem_vm_ops")
        self.struct_mutex = struct_mutex
        self.obj: GemObject | None = None

    def fault(self, vmf: VmFault) -> int:
        assert self.obj is not None
        self.struct_mutex.lock()  # i915_mutex_lock_interruptible
        try:
            return _insert(self.obj, vmf)
        finally:
            self.struct_mutex.unlock()


class TtmFault(VmOperations):
    """``ttm_bo_vm_fault``: reserve the buffer, insert its page (blocking, or trylock-and-retry)."""

    def __init__(self, *, retry: bool) -> None:
        super().__init__("ttm_bo_vm_ops")
        #: False: ``ttm_bo_reserve`` blockingly (before 2013); True: ``ttm_bo_vm_reserve`` (c58f009e01c9 on).
        self.retry = retry
        self.obj: GemObject | None = None

    def fault(self, vmf: VmFault) -> int:
        assert self.obj is not None
        resv = self.obj.resv
        if not self.retry:
            resv.lock()
        elif not resv.trylock():
            if vmf.flags & FAULT_FLAG_ALLOW_RETRY:
                # ttm_bo_vm_reserve: wait for the buffer without mmap_lock, then fault again.
                vmf.release_mmap_lock()
                resv.lock()
                resv.unlock()
                return VM_FAULT_RETRY
            return VM_FAULT_NOPAGE  # the access is simply repeated by the CPU
        try:
            return _insert(self.obj, vmf)
        finally:
            resv.unlock()


def gem_object_with_fault(name: str, nr_pages: int, vm_ops: StructMutexFault | TtmFault) -> GemObject:
    """A :class:`GemObject` whose CPU mapping faults through ``vm_ops``."""
    obj = GemObject(name, nr_pages, vm_ops)
    vm_ops.obj = obj
    return obj
