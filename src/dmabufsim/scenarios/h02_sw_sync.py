"""H2: sw_sync timeline points -- freeing a point while the timeline signals it (2019, 2023, 2024).

The bug, first design. The sw_sync timeline keeps its pending points on a
list that holds no reference; a point whose last reference goes away
unlinks itself in its release. Signalling unlinks each passed point under
the timeline lock and only then signals it. The release tested "am I still
on the list?" without taking the lock: when it ran between the signaller's
unlink and its signal, it concluded the point was already detached, freed
it, and the signaller went on to signal freed memory -- a use-after-free.
Fixed by Chris Wilson, "dma-buf/sw_sync: Synchronize signal vs syncpt free",
d3c6dd1fb30d (Message-ID 20190812154247.20508-1-chris@chris-wilson.co.uk):
the release takes the lock for its test.

The bug, second design. The timeline lock is also the fence lock of every
point, and signalling runs the point's callbacks under it. A callback that
drops the point's last reference (a waiter handing its reference to its
callback) now runs the release inside ``sync_timeline_signal``, and the
release takes the lock the signaller holds: recursive locking, a
self-deadlock on a spinlock. Fixed by Rob Clark, "dma-buf/sw_sync: Avoid
recursive lock during fence signal" (Message-ID
20230817213729.110087-1-robdclark@gmail.com, Fixes: d3c6dd1fb30d): under the
lock the signaller takes a reference on each point it signals and keeps them
on a private list, and drops them after unlocking (e531fdb5cd5e).

The bug, third design. The 2023 fix takes its reference with a plain get
on a point the list does not pin: when a sync_file's last put races the
signal, the point's count is already zero and its release is waiting for the
timeline lock the signaller holds; the signaller's get turns 0 into 1
("refcount_t: addition on 0; use-after-free.") and the release then frees
the point the signaller still uses. The model found this on its own; it is
the race Thadeu Lima de Souza Cascardo reported in 2024, "dma-buf/sw_sync:
Add a reference when adding fence to timeline list" (Message-ID
20240324101533.3271056-1-cascardo@igalia.com, Fixes: e531fdb5cd5e), whose
proposal -- the pending list holds a reference of its own, dropped by the
signaller after signalling, and the release has nothing to unlink -- is the
fourth design and runs clean. (Whether that patch was merged in this form
is unverified.)

The experiment: one timeline, two points; a *closer* holds the only
reference of the first and drops it (closing its sync_file); the only
reference of the second was handed, before the race, to a callback that
drops it when the point signals (a waiter's); a *signaller* advances the
timeline by two.
"""

from __future__ import annotations

from ..dma.fence import DmaFence, DmaFenceCb
from ..dma.sw_sync import (
    SyncPt,
    SyncTimeline,
    SyncTimelineListRef,
    SyncTimelineLockedRelease2019,
    SyncTimelineUnlockedRelease,
)
from ..kernel.runtime import Kernel


def _put_on_signal(fence: DmaFence, cb: DmaFenceCb) -> None:
    fence.put()  # the waiter's reference, handed to the callback


def _closer(pt: SyncPt) -> None:
    pt.put()


def _signaller(tl: SyncTimeline) -> None:
    tl.signal(2)


def _run(k: Kernel, cls: type[SyncTimeline]) -> None:
    tl = cls("sw_sync")
    pt1 = tl.create_pt(1)
    pt2 = tl.create_pt(2)
    pt2.add_callback(_put_on_signal)  # the waiter hands its only reference to its callback
    threads = [
        k.spawn(_closer, pt1, name="closer"),
        k.spawn(_signaller, tl, name="signaller"),
    ]
    for t in threads:
        k.join(t)


def scenario_unlocked_release_check(k: Kernel) -> None:
    """Design ``unlocked-release-check``: the release tests the link without the lock: use-after-free."""
    _run(k, SyncTimelineUnlockedRelease)


def scenario_locked_release(k: Kernel) -> None:
    """Design ``locked-release`` (d3c6dd1fb30d): a callback's last put takes the held timeline lock."""
    _run(k, SyncTimelineLockedRelease2019)


def scenario_deferred_put(k: Kernel) -> None:
    """Design ``deferred-put`` (e531fdb5cd5e, 2023): the signaller's get can meet a count of zero."""
    _run(k, SyncTimeline)


def scenario_list_reference(k: Kernel) -> None:
    """Design ``list-reference`` (2024 proposal): the pending list holds a reference: clean."""
    _run(k, SyncTimelineListRef)


_ROBCLARK = "Message-ID 20230817213729.110087-1-robdclark@gmail.com"
_CASCARDO = "Message-ID 20240324101533.3271056-1-cascardo@igalia.com"

CLAIMS = [
    {"id": "H2", "design": "unlocked-release-check", "scenario": scenario_unlocked_release_check,
     "expected": {"kinds": ["use-after-free"]}, "budget": 200,
     "year": 2019, "source": "before d3c6dd1fb30d (Message-ID 20190812154247.20508-1-chris@chris-wilson.co.uk)"},
    {"id": "H2", "design": "locked-release", "scenario": scenario_locked_release,
     "expected": {"kinds": ["recursive-locking", "deadlock"]}, "budget": 200,
     "year": 2019, "source": f"d3c6dd1fb30d; the bug: {_ROBCLARK}"},
    {"id": "H2", "design": "deferred-put", "scenario": scenario_deferred_put,
     "expected": {"kinds": ["use-after-free"]}, "budget": 300,
     "year": 2023, "source": f"e531fdb5cd5e ({_ROBCLARK}); the bug: {_CASCARDO}"},
    {"id": "H2", "design": "list-reference", "scenario": scenario_list_reference, "expected": "clean",
     "strategy": "odpor", "budget": 2000,
     "year": 2024, "source": f"{_CASCARDO} (Fixes: e531fdb5cd5e; merge status unverified)"},
]
