"""H3: lockless reservation-object readers and recycled fences (2016, 2019).

The setting. Until 2021 a reservation object held one exclusive fence and a
list of shared fences; ``reservation_object_get_fences_rcu`` read them
without the lock: under RCU, validated by the object's seqcount, taking a
reference on each fence with ``dma_fence_get_rcu``. i915's fences came from
a slab created ``SLAB_TYPESAFE_BY_RCU``: a fence freed during the reader's
RCU section stays a fence, and may already be a *different* fence, reused by
the next allocation.

The first bug (fixed by Chris Wilson, "dma-buf: Restart
reservation_object_get_fences_rcu() after writes", fedf54132d24,
Message-ID 20160829070834.22296-7-chris@chris-wilson.co.uk). The reader
checked the seqcount first and took its references afterwards. Between the
two a writer could replace the exclusive fence, drop the last reference of
the old one, and allocate a new fence into its memory; the reader's
``get_rcu`` then succeeded on that new fence and returned it as the
object's exclusive fence -- a fence the object never held. The fix takes
the references first and re-checks the seqcount after them.

The second bug (fixed by Chris Wilson, "dma-buf: Discard old fence_excl on
retrying get_fences_rcu for realloc", f5b07b04e5f0, Message-ID
20190604125323.21396-1-chris@chris-wilson.co.uk). The reader of 2016 grew
its array with ``GFP_NOWAIT`` inside the RCU section; when that failed it
left the section, grew it with ``GFP_KERNEL`` and restarted -- still holding
the reference it had just taken on the exclusive fence, which was then never
put: a leak. The fix puts it before restarting.

The experiment: an object with an exclusive and a shared fence from a
type-safe-by-RCU cache; a *reader* takes the fences locklessly and checks that
what it got is a state the object held while it read (the assertion
``h3-snapshot``), then puts them; a *writer* replaces the exclusive fence
under the lock, puts its own reference (the old fences are freed), and
allocates two fences for another timeline (which reuse the freed memory).
``GFP_NOWAIT`` fails (memory pressure), so every reader grows its array once
outside the RCU section. At the end the object is finalised and
every fence is leak-checked.
"""

from __future__ import annotations

from collections.abc import Callable

from ..dma.fence import DmaFence, FenceCache, FenceContext
from ..dma.resv2016 import (
    Fences,
    ReservationObject2016,
    fence_key,
    get_fences_rcu,
    get_fences_rcu_2016,
    get_fences_rcu_no_recheck,
)
from ..kernel.runtime import Kernel

Reader = Callable[[ReservationObject2016, bool], Fences]


class _Shared:
    __slots__ = ("cache", "excl", "obj", "other", "shared", "states")

    def __init__(self) -> None:
        self.cache = FenceCache("fence_slab", typesafe_by_rcu=True)
        self.excl = FenceContext("excl", driver="i915")
        self.shared = FenceContext("shared", driver="i915")
        self.obj = ReservationObject2016("bo")
        self.other = FenceContext("other", driver="i915")
        self.states: list[tuple[tuple[int, int] | None, tuple[tuple[int, int], ...]]] = []

    def create(self, ctx: FenceContext, seqno: int) -> DmaFence:
        f = self.cache.create(ctx.ops, ctx.lock, ctx.context, seqno)
        f.signal()
        return f


def _reader(sh: _Shared, read: Reader) -> None:
    k = sh.obj.k
    first = len(sh.states) - 1
    excl, shared = read(sh.obj, True)
    last = len(sh.states) - 1
    got = (fence_key(excl) if excl is not None else None, tuple(fence_key(f) for f in shared))
    if got not in sh.states[first : last + 1]:
        k.report(
            "assertion",
            "lockless reader returned fences the object never held",
            details={"result": [list(got[0]) if got[0] else None, [list(x) for x in got[1]]],
                     "states": [[list(s[0]) if s[0] else None, [list(x) for x in s[1]]]
                                for s in sh.states[first : last + 1]]},
            rule="dma_resv (2016) R3: a reader returns a state the object held during the read",
            signature="h3-snapshot",
        )
    for f in ([excl] if excl is not None else []) + shared:
        f.put()


def _writer(sh: _Shared) -> None:
    obj = sh.obj
    new = sh.create(sh.excl, 2)
    obj.lock()
    obj.add_excl_fence(new)
    sh.states.append(obj.state())
    obj.unlock()
    new.put()
    # The next allocations reuse the freed fences' memory (last freed first: the shared one, then the exclusive).
    others = [sh.create(sh.other, seqno) for seqno in (1, 2)]
    for f in others:
        f.put()


def _run(k: Kernel, read: Reader) -> None:
    sh = _Shared()
    obj = sh.obj
    excl = sh.create(sh.excl, 1)
    shared = sh.create(sh.shared, 1)
    obj.lock()
    obj.add_excl_fence(excl)
    obj.add_shared_fence(shared)
    obj.unlock()
    excl.put()
    shared.put()
    sh.states.append(obj.state())
    reader = k.spawn(_reader, sh, read, name="reader")
    writer = k.spawn(_writer, sh, name="writer")
    k.join(reader)
    k.join(writer)
    obj.lock()
    obj.fini()
    obj.unlock()


def scenario_no_recheck(k: Kernel) -> None:
    """Design ``no-recheck`` (before fedf54132d24): references taken after the seqcount check."""
    _run(k, get_fences_rcu_no_recheck)


def scenario_recheck_leaks_excl(k: Kernel) -> None:
    """Design ``recheck-leaks-excl`` (fedf54132d24): the GFP_KERNEL restart keeps the exclusive fence."""
    _run(k, get_fences_rcu_2016)


def scenario_fixed(k: Kernel) -> None:
    """Design ``fixed`` (f5b07b04e5f0): put the exclusive fence before restarting: clean."""
    _run(k, get_fences_rcu)


CLAIMS = [
    {"id": "H3", "design": "no-recheck", "scenario": scenario_no_recheck,
     "expected": {"kinds": ["assertion"], "asserts": ["h3-snapshot"]}, "budget": 300,
     "year": 2016, "source": "before fedf54132d24 (Message-ID 20160829070834.22296-7-chris@chris-wilson.co.uk)"},
    {"id": "H3", "design": "recheck-leaks-excl", "scenario": scenario_recheck_leaks_excl,
     "expected": {"kinds": ["leak"]}, "budget": 100,
     "year": 2016,
     "source": "fedf54132d24; the leak: f5b07b04e5f0 (Message-ID 20190604125323.21396-1-chris@chris-wilson.co.uk)"},
    {"id": "H3", "design": "fixed", "scenario": scenario_fixed, "expected": "clean",
     "strategy": "odpor", "budget": 5000,
     "year": 2019, "source": "f5b07b04e5f0 (Message-ID 20190604125323.21396-1-chris@chris-wilson.co.uk)"},
]
