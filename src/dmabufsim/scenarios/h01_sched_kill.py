"""H1 (kernel history): where the GPU scheduler signals the jobs of a killed entity.

When a process dies with GPU jobs still queued, ``drm_sched_entity_kill``
cannot just drop them: other contexts may wait on their finished fences.
It marks each leftover job's finished fence with ``-ESRCH`` and hangs a
callback on the fence of the job before it (the first leftover waits for
the job the hardware is still running), so the leftovers complete in
order once the hardware is done. What that callback may do has been fixed
three times:

* ``inline-signal`` (the code fixed by 542cff7893a3, "drm/sched: Avoid
  lockdep spalt on killing a processes", 2021): the callback signals the
  leftover job's finished fence and frees the job right there. The callback
  runs inside the signalling of the previous scheduler fence, with that
  fence's lock held, and every scheduler fence's lock is one lockdep class
  (one ``spin_lock_init`` site): lockdep reports ``possible recursive
  locking detected`` on ``drm_sched_fence.lock``. Driver: amdgpu-like
  (its ``free_job`` takes no sleeping lock).
* ``irq-work`` (542cff7893a3 itself): the callback defers the signal and
  the free to an ``irq_work``. The recursion is gone, but the irq_work runs
  in hard-interrupt context and panfrost's and msm's ``free_job`` take a
  mutex: ``sleeping function called from invalid context``; lockdep also
  sees the mutex taken in hardirq and in process context (``inconsistent
  lock state``). Source: Dmitry Osipenko, "drm/scheduler: Don't kill jobs in
  interrupt context", Message-ID
  20220411221536.283312-1-dmitry.osipenko@collabora.com (2022). Driver:
  panfrost-like (``free_job`` under a driver mutex).
* ``work-item`` (that 2022 fix): the callback queues a work item; the work
  signals and frees in process context. Clean, with the same panfrost-like
  driver.
* ``callback-takes-xa-lock`` (2023-2025, fixed by 487df8b69834,
  "drm/sched: Fix deadlock in drm_sched_entity_kill_jobs_cb", Message-ID
  20251029091103.1159-1-pierre-eric.pelloux-prayer@amd.com): to wait for
  every dependency of a killed job, the callback itself walks the job's
  dependency xarray, erasing entries under its ``xa_lock`` and re-arming
  itself on each unsignalled dependency. The callback runs under the
  signalling fence's lock, a lock class also taken in hard-interrupt
  context, while ``drm_sched_job_add_dependency`` takes ``xa_lock`` in
  process context with interrupts on: ``HARDIRQ-safe -> HARDIRQ-unsafe
  lock order detected`` (fence lock -> ``xa_lock``); in the schedules where
  the callback runs in the completion interrupt itself, lockdep's
  ``inconsistent lock state`` on ``xa_lock``. Driver: amdgpu-like.
* ``work-walk`` (487df8b69834): the callback only queues the work item;
  the work walks the dependencies (re-arming the callback when one is still
  pending), then signals and frees. Clean.

The experiment: one ring scheduled by the drm_sched piece
(``drivers/drm_sched.py``) over a device engine. A context pushes job A and
one leftover job ``L1`` (for the dependency designs ``L1`` depends on
another driver's fence, which signals only after the kill, so the kill
callback's walk meets an unsignalled dependency and re-arms on it); once A
was scheduled, the process is killed; the other driver's fence signals; the
test waits for every finished fence. The explorer decides when the
scheduler thread pops jobs, when the engine's completion interrupt and the
kworkers run. One leftover is the smallest configuration that shows every
buggy design: its kill callback hangs on A's finished fence, which the
completion interrupt signals (the recursion, the irq_work's mutex, the
walk's ``xa_lock`` inside the fence's lock and in hardirq). An earlier
configuration of the dependency designs had a second leftover (``L1``
without a dependency, ``L2`` with one): that only delayed the walk to a
kworker, so lockdep's ``inconsistent lock state`` needed a rarer schedule.

Proved: ``work-item`` (optimal DPOR, 35,628 Mazurkiewicz traces, nothing
dropped and every access declared). Three declarations were too coarse
and are fixed: the kill takes the entity off the run queue
(``drm_sched_rq_remove_entity``), the run queue is an object apart from the
pending list (two locks in the kernel), and each flag bit of a fence is
its own object (dma_fence R13: a lockless ``test_bit`` of SIGNALED and the
first enable's ENABLE_SIGNAL commute, as in the kernel). A alone, killed,
is exhausted in 369 traces (2,322 before the bit split; 2,754 before a
whole critical section inside one step only read its lock, reduction L6;
1,044 while a fence put that did not release was declared a read, which
could lose a use-after-put; 1,944 before the first fixes). Not proved:
``work-walk`` (57,027 traces in 60 s): its dependency's walk, re-armed
until the other driver signals, multiplies the work item's schedules.
The races left are the kernel's own: who drops the last reference of A's
finished fence and of the ring's fence (the release runs in that
context), the kill's removal against the thread's run-queue walk,
``free_job``'s mutex, the kworker's and the thread's waits against their
wake-ups, the fence locks, and the leftover popped before the kill.
``proofs.NOT_PROVED`` has the figures.
"""

from __future__ import annotations

from ..dma.fence import DmaFence, FenceContext
from ..drivers.drm_sched import DrmGpuScheduler, DrmSchedEntity, DrmSchedJob, IrqBackend
from ..kernel.runtime import Kernel
from ..kernel.workqueue import Workqueue
from ..locking.mutex import Mutex
from .catalog import Verdict


def run_h1(k: Kernel, design: str, driver: str, with_dependency: bool) -> None:
    """One ring, one entity, job A running and leftovers killed with ``design``'s callback."""
    free_lock = Mutex(f"{driver}.job_lock") if driver == "panfrost" else None
    # system_wq's place, with one kworker: the kill works run one at a time.
    wq = Workqueue("events", workers=1)
    sched = DrmGpuScheduler(IrqBackend(driver, free_lock=free_lock), "gfx", timeout_wq=wq)
    entity = DrmSchedEntity(sched, "ctx", kill_design=design)
    a = DrmSchedJob(entity, "A")
    l1 = DrmSchedJob(entity, "L1")
    jobs = [a, l1]
    other: DmaFence | None = None
    if with_dependency:
        other = FenceContext("other", driver="other").create()
        l1.add_dependency(other.get())  # the job consumes a reference; the other driver keeps its own
    # The submitter keeps A's finished fence (as a syncobj would): it keeps the scheduled one alive.
    a_done = a.s_fence.finished.get()
    for j in jobs:
        entity.push_job(j)
    a.s_fence.scheduled.wait()
    entity.kill()
    if other is not None:
        other.signal()
        other.put()
    a_done.put()


def inline_signal(k: Kernel) -> None:
    """The kill callback signals the leftover's finished fence under the previous one's lock."""
    run_h1(k, "inline-signal", "amdgpu", False)


def irq_work(k: Kernel) -> None:
    """The kill callback defers to an irq_work; panfrost's free_job takes a mutex in hardirq."""
    run_h1(k, "irq-work", "panfrost", False)


def work_item(k: Kernel) -> None:
    """The kill callback queues a work item; signal and free in process context: clean."""
    run_h1(k, "work-item", "panfrost", False)


def callback_takes_xa_lock(k: Kernel) -> None:
    """The kill callback walks the dependencies under xa_lock, inside the fence's signalling."""
    run_h1(k, "callback-takes-xa-lock", "amdgpu", True)


def work_walk(k: Kernel) -> None:
    """The kill callback only queues the work; the work walks the dependencies: clean."""
    run_h1(k, "work-walk", "amdgpu", True)


_OSIPENKO = "20220411221536.283312-1-dmitry.osipenko@collabora.com"
_PELLOUX = "487df8b69834, 20251029091103.1159-1-pierre-eric.pelloux-prayer@amd.com"

# The fixed designs are not proved: proofs.NOT_PROVED says why (measured; see the module docstring).
CLAIMS = [
    {"id": "H1", "design": "inline-signal", "scenario": inline_signal, "year": 2021,
     "source": "fixed by 542cff7893a3",
     "expected": Verdict(kinds=frozenset({"recursive-locking"})), "budget": 100},
    {"id": "H1", "design": "irq-work", "scenario": irq_work, "year": 2021,
     "source": f"542cff7893a3; fixed by {_OSIPENKO}",
     "expected": Verdict(kinds=frozenset({"sleep-in-atomic", "recursive-locking"})), "budget": 100},
    # Proved: optimal DPOR exhausts every schedule in 35,628 Mazurkiewicz traces (about 35 s), dropping nothing.
    {"id": "H1", "design": "work-item", "scenario": work_item, "year": 2022, "source": _OSIPENKO,
     "expected": "clean", "strategy": "odpor", "budget": 45000},
    {"id": "H1", "design": "callback-takes-xa-lock", "scenario": callback_takes_xa_lock, "year": 2025,
     "source": f"fixed by {_PELLOUX}",
     "expected": Verdict(kinds=frozenset({"circular-locking", "recursive-locking"}),
                         chain=("drm_sched_fence.lock", "&job->dependencies.xa_lock")),
     "budget": 100},
    # Not provable yet (proofs.NOT_PROVED): DPOR deepening exhausts every schedule within 1 preemption in
    # 413 executions; the budget leaves a quarter more, so the row earns that bound, not a sample.
    {"id": "H1", "design": "work-walk", "scenario": work_walk, "year": 2025, "source": _PELLOUX,
     "expected": "clean", "strategy": "dpor", "budget": 520},
]
