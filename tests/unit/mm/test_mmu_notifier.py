"""Classic mmu_notifier subscriptions behind the mm's hook points (mm/mmu_notifier.py)."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.kernel.errors import EAGAIN, UsageError
from dmabufsim.locking.annotations import MMU_NOTIFIER_MAP, mmu_notifier_map
from dmabufsim.mm import notifier_hooks as hooks
from dmabufsim.mm.mmu_notifier import MMUNotifier, MMUNotifierOps, mm_has_notifiers, subscriptions
from tests.helpers import run_first
from tests.unit.mm.notifier_mm import new_mm


class Recorder(MMUNotifierOps):
    """Records every callback; optionally refuses non-blockable ranges or sleeps."""

    def __init__(self, log: list[Any], name: str, *, refuse: bool = False, sleep: bool = False) -> None:
        self.log = log
        self.name = name
        self.refuse = refuse
        self.sleep = sleep

    def invalidate_range_start(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
        k = ds.current_kernel()
        self.log.append((self.name, "start", range.start, range.end, range.blockable,
                         k.lockdep.is_held(mmu_notifier_map())))
        if self.sleep:
            k.msleep(1)
        if self.refuse:
            raise EAGAIN("busy")

    def invalidate_range_end(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
        self.log.append((self.name, "end", range.start, range.end, range.blockable, True))

    def release(self, sub: MMUNotifier, mm: Any) -> None:
        self.log.append((self.name, "release"))


def test_start_end_reach_subscribers_in_registration_order_under_the_map() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        assert not mm_has_notifiers(mm)
        MMUNotifier(Recorder(log, "a")).register(mm)
        MMUNotifier(Recorder(log, "b")).register(mm)
        assert mm_has_notifiers(mm)
        r = hooks.MmuNotifierRange(mm, 0x1000, 0x3000, hooks.MmuNotifyEvent.UNMAP)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [
        ("a", "start", 0x1000, 0x3000, True, True),
        ("b", "start", 0x1000, 0x3000, True, True),
        ("a", "end", 0x1000, 0x3000, True, True),
        ("b", "end", 0x1000, 0x3000, True, True),
    ]


def test_nonblock_refusal_ends_the_started_ones_and_raises_eagain() -> None:
    log: list[Any] = []
    raised: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        for name, refuse in (("a", False), ("b", True), ("c", False)):
            MMUNotifier(Recorder(log, name, refuse=refuse)).register(mm)
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, hooks.MmuNotifyEvent.UNMAP, blockable=False)
        try:
            hooks.invalidate_range_start(r)
        except EAGAIN as e:
            raised.append(type(e).__name__)

    ex = run_first(scenario)
    assert ex.findings == []
    assert raised == ["EAGAIN"]
    assert [(e[0], e[1]) for e in log] == [("a", "start"), ("b", "start"), ("a", "end")]


def test_sleeping_in_a_nonblockable_callback_is_reported() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUNotifier(Recorder(log, "sleeper", sleep=True)).register(mm)
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, hooks.MmuNotifyEvent.UNMAP, blockable=False)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    f = ex.findings[0]
    assert f.details["call"] == "msleep"
    assert [a["what"] for a in f.details["atomic"]] == ["non_block"]
    assert f.details["atomic"][0]["name"] == "mmu_notifier_invalidate_range_start_nonblock"


def test_sleeping_in_a_blockable_callback_is_fine() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUNotifier(Recorder(log, "sleeper", sleep=True)).register(mm)
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, hooks.MmuNotifyEvent.CLEAR)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.findings == []
    assert ex.now == ds.NSEC_PER_MSEC


def test_refusing_a_blockable_range_is_a_warning() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUNotifier(Recorder(log, "bad", refuse=True)).register(mm)
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, hooks.MmuNotifyEvent.UNMAP)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].details["callback"] == "Recorder"
    assert [(e[0], e[1]) for e in log] == [("bad", "start"), ("bad", "end")]


def test_unregister_stops_callbacks_and_misuse_is_a_usage_error() -> None:
    log: list[Any] = []
    errors: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        sub = MMUNotifier(Recorder(log, "a"))
        sub.register(mm)
        try:
            sub.register(mm)
        except UsageError:
            errors.append("double register")
        sub.unregister()
        try:
            sub.unregister()
        except UsageError:
            errors.append("double unregister")
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, hooks.MmuNotifyEvent.UNMAP)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.findings == []
    assert errors == ["double register", "double unregister"]
    assert log == []


def test_release_calls_each_subscriber_once_and_then_nothing() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUNotifier(Recorder(log, "a")).register(mm)
        subs = subscriptions(mm)
        assert subs is not None
        subs.release(mm)
        subs.release(mm)
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, hooks.MmuNotifyEvent.UNMAP)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [("a", "release")]


def test_lock_taken_in_a_callback_is_ordered_after_the_map() -> None:
    """R2: the map is held when a callback runs, so the callback's locks nest inside it."""
    held: list[list[str]] = []

    class Locker(MMUNotifierOps):
        def __init__(self, lock: ds.Mutex) -> None:
            self.lock = lock

        def invalidate_range_start(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
            with self.lock:
                held.append([h.map.name for h in ds.current().held])

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUNotifier(Locker(ds.Mutex("driver_notifier_lock"))).register(mm)
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, hooks.MmuNotifyEvent.UNMAP)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.findings == []
    assert held == [[MMU_NOTIFIER_MAP, "driver_notifier_lock"]]


def test_range_record_rejects_nothing_but_overlap_is_half_open() -> None:
    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        r = hooks.MmuNotifierRange(mm, 0x1000, 0x2000, hooks.MmuNotifyEvent.UNMAP)
        assert r.overlaps(0x1fff, 0x3000)
        assert not r.overlaps(0x2000, 0x3000)
        assert not r.overlaps(0, 0x1000)

    assert run_first(scenario).findings == []


@pytest.mark.parametrize("event", list(hooks.MmuNotifyEvent))
def test_every_event_reaches_the_subscriber(event: hooks.MmuNotifyEvent) -> None:
    seen: list[hooks.MmuNotifyEvent] = []

    class Ev(MMUNotifierOps):
        def invalidate_range_start(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
            seen.append(range.event)

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUNotifier(Ev()).register(mm)
        r = hooks.MmuNotifierRange(mm, 0, 0x1000, event)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    assert run_first(scenario).findings == []
    assert seen == [event]


def test_a_nonblockable_invalidation_that_succeeds_also_claims_completion() -> None:
    """R8 (C15): the OOM reaper's non-blockable range is checked like a blockable one.

    A subscriber that accepts the range but leaves the device's IOMMU mapping
    in place is reported when the callbacks return, whatever the range's
    blockable flag; one that refuses (EAGAIN) claims nothing and is not.
    """
    from dmabufsim.device import Device
    from dmabufsim.mm.gup import FOLL, get_user_pages_fast
    from dmabufsim.mm.memory import Process
    from dmabufsim.mm.page import PAGE_SIZE

    stale: dict[bool, list[Any]] = {}

    for refuse in (False, True):

        def scenario(k: ds.Kernel, refuse: bool = refuse) -> None:
            proc = Process("app")
            addr = proc.mmap(PAGE_SIZE)
            proc.populate(addr, PAGE_SIZE, "x")
            dev = Device("gpu0")
            pages = get_user_pages_fast(proc.mm, addr, 1, FOLL.WRITE)
            dev.map_pages(0x10000, pages)
            MMUNotifier(Recorder([], "lazy", refuse=refuse)).register(proc.mm)
            proc.mm.oom_reap()
            dev.unmap_pages(0x10000, 1)
            for p in pages:
                p.put()

        ex = run_first(scenario)
        stale[refuse] = [(f.rule.split(":")[0], f.details["event"]) for f in ex.by_kind("stale-mapping")]
    assert stale[False] == [("mmu_notifier R8", "unmap")]
    assert stale[True] == []
