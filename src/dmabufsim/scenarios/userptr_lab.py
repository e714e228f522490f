"""The userptr test bench shared by the userptr claims (C3, C7, C9, C10, C12-C17).

Not a catalog module itself (its name does not start with a claim prefix):
it runs *any* userptr design of ``drivers/`` through the same story, so
that the verdicts of different designs are comparable::

    a process maps NPAGES private pages and fills them; a userptr object of
    the design covers them; a first job naming it binds and writes them;
    then, concurrently:
      - the racer:  fork + the parent's write (copy-on-write break),
                    munmap, mprotect(PROT_READ), or nothing;
      - optionally another process that allocates memory right after
        (frames freed by the race get reused: LIFO free lists);
      - the user:   a second job naming the object, or a "rogue" job that
                    writes through the object's GPU VA without naming it
                    (the VM mapping is persistent), or nothing;
      - optionally kswapd, running direct reclaim (the shrinkers);
    at the end everything is closed and every process exits.

A ``broken`` device repeats each job's writes a microsecond after the job
(``Device(broken=True)``, claim C9); ``linger_ns`` keeps the object open
that long after the race before closing it ("the sg tables might live a
bit longer").

:func:`make` builds a design by name (:data:`DESIGNS`) behind one small
interface (:class:`Handle`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..device.device import Device, DmaOp
from ..dma.fence import DmaFence
from ..drivers.notifier_designs import ClassicUserptrDriver, ResvLockWait, ResvUnmap, WaitFreeKeepSg
from ..drivers.shrinker_designs import I915UserptrShrinker
from ..drivers.userptr_amdgpu2018 import AmdgpuMn
from ..drivers.userptr_common import UserptrBo
from ..drivers.userptr_helper import Userptr
from ..drivers.userptr_i915_2018 import I915MmuNotifier
from ..drivers.userptr_modern import ModernUserptrDriver
from ..drivers.userptr_noretry import NoRetryUserptr
from ..drivers.userptr_unsync import UnsyncUserptr
from ..kernel.errors import EFAULT
from ..kernel.gfp import GFP_KERNEL
from ..kernel.runtime import Kernel
from ..mm.memory import PROT_READ, Process
from ..mm.page import PAGE_SIZE, init_memory, page_allocator

NPAGES = 2
#: Machine size when reclaim takes part (small, so kswapd has work to do).
NR_PAGES = 64


@dataclass
class Handle:
    """One userptr object of some design: what the bench needs of it."""

    design: str
    bo: UserptrBo
    submit: Callable[[Sequence[DmaOp]], DmaFence]
    destroy: Callable[[], None]
    #: The driver-side object (Userptr, AmdgpuUserptr, I915Userptr, ...), for tests.
    obj: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def rogue(self, ops: Sequence[DmaOp]) -> DmaFence:
        """A job that uses the object's GPU VA without naming the object (nothing re-validates it)."""
        return self.bo.dev.submit(list(ops))


def _classic(cls: type[ClassicUserptrDriver]) -> Callable[[Device, Process, int], Handle]:
    def build(dev: Device, proc: Process, addr: int) -> Handle:
        drv = cls(dev, proc.mm)
        bo = drv.add(UserptrBo(dev, proc.mm, addr, NPAGES, name="userptr"))
        return Handle(cls.design, bo, lambda ops: drv.submit(bo, ops), lambda: drv.destroy(bo), drv)

    return build


def _helper(dev: Device, proc: Process, addr: int) -> Handle:
    drv = ModernUserptrDriver(dev)
    up = drv.create(proc.mm, addr, NPAGES)
    return Handle("helper", up.bo, lambda ops: drv.exec(up, ops), lambda: drv.close(up), up)


def _noretry(dev: Device, proc: Process, addr: int) -> Handle:
    up = NoRetryUserptr(UserptrBo(dev, proc.mm, addr, NPAGES, name="userptr"))
    return Handle("noretry", up.bo, up.submit, up.destroy, up)


def _amdgpu(dev: Device, proc: Process, addr: int) -> Handle:
    amn = AmdgpuMn(dev, proc.mm)
    obj = amn.register(UserptrBo(dev, proc.mm, addr, NPAGES, name="userptr"))
    return Handle("amdgpu-2018", obj.bo, obj.submit, obj.destroy, obj)


def _i915(dev: Device, proc: Process, addr: int) -> Handle:
    mn = I915MmuNotifier(dev, proc.mm)
    obj = mn.create(UserptrBo(dev, proc.mm, addr, NPAGES, name="userptr"))
    shrinker = I915UserptrShrinker([obj])
    shrinker.register()

    def destroy() -> None:
        shrinker.unregister()
        obj.destroy()

    return Handle("i915-2018", obj.bo, obj.submit, destroy, obj, {"shrinker": shrinker})


def _unsync(dev: Device, proc: Process, addr: int) -> Handle:
    up = UnsyncUserptr(UserptrBo(dev, proc.mm, addr, NPAGES, name="userptr"), capable=True)
    return Handle("unsync", up.bo, up.submit, up.destroy, up)


#: Every userptr design of the model, by name.
DESIGNS: dict[str, Callable[[Device, Process, int], Handle]] = {
    "helper": _helper,
    "noretry": _noretry,
    "amdgpu-2018": _amdgpu,
    "i915-2018": _i915,
    "unsync": _unsync,
    "wait-free-keep-sg": _classic(WaitFreeKeepSg),
    "resv-lock-wait": _classic(ResvLockWait),
    "resv-unmap": _classic(ResvUnmap),
}

RACES = ("fork", "munmap", "mprotect", "none")
USERS = ("submit", "rogue", "none")


def make(design: str, dev: Device, proc: Process, addr: int) -> Handle:
    """Build ``design`` over ``[addr, addr + NPAGES pages)`` of ``proc`` on ``dev``."""
    return DESIGNS[design](dev, proc, addr)


def _race(race: str, proc: Process, addr: int, out: dict[str, Any], reuse: bool) -> None:
    if race == "fork":
        out["child"] = proc.fork("child")
        proc.write(addr, "cpu")
    elif race == "munmap":
        proc.munmap(addr, NPAGES * PAGE_SIZE)
    elif race == "mprotect":
        proc.mprotect(addr, NPAGES * PAGE_SIZE, PROT_READ)
    if reuse:
        other = out["other"] = Process("other")
        a = other.mmap(NPAGES * PAGE_SIZE)
        other.populate(a, NPAGES * PAGE_SIZE, "other")


def _use(user: str, h: Handle, out: dict[str, Any], wait: bool) -> None:
    try:
        fence = None
        if user == "submit":
            fence = h.submit(h.bo.job_ops("gpu2"))
        elif user == "rogue":
            fence = h.rogue(h.bo.job_ops("rogue"))
        out["user_fence"] = fence
        if fence is not None and wait:
            fence.wait()
        out["user"] = "done"
    except EFAULT:
        out["user"] = "EFAULT"


def _kswapd() -> None:
    """kswapd / another task's direct reclaim: run the shrinkers once (under fs_reclaim)."""
    page_allocator().direct_reclaim(GFP_KERNEL, NPAGES)


def run_lab(k: Kernel, design: str, *, race: str = "fork", user: str = "submit", reuse: bool = False,
            broken: bool = False, reclaim: bool = False, linger_ns: int = 0, prebind: bool = True,
            wait: bool = True, inline_race: bool = False) -> dict[str, Any]:
    """The bench (see the module docstring). Returns what happened (for tests).

    ``prebind=False`` skips the first, race-free submission, so the racing
    submission looks the pages up itself (the C11 window: lookup before the
    fork, binding after the copy-on-write break). ``wait=False``: the
    user's thread returns once its job is queued, as the CS ioctl does
    (userspace waits separately); the teardown still waits for the job.
    Waiting in the racing thread multiplies the schedules (its fence wait
    interleaves with the notifier's and the device's signalling), so the
    rows that are proved by exhausting every schedule leave it out.
    ``inline_race=True``: the racer (fork, munmap, mprotect) runs in the
    bench's own thread -- the process's main thread -- instead of a thread
    of its own, against the user's thread as before. The schedules of the
    race are the same; what goes is the bench's join of a racer thread,
    whose order against that thread's exit (a join that waits, or one that
    finds it gone) is a Mazurkiewicz trace of its own for every schedule
    of the race: it doubles the traces to exhaust and shows nothing.
    """
    if race not in RACES or user not in USERS:
        raise ValueError(f"race must be one of {RACES} and user one of {USERS}")
    if reclaim:
        init_memory(NR_PAGES)
    dev = Device("gpu0", broken=broken)
    proc = Process("app")
    addr = proc.mmap(NPAGES * PAGE_SIZE)
    proc.populate(addr, NPAGES * PAGE_SIZE, "init")
    h = make(design, dev, proc, addr)
    out: dict[str, Any] = {"handle": h}
    if prebind:
        h.submit(h.bo.job_ops("gpu")).wait()
    threads = [] if inline_race else [k.spawn(_race, race, proc, addr, out, reuse, name=race)]
    if user != "none":
        threads.append(k.spawn(_use, user, h, out, wait, name=user))
    if reclaim:
        threads.append(k.spawn(_kswapd, name="kswapd"))
    if inline_race:
        _race(race, proc, addr, out, reuse)
    for t in threads:
        k.join(t)
    if linger_ns:
        k.nsleep(linger_ns)  # the object outlives the race a little before it is closed
    h.destroy()
    for name in ("child", "other"):
        p = out.get(name)
        if p is not None:
            p.exit()
    proc.exit()
    return out


def lab(name: str, module: str, design: str, doc: str, **kw: Any) -> Callable[[Kernel], None]:
    """A scenario function running :func:`run_lab` with fixed arguments (for catalog rows).

    ``name``/``module``: the attribute the caller binds it to, so that the
    function pickles by reference and replay lines name it.
    """

    def scenario(k: Kernel) -> None:
        run_lab(k, design, **kw)

    opts = ", ".join(f"{a}={v}" for a, v in sorted(kw.items()))
    scenario.__name__ = scenario.__qualname__ = name
    scenario.__module__ = module
    scenario.__doc__ = f"{doc} [bench: {design}, {opts}]"
    return scenario


__all__ = ["DESIGNS", "Handle", "Userptr", "lab", "make", "run_lab"]
