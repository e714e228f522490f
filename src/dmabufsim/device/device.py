"""Devices and their engines: jobs that run over virtual time and do DMA.

Models a GPU/DMA device as the stack sees it: engines (rings) fed by a
scheduler (``drivers/gpu/drm/scheduler``: ``drm_sched_job`` with
dependency fences, one ``drm_sched_fence`` per job, jobs of one engine run
in submission order), the hardware doing DMA through the GPU page tables
(:mod:`~dmabufsim.device.gpuvm`) and the IOMMU
(:mod:`~dmabufsim.device.iommu`), and completion interrupts that signal the
job fences.

Rules:

* R1 (order): an engine runs its jobs one at a time in submission order;
  a job starts after every dependency fence signalled. A dependency on a
  fence of the engine's own timeline (an earlier job of the same ring) is
  ordered by the ring and not waited for, as
  ``drm_sched_entity_add_dependency_cb`` ignores "fences from ourself".
* R2 (time): a job of ``duration_ns`` spreads its DMA operations over that
  much virtual time, in ``slices`` bursts (each burst is one scheduling
  point); CPU threads interleave between bursts.
* R3 (completion): when a job ends, the engine raises an interrupt; the
  handler (hardirq context, ``k.raise_irq``) signals the fences of every
  job completed so far, in order (``amdgpu_fence_process``); a job one of
  whose own accesses faulted (R4) has its fence signalled with ``-EIO``. With
  interrupt moderation (``irq_coalesce_ns``) an engine raises at most one
  interrupt per window: a completion inside the window is signalled by
  the interrupt at its end.
* R4 (DMA path): every access translates GPU VA -> device address through
  the device's :class:`GpuVm` (or uses the address as is for a device
  without one) and then through its :class:`IommuDomain`; a missing entry
  is a fault (``iommu-fault``) and the access does nothing. A fault of a
  job's own access is an error: the device lost the job's data even though
  isolation held (drivers log it as an error; the job's fence carries
  ``-EIO``, R3). A fault of a stray access (R5) or of a direct access
  without a job is info: isolation held. Otherwise
  the access reaches a frame and the isolation checker (``k.ext["isolation"]``)
  checks it *before* it lands. It lands even when the checker objects:
  the model shows what the broken hardware would do. The access writes
  (or reads) the frame's contents; the checker's judgement reads the
  frame's bookkeeping (owner, generation, reverse map), which the step
  declares when the checker is installed (``page`` R7).
* R5 (broken device, claim C9): with ``broken=True`` the device keeps
  writing after it was told it was done: ``stray_delay_ns`` after each job
  it repeats the job's writes through whatever translations exist then.
* R6 (teardown): jobs still queued or running at the end are reported by
  the leak check (their fences never signal).
* R7 (recoverable faults, local memory): a device with page-fault support
  (an SVM GPU, ``drivers/svm.py``) accesses through
  :meth:`Device.access_recoverable`: a GPU VM miss (or a write through a
  read-only PTE) is not an error but a *page fault* the driver services,
  after which the access is retried; nothing is reported. Device addresses
  at or above :data:`LOCAL_MEM_BASE` are the device's own memory (VRAM):
  they translate through ``Device.local`` (no IOMMU on that path), whose
  entries the isolation checker judges like IOMMU entries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..dma.fence import DmaFence, FenceContext
from ..kernel.errors import UsageError
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.timer import Timer
from ..kernel.wait import WaitQueue
from ..mm.memory import MmStruct
from ..mm.page import PAGE_SHIFT, PAGE_SIZE, Page, contents_oid, page_allocator
from .gpuvm import GpuVm
from .iommu import DmaMapping, IommuDomain

#: Pseudo-object ids of engines' completion state (``Engine._irq_oid``), apart from real oids.
_IRQ_STATE_BASE = 1 << 47
#: ``EIO``: the error a faulted job's fence carries (R3, R4).
EIO = 5
#: Operation names of DMA op tuples: ("write", va, value), ("read", va), ("copy", src_va, dst_va).
OP_WRITE = "write"
OP_READ = "read"
OP_COPY = "copy"
_OPS = (OP_WRITE, OP_READ, OP_COPY)
#: Bursts a job is split into when ``slices`` is not given (at most one per op).
DEFAULT_SLICES = 16
#: Default job duration: 10 microseconds of virtual time.
DEFAULT_DURATION_NS = 10_000

DmaOp = tuple[Any, ...]

#: Device addresses of the device's own memory (R7): the local-memory aperture.
LOCAL_MEM_BASE = 1 << 48


class Job:
    """``struct drm_sched_job``: DMA ops (or a callable) plus dependencies and a fence."""

    __slots__ = ("deps", "device", "duration_ns", "engine", "faulted", "fence", "fn", "name", "ops", "results",
                 "slices", "state", "vm")

    def __init__(self, engine: Engine, ops: Sequence[DmaOp] | None, fn: Callable[[Job], object] | None,
                 duration_ns: int, deps: Sequence[DmaFence], vm: GpuVm | None, slices: int | None,
                 name: str, fence: DmaFence) -> None:
        self.engine = engine
        self.device = engine.device
        self.ops = ops
        self.fn = fn
        self.duration_ns = duration_ns
        self.deps = tuple(deps)
        self.vm = vm
        self.slices = slices
        self.name = name
        self.fence = fence
        #: Values read by "read" ops, in order.
        self.results: list[object] = []
        #: "queued", "running", "done" (fence pending the irq), "signalled".
        self.state = "queued"
        #: One of the job's own accesses faulted (R4): its fence is signalled with -EIO (R3).
        self.faulted = False

    def __repr__(self) -> str:
        return f"<Job {self.name} {self.state}>"


class Engine:
    """A hardware engine (ring) with its scheduler thread (a daemon kthread)."""

    def __init__(self, device: Device, name: str) -> None:
        self.device = device
        self.k = device.k
        self.name = name
        self.oid = self.k.new_oid()
        #: The pseudo-object of the completion state the interrupt handler shares with the
        #: engine thread (``_done``, ``_irq_pending``, ``_last_irq``): declared by both.
        self._irq_oid = _IRQ_STATE_BASE + self.oid
        self.timeline = FenceContext(f"{device.name}.{name}", driver=device.name)
        self.queue: deque[Job] = deque()
        self.wq = WaitQueue(f"{device.name}.{name}.jobs")
        self.running: Job | None = None
        self._done: list[Job] = []
        self._irq_pending = False
        self._irq_timer: Timer | None = None
        self._last_irq = -(1 << 62)
        self._irq_name = f"{device.name}-{name}-irq"
        self.nr_jobs = 0
        #: The job the last ``submit`` queued (drivers read its ``results`` after its fence).
        self.last_job: Job | None = None
        # Registered before the spawn's scheduling point: a thread asking for
        # the same engine meanwhile must find this one, not start a second.
        device.engines[name] = self
        self.thread = self.k.spawn(self._main, name=f"{device.name}-{name}", daemon=True)

    def __repr__(self) -> str:
        return f"<Engine {self.device.name}.{self.name} queued={len(self.queue)}>"

    def submit(self, ops: Sequence[DmaOp] | Callable[[Job], object], *, duration_ns: int = DEFAULT_DURATION_NS,
               deps: Sequence[DmaFence] = (), vm: GpuVm | None = None, slices: int | None = None,
               name: str | None = None) -> DmaFence:
        """``drm_sched_job_init`` + ``drm_sched_entity_push_job``: queue a job; returns its fence.

        ``ops`` is a list of DMA op tuples or a callable run on the engine
        thread with the job (it may call ``job.device.dma_write`` etc.).
        """
        if duration_ns < 0:
            raise UsageError(f"duration_ns must be >= 0, got {duration_ns}")
        fn: Callable[[Job], object] | None = None
        op_list: Sequence[DmaOp] | None = None
        if callable(ops):
            fn = ops
        else:
            op_list = list(ops)
            for op in op_list:
                if not op or op[0] not in _OPS or len(op) != (2 if op[0] == OP_READ else 3):
                    raise UsageError(f"bad DMA op {op!r}: use ('write', va, value), ('read', va) or "
                                     "('copy', src_va, dst_va)")
        k = self.k
        k.point("job_submit", self.oid, True, self.name)
        self.nr_jobs += 1
        fence = self.timeline.create()
        job = Job(self, op_list, fn, duration_ns, deps, vm if vm is not None else self.device.vm, slices,
                  name or f"{self.device.name}.{self.name}#{self.nr_jobs}", fence)
        self.queue.append(job)
        self.last_job = job
        self.device.pending_jobs += 1
        self.wq.wake_up()
        return fence

    def _has_work(self) -> bool:
        return bool(self.queue)

    def _main(self) -> None:
        k = self.k
        while True:
            self.wq.wait_event(self._has_work, reads=self.oid)
            k.event("job_run", self.oid, True, self.name)  # drm_sched_entity_pop_job: the queue, written
            job = self.queue.popleft()
            self.running = job
            job.state = "running"
            own = self.timeline.context
            for f in job.deps:
                if f.context != own:  # R1: an earlier job of this ring is ordered by the ring itself
                    f.wait()
            self._execute(job, stray=False)
            k.event("job_done", self.oid, True, self.name)  # the engine's done list, written
            k.event("job_done", self._irq_oid, True, self.name)  # and the completion state
            self.running = None
            job.state = "done"
            self._done.append(job)
            self.device.pending_jobs -= 1
            self._raise_completion_irq()
            if self.device.broken and job.ops:
                k.nsleep(self.device.stray_delay_ns)
                writes = [op for op in job.ops if op[0] != OP_READ]
                if writes:
                    self._run_ops(job, writes, True)

    def _raise_completion_irq(self) -> None:
        """Raise the completion interrupt now, or at the end of the moderation window (R3)."""
        if self._irq_pending or self._irq_timer is not None:
            return  # the pending interrupt will see this job too
        k = self.k
        due = self._last_irq + self.device.irq_coalesce_ns
        if k.now >= due:
            self._irq_pending = True
            k.raise_irq(self._irq, name=self._irq_name)
        else:
            self._irq_timer = k.add_timer(due, self._moderation_expired, name=self._irq_name)

    def _moderation_expired(self) -> None:
        """Timer callback (interrupt moderation): deliver the postponed interrupt."""
        self._irq_timer = None
        self._irq_pending = True
        self.k.raise_irq(self._irq, name=self._irq_name)

    def _irq(self) -> None:
        """The completion interrupt: signal every finished job's fence in order (R3)."""
        # The handler's first step writes the completion state (done list, pending interrupt).
        self.k.event("engine_irq", self._irq_oid, True, self.name)
        self._irq_pending = False
        self._last_irq = self.k.now
        done = self._done
        self._done = []
        for job in done:
            job.state = "signalled"
            if job.faulted:
                # The driver's fault handler: the job's data is lost (the step writes the fence).
                self.k.event("dma_fence_set_error", job.fence.oid, True)
                job.fence.set_error(-EIO)
            job.fence.signal()

    def _execute(self, job: Job, stray: bool) -> None:
        k = self.k
        if job.fn is not None:
            job.fn(job)
            if job.duration_ns:
                k.nsleep(job.duration_ns)
            return
        ops = job.ops or ()
        n = len(ops)
        slices = job.slices or min(n, DEFAULT_SLICES) or 1
        per = job.duration_ns // slices
        lo = 0
        dev = self.device
        for s in range(slices):
            if per:
                k.nsleep(per)
            hi = (s + 1) * n // slices
            if hi > lo:
                k.point("dma", dev.domain.oid, True, self.name)
                self._run_ops(job, ops[lo:hi], stray)
            lo = hi

    def _run_ops(self, job: Job, ops: Sequence[DmaOp], stray: bool) -> None:
        dev = self.device
        vm = job.vm
        for op in ops:
            kind = op[0]
            if kind == OP_WRITE:
                dev._access(vm, op[1], True, op[2], job, stray)
            elif kind == OP_READ:
                job.results.append(dev._access(vm, op[1], False, None, job, stray))
            else:
                src = dev._access_page(vm, op[1], False, job, stray)
                if src is not None:
                    dst = dev._access_page(vm, op[2], True, job, stray)
                    if dst is not None:
                        k = self.k
                        k.event("page_read", contents_oid(src.oid), False)  # page R7: contents only
                        k.event("page_write", contents_oid(dst.oid), True)
                        dst.data = dict(src.data) if src.data else None


class Device:
    """A DMA-capable device: an IOMMU domain, a GPU VM, engines.

    ``Device(name, iommu=True)``; ``iommu=False`` gives a passthrough domain
    (no isolation, iommu R4). ``gpuvm=False`` for a device that uses device
    addresses directly (a copy engine, a NIC). ``broken=True`` is the fault
    injection of R5.
    """

    #: ``pending_jobs``: a statistic (nothing in the model reads it; accesses A3).
    __untracked__ = ("pending_jobs",)

    def __init__(self, name: str, *, iommu: bool = True, gpuvm: bool = True, broken: bool = False,
                 stray_delay_ns: int = 1_000, irq_coalesce_ns: int = 0) -> None:
        self.k: Kernel = current_kernel()
        self.oid = self.k.new_oid()
        self.name = name
        self.alloc = page_allocator(self.k)
        self.domain = IommuDomain(name, passthrough=not iommu, alloc=self.alloc)
        self.vm: GpuVm | None = GpuVm(f"{name}.vm") if gpuvm else None
        self.broken = broken
        self.stray_delay_ns = stray_delay_ns
        #: Interrupt moderation: at most one completion interrupt per engine per this many ns (R3).
        self.irq_coalesce_ns = irq_coalesce_ns
        self.engines: dict[str, Engine] = {}
        self.pending_jobs = 0
        #: Accesses done / faulted (statistics).
        self.nr_accesses = 0
        self.nr_faults = 0
        self._chk: Any = self.k.ext.get("isolation")
        #: The local-memory aperture (R7): device address -> VRAM frame; set by a driver that has VRAM.
        self.local: IommuDomain | None = None
        self.k.ext.setdefault("device.devices", []).append(self)

    def __repr__(self) -> str:
        return f"<Device {self.name}>"

    def engine(self, name: str = "gfx") -> Engine:
        """The engine ``name`` (``gfx``, ``copy``, ``compute``...), started on first use."""
        e = self.engines.get(name)
        if e is None:
            e = Engine(self, name)  # registers itself before it can be preempted
        return e

    def submit(self, ops: Sequence[DmaOp] | Callable[[Job], object], *, engine: str = "gfx",
               **kw: Any) -> DmaFence:
        """Queue a job on ``engine``; see :meth:`Engine.submit`."""
        return self.engine(engine).submit(ops, **kw)

    # ------------------------------------------------------------------ the DMA path (hot)

    def _fault(self, what: str, va: int, iova: int | None, write: bool, job: Job | None, stray: bool,
               reason: str) -> None:
        self.nr_faults += 1
        self.domain.nr_faults += 1
        # R4: a job's own access that faults lost the job's data (an error; its fence gets
        # -EIO, R3); a stray access faulting is isolation holding (info).
        own = job is not None and not stray
        if own:
            assert job is not None
            job.faulted = True
        d = "write" if write else "read"
        addr = f"{iova:#x}" if iova is not None else "-"
        self.k.report(
            "iommu-fault",
            f"{what}: DMA {d} fault ({reason})" if what == "GPU VM fault" else
            f"AMD-Vi: Event logged [IO_PAGE_FAULT device={self.name}] DMA {d} ({reason})",
            details={"device": self.name, "va": f"{va:#x}", "iova": addr, "write": write, "reason": reason,
                     "job": job.name if job is not None else None, "stray": stray},
            rule="iommu R1: no entry, no access (isolation held)" if what != "GPU VM fault"
            else "gpuvm R1: no PTE, no access",
            signature=f"iommu-fault:{self.name}:{what}:{reason}:{d}:{stray}",
            severity="error" if own else "info",
        )

    def _resolve(self, vm: GpuVm | None, va: int, write: bool, job: Job | None, stray: bool) -> Page | None:
        """GPU VA -> frame through the GPU VM and the IOMMU, checked (R4). None on a fault."""
        self.nr_accesses += 1
        if vm is not None:
            pte = vm.lookup(va)
            if pte is None:
                self._fault("GPU VM fault", va, None, write, job, stray, "no PTE")
                return None
            if write and not pte.writable:
                self._fault("GPU VM fault", va, None, write, job, stray, "read-only PTE")
                return None
            iova = pte.iova | (va & (PAGE_SIZE - 1))
        else:
            iova = va
        dom = self.domain
        rec = dom.translate(iova)
        chk = self._chk
        if rec is None:
            if not dom.passthrough:
                self._fault("IOMMU", va, iova, write, job, stray, "unmapped IOVA")
                return None
            page = self.alloc.pfn_to_page(iova >> PAGE_SHIFT)
            if page is None:
                self._fault("IOMMU", va, iova, write, job, stray, "no such frame")
                return None
            if chk is not None:
                self.k.event("dma_isolation_check", page.oid, False)  # page R7: the frame's owner, read
                chk.check_unmapped(self, page, write, va, iova, job, stray)
            return page
        if write and not rec.writable:
            self._fault("IOMMU", va, iova, write, job, stray, "read-only mapping")
            return None
        if chk is not None:
            # page R7: the checker judges the access by the frame's owner, generation and reverse map
            self.k.event("dma_isolation_check", rec.page.oid, False)
            if not chk.check(rec, write):
                chk.judge(self, rec, write, va, iova, job, stray)
        return rec.page

    def _access(self, vm: GpuVm | None, va: int, write: bool, value: object, job: Job | None,
                stray: bool) -> object:
        page = self._resolve(vm, va, write, job, stray)
        if page is None:
            return None
        if write:
            page.write(va & (PAGE_SIZE - 1), value)
            return None
        return page.read(va & (PAGE_SIZE - 1))

    def _access_page(self, vm: GpuVm | None, va: int, write: bool, job: Job | None, stray: bool) -> Page | None:
        return self._resolve(vm, va, write, job, stray)

    def access_recoverable(self, va: int, write: bool, value: object = None) -> tuple[bool, object]:
        """One access of a device with recoverable page faults (R7): ``(False, None)`` on a GPU page fault.

        Otherwise ``(True, value read or None)``; an IOMMU miss is still an
        ``iommu-fault`` (the access does nothing).
        """
        k = self.k
        vm = self.vm
        if vm is None:
            raise UsageError(f"{self.name}: recoverable faults need a GPU VM")
        k.point("dma", self.domain.oid, True, self.name)
        pte = vm.lookup(va)
        if pte is None or (write and not pte.writable):
            return False, None
        self.nr_accesses += 1
        iova = pte.iova | (va & (PAGE_SIZE - 1))
        dom = self.local if self.local is not None and iova >= LOCAL_MEM_BASE else self.domain
        if dom is not self.domain:  # the step also walks the local aperture's tables (R7)
            k.event("dma", dom.oid, True, self.name)
        rec = dom.translate(iova)
        if rec is None or (write and not rec.writable):
            self._fault("IOMMU", va, iova, write, None, False, "unmapped IOVA" if rec is None else "read-only mapping")
            return True, None
        chk = self._chk
        page = rec.page
        if chk is not None:
            k.event("dma_isolation_check", page.oid, False)  # page R7: the frame's bookkeeping, read
            if not chk.check(rec, write):
                chk.judge(self, rec, write, va, iova, None, False)
        if write:
            page.write(va & (PAGE_SIZE - 1), value)
            return True, None
        return True, page.read(va & (PAGE_SIZE - 1))

    def dma_write(self, va: int, value: object, *, vm: GpuVm | None = None, stray: bool = False) -> None:
        """One device write at ``va`` now (a rogue access from scenario code, or a callable job)."""
        self.k.point("dma", self.domain.oid, True, self.name)
        self._access(vm if vm is not None else self.vm, va, True, value, None, stray)

    def dma_read(self, va: int, *, vm: GpuVm | None = None) -> object:
        """One device read at ``va`` now (None on a fault)."""
        self.k.point("dma", self.domain.oid, False, self.name)
        return self._access(vm if vm is not None else self.vm, va, False, None, None, False)

    # ------------------------------------------------------------------ helpers for drivers

    def map_pages(self, va: int, pages: Sequence[Page], writable: bool = True, *,
                  mm: MmStruct | None = None) -> list[DmaMapping]:
        """``dma_map_sg`` the pages and point consecutive GPU VAs at them; returns the IOMMU entries.
        ``mm``: the address space the mappings are for (``iommu`` R6)."""
        recs = []
        for i, p in enumerate(pages):
            iova = self.domain.dma_map_page(p, writable, mm=mm)
            recs.append(self.domain.pt[iova >> PAGE_SHIFT])
            if self.vm is not None:
                self.vm.map(va + i * PAGE_SIZE, iova, writable)
        return recs

    def unmap_pages(self, va: int, npages: int, *, flush: bool = True) -> None:
        """Zap the GPU PTEs of ``[va, va + npages)`` (flushing the GPU TLB) and unmap their IOMMU entries."""
        iovas: list[int] = []
        for i in range(npages):
            a = va + i * PAGE_SIZE
            if self.vm is not None:
                pte = self.vm.ptes.get(a >> PAGE_SHIFT)
                if pte is not None:
                    iovas.append(pte.iova)
            else:
                iovas.append(a)
        if self.vm is not None:
            self.vm.zap(va, npages)
            if flush:
                self.vm.flush_tlb()
        for a in iovas:
            self.domain.unmap(a, 1, sync=flush)
