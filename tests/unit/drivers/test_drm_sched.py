"""The drm_sched-like scheduler piece: order, dependencies, free_job once, timeout, parking."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.device import Device
from dmabufsim.dma.fence import DmaFence, FenceContext
from dmabufsim.drivers.drm_sched import (
    DrmGpuScheduler,
    DrmSchedEntity,
    DrmSchedJob,
    EngineBackend,
    IrqBackend,
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
        jobs[1].add_dependency(dep.get())  # consumes a reference: the test keeps its own
        done = [j.s_fence.finished.get() for j in jobs]  # what a syncobj would hold
        for j in jobs:
            entity.push_job(j)
        k.msleep(1)
        assert done[0].is_signaled()
        assert not jobs[1].s_fence.scheduled.is_signaled()  # waits for its dependency
        dep.signal()
        dep.put()
        for f in done:
            f.wait()
            f.put()
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
        done = job.s_fence.finished.get()
        entity.push_job(job)
        done.wait()
        assert done.get_status() == -62
        done.put()

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
        done = job.s_fence.finished.get()
        entity.push_job(job)
        k.msleep(1)
        assert not job.s_fence.scheduled.is_signaled()  # parked: nothing runs
        sched.start()
        done.wait()
        done.put()

    for seed in range(10):
        assert ds.Kernel(seed=seed).run(scenario).findings == []


def test_references_are_counted_as_the_kernel_counts_them() -> None:
    """The dependency container, the entity and the kill walk each drop exactly the reference they took;
    the job's fences are freed once the job and the last outside holder let go."""
    from dmabufsim.drivers.drm_sched import IrqBackend
    from dmabufsim.kernel.workqueue import Workqueue

    seen: list[tuple[int, bool, bool]] = []

    def scenario(k: ds.Kernel) -> None:
        sched = DrmGpuScheduler(IrqBackend("amdgpu"), "gfx", timeout_wq=Workqueue("events", workers=1))
        entity = DrmSchedEntity(sched, "ctx", kill_design="work-walk")
        a, l1 = DrmSchedJob(entity, "A"), DrmSchedJob(entity, "L1")
        other = FenceContext("other", driver="other").create()
        l1.add_dependency(other.get())
        a_done, l1_done = a.s_fence.finished.get(), l1.s_fence.finished.get()
        entity.push_job(a)
        entity.push_job(l1)
        a_done.wait()
        entity.kill()
        other.signal()
        l1_done.wait()
        k.msleep(1)  # the kill work frees L1
        seen.append((other.refcount, l1.freed is not None, a.freed is not None))
        l1_done.put()
        a_done.put()
        seen.append((other.refcount, l1.s_fence.scheduled.freed is not None, l1.s_fence.finished.freed is not None))
        other.put()

    for seed in range(10):
        seen.clear()
        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.findings == []
        assert seen == [(1, True, True), (1, True, True)]


def _one_job(k: ds.Kernel, backend: SchedBackendOps) -> DrmSchedJob:
    dev_sched = DrmGpuScheduler(backend, "gfx")
    entity = DrmSchedEntity(dev_sched, "ctx")
    job = DrmSchedJob(entity, "J")
    done = job.s_fence.finished.get()
    entity.push_job(job)
    done.wait()
    done.put()
    k.msleep(1)  # the scheduler thread frees it
    return job


def test_a_job_freed_twice_is_a_use_after_free_not_a_crash() -> None:
    class FreesTwice(EngineBackend):
        def free_job(self, job: DrmSchedJob) -> None:
            job.cleanup()
            job.cleanup()  # the driver's double free

    def scenario(k: ds.Kernel) -> None:
        _one_job(k, FreesTwice(Device("gpu", iommu=False, gpuvm=False).engine("gfx")))

    ex = ds.Kernel(seed=0).run(scenario)
    assert ex.kinds == ["use-after-free"]
    f = ex.findings[0]
    assert f.title == "BUG: KASAN: slab-use-after-free in drm_sched_job_cleanup"
    assert f.details["object"] == "drm_sched_job J" and f.details["freed_in"] == "kfree(job)"
    assert [t.name for t in f.threads] == ["gfx", "gfx"]


def test_touching_a_freed_job_names_both_threads() -> None:
    def scenario(k: ds.Kernel) -> None:
        job = _one_job(k, EngineBackend(Device("gpu", iommu=False, gpuvm=False).engine("gfx")))
        assert job.freed is not None
        job.read("driver_looks_at_job")

    ex = ds.Kernel(seed=0).run(scenario)
    assert ex.kinds == ["use-after-free"]
    f = ex.findings[0]
    assert f.title == "BUG: KASAN: slab-use-after-free in driver_looks_at_job"
    assert f.details["touched_by"] == "scenario" and f.details["freed_by"] == "gfx"
    assert [fr.function for fr in f.threads[1].stack] == ["cleanup", "free_job", "_main"]


def test_a_bad_job_that_completed_during_the_timeout_is_freed_by_the_handler() -> None:
    """drm_sched_stop finds the bad job's hardware fence signalled: it leaves the job to the timeout
    handler (free_guilty), which frees it once the driver returned; the thread never sees it."""
    freed_by: list[str] = []

    class LateRing(SchedBackendOps):
        def __init__(self) -> None:
            self.hw = FenceContext("hw", driver="late")
            self.fences: list[DmaFence] = []

        def run_job(self, job: DrmSchedJob) -> DmaFence | None:
            f = self.hw.create()
            self.fences.append(f.get())
            return f

        def timedout_job(self, job: DrmSchedJob) -> str:
            job.read("late_job_timedout")
            self.fences[0].signal()  # the job completes just now
            self.fences[0].put()
            job.sched.stop(job)
            job.sched.start(True)
            return "nominal"

        def free_job(self, job: DrmSchedJob) -> None:
            freed_by.append(ds.current_kernel().current.name)
            job.cleanup()

    def scenario(k: ds.Kernel) -> None:
        freed_by.clear()
        sched = DrmGpuScheduler(LateRing(), "gfx", timeout_ns=5 * ds.NSEC_PER_MSEC)
        entity = DrmSchedEntity(sched, "ctx")
        job = DrmSchedJob(entity, "J")
        entity.push_job(job)
        k.msleep(10)
        assert job.freed is not None

    for seed in range(10):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(scenario)
        assert ex.findings == []
        assert len(freed_by) == 1 and freed_by[0].startswith("kworker/events:")


def _kill_while_popping(k: ds.Kernel) -> None:
    """One job waiting for another driver's fence; the entity is killed while the scheduler thread
    may be in the middle of popping it, then the fence signals and its last reference goes."""
    sched = DrmGpuScheduler(IrqBackend("amdgpu"), "gfx")
    entity = DrmSchedEntity(sched, "ctx", kill_design="inline-signal")
    other = FenceContext("other", driver="other").create()
    job = DrmSchedJob(entity, "J")
    job.add_dependency(other.get())
    entity.push_job(job)
    entity.kill()
    other.signal()
    other.put()


def test_kill_waits_until_the_scheduler_thread_no_longer_uses_the_entity() -> None:
    """drm_sched_entity_kill waits for entity_idle: the thread re-arms it when it selects the entity
    and completes it once the pop returned. Without that wait the kill freed the job (and with it the
    dependency's last reference) while the thread was still testing that dependency: a false
    use-after-free of the fence in drm_sched_entity_pop_job."""
    rep = ds.explore(_kill_while_popping, "odpor", budget=5000, stop_on_first=False)
    assert rep.findings == [] and rep.assurance is not None and rep.assurance.proved
    # The race is there: in some schedules the kill waits for the thread's pop.
    waited = False
    for seed in range(60):
        k = ds.Kernel(seed=seed, record_trace=True)
        ops: list[tuple[str, str]] = []
        k.trace.subscribe(lambda e, ops=ops, k=k: ops.append((e.op, k.current.name if k.current else "")))
        assert k.run(_kill_while_popping).findings == []
        i = ops.index(("drm_sched_entity_kill", "scenario"))
        waited |= ("complete_all", "gfx") in ops[i:]
    assert waited


def _kill_while_running(k: ds.Kernel) -> None:
    """One job running on an IRQ-completed ring when its entity is killed (H1's work-item driver)."""
    wq = ds.Workqueue("events", workers=1)
    sched = DrmGpuScheduler(IrqBackend("panfrost", free_lock=ds.Mutex("panfrost.job_lock")), "gfx", timeout_wq=wq)
    entity = DrmSchedEntity(sched, "ctx", kill_design="work-item")
    a = DrmSchedJob(entity, "A")
    done = a.s_fence.finished.get()
    entity.push_job(a)
    a.s_fence.scheduled.wait()
    entity.kill()
    done.put()
    k.ext["sched"] = (sched, entity)


def test_kill_takes_the_entity_off_the_run_queue_which_is_declared_apart_from_the_pending_list() -> None:
    """S5, S6: drm_sched_rq_remove_entity writes the run queue (rq->lock), not the pending list
    (job_list_lock); after it the scheduler thread never reads the killed entity."""
    k = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True)
    ex = k.run(_kill_while_running)
    assert ex.findings == []
    sched, entity = k.ext["sched"]
    assert sched.entities == [] and sched.rq_oid != sched.oid
    events = ex.events
    assert events is not None
    at = next(i for i, e in enumerate(events) if e.op == "drm_sched_rq_remove_entity")
    assert (events[at].obj, events[at].write) == (sched.rq_oid, True)
    assert not any(e.obj == entity.oid for e in events[at + 1:] if e.op == "drm_sched_entity_is_ready")
    taken = {(e.obj, e.write) for e in events if e.op in ("drm_sched_get_finished_job", "drm_sched_job_begin")}
    assert (sched.rq_oid, True) not in taken and (sched.oid, True) in taken
    selections = {(e.obj, e.write) for e in events if e.op.startswith("drm_sched_")
                  and e.op.endswith(("select_entity", "select_entity_rr"))}
    assert selections == {(sched.rq_oid, False)}


@pytest.mark.slow
def test_one_job_killed_while_running_is_exhausted_in_its_mazurkiewicz_traces() -> None:
    """Optimal DPOR over the kill of a running job: 369 traces, each run once. Every fence
    put writes the fence's count (kernel/counter.py C3: which put releases depends on their
    order); while puts that do not release were declared reads, 1,044 executions ran and a
    use-after-put could be lost (1,944 before the kill took the entity off the run queue)."""
    odpor = ds.explore.OptimalDPOR()
    run = ds.explore.explorer.run_job(_kill_while_running, [(odpor, 5000)], stop_on_first=False, coverage=False)
    assert odpor.complete and odpor.deviations == 0
    assert run.executions == 369 and not run.findings  # 2,322 before the flag bits were apart (dma_fence R13)
