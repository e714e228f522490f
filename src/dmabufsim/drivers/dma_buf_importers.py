"""Models two kinds of dma-buf importers: a dynamic one and a static one.

* :class:`DynamicImporter` follows the importer side of amdgpu
  (``amdgpu_dma_buf_move_notify`` invalidating the BO, re-validation at the
  next command submission) and of RDMA's ``ib_umem_dmabuf``
  (``mlx5_ib_dmabuf_invalidate_cb``): it attaches with ``move_notify``,
  maps under the reservation lock, and treats a notification as "your
  table is about to point at the past: map again before the next access".
* :class:`StaticImporter` follows importers that predate dynamic dma-buf
  (a display controller or a V4L2 capture device, ``dma_buf_attach`` +
  ``dma_buf_map_attachment`` once): the attachment pins the buffer and the
  mapping is cached for the attachment's lifetime. Its display-like
  :meth:`StaticImporter.scanout` reads the buffer continuously *without
  fences*, the "dma-access without fences" of the seed thread (claim C4).

Both own a :class:`~dmabufsim.device.device.Device` without a GPU VM: their
jobs use the sg table's DMA addresses directly, through their IOMMU.

Rules (findings cite them as ``importer Rn``):

* R1 (implicit sync): every access is a job whose dependencies are the
  reservation object's fences up to ``dma_resv_usage_rw(write)`` -- KERNEL
  (moves) included -- and whose fence is added back as WRITE or READ.
* R2 (re-map): a dynamic importer re-maps when its table was notified,
  torn down or is older than the buffer's last move; it never unmaps the
  old table itself while jobs may use it (the exporter tears old tables
  down once the move is complete, dma-buf R7). ``remap_on_move=False``
  models the importer that breaks this rule: its accesses go through the
  old table, to the old pages (lost writes; freed pages once the move is
  complete).
* R3 (revocation, claim C2): on ``revoke`` a dynamic importer stops
  submitting, and a worker waits for its last job, tears its tables down
  and gives the revocation back.
* R4 (teardown): :meth:`DynamicImporter.release` / :meth:`StaticImporter.release`
  wait for the importer's last job, unmap and detach.
"""

from __future__ import annotations

from typing import Any

from ..device.device import Device, Job
from ..dma.dma_buf import (
    DMA_BIDIRECTIONAL,
    DmaBuf,
    DmaBufAttachment,
    DmaBufAttachOps,
    DmaBufRevocation,
    SgTable,
)
from ..dma.fence import DmaFence
from ..dma.resv import DmaResv, DmaResvUsage, usage_rw
from ..kernel.errors import SimulatorError, UsageError
from ..kernel.runtime import current_kernel


class ImportedBuffer:
    """A dynamic importer's state for one attachment (its ``importer_priv``)."""

    __slots__ = ("att", "invalidated", "last_fence", "revoked", "sgt")

    def __init__(self) -> None:
        self.att: DmaBufAttachment | None = None
        self.sgt: SgTable | None = None
        #: Set by move_notify: the table must be replaced before the next access (R2).
        self.invalidated = False
        self.revoked = False
        self.last_fence: DmaFence | None = None


def _job_of(dev: Device, fence: DmaFence) -> Job:
    """The job ``dev.submit`` just queued on the GFX engine (found by its fence)."""
    job = dev.engine("gfx").last_job
    if job is None or job.fence is not fence:
        raise SimulatorError(f"{dev.name}: cannot find the job of {fence!r}")
    return job


def _job_ops(sgt: SgTable, write: bool, value: Any) -> list[tuple[Any, ...]]:
    if write:
        return [("write", e.dma_address, value) for e in sgt.entries]
    return [("read", e.dma_address) for e in sgt.entries]


class _DeviceImporter:
    """What both importers share: their own device (GFX engine started), and
    fenced jobs submitted under the reservation lock (R1)."""

    def __init__(self, name: str, *, iommu: bool) -> None:
        self.k = current_kernel()
        self.name = name
        self.dev = Device(name, iommu=iommu, gpuvm=False)
        self.dev.engine("gfx")  # started up front: engines start lazily
        self.nr_jobs = 0
        self.busy_ns = 0
        #: Every job submitted, in order (``job.results`` holds what a read job read).
        self.jobs: list[Job] = []

    def _submit_fenced_job(self, resv: DmaResv, sgt: SgTable, deps: list[DmaFence], *, write: bool,
                           value: Any, duration_ns: int) -> DmaFence:
        """R1, resv held: one job through ``sgt`` after ``deps``, its fence added back as WRITE or READ."""
        self.nr_jobs += 1
        fence = self.dev.submit(_job_ops(sgt, write, value), duration_ns=duration_ns, deps=deps,
                                name=f"{self.name}#{self.nr_jobs}")
        self.jobs.append(_job_of(self.dev, fence))
        self.busy_ns += duration_ns
        resv.reserve_fences(1)
        resv.add_fence(fence, DmaResvUsage.WRITE if write else DmaResvUsage.READ)
        return fence


class DynamicImporter(DmaBufAttachOps, _DeviceImporter):
    """A dynamic importer on its own device (``dma_buf_dynamic_attach`` with ``move_notify``)."""

    allow_peer2peer = False

    def __init__(self, name: str, *, iommu: bool = True, honour_fences: bool = True,
                 remap_on_move: bool = True) -> None:
        _DeviceImporter.__init__(self, name, iommu=iommu)
        #: False models an importer that forgets to wait for the KERNEL and implicit fences (R1).
        self.honour_fences = honour_fences
        #: False models an importer that ignores ``move_notify`` and keeps using its old table (R2).
        self.remap_on_move = remap_on_move
        self.nr_remaps = 0
        self.notifications = 0

    def attach(self, buf: DmaBuf) -> DmaBufAttachment:
        """``dma_buf_dynamic_attach``."""
        imp = ImportedBuffer()
        att = buf.dynamic_attach(self.dev, self, imp)
        imp.att = att
        return att

    @staticmethod
    def state(att: DmaBufAttachment) -> ImportedBuffer:
        imp = att.importer_priv
        assert isinstance(imp, ImportedBuffer)
        return imp

    # ------------------------------------------------------------ callbacks (resv held)

    def move_notify(self, attachment: DmaBufAttachment) -> None:
        """``move_notify``: the table will point at the past; re-map before the next access (R2)."""
        self.notifications += 1
        self.state(attachment).invalidated = True

    def revoke(self, attachment: DmaBufAttachment, revocation: DmaBufRevocation) -> None:
        """Claim C2 (R3): stop, then give the revocation back once the last job is over."""
        imp = self.state(attachment)
        imp.revoked = True
        imp.invalidated = True
        last = imp.last_fence
        self.k.spawn(self._revoke_worker, attachment, last, revocation, name=f"{self.name}-revoke")

    def _revoke_worker(self, att: DmaBufAttachment, last: DmaFence | None, rev: DmaBufRevocation) -> None:
        if last is not None:
            last.wait()
        for sgt in list(att.tables):
            rev.teardown(att, sgt)
        self.k.event("importer_forget_sgt", att.oid, True)  # without the resv lock: declared on the attachment
        self.state(att).sgt = None
        rev.put()

    # ------------------------------------------------------------ accesses (R1, R2)

    def access(self, att: DmaBufAttachment, *, write: bool, value: Any = None,
               duration_ns: int = 10_000) -> DmaFence | None:
        """One job reading or writing the whole buffer; None if the buffer was revoked."""
        buf = att.dmabuf
        resv = buf.resv
        imp = self.state(att)
        resv.lock(None)
        try:
            if imp.revoked:
                return None
            self.k.event("importer_sgt", att.oid, False)  # the revoke worker writes it without the lock
            sgt = imp.sgt
            if sgt is None or (self.remap_on_move and (imp.invalidated or sgt.torn_down or sgt.stale)):
                sgt = att.map(DMA_BIDIRECTIONAL)
                self.k.event("importer_sgt", att.oid, True)
                imp.sgt = sgt
                imp.invalidated = False
                self.nr_remaps += 1
            deps = resv.get_fences(usage_rw(write)) if self.honour_fences else []
            fence = self._submit_fenced_job(resv, sgt, deps, write=write, value=value, duration_ns=duration_ns)
            imp.last_fence = fence
            return fence
        finally:
            resv.unlock()

    def release(self, att: DmaBufAttachment) -> None:
        """R4: wait for the last job, unmap every table, detach."""
        imp = self.state(att)
        if imp.last_fence is not None:
            imp.last_fence.wait()
        buf = att.dmabuf
        buf.resv.lock(None)
        try:
            for sgt in list(att.tables):
                att.unmap(sgt, sgt.direction)
            self.k.event("importer_sgt", att.oid, True)
            imp.sgt = None
        finally:
            buf.resv.unlock()
        att.detach()


class StaticImporter(_DeviceImporter):
    """A static importer (``dma_buf_attach``): pinned buffer, one cached mapping."""

    def __init__(self, name: str, *, iommu: bool = True) -> None:
        super().__init__(name, iommu=iommu)
        self.last_fence: DmaFence | None = None
        self.scanout_reads: list[Any] = []
        self._stop = False

    def attach(self, buf: DmaBuf) -> tuple[DmaBufAttachment, SgTable]:
        """``dma_buf_attach`` + ``dma_buf_map_attachment_unlocked``: the table the device keeps using."""
        att = buf.attach(self.dev)
        sgt = att.map_unlocked(DMA_BIDIRECTIONAL)
        return att, sgt

    def access(self, att: DmaBufAttachment, sgt: SgTable, *, write: bool, value: Any = None,
               duration_ns: int = 10_000) -> DmaFence:
        """A fenced job (R1) through the cached table."""
        resv = att.dmabuf.resv
        resv.lock(None)
        try:
            deps = resv.get_fences(usage_rw(write))
            fence = self._submit_fenced_job(resv, sgt, deps, write=write, value=value, duration_ns=duration_ns)
            self.last_fence = fence
            return fence
        finally:
            resv.unlock()

    def scanout(self, sgt: SgTable, *, frames: int, period_ns: int) -> None:
        """A display engine reading the buffer every ``period_ns``, with no fence at all (claim C4).

        Runs on a daemon thread; :meth:`stop_scanout` ends it after the
        current frame.
        """
        if frames <= 0:
            raise UsageError(f"scanout needs at least one frame, got {frames}")
        self._stop = False
        self.k.spawn(self._scanout, sgt, frames, period_ns, name=f"{self.name}-scanout", daemon=True)

    def _scanout(self, sgt: SgTable, frames: int, period_ns: int) -> None:
        k = self.k
        for _ in range(frames):
            k.event("scanout_frame", self.dev.oid, False)  # the stop flag, read
            if self._stop:
                return
            for e in sgt.entries:
                self.scanout_reads.append(self.dev.dma_read(e.dma_address))
            k.nsleep(period_ns)

    def stop_scanout(self) -> None:
        """Ask the scanout thread to stop after the current frame (the step writes the flag)."""
        self.k.event("stop_scanout", self.dev.oid, True)
        self._stop = True

    def release(self, att: DmaBufAttachment, sgt: SgTable) -> None:
        """R4: wait for the last fenced job, unmap (a no-op for the cached table) and detach."""
        if self.last_fence is not None:
            self.last_fence.wait()
        att.unmap_unlocked(sgt, DMA_BIDIRECTIONAL)
        att.detach()


__all__ = ["DynamicImporter", "ImportedBuffer", "StaticImporter"]
