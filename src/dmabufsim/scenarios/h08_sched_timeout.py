"""H8 (kernel history): the scheduler's timeout handler against the cleanup of the job it blames.

The bug. When a GPU job runs past the scheduler's timeout, the timeout work
(``drm_sched_job_timedout``, a kworker) looks at the first job of the
scheduler's list of jobs on the hardware and hands it to the driver's
``timedout_job``, which inspects it and resets the GPU. Until late 2019 the
handler only *looked*: it read the first entry without the list lock and
left it on the list. The scheduler thread meanwhile frees every job whose
finished fence signalled -- it takes the job off the list under the lock
and calls ``free_job``. A job that completes just as its timeout fires is
therefore freed by the scheduler thread while the timeout handler is still
using it: KASAN's ``slab-use-after-free`` in the driver's timeout handler.

The fix. Andrey Grodzovsky, "drm/scheduler: Avoid accessing freed bad
job." (Message-ID 1574715089-14875-1-git-send-email-andrey.grodzovsky@amd.com,
November 2019, reviewed by Christian König): the handler takes the job *off*
the list under the list lock before calling the driver, so the scheduler
thread cannot find it; ``drm_sched_stop``, which the driver calls from its
handler, parks the scheduler thread first and then puts the job back at the
head of the list, where the recovery expects it. If the job completed
meanwhile, ``drm_sched_stop`` leaves it to the handler (``free_guilty``),
which frees it once the driver returns.

The experiment: one ring scheduled by the drm_sched piece
(``drivers/drm_sched.py``, rule S4 and its ``TIMEOUT_DESIGNS``) with a
10 ms timeout, and one job whose hardware completes exactly at the timeout,
so the completion interrupt, the scheduler thread and the timeout kworker
race. The driver is amdgpu-like: its ``timedout_job`` reads the job (its
ring, its hardware fence), stops the scheduler with the job as the bad one,
resets the ring (which force-completes the ring's outstanding fences) and
restarts the scheduler. The submitter pushes the job and checks, once the
timeout has passed, that the job was freed (exactly once: a second free is
a finding of its own). ``peek`` must be found (``use-after-free`` of the job);
``take-off-list`` must be clean in every schedule.
"""

from __future__ import annotations

from ..dma.fence import DmaFence, FenceContext
from ..drivers.drm_sched import STAT_NOMINAL, DrmGpuScheduler, DrmSchedEntity, DrmSchedJob, SchedBackendOps
from ..kernel import NSEC_PER_MSEC
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.workqueue import Workqueue

#: The scheduler's timeout, and how long the job really runs: they coincide, so the two race.
TIMEOUT_NS = 10 * NSEC_PER_MSEC


class ResettableRing(SchedBackendOps):
    """An amdgpu-like ring: jobs complete ``duration_ns`` after they start (the completion
    interrupt), and the timeout handler resets the ring.

    ``amdgpu_fence_process`` signals each outstanding hardware fence once, whoever calls it (the
    interrupt, or the reset's ``amdgpu_fence_driver_force_completion``): the ring's fence slots are
    one object, taken from at a scheduling point, and each slot holds a reference until signalled.
    """

    def __init__(self, name: str, duration_ns: int) -> None:
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        self.name = name
        self.timeline = FenceContext(f"{name}.hw", driver="amdgpu")
        self.duration_ns = duration_ns
        #: The ring's outstanding fences (``fence_drv.fences``), each with the ring's reference.
        self.slots: list[DmaFence] = []
        self.sched: DrmGpuScheduler | None = None
        self.resets = 0

    def run_job(self, job: DrmSchedJob) -> DmaFence | None:
        """``amdgpu_job_run``: emit the job's fence on the ring; the hardware completes it later."""
        k = self.k
        fence = self.timeline.create()
        k.point("amdgpu_fence_emit", self.oid, True, self.name)
        self.slots.append(fence.get())
        k.add_timer(k.now + self.duration_ns, self._completion, fence, name=f"{self.name}-done")
        return fence

    def _completion(self, fence: DmaFence) -> None:
        self.k.raise_irq(self.process, fence, name=f"{self.name}-irq")

    def process(self, fence: DmaFence | None = None) -> None:
        """``amdgpu_fence_process``: signal ``fence`` (or, for a reset, every outstanding fence)
        unless someone already did, and drop the ring's reference."""
        k = self.k
        k.point("amdgpu_fence_process", self.oid, True, self.name)
        if fence is None:
            done, self.slots = self.slots, []
        elif fence in self.slots:
            self.slots.remove(fence)
            done = [fence]
        else:
            done = []
        for f in done:
            f.signal()
            f.put()

    def timedout_job(self, job: DrmSchedJob) -> str:
        """``amdgpu_job_timedout`` + ``amdgpu_device_gpu_recover`` (2019), simplified to one ring."""
        job.read("amdgpu_job_timedout")  # the ring of s_job->sched, s_fence->parent: reads the job
        sched = job.sched
        sched.stop(job)  # drm_sched_stop(sched, bad)
        self.resets += 1
        self.process()  # the reset: amdgpu_fence_driver_force_completion
        sched.start(True)  # drm_sched_start(sched, full_recovery)
        return STAT_NOMINAL


def run_h8(k: Kernel, design: str) -> None:
    """One ring, one job whose completion coincides with its timeout."""
    wq = Workqueue("events", workers=1)  # system_wq's place: the timeout handler's kworker
    ring = ResettableRing("gfx", TIMEOUT_NS)
    sched = DrmGpuScheduler(ring, "gfx", timeout_ns=TIMEOUT_NS, timeout_wq=wq, timeout_design=design)
    ring.sched = sched
    entity = DrmSchedEntity(sched, "ctx")
    job = DrmSchedJob(entity, "J")
    entity.push_job(job)
    k.msleep(3 * TIMEOUT_NS // (2 * NSEC_PER_MSEC))  # past the timeout: handler and cleanup have run
    assert job.freed is not None, "the timed-out job was never freed"


def peek(k: Kernel) -> None:
    """The handler peeks at the first pending job; the scheduler thread frees it: use-after-free."""
    run_h8(k, "peek")


def take_off_list(k: Kernel) -> None:
    """The handler takes the job off the list under the lock; drm_sched_stop puts it back: clean."""
    run_h8(k, "take-off-list")


_GRODZOVSKY = "1574715089-14875-1-git-send-email-andrey.grodzovsky@amd.com"

CLAIMS = [
    {"id": "H8", "design": "peek", "scenario": peek, "year": 2019, "source": f"fixed by {_GRODZOVSKY}",
     "expected": {"kinds": ["use-after-free"]}, "budget": 200},
    {"id": "H8", "design": "take-off-list", "scenario": take_off_list, "year": 2019, "source": _GRODZOVSKY,
     "expected": "clean", "strategy": "odpor", "budget": 400},  # proved: 183 Mazurkiewicz traces
]
