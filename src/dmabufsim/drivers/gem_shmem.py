"""A DRM driver on the GEM shmem helpers, with PRIME export and import.

Models ``drivers/gpu/drm/drm_gem_shmem_helper.c`` (after "drm/shmem-helper:
Switch to reservation lock", v6.5) and ``drivers/gpu/drm/drm_prime.c``
(``drm_gem_prime_export``, ``drm_gem_prime_import_dev``,
``drm_gem_prime_dmabuf_ops``): the exporter side of claim M5, written only
against the public dma-buf and mm API.

Rules:

* R1 (objects): a :class:`GemShmemObject` is backed by a shmem object
  (``obj->filp``) and uses its own reservation object (``obj->resv =
  &obj->_resv``); an imported object uses the dma-buf's. ``get``/``put``
  count references (``drm_gem_object_get``/``_put``); the last put frees the
  object and drops its hold on the backing pages.
* R2 (pages): ``get_pages`` (``drm_gem_shmem_get_pages``) needs the
  reservation lock held (``dma_resv_assert_held``), counts its users and
  makes every backing page present.
* R3 (mmap): ``drm_gem_shmem_mmap`` takes the object's reservation lock
  itself around ``get_pages``, then backs the VMA with the object's pages.
  An imported object forwards to ``dma_buf_mmap`` (dma-buf R12).
* R4 (vmap): ``drm_gem_shmem_vmap`` / ``_vunmap`` run with the reservation
  lock held (they assert it, never take it): refcounted, the first gets the
  pages.
* R5 (PRIME export): ``drm_gem_prime_export`` exports the object once
  (``obj->dma_buf``), sharing its reservation object; the dma-buf holds a
  reference on the object. ``drm_gem_prime_dmabuf_ops`` forward ``mmap`` to
  the object's mmap (R3) and ``vmap`` to R4.
* R6 (PRIME import, the self-import shortcut): importing a dma-buf that
  this same device exported through ``drm_gem_prime_dmabuf_ops`` returns the
  original object with one more reference (``drm_gem_object_get``), no
  attachment; any other dma-buf is attached and mapped, and a new object
  wraps it (``import_attach``).
"""

from __future__ import annotations

from typing import Any

from ..device.device import Device
from ..dma.dma_buf import DMA_BIDIRECTIONAL, DmaBuf, DmaBufAttachment, DmaBufOps, SgEntry, SgTable, export
from ..dma.resv import DmaResv
from ..dma.sg import DMA_TO_DEVICE, DmaDataDirection
from ..kernel.errors import EINVAL, UsageError
from ..kernel.runtime import current_kernel
from ..mm.memory import MmStruct, ShmemObject
from ..mm.page import PAGE_SHIFT, PAGE_SIZE, Page, page_allocator

__all__ = ["DrmDevice", "GemDmaBufOps", "GemShmemObject", "mmap_dma_buf"]


class GemShmemObject:
    """``struct drm_gem_shmem_object`` (R1-R4)."""

    def __init__(self, drm: DrmDevice, npages: int, name: str, *, import_buf: DmaBuf | None = None) -> None:
        k = self.k = current_kernel()
        self.oid = k.new_oid()
        self.drm = drm
        self.name = name
        self.npages = npages
        self.refcount = 1
        #: ``obj->dma_buf``: the buffer this object was exported as, or the one it imports.
        self.dma_buf: DmaBuf | None = import_buf
        #: ``obj->import_attach`` and its mapping, for an object that wraps another device's dma-buf.
        self.import_attach: DmaBufAttachment | None = None
        self.sgt: SgTable | None = None
        #: ``obj->resv``: its own (``&obj->_resv``), or the imported dma-buf's.
        self.resv: DmaResv = import_buf.resv if import_buf is not None else DmaResv(f"{name}.resv")
        #: ``obj->filp``: the backing shmem object; the GEM object is one of its users.
        self.shmem: ShmemObject | None = None
        if import_buf is None:
            self.shmem = ShmemObject(npages, f"shmem:{name}")
            self.shmem.users = 1
        self.pages_use_count = 0
        self.vmap_use_count = 0
        self.vaddr: tuple[Page, ...] | None = None

    def get(self) -> GemShmemObject:
        """``drm_gem_object_get``."""
        self.k.point("drm_gem_object_get", self.oid, True, self.name)
        if self.refcount <= 0:
            raise UsageError(f"drm_gem_object_get on freed {self.name}")
        self.refcount += 1
        return self

    def put(self) -> None:
        """``drm_gem_object_put``: the last reference frees the object (R1)."""
        self.k.point("drm_gem_object_put", self.oid, True, self.name)
        if self.refcount <= 0:
            raise UsageError(f"drm_gem_object_put on freed {self.name}")
        self.refcount -= 1
        if self.refcount:
            return
        if self.import_attach is not None:
            # drm_prime_gem_destroy: unmap, detach, drop the dma-buf reference.
            att, buf = self.import_attach, self.dma_buf
            assert buf is not None and self.sgt is not None
            att.unmap_unlocked(self.sgt, DMA_BIDIRECTIONAL)
            att.detach()
            buf.put()
        elif self.shmem is not None:
            self.shmem.put_user()

    # ------------------------------------------------------------ pages (R2)

    def get_pages(self) -> list[Page]:
        """``drm_gem_shmem_get_pages``: the reservation lock must be held (R2)."""
        self.resv.assert_held()
        shmem = self.shmem
        if shmem is None:
            raise EINVAL(f"{self.name}: an imported object has no pages of its own")
        self.k.point("drm_gem_shmem_get_pages", self.oid, True, self.name)
        self.pages_use_count += 1
        alloc = page_allocator()
        return [shmem.find_or_alloc(i, alloc) for i in range(self.npages)]

    def put_pages(self) -> None:
        """``drm_gem_shmem_put_pages``: the reservation lock must be held (R2)."""
        self.resv.assert_held()
        self.k.point("drm_gem_shmem_put_pages", self.oid, True, self.name)
        if self.pages_use_count <= 0:
            raise UsageError(f"drm_gem_shmem_put_pages on {self.name} without pages")
        self.pages_use_count -= 1

    # ------------------------------------------------------------ mmap (R3)

    def mmap(self, vma: Any) -> None:
        """``drm_gem_shmem_mmap``: lock the reservation object, get the pages, back ``vma`` (R3)."""
        if self.import_attach is not None:
            assert self.dma_buf is not None
            self.dma_buf.mmap(vma, 0)
            return
        self.resv.lock(None)
        try:
            self.get_pages()
        finally:
            self.resv.unlock()
        # vma->vm_ops = &drm_gem_shmem_vm_ops: faults find the object's pages.
        old = vma.shmem
        vma.shmem = self.shmem
        assert self.shmem is not None
        self.shmem.users += 1
        if old is not None:
            old.put_user()

    # ------------------------------------------------------------ vmap (R4)

    def vmap(self) -> tuple[Page, ...]:
        """``drm_gem_shmem_vmap``: with the reservation lock held (R4); the kernel mapping of every page."""
        self.resv.assert_held()
        self.k.point("drm_gem_shmem_vmap", self.oid, True, self.name)
        if self.vmap_use_count == 0:
            self.vaddr = tuple(self.get_pages())
        self.vmap_use_count += 1
        assert self.vaddr is not None
        return self.vaddr

    def vunmap(self) -> None:
        """``drm_gem_shmem_vunmap``: with the reservation lock held (R4)."""
        self.resv.assert_held()
        self.k.point("drm_gem_shmem_vunmap", self.oid, True, self.name)
        if self.vmap_use_count <= 0:
            raise UsageError(f"drm_gem_shmem_vunmap on {self.name} without a vmap")
        self.vmap_use_count -= 1
        if self.vmap_use_count == 0:
            self.vaddr = None
            self.put_pages()

    def __repr__(self) -> str:
        return f"<GemShmemObject #{self.oid} {self.name} refs={self.refcount}>"


class GemDmaBufOps(DmaBufOps):
    """``drm_gem_prime_dmabuf_ops`` of a GEM shmem driver (R5): a static exporter."""

    def __init__(self, drm: DrmDevice) -> None:
        self.drm = drm

    @staticmethod
    def _obj(dmabuf: DmaBuf) -> GemShmemObject:
        obj = dmabuf.priv
        assert isinstance(obj, GemShmemObject)
        return obj

    def map_dma_buf(self, attachment: DmaBufAttachment, direction: DmaDataDirection) -> SgTable:
        """``drm_gem_map_dma_buf``: the object's pages, mapped for the importer's device."""
        obj = self._obj(attachment.dmabuf)
        pages = obj.get_pages()
        dev = attachment.dev
        assert isinstance(dev, Device)
        iovas = dev.domain.dma_map_sg(pages, direction != DMA_TO_DEVICE)
        entries = [SgEntry(a, PAGE_SIZE, p) for a, p in zip(iovas, pages, strict=True)]
        return SgTable(attachment, entries, direction, priv=iovas)

    def unmap_dma_buf(self, attachment: DmaBufAttachment, sgt: SgTable, direction: DmaDataDirection) -> None:
        """``drm_gem_unmap_dma_buf``."""
        dev = attachment.dev
        assert isinstance(dev, Device)
        dev.domain.dma_unmap_sg(sgt.priv)
        self._obj(attachment.dmabuf).put_pages()

    def release(self, dmabuf: DmaBuf) -> None:
        """``drm_gem_dmabuf_release``: drop the buffer's reference on the object."""
        obj = self._obj(dmabuf)
        obj.dma_buf = None
        obj.put()

    def mmap(self, dmabuf: DmaBuf, vma: Any) -> None:
        """``drm_gem_dmabuf_mmap`` -> ``drm_gem_prime_mmap`` -> the object's mmap (R3): it takes the lock."""
        self._obj(dmabuf).mmap(vma)

    def vmap(self, dmabuf: DmaBuf) -> Any:
        """``drm_gem_dmabuf_vmap`` -> ``drm_gem_vmap`` (R4): called with the lock held."""
        return self._obj(dmabuf).vmap()

    def vunmap(self, dmabuf: DmaBuf, vaddr: Any) -> None:
        """``drm_gem_dmabuf_vunmap`` (R4)."""
        self._obj(dmabuf).vunmap()


class DrmDevice:
    """``struct drm_device`` of a GEM shmem driver with PRIME (R5, R6)."""

    def __init__(self, name: str = "gpu", *, iommu: bool = True) -> None:
        self.name = name
        self.dev = Device(name, iommu=iommu)
        self.ops = GemDmaBufOps(self)

    def gem_create(self, npages: int, name: str = "bo") -> GemShmemObject:
        """``drm_gem_shmem_create``."""
        return GemShmemObject(self, npages, name)

    def prime_export(self, obj: GemShmemObject, *, core_locks_mmap: bool = False) -> DmaBuf:
        """``drm_gem_prime_handle_to_fd`` -> ``drm_gem_prime_export`` (R5): one dma-buf per object.

        ``core_locks_mmap`` selects the dma-buf core's v6.2-v6.4 mmap policy (dma-buf R12).
        """
        if obj.import_attach is not None:
            raise UsageError(f"{obj.name} is imported: re-export its dma-buf instead")
        if obj.dma_buf is not None:
            return obj.dma_buf.get()
        buf = export(self.ops, obj.npages * PAGE_SIZE, obj.get(), resv=obj.resv, name=f"dmabuf:{obj.name}",
                     exp_name=self.name, core_locks_mmap=core_locks_mmap)
        obj.dma_buf = buf
        return buf

    def prime_import(self, buf: DmaBuf) -> GemShmemObject:
        """``drm_gem_prime_import_dev`` (R6): our own export comes back as the same object."""
        if isinstance(buf.ops, GemDmaBufOps):
            obj = buf.priv
            assert isinstance(obj, GemShmemObject)
            if obj.drm is self:
                # "Importing dmabuf exported from our own gem increases refcount on gem itself
                # instead of f_count of dmabuf."
                return obj.get()
        att = buf.attach(self.dev)
        buf.get()
        obj = GemShmemObject(self, buf.size >> PAGE_SHIFT, f"import:{buf.name}", import_buf=buf)
        obj.sgt = att.map_unlocked(DMA_BIDIRECTIONAL)
        obj.import_attach = att
        return obj


def mmap_dma_buf(mm: MmStruct, buf: DmaBuf, *, pgoff: int = 0, npages: int | None = None) -> int:
    """``mmap(dmabuf_fd)``: ``mmap_region`` calls ``dma_buf_mmap_internal`` under ``mmap_lock``.

    The VMA is created first, then backed by the exporter with ``mmap_lock``
    held for writing (``call_mmap``); returns the user address.
    """
    npages = (buf.size >> PAGE_SHIFT) - pgoff if npages is None else npages
    addr = mm.mmap(npages * PAGE_SIZE)
    vma = mm.find_vma(addr)
    assert vma is not None
    mm.mmap_lock.down_write()
    try:
        buf.mmap(vma, pgoff)
    finally:
        mm.mmap_lock.up_write()
    return addr
