"""Models amdgpu as a dma-buf exporter that moves its buffers (``amdgpu_dma_buf.c``,
``amdgpu_ttm.c``, ``amdgpu_cs.c``; the dynamic dma-buf design merged in v5.7).

The driver owns a :class:`~dmabufsim.device.device.Device` (the GPU: a GFX
engine for its own command submissions, a copy engine for moves) and a
TTM device with a limited VRAM. Its buffers are exported with
``pin``/``unpin`` (a *dynamic* exporter): the backing store may move while
unpinned, every move is a pipelined copy whose fence goes into the
reservation object as KERNEL fence, and dynamic importers hear about it
through ``move_notify``.

Rules (findings cite them as ``amdgpu-exporter Rn``):

* R1 (``amdgpu_dma_buf_pin``): a pin first validates the BO where every
  importer can reach it -- GTT for importers without peer-to-peer -- then
  pins it there.
* R2 (``amdgpu_dma_buf_map``): ``map_dma_buf`` runs with the reservation
  lock held; an unpinned BO is validated into GTT first (which may move it:
  pipelined, the importer must wait for the KERNEL fence), then its pages
  are mapped through the *importer's* IOMMU (``dma_map_sg``).
* R3 (``amdgpu_cs_ioctl``): a command submission locks the reservation
  objects of every BO it names under one ww acquire context, validates
  them (evicting under the same context, ttm R3), waits for their implicit
  fences *as job dependencies*, and adds its job fence (WRITE or READ).
  On ``EDEADLK`` -- from its own locks or from an eviction victim -- it
  unlocks everything, takes the contended lock with ``lock_slow`` first
  and starts over with the same context.
* R4 (moves, claim C1): :meth:`AmdgpuExporter.move` is the exporter's own
  decision to move a buffer (``amdgpu_bo_validate`` into another domain);
  with pipelining the CPU thread never waits for a fence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import Device
from ..device.ttm import (
    COPY_NS_PER_PAGE,
    GTT,
    BufferObject,
    DeviceCopyEngine,
    MemType,
    OperationCtx,
    TTMDevice,
)
from ..dma.dma_buf import (
    DMA_TO_DEVICE,
    DmaBuf,
    DmaBufAttachment,
    DmaBufOps,
    DmaDataDirection,
    SgEntry,
    SgTable,
    export,
)
from ..dma.fence import DmaFence
from ..dma.resv import DmaResv, DmaResvUsage, reservation_ww_class, usage_rw
from ..kernel.errors import EDEADLK
from ..locking.ww_mutex import WWAcquireCtx
from ..mm.page import PAGE_SIZE

#: The domains a CS asks for by default (``AMDGPU_GEM_DOMAIN_VRAM``, falling back to GTT).
VRAM_THEN_GTT = (MemType.VRAM, MemType.TT)


class AmdgpuDmaBufOps(DmaBufOps):
    """``amdgpu_dmabuf_ops``: a dynamic exporter (has pin/unpin)."""

    def __init__(self, drv: AmdgpuExporter) -> None:
        self.drv = drv

    @staticmethod
    def _bo(dmabuf: DmaBuf) -> BufferObject:
        bo = dmabuf.priv
        assert isinstance(bo, BufferObject)
        return bo

    def _domain(self, attachment: DmaBufAttachment) -> tuple[MemType, ...]:
        # Without peer-to-peer the importer needs system pages (GTT).
        return VRAM_THEN_GTT if attachment.peer2peer else (GTT,)

    def attach(self, dmabuf: DmaBuf, attachment: DmaBufAttachment) -> None:
        """``amdgpu_dma_buf_attach``: accept any device (the model has no P2P distance check)."""
        attachment.priv = "p2p" if attachment.peer2peer else "gtt"

    def pin(self, attachment: DmaBufAttachment) -> None:
        """``amdgpu_dma_buf_pin`` (R1)."""
        bo = self._bo(attachment.dmabuf)
        if not bo.pin_count:
            bo.validate(self._domain(attachment))
        bo.pin()

    def unpin(self, attachment: DmaBufAttachment) -> None:
        """``amdgpu_dma_buf_unpin``."""
        self._bo(attachment.dmabuf).unpin()

    def map_dma_buf(self, attachment: DmaBufAttachment, direction: DmaDataDirection) -> SgTable:
        """``amdgpu_dma_buf_map`` (R2)."""
        bo = self._bo(attachment.dmabuf)
        if not bo.pin_count:
            bo.validate(self._domain(attachment))
        dev = attachment.dev
        assert isinstance(dev, Device)
        writable = direction != DMA_TO_DEVICE
        pages = bo.pages
        iovas = dev.domain.dma_map_sg(pages, writable)
        entries = [SgEntry(a, PAGE_SIZE, p) for a, p in zip(iovas, pages, strict=True)]
        return SgTable(attachment, entries, direction, priv=iovas)

    def unmap_dma_buf(self, attachment: DmaBufAttachment, sgt: SgTable, direction: DmaDataDirection) -> None:
        """``amdgpu_dma_buf_unmap``: ``dma_unmap_sg`` with an IOTLB sync."""
        dev = attachment.dev
        assert isinstance(dev, Device)
        dev.domain.dma_unmap_sg(sgt.priv)

    def release(self, dmabuf: DmaBuf) -> None:
        """``drm_gem_dmabuf_release``: drop the buffer's reference on the BO."""
        bo = self._bo(dmabuf)
        bo.dmabuf = None
        bo.put()


class AmdgpuExporter:
    """An amdgpu-like GPU driver: BOs in VRAM/GTT, exported as dynamic dma-bufs.

    ``AmdgpuExporter(vram_pages=8)`` creates the GPU device, its TTM device
    (``pipelined`` moves by default, ttm R4/R5) and the exporter ops.
    ``lock_under_lru=True`` is claim C8's bug (ttm R3).
    """

    def __init__(
        self,
        name: str = "amdgpu",
        *,
        vram_pages: int,
        gtt_pages: int | None = None,
        pipelined: bool = True,
        lock_under_lru: bool = False,
        ghost_waits: bool = True,
        iommu: bool = True,
        copy_ns_per_page: int = COPY_NS_PER_PAGE,
    ) -> None:
        self.name = name
        self.dev = Device(name, iommu=iommu)
        self.dev.engine("gfx")  # started up front (engines start lazily, see DeviceCopyEngine)
        self.copy = DeviceCopyEngine(self.dev, ns_per_page=copy_ns_per_page)
        self.ttm = TTMDevice(
            name, self.copy, vram_pages=vram_pages, gtt_pages=gtt_pages, pipelined=pipelined,
            lock_under_lru=lock_under_lru, ghost_waits=ghost_waits,
        )
        self.ops = AmdgpuDmaBufOps(self)
        #: Virtual time of the jobs submitted (engine busy time), in total and by ring.
        self.gfx_busy_ns = 0
        self.gfx_busy_by_engine: dict[str, int] = {}
        self.nr_cs = 0
        self.nr_backoffs = 0

    # ------------------------------------------------------------ objects

    def create_bo(
        self, size: int, *, name: str = "bo", placement: Sequence[MemType] = VRAM_THEN_GTT, value: Any = None
    ) -> BufferObject:
        """``amdgpu_bo_create``: a BO of ``size`` pages, validated into ``placement``.

        ``value`` (if given) is written into every page by the CPU before
        anyone can see the BO (a cleared/uploaded buffer).
        """
        bo = BufferObject(self.ttm, size, name=name)
        bo.resv.lock(None)
        try:
            bo.validate(placement)
            if value is not None:
                for p in bo.pages:
                    p.write(0, value)
        finally:
            bo.resv.unlock()
        return bo

    def export(self, bo: BufferObject) -> DmaBuf:
        """``amdgpu_gem_prime_export``: share ``bo``; the dma-buf takes a reference on it."""
        buf = export(self.ops, bo.size * PAGE_SIZE, bo.get(), resv=bo.resv, name=f"dmabuf:{bo.name}",
                     exp_name=self.name)
        bo.dmabuf = buf
        return buf

    def move(self, bo: BufferObject, placement: Sequence[MemType], ctx: OperationCtx | None = None) -> None:
        """The exporter moves ``bo`` (R4): lock, validate into ``placement``, unlock."""
        bo.resv.lock(None)
        try:
            bo.validate(placement, ctx)
        finally:
            bo.resv.unlock()

    # ------------------------------------------------------------ command submission (R3)

    def submit(
        self,
        items: Sequence[tuple[BufferObject, bool]],
        *,
        placement: Sequence[MemType] = VRAM_THEN_GTT,
        duration_ns: int = 10_000,
        value: Any = None,
        name: str | None = None,
        engine: str = "gfx",
    ) -> DmaFence:
        """``amdgpu_cs_ioctl``: a job on ring ``engine`` touching every ``(bo, write)`` of ``items`` (R3).

        Writes store ``value`` at offset 0 of every page; reads load it.
        Each userspace context usually has its own ring (scheduler entity):
        pass ``engine="gfx1"`` etc. so that one context's dependencies do not
        hold back another's jobs.
        """
        self.dev.k.event("amdgpu_cs_ioctl", self.dev.oid, True)  # the CS counter that names the job, written
        self.nr_cs += 1
        jobname = name or f"{self.name}.cs#{self.nr_cs}"
        bos = [bo for bo, _ in items]
        ctx = WWAcquireCtx(reservation_ww_class)
        held: list[DmaResv] = []
        contended: DmaResv | None = None
        octx = OperationCtx(ticket=ctx, busy=bos)
        try:
            while True:
                try:
                    if contended is not None:
                        contended.lock_slow(ctx)
                        held.append(contended)
                        contended = None
                    for bo in bos:
                        if bo.resv not in held:
                            try:
                                bo.resv.lock(ctx)
                            except EDEADLK:
                                contended = bo.resv
                                raise
                            held.append(bo.resv)
                    for bo in bos:
                        try:
                            bo.validate(placement, octx)
                        except EDEADLK:
                            # An eviction victim's lock (ttm R3): take it first next time.
                            contended = octx.contended
                            octx.contended = None
                            raise
                    break
                except EDEADLK:
                    self.nr_backoffs += 1
                    for r in reversed(held):
                        r.unlock()
                    held.clear()
            ops: list[tuple[Any, ...]] = []
            deps: list[DmaFence] = []
            for bo, write in items:
                va = bo.bind(self.dev)
                for i in range(bo.size):
                    ops.append(("write", va + i * PAGE_SIZE, value) if write else ("read", va + i * PAGE_SIZE))
                for f in bo.resv.get_fences(usage_rw(write)):
                    if f not in deps:
                        deps.append(f)
            fence = self.dev.submit(ops, engine=engine, duration_ns=duration_ns, deps=deps, name=jobname)
            self.gfx_busy_ns += duration_ns
            self.gfx_busy_by_engine[engine] = self.gfx_busy_by_engine.get(engine, 0) + duration_ns
            for bo, write in items:
                bo.resv.reserve_fences(1)
                bo.resv.add_fence(fence, DmaResvUsage.WRITE if write else DmaResvUsage.READ)
            return fence
        finally:
            for r in reversed(held):
                r.unlock()
            ctx.fini()

    # ------------------------------------------------------------ teardown

    def wait_idle(self) -> None:
        """Sleep until every ghost of a pipelined move is released (``ttm_device_wait_idle``-like)."""
        k = self.ttm.k
        while not self.ttm.idle:
            k.msleep(1)

    def destroy(self, bo: BufferObject) -> None:
        """``amdgpu_bo_unref``: drop the driver's reference (the dma-buf may keep the BO alive)."""
        bo.put()


__all__ = ["VRAM_THEN_GTT", "AmdgpuDmaBufOps", "AmdgpuExporter"]
