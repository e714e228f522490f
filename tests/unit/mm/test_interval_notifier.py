"""mmu_interval_notifier and its sequence protocol (mm/mmu_notifier.py, R5 and R11-R15)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.kernel.errors import EAGAIN, EINVAL
from dmabufsim.mm import notifier_hooks as hooks
from dmabufsim.mm.mmu_notifier import MMUIntervalNotifier, MMUIntervalNotifierOps, subscriptions
from tests.helpers import run, run_first
from tests.unit.mm.notifier_mm import new_mm


class DriverOps(MMUIntervalNotifierOps):
    """The hmm.rst driver pattern: refuse non-blockable, set_seq under the notifier lock."""

    def __init__(self, lock: ds.Mutex, log: list[Any]) -> None:
        self.lock = lock
        self.log = log

    def invalidate(self, sub: MMUIntervalNotifier, range: hooks.MmuNotifierRange, cur_seq: int) -> bool:
        if not range.blockable:
            self.log.append(("refused", range.start))
            return False
        with self.lock:
            sub.set_seq(cur_seq)
            self.log.append(("invalidate", range.start, cur_seq))
        return True


def _rng(mm: Any, start: int, end: int, blockable: bool = True) -> hooks.MmuNotifierRange:
    return hooks.MmuNotifierRange(mm, start, end, hooks.MmuNotifyEvent.UNMAP, blockable=blockable)


def test_sequence_protocol_single_thread() -> None:
    log: list[Any] = []
    seen: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        lock = ds.Mutex("notifier_lock")
        sub = MMUIntervalNotifier.insert(mm, 0x10000, 0x4000, DriverOps(lock, log))
        subs = subscriptions(mm)
        assert subs is not None
        seen["initial_global"] = subs.invalidate_seq
        seq = sub.read_begin()
        seen["seq"] = seq
        # A range that misses the interval: no callback, no collision.
        r = _rng(mm, 0x0, 0x10000)
        hooks.invalidate_range_start(r)
        seen["odd_during_miss"] = subs.is_invalidating
        hooks.invalidate_range_end(r)
        with lock:
            seen["retry_after_miss"] = sub.read_retry(seq, lock)
        # A range that hits it.
        r = _rng(mm, 0x13000, 0x20000)
        hooks.invalidate_range_start(r)
        seen["global_during_hit"] = subs.invalidate_seq
        hooks.invalidate_range_end(r)
        seen["global_after_hit"] = subs.invalidate_seq
        with lock:
            seen["retry_after_hit"] = sub.read_retry(seq, lock)
        seq2 = sub.read_begin()
        with lock:
            seen["retry_fresh"] = sub.read_retry(seq2, lock)

    ex = run_first(scenario)
    assert ex.findings == []
    assert seen["initial_global"] == 2
    assert seen["seq"] == 1
    assert seen["odd_during_miss"] is False
    assert seen["retry_after_miss"] is False
    assert seen["global_during_hit"] == 3
    assert log == [("invalidate", 0x13000, 3)]
    assert seen["global_after_hit"] == 4
    assert seen["retry_after_hit"] is True
    assert seen["retry_fresh"] is False


def test_read_begin_waits_for_the_invalidation_in_progress() -> None:
    order: list[str] = []

    def invalidator(mm: Any, k: ds.Kernel) -> None:
        r = _rng(mm, 0, 0x1000)
        hooks.invalidate_range_start(r)
        order.append("started")
        k.msleep(5)  # the core mm changes the page tables
        order.append("ending")
        hooks.invalidate_range_end(r)

    def reader(sub: MMUIntervalNotifier, k: ds.Kernel) -> None:
        while not order:
            k.msleep(1)
        seq = sub.read_begin()
        order.append(f"read_begin {seq} at {k.now // ds.NSEC_PER_MSEC}ms")

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        sub = MMUIntervalNotifier.insert(mm, 0, 0x1000, DriverOps(ds.Mutex("notifier_lock"), []))
        k.spawn(invalidator, mm, k, name="munmap")
        k.spawn(reader, sub, k, name="gpu_submit")

    for seed in range(5):
        order.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == []
        assert order == ["started", "ending", "read_begin 3 at 5ms"]


def test_nonblockable_refusal_raises_eagain_and_leaves_the_sequence_even() -> None:
    log: list[Any] = []
    seen: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUIntervalNotifier.insert(mm, 0, 0x1000, DriverOps(ds.Mutex("notifier_lock"), log))
        subs = subscriptions(mm)
        assert subs is not None
        try:
            hooks.invalidate_range_start(_rng(mm, 0, 0x1000, blockable=False))
        except EAGAIN:
            seen.append("EAGAIN")
        seen.append((subs.invalidate_seq, subs.active_invalidate_ranges))

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [("refused", 0)]
    assert seen == ["EAGAIN", (4, 0)]


def test_returning_false_in_a_blockable_range_is_a_warning() -> None:
    class Bad(MMUIntervalNotifierOps):
        def invalidate(self, sub: MMUIntervalNotifier, range: hooks.MmuNotifierRange, cur_seq: int) -> bool:
            return False

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        MMUIntervalNotifier.insert(mm, 0, 0x1000, Bad())
        r = _rng(mm, 0, 0x1000)
        hooks.invalidate_range_start(r)
        hooks.invalidate_range_end(r)

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].details["callback"] == "Bad"


def test_read_retry_without_the_notifier_lock_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        lock = ds.Mutex("notifier_lock")
        sub = MMUIntervalNotifier.insert(mm, 0, 0x1000, DriverOps(lock, []))
        seq = sub.read_begin()
        assert sub.read_retry(seq, lock) is False

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].details["lock"] == "notifier_lock"


def test_insert_during_an_invalidation_is_deferred_and_read_begin_waits() -> None:
    seen: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        log: list[Any] = []
        MMUIntervalNotifier.insert(mm, 0, 0x1000, DriverOps(ds.Mutex("notifier_lock"), log))
        subs = subscriptions(mm)
        assert subs is not None
        r = _rng(mm, 0, 0x1000)
        hooks.invalidate_range_start(r)
        late = MMUIntervalNotifier.insert(mm, 0x800, 0x1000, DriverOps(ds.Mutex("notifier_lock2"), log))
        seen.append((late.in_tree, late.invalidate_seq, subs.invalidate_seq))
        hooks.invalidate_range_end(r)
        seen.append((late.in_tree, subs.invalidate_seq, late.read_begin()))

    ex = run_first(scenario)
    assert ex.findings == []
    assert seen == [(False, 3, 3), (True, 4, 3)]


def test_remove_during_an_invalidation_waits_for_its_end() -> None:
    order: list[str] = []

    def invalidator(mm: Any, k: ds.Kernel) -> None:
        r = _rng(mm, 0, 0x1000)
        hooks.invalidate_range_start(r)
        order.append("started")
        k.msleep(3)
        hooks.invalidate_range_end(r)
        order.append("ended")

    def remover(sub: MMUIntervalNotifier, k: ds.Kernel) -> None:
        while not order:
            k.msleep(1)
        sub.remove()
        order.append(f"removed at {k.now // ds.NSEC_PER_MSEC}ms in_tree={sub.in_tree}")

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        sub = MMUIntervalNotifier.insert(mm, 0, 0x1000, DriverOps(ds.Mutex("notifier_lock"), []))
        k.spawn(invalidator, mm, k, name="munmap")
        k.spawn(remover, sub, k, name="free_userptr")

    for seed in range(5):
        order.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == []
        assert order[0] == "started"
        assert order[-1] == "removed at 3ms in_tree=False"


def test_bad_interval_is_einval() -> None:
    raised: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        for start, length in ((0, 0), (-0x1000, 0x1000), (1 << 57, 0x1000)):
            try:
                MMUIntervalNotifier.insert(mm, start, length, DriverOps(ds.Mutex("l"), []))
            except EINVAL:
                raised.append(f"{start}:{length}")

    assert run_first(scenario).findings == []
    assert len(raised) == 3


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["begin", "inv", "check"]), st.integers(0, 7), st.integers(1, 4)),
                max_size=25))
def test_read_retry_is_true_iff_an_overlapping_invalidation_happened(ops: list[tuple[str, int, int]]) -> None:
    """Property: since the last read_begin, read_retry is True exactly when an overlapping range ran."""
    mismatches: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        lock = ds.Mutex("notifier_lock")
        sub = MMUIntervalNotifier.insert(mm, 0x2000, 0x3000, DriverOps(lock, []))  # pages 2..4
        subs = subscriptions(mm)
        assert subs is not None
        seq = sub.read_begin()
        collided = False
        for op, page, npages in ops:
            start, end = page * 0x1000, (page + npages) * 0x1000
            if op == "begin":
                seq = sub.read_begin()
                collided = False
            elif op == "inv":
                r = _rng(mm, start, end)
                hooks.invalidate_range_start(r)
                hooks.invalidate_range_end(r)
                collided = collided or (start < 0x5000 and end > 0x2000)
            else:
                with lock:
                    got = sub.read_retry(seq, lock)
                if got != collided:
                    mismatches.append((op, page, npages, got, collided))
            if subs.invalidate_seq % 2 != 0 or subs.active_invalidate_ranges != 0:
                mismatches.append(("not idle", subs.invalidate_seq))

    ex = run_first(scenario)
    assert ex.findings == []
    assert mismatches == []
