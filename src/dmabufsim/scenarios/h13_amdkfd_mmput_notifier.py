"""H13 (kernel history): amdkfd drops the last mm reference inside its own MMU notifier callback.

The bug. amdkfd keeps a GPU mapping of a process's memory coherent with an
interval notifier (``svm_range_cpu_invalidate_pagetables``). Since
fa582c6f3684 ("drm/amdkfd: Use mmget_not_zero in MMU notifier", 2021) the
callback pinned the address space for its whole run -- ``mmget_not_zero``
first, ``mmput`` last. The invalidation may come from a thread that does
not belong to the process at all: compaction (or reclaim) migrating one of
its pages walks the page's reverse map holding the ``anon_vma`` lock for
read and calls the notifiers from there. If the process exits meanwhile,
the callback's ``mmput`` is the last one, and ``exit_mmap`` runs inside the
callback, inside the reverse-map walk: freeing the page tables
(``free_pgtables`` -> ``unlink_anon_vmas``) takes the ``anon_vma`` lock for
write, which its own thread holds for read. The task hangs forever (the
fix's hung-task report shows exactly this stack), and since ``exit_mmap``
never reaches the notifiers' ``release``, the kfd process and its GPU
memory are never freed.

The fix. Philip Yang, "drm/amdkfd: Don't call mmput from MMU notifier
callback" (Message-ID 20250623165936.6178-1-Philip.Yang@amd.com, 2025,
Fixes: fa582c6f3684; a29e067bd389 in HISTORY.md, hash unverified): the
callback takes no mm reference at all; the deferred work that needs the mm
pins it with ``mmget_not_zero`` when the range is queued (skipping it when
the process is already exiting) and drops it with ``mmput`` in the worker,
in process context, where running ``exit_mmap`` is harmless.

What the model reports, and why. The buggy design is found as a
``deadlock`` (no thread can run: the kcompactd-like thread waits for the
``anon_vma`` lock it holds) together with lockdep's report of that lock
taken for write by a task holding it for read (``recursive-locking``).
The kernel's second symptom, the kfd process and its memory never released
(``leak`` in HISTORY.md), is deliberately not reported, and no design of the
catalog expects it: it is what the hang costs, not an object nobody refers
to. The hung thread is inside ``exit_mmap`` of that very mm, which its stack
points to, and the mm's notifier list still points to the kfd process, so
kmemleak (which reports an object only once no pointer to it remains) stays
silent too; what the kernel reports is the hung task, whose stack the fix
shows. The model's leak check (kernel.lifetime L6) follows kmemleak: it runs
when an execution completes, and an execution ending at a deadlock leaves
its blocked threads holding their references. Reporting them would name
every reference of every blocked thread of every deadlock row, a second
report of one root cause. (The fixed design, which completes, is checked
for the leak and has none.)

The experiment: a process with one private anonymous page, a kfd-like SVM
range over it (``drivers/kfd_svm.py``) and a kfd process tied to the mm; a
kcompactd-like thread reclaims the page (``shrink_page``: the reverse-map
walk under the ``anon_vma`` lock, ``try_to_unmap`` and its notifier
bracket), while the process exits. That is the smallest configuration that
shows the bug, and the fix is proved on it: optimal DPOR exhausts it (695
Mazurkiewicz traces since a join is a point of its own, runtime R15; 3,467,
about 10 s on the 2 shared cores, before), nothing dropped.
An earlier configuration had a second page, unmapped before the race so
that the deferred work ran once (``mmget_not_zero`` when queueing,
``mmput`` in the worker); the kworker's interleavings with that munmap (22
orders) multiplied the race's, and the row was not exhausted (15,981 traces
in 60 s). The deferred work's references are checked where they are the
subject (``tests/unit/drivers/test_kfd_svm.py``: the work pins the mm
until the worker puts it; queueing after the mm is gone is skipped).
"""

from __future__ import annotations

from ..drivers.kfd_svm import KfdSvm
from ..kernel.runtime import Kernel
from ..kernel.workqueue import Workqueue
from ..mm.memory import Process
from ..mm.page import PAGE_SIZE, init_memory
from ..mm.rmap import shrink_page


def run_h13(k: Kernel, design: str) -> None:
    """One process, one SVM range over one page; reclaim of the page races the process's exit."""
    init_memory(16)
    proc = Process("app")
    addr = proc.mmap(PAGE_SIZE)
    proc.populate(addr, PAGE_SIZE, "data")
    wq = Workqueue("events", workers=1)  # system_wq's place: the deferred list work's kworker
    KfdSvm(proc.mm, addr, PAGE_SIZE, design=design, wq=wq)
    page = proc.mm.lookup(addr)
    assert page is not None
    threads = [k.spawn(shrink_page, page, name="kcompactd"), k.spawn(proc.exit, name="app-exit")]
    for t in threads:
        k.join(t)


def mmput_in_callback(k: Kernel) -> None:
    """The callback pins the mm for its run and puts it last: exit_mmap inside the rmap walk."""
    run_h13(k, "mmput-in-callback")


def mmget_when_queueing(k: Kernel) -> None:
    """The callback takes no mm reference; queueing pins it, the worker puts it: clean."""
    run_h13(k, "mmget-when-queueing")


_YANG = "Message-ID 20250623165936.6178-1-Philip.Yang@amd.com"

CLAIMS = [
    {"id": "H13", "design": "mmput-in-callback", "scenario": mmput_in_callback, "year": 2021,
     "source": f"fa582c6f3684; fixed by {_YANG}",
     # The window is narrow (the exit between the callback's get and put): optimal DPOR finds it
     # at execution 185, where random walks rarely do.
     "expected": {"kinds": ["deadlock", "recursive-locking", "circular-locking"]}, "strategy": "odpor",
     "budget": 400},
    {"id": "H13", "design": "mmget-when-queueing", "scenario": mmget_when_queueing, "year": 2025,
     "source": f"{_YANG} (Fixes: fa582c6f3684)", "expected": "clean", "strategy": "odpor",
     "budget": 5000},  # proved: 695 Mazurkiewicz traces
]
