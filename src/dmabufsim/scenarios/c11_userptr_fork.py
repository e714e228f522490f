"""C11 (Christian): coherent userptr needs get_user_pages, CS and the notifier serialised.

"For coherent usage you need to install some lock to prevent concurrent
get_user_pages(), command submission and invalidate_range_start/
invalidate_range_end from the MMU notifier. Otherwise you can't guarantee
that you are actually accessing the right page in the case of a fork() or
mprotect()."

Every scenario here: a process maps two private pages and fills them; a
GPU userptr object covers them. Thread ``cs`` submits one job that writes
both pages through the object's GPU VA (the ioctl returns once the job is
queued; the teardown waits for it); thread ``fork`` forks the process
and then writes the first page from the parent (the write breaks
copy-on-write: the parent gets a new page, the old one is left to the
child), or thread ``mprotect`` makes the range read-only. At the end
everything is torn down.

* ``noretry``: the driver of ``drivers/userptr_noretry.py`` has a notifier
  that tears down, but binds pages looked up before an invalidation. In
  the schedule where the lookup happens before the fork and the binding
  after the copy-on-write break, the GPU writes the old page, which now
  belongs to the child: ``dma-foreign-page`` (kernel integrity). Racing
  ``mprotect(PROT_READ)`` the GPU writes a page userspace made read-only:
  ``user-incoherence`` (info, claim C12).
* ``helper``: the shared helper of ``drivers/userptr_helper.py`` (interval
  notifier, notifier lock, ``read_retry``): no finding in any schedule, and
  never even user-visible incoherence; a submission that lost the race
  looks the pages up again (``mprotect``: the lookup then fails with
  ``EFAULT``, which the ioctl returns to userspace).

``helper-fork`` is exhausted within two preemptions, not proved: with one
page, the fork in the main thread and the engine asleep before the race,
optimal DPOR still meets more than 43,000 Mazurkiewicz traces (900 s)
without exhausting them (``proofs.NOT_PROVED`` has the figures and the
races that grow them: ``mmap_lock`` read acquisitions and page reference
counts, declared as writes of one object).
"""

from __future__ import annotations

from typing import Any

from ..device.device import Device
from ..drivers.userptr_common import UserptrBo
from ..drivers.userptr_helper import Userptr, notifier_lock
from ..drivers.userptr_noretry import NoRetryUserptr
from ..kernel.errors import EFAULT
from ..kernel.runtime import Kernel
from ..mm.memory import PROT_READ, Process
from ..mm.page import PAGE_SIZE
from .catalog import Verdict

NPAGES = 2


def _cs(up: Any, out: dict[str, Any]) -> None:
    """``DRM_IOCTL_*_CS`` naming the userptr: queue one job writing every page, and return.

    The ioctl does not wait for the job (userspace waits with a separate
    call); the teardown after the race waits for it (the object's fences),
    so the GPU's writes still happen, and are checked, in every schedule.
    """
    try:
        out["cs_fence"] = up.submit(up.bo.job_ops("gpu"))
    except EFAULT:
        out["cs"] = "EFAULT"
        return
    out["cs"] = "done"


def _fork_then_write(proc: Process, addr: int, out: dict[str, Any]) -> None:
    """``fork()``, then the parent's next store breaks copy-on-write."""
    out["child"] = proc.fork("child")
    proc.write(addr, "cpu")


def _mprotect(proc: Process, addr: int, out: dict[str, Any]) -> None:
    proc.mprotect(addr, NPAGES * PAGE_SIZE, PROT_READ)
    out["mprotect"] = True


def run_userptr_race(k: Kernel, design: str, race: str) -> dict[str, Any]:
    """The scenario body shared by the rows (and by the benchmark): returns what happened."""
    dev = Device("gpu0")
    proc = Process("app")
    addr = proc.mmap(NPAGES * PAGE_SIZE)
    proc.populate(addr, NPAGES * PAGE_SIZE, "init")
    bo = UserptrBo(dev, proc.mm, addr, NPAGES, name="userptr")
    up: Userptr | NoRetryUserptr = Userptr(bo, notifier_lock()) if design == "helper" else NoRetryUserptr(bo)
    out: dict[str, Any] = {"up": up}
    cs = k.spawn(_cs, up, out, name="cs")
    racer = (k.spawn(_fork_then_write, proc, addr, out, name="fork") if race == "fork"
             else k.spawn(_mprotect, proc, addr, out, name="mprotect"))
    k.join(cs)
    k.join(racer)
    up.destroy()
    child = out.get("child")
    if child is not None:
        child.exit()
    proc.exit()
    return out


def noretry_fork(k: Kernel) -> None:
    """No sequence retry, racing fork(): the GPU may write the page copy-on-write left to the child."""
    run_userptr_race(k, "noretry", "fork")


def noretry_mprotect(k: Kernel) -> None:
    """No sequence retry, racing mprotect(PROT_READ): the GPU may write a read-only page (info only)."""
    run_userptr_race(k, "noretry", "mprotect")


def helper_fork(k: Kernel) -> None:
    """The shared helper (interval notifier, notifier lock, read_retry) racing fork(): coherent."""
    run_userptr_race(k, "helper", "fork")


def helper_mprotect(k: Kernel) -> None:
    """The shared helper racing mprotect(PROT_READ): coherent (the CS gets EFAULT or ran before)."""
    run_userptr_race(k, "helper", "mprotect")


CLAIMS = [
    # The window (lookup before fork, bind after the copy-on-write break) is a
    # few scheduling points wide: a random walk rarely hits it, PCT does.
    {"id": "C11", "design": "noretry-fork", "scenario": noretry_fork,
     "expected": Verdict(kinds=frozenset({"dma-foreign-page"})), "budget": 300, "strategy": "pct"},
    # Proved: optimal DPOR exhausts every schedule in 496 Mazurkiewicz traces (~2 s), dropping
    # nothing, and finds the read-only page written (user-incoherence) in some of them.
    {"id": "C11", "design": "noretry-mprotect", "scenario": noretry_mprotect,
     "expected": Verdict(clean=True, kinds=frozenset({"user-incoherence"})), "budget": 1500,
     "strategy": "odpor"},
    # "Coherent in every explored schedule": the portfolio's DPOR phase (half the budget)
    # exhausts every schedule within two preemptions (bounded DPOR, which runs without sleep
    # sets under a bound: see explore/dpor.py).
    {"id": "C11", "design": "helper-fork", "scenario": helper_fork,
     "expected": Verdict(clean=True, absent=frozenset({"user-incoherence"})), "budget": 8400, "slow": True},
    # Proved: optimal DPOR exhausts every schedule in 420 Mazurkiewicz traces, dropping nothing (1,276 while
    # the lockless resv readers declared the ww_mutex, dma_resv R6).
    {"id": "C11", "design": "helper-mprotect", "scenario": helper_mprotect,
     "expected": Verdict(clean=True, absent=frozenset({"user-incoherence"})), "budget": 4000,
     "strategy": "odpor"},
]
