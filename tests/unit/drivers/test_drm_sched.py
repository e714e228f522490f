"""The drm_sched-like scheduler piece: order, dependencies, free_job once, timeout, parking."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.device import Device
from dmabufsim.dma.fence import DmaFence, FenceContext
from dmabufsim.drivers.drm_sched import (
    DrmGpuScheduler,
    DrmSchedEntity,
    DrmSchedJob,
    EngineBackend,
    SchedBackendOps,
)


def test_jobs_run_in_order_after_their_dependencies_and_are_freed_once() -> None:
    log: list[str] = []
    made: list[DrmSchedJob] = []

    class Logged(EngineBackend):
        def run_job(self, job: DrmSchedJob) -> DmaFence | None:
            log.append(f"run {job.name}")
            return super().run_job(job)

        def free_job(self, job: DrmSchedJob) -> None:
            log.append(f"free {job.name}")
            super().free_job(job)

    def scenario(k: ds.Kernel) -> None:
        log.clear()
        dev = Device("gpu", iommu=False, gpuvm=False)
        sched = DrmGpuScheduler(Logged(dev.engine("gfx")), "gfx")
        entity = DrmSchedEntity(sched, "ctx")
        dep = FenceContext("user", driver="user").create()
        jobs = [DrmSchedJob(entity, f"J{i}") for i in range(3)]
        made[:] = jobs
        jobs[1].add_dependency(dep)
        for j in jobs:
            entity.push_job(j)
        k.msleep(1)
        assert jobs[0].s_fence.finished.is_signaled()
        assert not jobs[1].s_fence.scheduled.is_signaled()  # waits for its dependency
        dep.signal()
        for j in jobs:
            j.s_fence.finished.wait()
        k.msleep(1)

    for seed in range(10):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(scenario)
        assert ex.findings == []
        assert [x for x in log if x.startswith("run")] == ["run J0", "run J1", "run J2"]
        assert sorted(x for x in log if x.startswith("free")) == ["free J0", "free J1", "free J2"]
        assert all(j.freed for j in made)


def test_the_timeout_handler_runs_in_a_kworker_with_the_hung_job() -> None:
    seen: list[Any] = []

    class Hung(SchedBackendOps):
        def __init__(self) -> None:
            self.hw = FenceContext("hw", driver="hung")
            self.fences: list[DmaFence] = []

        def run_job(self, job: DrmSchedJob) -> DmaFence | None:
            f = self.hw.create()
            self.fences.append(f)
            return f

        def timedout_job(self, job: DrmSchedJob) -> str:
            k = ds.current_kernel()
            seen.append((job.name, k.current.name, k.current.is_atomic))
            self.fences[0].set_error(-62)  # -ETIME: the reset completes the job
            self.fences[0].signal()
            return "nominal"

    def scenario(k: ds.Kernel) -> None:
        seen.clear()
        sched = DrmGpuScheduler(Hung(), "gfx", timeout_ns=5 * ds.NSEC_PER_MSEC)
        entity = DrmSchedEntity(sched, "ctx")
        job = DrmSchedJob(entity, "J")
        entity.push_job(job)
        job.s_fence.finished.wait()
        assert job.s_fence.finished.get_status() == -62

    ex = ds.Kernel(seed=0).run(scenario)
    assert ex.findings == []
    assert len(seen) == 1 and seen[0][0] == "J" and seen[0][1].startswith("kworker/events:") and not seen[0][2]


def test_stop_parks_the_scheduler_thread_and_start_resumes_it() -> None:
    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu", iommu=False, gpuvm=False)
        sched = DrmGpuScheduler(EngineBackend(dev.engine("gfx")), "gfx")
        entity = DrmSchedEntity(sched, "ctx")
        sched.stop()
        job = DrmSchedJob(entity, "J")
        entity.push_job(job)
        k.msleep(1)
        assert not job.s_fence.scheduled.is_signaled()  # parked: nothing runs
        sched.start()
        job.s_fence.finished.wait()

    for seed in range(10):
        assert ds.Kernel(seed=seed).run(scenario).findings == []
