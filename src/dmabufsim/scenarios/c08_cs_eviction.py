"""Claim C8 (Daniel): command submission can evict under its own ww acquire context.

  "For the in-driver reservation path (CS) having a slow-path that grabs a
  temporary reference, drops the vram lock and then locks the reservation
  normally (using the acquire context used already for the entire CS) is a
  bit tricky, but totally feasible. Ttm doesn't do that though."

The experiment: an amdgpu-like driver with 4 pages of VRAM and two command
submission threads, each writing its own two 2-page buffers and asking
for VRAM only -- VRAM is oversubscribed 2x, so each submission must evict
the other thread's buffers, which that thread may hold locked in its own
ww transaction at that very moment. The eviction path (ttm R3) trylocks
first, then takes a temporary reference, drops the LRU spinlock and locks
the victim with the CS's ticket; ``EDEADLK`` (wait-die) makes the CS back
off, ``lock_slow`` the victim and retry (amdgpu-exporter R3).

The scenario checks that every submission completed and that each buffer
finally holds the value of its thread's last write (an ``assertion``
finding otherwise); the scheduler reports a deadlock, lockdep and
might_sleep what they see.

Designs:

* ``drop-lru-lock`` (the claim): clean -- every contention resolved by
  backing off.
* ``lock-under-lru``: the victim's reservation is locked while the LRU
  spinlock is still held: ``sleep-in-atomic`` in every execution (a
  ww_mutex lock may sleep, kernel R5). In the schedules where the victim's
  owner then needs the LRU lock itself (to list a new resource) while it
  holds the reservation the first thread sleeps on, nothing can run any
  more: the scheduler's ``deadlock`` -- the reason the rule exists.
  (Lockdep stays silent here, as the kernel's would: the victim's lock is
  taken under the CS's acquire context while another lock of the same
  class is held, which lockdep treats as serialised by the nest lock and
  records no dependency for.)

Proof (catalog R8): ``drop-lru-lock`` is not proved; ``proofs.NOT_PROVED``
holds the measured reason. Even the smallest configuration that still
shows ``lock-under-lru``'s ``sleep-in-atomic`` and ``deadlock`` -- one
submission per thread, one 1-page buffer each, one page of VRAM
(``run_c8(k, lock_under_lru=..., submits=1, bos=1, bo_pages=1)``) -- is
not exhausted by optimal DPOR: 11,590 Mazurkiewicz traces in 540 s, still
growing. The two submissions share, besides the victim's reservation
object and the LRU spinlock the claim is about, the ww class's stamp
counter, the device's CS counter, its GPU VM and IOMMU domain, the gfx
ring and the copy engine; each eviction is a pipelined move with a ghost
object, a copy job and a release worker, and every fence of them is
signalled by an interrupt thread racing the CS threads' fence reads. These
are the kernel's own shared objects, so the declarations are not too
coarse: the space is large because the eviction path is long.
"""

from __future__ import annotations

from ..device.ttm import BufferObject, MemType
from ..drivers.amdgpu_exporter import AmdgpuExporter
from ..kernel.runtime import Kernel
from .catalog import Verdict

#: Submissions per thread and their length.
SUBMITS = 2
JOB_NS = 20_000


def _cs_thread(k: Kernel, drv: AmdgpuExporter, bos: list[BufferObject], tag: str, done: list[str],
               submits: int) -> None:
    for i in range(submits):
        fence = drv.submit([(bo, True) for bo in bos], placement=(MemType.VRAM,), duration_ns=JOB_NS,
                           value=f"{tag}{i}", name=f"cs-{tag}{i}")
        fence.wait()
        done.append(f"{tag}{i}")


def run_c8(k: Kernel, *, lock_under_lru: bool, submits: int = SUBMITS, bos: int = 2, bo_pages: int = 2) -> None:
    """The C8 experiment (see the module docstring).

    Each CS thread submits ``submits`` times, writing its own ``bos``
    buffers of ``bo_pages`` pages; VRAM holds one thread's buffers, so it
    is oversubscribed 2x in every configuration. The rows run the defaults;
    ``submits=1, bos=1, bo_pages=1`` is the smallest configuration that
    still shows ``lock-under-lru``'s bug (both kinds), measured for the
    proof (module docstring, "Proof").
    """
    drv = AmdgpuExporter("amdgpu", vram_pages=bos * bo_pages, lock_under_lru=lock_under_lru)
    a = [drv.create_bo(bo_pages, name=f"A{i}") for i in range(1, bos + 1)]
    b = [drv.create_bo(bo_pages, name=f"B{i}") for i in range(1, bos + 1)]
    done: list[str] = []
    threads = [
        k.spawn(_cs_thread, k, drv, a, "a", done, submits, name="cs-a"),
        k.spawn(_cs_thread, k, drv, b, "b", done, submits, name="cs-b"),
    ]
    for t in threads:
        k.join(t)
    drv.wait_idle()
    want = {f"a{submits - 1}": a, f"b{submits - 1}": b}
    wrong = []
    for value, objs in want.items():
        for bo in objs:
            got = [p.read(0) for p in bo.pages]
            if got != [value] * bo.size:
                wrong.append((bo.name, got))
    if len(done) != 2 * submits or wrong:
        k.report(
            "assertion",
            "claim C8 violated: a submission did not complete or its writes were lost",
            details={"completed": sorted(done), "wrong": wrong},
            rule="C8: every CS completes and its writes land in the buffer's final backing store",
            signature="c8:lost",
        )
    for bo in a + b:
        drv.destroy(bo)
    drv.wait_idle()


def drop_lru_lock(k: Kernel) -> None:
    """Temporary reference, drop the LRU lock, lock the victim with the CS ticket: clean."""
    run_c8(k, lock_under_lru=False)


def lock_under_lru(k: Kernel) -> None:
    """Lock the victim's reservation while holding the LRU spinlock: sleeping in atomic context."""
    run_c8(k, lock_under_lru=True)


CLAIMS = [
    {"id": "C8", "design": "drop-lru-lock", "scenario": drop_lru_lock, "expected": "clean", "budget": 200},
    {
        "id": "C8",
        "design": "lock-under-lru",
        "scenario": lock_under_lru,
        "expected": Verdict(kinds=frozenset({"sleep-in-atomic", "deadlock"})),
        "budget": 100,
    },
]
