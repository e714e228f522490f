"""A drm_sched-like GPU scheduler: entities, run queues, a scheduler thread per ring.

Models ``drivers/gpu/drm/scheduler`` (``sched_main.c``, ``sched_entity.c``,
``sched_fence.c``) as a reusable driver piece: a driver gives its
:class:`SchedBackendOps` (``run_job`` / ``free_job`` / ``timedout_job``),
userspace contexts push jobs into :class:`DrmSchedEntity` objects, and one
:class:`DrmGpuScheduler` per ring picks ready jobs, runs them on the
hardware and frees them when they are done.

Rules:

* S1 (fences): every job has a :class:`DrmSchedFence`: a *scheduled* and a
  *finished* ``dma_fence`` on the entity's two fence contexts, sharing one
  spinlock per job. All scheduler fences' locks are one lockdep class
  (``drm_sched_fence.lock``: one ``spin_lock_init`` site in
  ``drm_sched_fence_init``), so taking one scheduler fence's lock while
  holding another's is ``possible recursive locking detected`` unless
  annotated.
* S2 (dependencies): ``job.add_dependency(fence)`` stores the fence in the
  job's dependency container (an xarray: its ``xa_lock`` is a plain
  spinlock, taken with interrupts enabled). The scheduler does not block on
  dependencies: ``drm_sched_entity_pop_job`` hangs a callback on the first
  unsignalled one, which wakes the scheduler when it signals.
* S3 (scheduler thread, ``drm_sched_main``): waits until a finished job can
  be freed or an entity has a ready job (or it is asked to park). A job is
  popped in push order per entity (entities of a run queue round-robin),
  its scheduled fence signalled, the job added to the pending list under
  ``job_list_lock``, the timeout armed, ``run_job`` called; the hardware
  fence it returns gets ``drm_sched_job_done_cb``, which signals the
  finished fence (in the hardware fence's signalling context: hardirq when
  an interrupt signals it) and wakes the thread. ``free_job`` is called by
  the thread, in process context, for the first pending job whose finished
  fence signalled, after taking it off the pending list. A job is freed
  exactly once, by ``free_job`` (``job.freed``, S8).
* S4 (timeout, ``drm_sched_job_timedout``): a delayed work item
  (``work_tdr``) on the scheduler's timeout workqueue, armed when a job
  starts and while jobs are pending; it runs in a kworker (process
  context), picks the first pending job and calls ``timedout_job``. How it
  picks changed in 2019 (:data:`TIMEOUT_DESIGNS`): ``peek`` reads the first
  job without the list lock and leaves it on the list, so the scheduler
  thread may free it meanwhile; ``take-off-list`` takes it off the list under
  the lock, and :meth:`DrmGpuScheduler.stop` (``drm_sched_stop(sched,
  bad)``, which the driver's handler calls) puts it back once the thread is
  parked. ``stop`` then detaches the pending jobs from their hardware
  fences (or frees those already done, leaving a done bad job to the
  handler: ``free_guilty``); :meth:`DrmGpuScheduler.start` re-arms them (a
  detached job completes with ``-ECANCELED``) and unparks the thread. A job
  the handler took off the list and no ``stop`` put back is never freed,
  as in the kernel.
* S5 (entity kill, ``drm_sched_entity_kill``): the entity stops accepting
  jobs; each job still queued gets its scheduled fence signalled, its
  finished fence the error ``-ESRCH``, and a callback on the previous job's
  finished fence (the first on the entity's last scheduled fence), so that
  the jobs complete in order after the hardware finished. Before it
  touches the queue it waits for ``entity_idle``: the scheduler thread
  re-arms it when it selects the entity and completes it once the pop
  came back empty or ``run_job`` returned, so a kill never takes a job
  the thread is still popping. What that
  callback does changed over the years (:data:`KILL_DESIGNS`):
  ``inline-signal`` signals the finished fence and frees the job inside the
  callback (before 542cff7893a3); ``irq-work`` defers both to an
  ``irq_work`` (542cff7893a3, 2021); ``work-item`` to a work item
  (Dmitry Osipenko, 2022, "drm/scheduler: Don't kill jobs in interrupt
  context"); ``callback-takes-xa-lock`` first walks the job's dependencies
  from the callback, erasing them under ``xa_lock`` and re-arming itself on
  each unsignalled one, then defers to a work item (2023-2025); ``work-walk``
  only queues the work item, which walks the dependencies
  (487df8b69834, 2025).
* S6 (declarations): the kernel's state is declared as the kernel
  separates it. An entity's state (its job queue, ``dependency``,
  ``stopped``, ``last_scheduled``: ``job_queue`` is an spsc queue, the rest
  under ``entity->lock`` or the entity's own thread) is the entity's
  ``oid``, written by ``push_job``, the pop, the dependency callback and
  ``kill``. The run queue (its entities, under ``rq->lock``) is the
  scheduler's ``rq_oid``, written by ``drm_sched_rq_add_entity`` and
  ``drm_sched_rq_remove_entity`` (the kill takes the entity off the run
  queue: the thread never reads it again); the pending list (under
  ``job_list_lock``) is the scheduler's ``oid``, written by the steps that
  add or take a pending job. Two locks, two objects: the kill's removal
  does not race with the thread taking a finished job. The scheduler
  thread's wait condition reads the pending list, and the run queue when
  no finished job is there (``drm_sched_select_entity``); its round-robin
  position is its own. ``drm_sched_job_done`` touches only the
  finished fence and the wait queue, which declare themselves.
* S7 (references, as the kernel counts them): the job holds one reference
  on its finished fence (dropped by ``drm_sched_job_cleanup``), the finished
  fence one on the scheduled fence (dropped by its ``release``), the
  scheduled fence one on the hardware fence (``parent``, dropped by its
  ``release``, which frees the pair). ``add_dependency`` consumes the
  caller's reference; the dependency container keeps it until cleanup or
  until the kill walk erases the entry (the walk's callback, or the walk
  itself when the fence already signalled, puts it). The entity holds a
  reference on the dependency it waits for and on ``last_scheduled``;
  ``run_job`` returns a reference the scheduler drops once it took its own.
  Whoever keeps using a job's fence after pushing it (a waiter, a
  reservation object) takes its own reference first.
* S8 (job lifetime): a job is the driver's memory, freed by ``free_job``
  (``job.cleanup()``: ``drm_sched_job_cleanup`` and ``kfree``). The
  scheduler's steps that look at a job declare it (push, pop, begin, the
  timeout handler's pick), and so does a driver callback that reads it
  (``job.read(op)``): any of them on a freed job is a ``use-after-free``
  naming the job, the thread that freed it and the one that touched it; a
  second ``cleanup`` is the double free, reported the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..dma.fence import DmaFence, DmaFenceCb, FenceOps, context_alloc
from ..kernel.completion import Completion
from ..kernel.errors import ENOENT, UsageError
from ..kernel.irq_work import IrqWork
from ..kernel.kthread_park import kthread_park, kthread_parkme, kthread_unpark
from ..kernel.lifetime import FreeRecord, lifetimes
from ..kernel.runtime import current_kernel
from ..kernel.stack import Frame
from ..kernel.wait import WaitQueue
from ..kernel.workqueue import DelayedWork, Workqueue, WorkStruct, system_wq
from ..locking.spinlock import SpinLock

#: ``ESRCH``: the finished fence's error for a job of a killed entity.
ESRCH = 3
#: ``ECANCELED``: what a job whose dependency failed gets.
ECANCELED = 125
#: Lock class of every scheduler fence's lock (S1).
SCHED_FENCE_LOCK_CLASS = "drm_sched_fence.lock"
#: Lock class of every job's dependency xarray (S2).
XA_LOCK_CLASS = "&job->dependencies.xa_lock"
#: What the entity-kill callback does, by design (S5).
KILL_DESIGNS = ("inline-signal", "irq-work", "work-item", "callback-takes-xa-lock", "work-walk")
#: How the timeout handler picks the job it blames (S4): ``peek`` leaves it on the pending list
#: (before 2019), ``take-off-list`` removes it under the list lock and ``stop`` puts it back once
#: the scheduler thread is parked (Andrey Grodzovsky, "drm/scheduler: Avoid accessing freed bad job.").
TIMEOUT_DESIGNS = ("peek", "take-off-list")
#: ``DRM_GPU_SCHED_STAT_NOMINAL`` / ``_ENODEV``: what ``timedout_job`` returns.
STAT_NOMINAL = "nominal"
STAT_ENODEV = "enodev"


class _SchedFenceOps(FenceOps):
    """``drm_sched_fence_ops_scheduled`` / ``_finished`` (S7: their ``release``)."""

    def __init__(self, sched_name: str, which: str, s_fence: DrmSchedFence) -> None:
        self.sched_name = sched_name
        self.which = which
        self.s_fence = s_fence

    def get_driver_name(self, fence: DmaFence) -> str:
        return "drm_sched"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return f"{self.sched_name}.{self.which}"

    def release(self, fence: DmaFence) -> None:
        """``drm_sched_fence_release_finished``: drop the finished fence's reference on the
        scheduled one; ``drm_sched_fence_release_scheduled``: drop the parent, free the pair (S7)."""
        s_fence = self.s_fence
        if self.which == "finished":
            s_fence.scheduled.put()
            return
        if s_fence.parent is not None:
            s_fence.parent.put()
        # call_rcu(drm_sched_fence_free): the struct holding both fences goes at once.
        s_fence.finished.free()
        fence.free()


class DrmSchedFence:
    """``struct drm_sched_fence``: the scheduled and finished fences of one job (S1)."""

    __slots__ = ("finished", "lock", "parent", "scheduled")

    def __init__(self, entity: DrmSchedEntity, seqno: int) -> None:
        """``drm_sched_fence_alloc`` + ``drm_sched_fence_init``."""
        name = entity.sched.name
        self.lock = SpinLock(SCHED_FENCE_LOCK_CLASS, key=SCHED_FENCE_LOCK_CLASS)
        # Each fence starts with one reference: the finished fence's is the job's (dropped by
        # drm_sched_job_cleanup), the scheduled fence's is the finished fence's (S7).
        self.scheduled = DmaFence(_SchedFenceOps(name, "scheduled", self), self.lock, entity.fence_context, seqno)
        self.finished = DmaFence(_SchedFenceOps(name, "finished", self), self.lock, entity.fence_context + 1,
                                 seqno)
        #: The hardware fence ``run_job`` returned, with a reference of its own (S7).
        self.parent: DmaFence | None = None


class DrmSchedJob:
    """``struct drm_sched_job``: a job of an entity, its fences and dependencies."""

    __slots__ = ("cb", "data", "dependencies", "entity", "finish_cb", "freed", "irq_work", "k", "last_dependency",
                 "name", "oid", "ref_sites", "s_fence", "sched", "work", "xa_lock")
    #: ``freed`` and ``ref_sites``: the lifetime room's bookkeeping (S8).
    __untracked__ = ("freed", "ref_sites")

    def __init__(self, entity: DrmSchedEntity, name: str = "", data: Any = None) -> None:
        """``drm_sched_job_init``: the job belongs to ``entity``; ``data`` is the driver's."""
        self.k = entity.sched.k
        #: The job's memory (S8): declared accesses of a freed job are a ``use-after-free``.
        self.oid = self.k.new_oid()
        self.entity = entity
        self.sched = entity.sched
        entity.seqno += 1
        self.name = name or f"{entity.name}#{entity.seqno}"
        self.s_fence = DrmSchedFence(entity, entity.seqno)
        #: ``job->dependencies`` (an xarray, S2) and its lock; each entry holds a reference (S7).
        self.dependencies: list[DmaFence] = []
        #: ``job->last_dependency``: the next entry ``drm_sched_job_dependency`` hands out (S2).
        self.last_dependency = 0
        self.xa_lock = SpinLock(XA_LOCK_CLASS, key=XA_LOCK_CLASS)
        #: The driver's payload (what ``run_job`` submits).
        self.data = data
        #: Who freed it (S8), set by :meth:`cleanup`, which the driver's ``free_job`` calls (S3).
        self.freed: FreeRecord | None = None
        #: Jobs are not reference counted (``struct drm_sched_job`` has no kref): no leak check.
        self.ref_sites: list[tuple[str, tuple[Frame, ...]]] | None = None
        self.cb: DmaFenceCb | None = None
        self.finish_cb: DmaFenceCb | None = None
        self.irq_work: IrqWork | None = None
        self.work: WorkStruct | None = None

    def add_dependency(self, fence: DmaFence) -> None:
        """``drm_sched_job_add_dependency``: store ``fence`` (``xa_alloc`` under ``xa_lock``, S2).

        The caller's reference is consumed (S7): whoever still uses the fence afterwards
        passes ``fence.get()``. A fence of a context the job already depends on replaces
        the entry when it is later, else it is dropped (the kernel's deduplication)."""
        for i, entry in enumerate(self.dependencies):
            if entry.context != fence.context:
                continue
            if fence.is_later(entry):
                self.xa_lock.lock()  # xa_store
                self.dependencies[i] = fence
                self.xa_lock.unlock()
                entry.put()
            else:
                fence.put()
            return
        self.xa_lock.lock()
        try:
            self.dependencies.append(fence)
        finally:
            self.xa_lock.unlock()

    # ------------------------------------------------------------------ lifetime (S8)

    def lifetime_name(self) -> str:
        return f"drm_sched_job {self.name}"

    def lifetime_ids(self) -> tuple[int, ...]:
        return (self.oid, self.xa_lock.oid)

    def lifetime_count(self) -> int:
        return 0 if self.freed is not None else 1

    def read(self, op: str) -> None:
        """A scheduling point that reads the job (a driver callback looking at it, S8)."""
        self.k.point(op, self.oid, False, self.name)

    def cleanup(self) -> None:
        """``drm_sched_job_cleanup`` and the driver's ``kfree(job)``: drop the job's reference on
        its finished fence and the dependencies' references (S7), then free the job (S3, S8).

        On a job already freed it is the kernel's double free: a ``use-after-free`` finding (the
        cleanup reads the freed job), and nothing is put twice."""
        rec = self.freed
        if rec is not None:
            lifetimes(self.k).report(rec, "drm_sched_job_cleanup")
            return
        self.k.event("drm_sched_job_cleanup", self.oid, True, self.name)
        self.s_fence.finished.put()
        deps = self.dependencies
        self.dependencies = []
        for dep in deps:  # xa_for_each + dma_fence_put, then xa_destroy
            dep.put()
        lifetimes(self.k).free(self, "kfree(job)")

    def __repr__(self) -> str:
        return f"<DrmSchedJob {self.name}{' freed' if self.freed else ''}>"


class SchedBackendOps:
    """``struct drm_sched_backend_ops``: what a driver gives the scheduler.

    Extension contract (subclass and override):

    * :meth:`run_job` runs in the scheduler thread (process context): it
      hands the job to the hardware and returns the hardware fence, or None
      when nothing will run (the finished fence then signals at once).
    * :meth:`free_job` runs in the scheduler thread, or wherever the kill
      design of the entity runs it (S5); it must call ``job.cleanup()``.
    * :meth:`timedout_job` runs in the timeout work (process context).
    """

    def run_job(self, job: DrmSchedJob) -> DmaFence | None:
        raise NotImplementedError("a driver's SchedBackendOps must implement run_job")

    def free_job(self, job: DrmSchedJob) -> None:
        job.cleanup()

    def timedout_job(self, job: DrmSchedJob) -> str:
        return STAT_NOMINAL


class DrmSchedEntity:
    """``struct drm_sched_entity``: a queue of jobs of one context on one scheduler."""

    __slots__ = (
        "dep_cb",
        "dependency",
        "entity_idle",
        "fence_context",
        "kill_design",
        "last_scheduled",
        "name",
        "oid",
        "queue",
        "sched",
        "seqno",
        "stopped",
    )

    def __init__(self, sched: DrmGpuScheduler, name: str = "entity", *, kill_design: str = "work-walk") -> None:
        """``drm_sched_entity_init`` on one scheduler; ``kill_design`` picks S5's callback."""
        if kill_design not in KILL_DESIGNS:
            raise UsageError(f"unknown kill design {kill_design!r}; known: {list(KILL_DESIGNS)}")
        self.sched = sched
        #: The entity's state (S6): its queue, dependency, ``stopped`` and ``last_scheduled``.
        self.oid = sched.k.new_oid()
        self.name = name
        self.kill_design = kill_design
        self.fence_context = context_alloc(2)
        self.seqno = 0
        self.queue: list[DrmSchedJob] = []
        self.stopped = False
        self.last_scheduled: DmaFence | None = None
        #: The dependency fence the entity waits on (S2), and its callback.
        self.dependency: DmaFence | None = None
        self.dep_cb: DmaFenceCb | None = None
        #: ``entity->entity_idle`` (S5): not done while the scheduler thread uses the entity
        #: (from its selection to ``run_job``); the entity starts idle.
        self.entity_idle = Completion(f"{name}.entity_idle")
        self.entity_idle.complete_all()  # "We start in an idle state."
        sched.k.point("drm_sched_rq_add_entity", sched.rq_oid, True, name)
        sched.entities.append(self)

    def push_job(self, job: DrmSchedJob) -> None:
        """``drm_sched_entity_push_job``: queue ``job`` and wake the scheduler."""
        k = self.sched.k
        k.point("drm_sched_entity_push_job", self.oid, True, self.name)
        k.event("drm_sched_entity_push_job", job.oid, True, job.name)  # S8: the job's queue node
        if self.stopped:
            raise UsageError(f"job pushed to the killed entity {self.name}")
        self.queue.append(job)
        self.sched.wake_up_worker_locked()  # drm_sched_wakeup, in the push's step

    def _ready(self) -> bool:
        """``drm_sched_entity_is_ready``: declares the entity read (S6). A killed entity is off
        the run queue (``drm_sched_rq_remove_entity`` in :meth:`kill`, S5): not asked."""
        self.sched.k.event("drm_sched_entity_is_ready", self.oid, False, self.name)
        return bool(self.queue) and self.dependency is None

    def _dependency_cb(self, fence: DmaFence, cb: DmaFenceCb) -> None:
        """``drm_sched_entity_wakeup``: the awaited dependency signalled."""
        k = self.sched.k
        k.event("drm_sched_entity_wakeup", self.oid, True, self.name)
        self.dependency = None
        self.dep_cb = None
        fence.put()  # the entity's reference on its dependency (S7)
        self.sched.wake_up_worker_locked()

    def _pop_job(self) -> DrmSchedJob | None:
        """``drm_sched_entity_pop_job`` (S2): None while a dependency is pending."""
        k = self.sched.k
        oid = self.oid
        k.event("drm_sched_entity_pop_job", oid, True, self.name)  # spsc_queue_peek / _pop (S6)
        job = self.queue[0]
        k.event("drm_sched_entity_pop_job", job.oid, False, job.name)  # S8
        # drm_sched_job_dependency: the xarray keeps its entries (and their references) for the
        # kill path's walk; the entity takes a reference of its own on the one it waits for (S7).
        while job.last_dependency < len(job.dependencies):
            dep = job.dependencies[job.last_dependency]
            signaled = dep.is_signaled()
            k.event("drm_sched_entity_pop_job", oid, True, self.name)  # S6: after the fence's point
            if self.stopped:
                return None  # killed meanwhile (drm_sched_entity_kill waits for entity_idle)
            job.last_dependency += 1
            if signaled:
                continue
            self.dependency = dep.get()
            try:
                _ = dep.signaled_flag  # add_callback's lockless test, declared
                cb = dep.add_callback(self._dependency_cb)
            except ENOENT:
                k.event("drm_sched_entity_pop_job", oid, True, self.name)
                self.dependency = None
                dep.put()
                if self.stopped:
                    return None
                continue
            k.event("drm_sched_entity_pop_job", oid, True, self.name)
            if self.stopped:
                if self.dependency is dep:
                    self.dependency = None
                    if dep.remove_callback(cb):
                        dep.put()
                return None
            if self.dependency is dep:
                self.dep_cb = cb
            return None
        self.queue.pop(0)
        if self.last_scheduled is not None:
            self.last_scheduled.put()
        self.last_scheduled = job.s_fence.finished.get()
        return job

    # ------------------------------------------------------------------ kill (S5)

    def kill(self) -> None:
        """``drm_sched_entity_kill``: stop the entity and kill its queued jobs (S5)."""
        sched = self.sched
        k = sched.k
        k.point("drm_sched_entity_kill", self.oid, True, self.name)
        self.stopped = True  # under entity->lock
        # drm_sched_rq_remove_entity, under rq->lock: the scheduler thread never looks at the
        # entity again (its wait condition and selection walk the run queue, S6).
        k.event("drm_sched_rq_remove_entity", sched.rq_oid, True, self.name)
        if self in sched.entities:
            sched.entities.remove(self)
        # "Make sure this entity is not used by the scheduler at the moment" (S5).
        self.entity_idle.wait_for_completion()
        k.event("drm_sched_entity_kill", self.oid, True, self.name)
        jobs = self.queue
        self.queue = []
        if self.dependency is not None and self.dep_cb is not None:
            dep = self.dependency
            self.dependency = None
            if dep.remove_callback(self.dep_cb):  # drm_sched_entity_fini: the entity's reference
                dep.put()
        prev = self.last_scheduled.get() if self.last_scheduled is not None else None
        for job in jobs:
            s_fence = job.s_fence
            # The next job's prev, taken before the callback may free this job (S7).
            finished = s_fence.finished.get()
            s_fence.scheduled.signal()  # drm_sched_fence_scheduled
            s_fence.finished.set_error(-ESRCH)
            if prev is None:
                self._kill_jobs_cb(None, job)
            else:
                job.finish_cb = DmaFenceCb(partial(self._kill_jobs_fence_cb, job))
                try:
                    _ = prev.signaled_flag  # add_callback's lockless test, declared
                    prev.add_callback(job.finish_cb)
                except ENOENT:
                    self._kill_jobs_cb(prev, job)
            prev = finished
        if prev is not None:
            prev.put()

    def _kill_jobs_fence_cb(self, job: DrmSchedJob, f: DmaFence, cb: DmaFenceCb) -> None:
        self._kill_jobs_cb(f, job)

    def _kill_jobs_irq_work(self, job: DrmSchedJob, work: IrqWork) -> None:
        self._finish_killed(job)

    def _kill_jobs_cb(self, f: DmaFence | None, job: DrmSchedJob) -> None:
        """``drm_sched_entity_kill_jobs_cb``: the previous job finished (S5, by design)."""
        design = self.kill_design
        if f is not None:
            f.put()
        if design == "inline-signal":
            self._finish_killed(job)
        elif design == "irq-work":
            job.irq_work = IrqWork(partial(self._kill_jobs_irq_work, job), f"{job.name}.kill")
            job.irq_work.queue()
        elif design == "work-item" or design == "work-walk":
            job.work = WorkStruct(partial(self._kill_jobs_work, job), "drm_sched_entity_kill_jobs_work")
            self.sched.timeout_wq.queue_work(job.work)
        else:  # callback-takes-xa-lock: the walk in the callback, under the signalling fence's lock
            if self._walk_dependencies(job):
                return
            job.work = WorkStruct(partial(self._kill_jobs_work, job), "drm_sched_entity_kill_jobs_work")
            self.sched.timeout_wq.queue_work(job.work)

    def _walk_dependencies(self, job: DrmSchedJob) -> bool:
        """Erase the job's dependencies (``xa_erase`` under ``xa_lock``); re-arm the kill callback on
        the first unsignalled one and return True (it calls back), else False."""
        while job.dependencies:  # xa_for_each: an RCU walk, no lock
            dep = job.dependencies[0]
            job.xa_lock.lock()  # xa_erase: the entry's reference is now the walk's (S7)
            job.dependencies.remove(dep)
            job.xa_lock.unlock()
            cb = DmaFenceCb(partial(self._kill_jobs_fence_cb, job))
            try:
                _ = dep.signaled_flag  # add_callback's lockless test, declared
                dep.add_callback(cb)  # the callback puts it
                return True
            except ENOENT:
                dep.put()
                continue
        return False

    def _kill_jobs_work(self, job: DrmSchedJob, work: WorkStruct) -> None:
        """``drm_sched_entity_kill_jobs_work``: in a kworker (process context)."""
        if self.kill_design == "work-walk" and self._walk_dependencies(job):
            return
        self._finish_killed(job)

    def _finish_killed(self, job: DrmSchedJob) -> None:
        """``drm_sched_fence_finished`` with the error, then ``free_job``."""
        job.s_fence.finished.signal()
        self.sched.ops.free_job(job)

    def __repr__(self) -> str:
        return f"<DrmSchedEntity {self.name} queued={len(self.queue)}>"


class DrmGpuScheduler:
    """``struct drm_gpu_scheduler``: one ring's scheduler thread, pending list and timeout (S3, S4)."""

    __slots__ = (
        "_rr",
        "entities",
        "free_guilty",
        "job_list_lock",
        "k",
        "name",
        "oid",
        "ops",
        "pending",
        "rq_oid",
        "thread",
        "timeout_design",
        "timeout_ns",
        "timeout_wq",
        "wake",
        "work_tdr",
    )

    def __init__(self, ops: SchedBackendOps, name: str, *, timeout_ns: int | None = None,
                 timeout_wq: Workqueue | None = None, timeout_design: str = "take-off-list") -> None:
        """``drm_sched_init``: ``timeout_ns`` None is ``MAX_SCHEDULE_TIMEOUT`` (no timeout handler);
        ``timeout_design`` picks how the handler picks its job (S4, :data:`TIMEOUT_DESIGNS`)."""
        if timeout_design not in TIMEOUT_DESIGNS:
            raise UsageError(f"unknown timeout design {timeout_design!r}; known: {list(TIMEOUT_DESIGNS)}")
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        #: The run queue (``sched->sched_rq``: its entities, under ``rq->lock``), apart from the
        #: pending list under ``job_list_lock`` (``oid``, S6).
        self.rq_oid = k.new_oid()
        self.ops = ops
        self.name = name
        self.timeout_ns = timeout_ns
        self.entities: list[DrmSchedEntity] = []
        self.pending: list[DrmSchedJob] = []
        self.job_list_lock = SpinLock(f"{name}.job_list_lock", key="drm_gpu_scheduler.job_list_lock")
        self.wake = WaitQueue(f"{name}.wake_up_worker")
        #: The timeout handler's and the kill works' workqueue (``system_wq`` by default).
        self.timeout_wq = timeout_wq if timeout_wq is not None else system_wq()
        self.work_tdr = DelayedWork(self._job_timedout, f"{name}.work_tdr") if timeout_ns is not None else None
        self.timeout_design = timeout_design
        #: ``sched->free_guilty``: drm_sched_stop found the bad job completed; the handler frees it.
        self.free_guilty = False
        self._rr = 0
        self.thread = k.spawn(self._main, name=f"{name}", daemon=True)

    # ------------------------------------------------------------------ the thread (S3)

    def wake_up_worker(self) -> None:
        """``drm_sched_wakeup``: the caller declared the scheduler written."""
        self.wake.wake_up()

    def wake_up_worker_locked(self) -> None:
        """Wake the thread from a fence callback (no scheduling point: declared by an event)."""
        k = self.k
        k.event("wake_up", self.wake.oid, True, self.wake.name)
        for t in list(self.wake.waiters):
            k.wake(t)

    def _finished_job(self) -> DrmSchedJob | None:
        p = self.pending
        if p and p[0].s_fence.finished.signaled_flag:  # declares the fence read (S6)
            return p[0]
        return None

    def _has_work(self) -> bool:
        if self._finished_job() is not None:
            return True
        self.k.event("drm_sched_select_entity", self.rq_oid, False, self.name)  # the run queue (S6)
        if any(e._ready() for e in self.entities):
            return True
        park = self.k.current.data.get("kthread_park")  # the condition runs in the scheduler thread
        return bool(park is not None and park.should_park)

    def _main(self) -> None:
        """``drm_sched_main``."""
        k = self.k
        while True:
            self.wake.wait_event(self._has_work, reads=self.oid)
            # The step of the wait's last check goes on (no scheduling point of its own).
            park = k.current.data.get("kthread_park")
            if park is not None:
                k.event("kthread_should_park", park.oid, False, self.name)
                if park.should_park:
                    kthread_parkme()
                    continue
            k.event("drm_sched_main", self.oid, False, self.name)  # the pending list (S6)
            job = self._take_finished()
            if job is not None:
                self.ops.free_job(job)
                self._start_timeout()
                continue
            entity = self._select_entity()
            if entity is None:
                continue
            job = entity._pop_job()
            if job is None:
                entity.entity_idle.complete_all()
                continue
            self._run(job, entity)

    def _take_finished(self) -> DrmSchedJob | None:
        """``drm_sched_get_finished_job``: take the first finished pending job off the list."""
        if self._finished_job() is None:  # the wait condition's lockless hint
            return None
        self.job_list_lock.lock()
        self.k.event("drm_sched_get_finished_job", self.oid, True, self.name)
        job = self._finished_job()  # again under the lock: the timeout handler may have taken it
        if job is not None:
            self.k.event("drm_sched_get_finished_job", job.oid, True, job.name)  # list_del_init (S8)
            self.pending.remove(job)
            if self.work_tdr is not None:
                self.work_tdr.cancel()  # this job's timeout; _start_timeout re-arms it for the next
        self.job_list_lock.unlock()
        return job

    def _select_entity(self) -> DrmSchedEntity | None:
        """``drm_sched_rq_select_entity_rr``."""
        self.k.event("drm_sched_rq_select_entity_rr", self.rq_oid, False, self.name)
        n = len(self.entities)
        for i in range(n):
            e = self.entities[(self._rr + i) % n]
            if e._ready():
                self._rr = (self._rr + i + 1) % n
                e.entity_idle.reinit_locked()  # under rq->lock, with the selection (S5)
                return e
        return None

    def _run(self, job: DrmSchedJob, entity: DrmSchedEntity) -> None:
        """``drm_sched_job_begin``, ``drm_sched_fence_scheduled``, ``run_job``, ``drm_sched_job_done_cb``."""
        k = self.k
        self.job_list_lock.lock()
        k.event("drm_sched_job_begin", self.oid, True, self.name)
        k.event("drm_sched_job_begin", job.oid, True, job.name)  # list_add_tail (S8)
        self.pending.append(job)
        self.job_list_lock.unlock()
        self._start_timeout()
        s_fence = job.s_fence
        s_fence.scheduled.signal()
        hw = self.ops.run_job(job)
        entity.entity_idle.complete_all()  # the entity is no longer used (S5)
        if hw is None:
            self._job_done(job)
            return
        s_fence.parent = hw.get()
        job.cb = DmaFenceCb(partial(self._job_done_cb, job))
        try:
            _ = hw.signaled_flag  # add_callback's lockless test, declared
            hw.add_callback(job.cb)
        except ENOENT:
            self._job_done(job)
        hw.put()  # the reference run_job returned ("drop for original kref_init", S7)

    def _job_done_cb(self, job: DrmSchedJob, f: DmaFence, cb: DmaFenceCb) -> None:
        """``drm_sched_job_done_cb``: the hardware fence signalled."""
        self._job_done(job)

    def _job_done(self, job: DrmSchedJob, error: int = 0) -> None:
        """``drm_sched_job_done``: signal the finished fence, wake the thread (S3)."""
        parent = job.s_fence.parent
        finished = job.s_fence.finished.get()  # the signal may run the last put's callbacks
        if error:
            finished.set_error(error)
        elif parent is not None and parent.error:
            finished.set_error(parent.error)
        finished.signal()
        finished.put()
        self.wake_up_worker_locked()  # __drm_sched_run_free_queue (the fence and the wake declare it, S6)

    # ------------------------------------------------------------------ timeout (S4)

    def _start_timeout(self) -> None:
        """``drm_sched_start_timeout``: arm ``work_tdr`` while jobs are pending."""
        if self.work_tdr is None or self.timeout_ns is None or not self.pending:
            return
        self.work_tdr.queue(self.timeout_wq, self.timeout_ns)

    def _job_timedout(self, work: WorkStruct) -> None:
        """``drm_sched_job_timedout``: pick the first pending job, call the driver (S4, by design)."""
        k = self.k
        if self.timeout_design == "peek":
            # Before 2019: the first job, read without the list lock and left on the list.
            k.point("drm_sched_job_timedout", self.oid, False, self.name)
            job = self.pending[0] if self.pending else None
        else:
            self.job_list_lock.lock()
            k.event("drm_sched_job_timedout", self.oid, True, self.name)
            job = self.pending.pop(0) if self.pending else None  # list_del_init: stop() reinserts it
            self.job_list_lock.unlock()
        status = STAT_NOMINAL
        if job is not None:
            k.event("drm_sched_job_timedout", job.oid, False, job.name)  # job->sched
            status = self.ops.timedout_job(job)
            if self.free_guilty:  # the guilty job completed meanwhile: drm_sched_stop left it to us
                self.ops.free_job(job)
                self.free_guilty = False
        if status != STAT_ENODEV:
            self._start_timeout()

    def stop(self, bad: DrmSchedJob | None = None) -> None:
        """``drm_sched_stop``: park the scheduler thread (from the timeout handler), put ``bad`` back
        at the head of the pending list (the 2019 fix), then detach every pending job from its
        hardware fence, or take it off the list and free it when that fence already signalled
        (``bad`` is then left to the timeout handler: ``free_guilty``) (S4)."""
        k = self.k
        kthread_park(self.thread)
        if bad is not None and self.timeout_design != "peek" and bad.sched is self:
            k.point("drm_sched_stop", self.oid, True, self.name)
            k.event("drm_sched_stop", bad.oid, True, bad.name)  # list_add(&bad->list)
            self.pending.insert(0, bad)
        for job in reversed(list(self.pending)):  # the thread is parked: no lock needed to walk
            k.point("drm_sched_stop", self.oid, True, self.name)
            k.event("drm_sched_stop", job.oid, True, job.name)
            parent = job.s_fence.parent
            if parent is not None and job.cb is not None and parent.remove_callback(job.cb):
                job.s_fence.parent = None
                parent.put()
                continue
            self.job_list_lock.lock()
            k.event("drm_sched_stop", self.oid, True, self.name)
            self.pending.remove(job)
            self.job_list_lock.unlock()
            job.s_fence.finished.wait()  # the job is alive: its fence too
            if job is not bad:
                self.ops.free_job(job)
            else:
                self.free_guilty = True
        if self.work_tdr is not None:
            self.work_tdr.cancel()

    def start(self, full_recovery: bool = True) -> None:
        """``drm_sched_start``: re-arm the jobs still pending on their hardware fences (a job
        detached from one completes with ``-ECANCELED``), restart the timeout, unpark the thread."""
        k = self.k
        if full_recovery:
            for job in list(self.pending):
                k.point("drm_sched_start", self.oid, True, self.name)
                k.event("drm_sched_start", job.oid, True, job.name)
                parent = job.s_fence.parent
                if parent is None:
                    self._job_done(job, -ECANCELED)
                    continue
                job.cb = DmaFenceCb(partial(self._job_done_cb, job))
                try:
                    _ = parent.signaled_flag  # add_callback's lockless test, declared
                    parent.add_callback(job.cb)
                except ENOENT:
                    self._job_done(job)
            self._start_timeout()
        kthread_unpark(self.thread)

    def __repr__(self) -> str:
        return f"<DrmGpuScheduler {self.name} pending={len(self.pending)}>"


class EngineBackend(SchedBackendOps):
    """Backend ops that run each job on a device engine (``device.Engine``) and free it,
    optionally under a driver mutex (panfrost's and msm's ``free_job`` took one)."""

    def __init__(self, engine: Any, *, free_lock: Any = None,
                 ops_of: Callable[[DrmSchedJob], Sequence[Any]] | None = None) -> None:
        self.engine = engine
        self.free_lock = free_lock
        self.ops_of = ops_of

    def run_job(self, job: DrmSchedJob) -> DmaFence | None:
        ops = self.ops_of(job) if self.ops_of is not None else (job.data or [])
        fence: DmaFence = self.engine.submit(ops, name=job.name)
        return fence.get()  # the engine keeps its own reference until it signalled (S7)

    def free_job(self, job: DrmSchedJob) -> None:
        if self.free_lock is not None:
            self.free_lock.lock()
            try:
                job.cleanup()
            finally:
                self.free_lock.unlock()
        else:
            job.cleanup()


class IrqBackend(SchedBackendOps):
    """Backend ops of a ring whose hardware completes each job at once: ``run_job`` returns
    the job's hardware fence and raises the completion interrupt that signals it (the
    smallest hardware that still signals from hardirq, as every real ring does);
    ``free_job`` optionally under a driver mutex."""

    def __init__(self, name: str, *, free_lock: Any = None) -> None:
        from ..dma.fence import FenceContext

        self.timeline = FenceContext(f"{name}.hw", driver=name)
        self.free_lock = free_lock

    def run_job(self, job: DrmSchedJob) -> DmaFence | None:
        fence = self.timeline.create()
        # The ring's slot holds a reference until the interrupt signalled it (S7).
        current_kernel().raise_irq(self._irq, fence.get(), name=f"{self.timeline.name}-irq")
        return fence

    @staticmethod
    def _irq(fence: DmaFence) -> None:
        """The completion interrupt: signal the ring's fence and drop the ring's reference."""
        fence.signal()
        fence.put()

    def free_job(self, job: DrmSchedJob) -> None:
        if self.free_lock is not None:
            self.free_lock.lock()
            try:
                job.cleanup()
            finally:
                self.free_lock.unlock()
        else:
            job.cleanup()
