"""H9: ``drm_syncobj`` -- replacing the fence while someone looks it up (2017).

The bug. A sync object holds one reference to its current fence. In the
first ``drm_syncobj`` code (2017), looking the fence up was "read the
pointer, then take a reference", with nothing keeping the fence alive in
between; replacing it was "exchange the pointer, then drop the old
fence's reference". When a whole replacement runs between the reader's load
and its increment, the reader increments the count of a fence whose last
reference is gone and whose memory was freed: a use-after-free (KASAN would
report it in ``dma_fence_get``).

The fix. Jason Ekstrand's locking patch for drm_syncobj (August 2017, in the
dri-devel review of the syncobj series; hash unverified) put a spinlock
around the lookup and the replacement, so a reader takes its reference while
the syncobj's own reference still pins the fence. (The kernel later moved the
lookup to ``dma_fence_get_rcu_safe`` under RCU.)

The experiment: one syncobj starting with a signalled fence; a *waiter*
looks the fence up and drops its reference (a wait on it would follow), a *signaller* replaces it with a
new signalled fence; the file is closed at the end (``drm_syncobj_free``).
Fences come from a leak-checked cache, so the fixed design is also shown to
drop every reference (no ``leak``).
"""

from __future__ import annotations

from ..dma.fence import FenceCache, FenceContext
from ..drivers.drm_syncobj import DrmSyncobj, DrmSyncobjUnlocked2017
from ..kernel.runtime import Kernel


def _waiter(sync: DrmSyncobj) -> None:
    f = sync.fence_get()  # a lookup (the wait that would follow adds nothing to the race)
    if f is not None:
        f.put()


def _signaller(sync: DrmSyncobj, cache: FenceCache, ctx: FenceContext) -> None:
    f = cache.create(ctx.ops, ctx.lock, ctx.context, 2)
    f.signal()
    sync.replace_fence(f)
    f.put()


def _run(k: Kernel, cls: type[DrmSyncobj]) -> None:
    cache = FenceCache("syncobj_fences")
    ctx = FenceContext("syncobj", driver="drm")
    first = cache.create(ctx.ops, ctx.lock, ctx.context, 1)
    first.signal()
    sync = cls("syncobj", first)
    first.put()  # the syncobj's reference is the only one left
    waiter = k.spawn(_waiter, sync, name="waiter")
    signaller = k.spawn(_signaller, sync, cache, ctx, name="signaller")
    k.join(waiter)
    k.join(signaller)
    sync.free()


def scenario_unlocked(k: Kernel) -> None:
    """Design ``unlocked-get``: load + get against xchg + put (the 2017 code): use-after-free."""
    _run(k, DrmSyncobjUnlocked2017)


def scenario_locked(k: Kernel) -> None:
    """Design ``locked``: the spinlock around lookup and replacement (the fix): clean, no leak."""
    _run(k, DrmSyncobj)


CLAIMS = [
    {"id": "H9", "design": "unlocked-get", "scenario": scenario_unlocked,
     "expected": {"kinds": ["use-after-free"]}, "budget": 100},
    {"id": "H9", "design": "locked", "scenario": scenario_locked, "expected": "clean",
     "strategy": "odpor", "budget": 200},  # every schedule, no bound
]
