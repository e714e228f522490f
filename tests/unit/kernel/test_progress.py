"""Forward progress (kernel/progress.py): livelock is no progress, the runaway cap is separate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.kernel.strategy import Strategy
from dmabufsim.kernel.thread import KThread
from dmabufsim.mm import notifier_hooks as hooks
from dmabufsim.mm.mmu_notifier import MMUIntervalNotifier
from tests.helpers import run, run_first
from tests.unit.mm.notifier_mm import new_mm
from tests.unit.mm.test_interval_notifier import DriverOps


class RoundRobin(Strategy):
    """Switch to the next runnable thread (by tid) at every scheduling point: the lock-step
    schedule under which back-off-and-retry loops never get through."""

    name = "round-robin"

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        if current is not None:
            for t in runnable:
                if t.tid > current.tid:
                    return t
        return runnable[0]

    def next_u64(self, bound: int) -> int:
        return 0


def lockstep(scenario: Any, **kw: Any) -> ds.Execution:
    return ds.Kernel(strategy=RoundRobin(), **kw).run(scenario)


def start_together(k: ds.Kernel, *workers: tuple[str, Any, tuple[Any, ...]]) -> None:
    """Spawn the workers behind one ``complete_all`` so that they start in lock step, and wait.

    The wait's first join is a scheduling point after the ``complete_all`` (runtime R15): the
    lock-step tests give the livelock check one point more than a multiple of their period."""
    go = ds.Completion("go")

    def gated(fn: Any, args: tuple[Any, ...]) -> None:
        go.wait_for_completion()
        fn(*args)

    ts = [k.spawn(gated, fn, args, name=name) for name, fn, args in workers]
    k.msleep(1)  # every worker waits at the gate
    go.complete_all()
    for t in ts:
        k.join(t)


def _livelock(ex: ds.Execution) -> ds.Finding:
    assert (ex.outcome, ex.kinds) == ("livelock", ["livelock"])
    return ex.findings[0]


# ---------------------------------------------------------------- real livelocks


def test_trylock_backoff_pair_is_a_livelock() -> None:
    """Two threads each take one lock, trylock the other, back off and retry: forever in lock step."""
    attempts = {"t1": 0, "t2": 0}

    def worker(name: str, first: ds.Mutex, second: ds.Mutex) -> None:
        while True:
            first.lock()
            if second.trylock():
                second.unlock()
                first.unlock()
                return
            first.unlock()
            attempts[name] += 1

    def scenario(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")
        start_together(k, ("t1", worker, ("t1", a, b)), ("t2", worker, ("t2", b, a)))

    f = _livelock(lockstep(scenario, max_steps=5_001))
    assert f.title == "livelock: no progress within 5001 scheduling points"
    assert f.details["runnable"] == ["t1", "t2"]
    assert f.details["blocked"] == {"scenario": f.details["blocked"]["scenario"]}  # joining t1
    # Each is about to trylock the lock the other holds.
    assert {n: p.split(" ")[0] for n, p in f.details["positions"].items()} == {
        "t1": "mutex_trylock", "t2": "mutex_trylock"}
    assert f.details["last_progress"] == "complete_all"
    assert [t.name for t in f.threads] == ["t1", "t2", "scenario"]
    assert all(t.stack[0].function == "worker" for t in f.threads[:2])
    assert min(attempts.values()) > 500


def test_seqcount_reader_starved_by_a_writer_that_never_stops() -> None:
    """The writer (preemption off, as a plain seqcount_t requires) never stops: the reader,
    woken by every write_end, finds the next write in progress and sleeps again."""
    reads = {"done": False}

    def writer(sc: ds.SeqCount, k: ds.Kernel) -> None:
        while True:
            k.atomic_enter("preempt_disable", "writer")
            sc.write_begin()
            sc.write_end()
            k.atomic_exit("preempt_disable", "writer")

    def reader(sc: ds.SeqCount) -> None:
        while True:
            s = sc.read_begin()
            if not sc.read_retry(s):
                reads["done"] = True
                return

    def scenario(k: ds.Kernel) -> None:
        sc = ds.SeqCount("sc")
        start_together(k, ("writer", writer, (sc, k)), ("reader", reader, (sc,)))

    f = _livelock(lockstep(scenario, max_steps=5_001))
    assert f.details["runnable"] == ["writer"]
    assert f.details["blocked"]["reader"].split(" ")[0] == "read_seqcount_begin"
    assert "reader" in [t.name for t in f.threads]
    assert reads["done"] is False


def test_interval_read_retry_that_never_settles() -> None:
    """The userptr pattern: read_begin, look up the pages, read_retry under the notifier lock;
    an invalidation lands in every window, so the driver retries forever."""
    out = {"retries": 0}

    def invalidator(mm: Any) -> None:
        r = hooks.MmuNotifierRange(mm, 0x10000, 0x11000, hooks.MmuNotifyEvent.UNMAP, blockable=True)
        while True:
            hooks.invalidate_range_start(r)
            hooks.invalidate_range_end(r)

    def driver(sub: MMUIntervalNotifier, lock: ds.Mutex, k: ds.Kernel) -> None:
        while True:
            seq = sub.read_begin()
            for _ in range(16):  # get_user_pages: a page table walk per page
                k.point("get_user_pages", sub.oid, False)
            with lock:
                if not sub.read_retry(seq, lock):
                    return
            out["retries"] += 1

    def scenario(k: ds.Kernel) -> None:
        mm = new_mm()
        lock = ds.Mutex("notifier_lock")
        sub = MMUIntervalNotifier.insert(mm, 0x10000, 0x4000, DriverOps(lock, []))
        start_together(k, ("invalidator", invalidator, (mm,)), ("driver", driver, (sub, lock, k)))

    f = _livelock(lockstep(scenario, max_steps=5_000))
    assert f.details["runnable"] == ["invalidator", "driver"]
    assert out["retries"] > 10


def test_poller_on_a_flag_nobody_sets() -> None:
    def spin(k: ds.Kernel, flag: dict[str, bool]) -> None:
        while not flag["go"]:
            k.point("poll", 0, False)

    f = _livelock(run(lambda k: k.spawn(spin, k, {"go": False}, name="poller"), max_steps=500))
    assert f.details["positions"] == {"poller": "poll #0"}
    assert f.details["max_steps"] == 500


# ---------------------------------------------------------------- progress restarts the window


@pytest.mark.parametrize("what", ["dma_fence_signal", "complete", "thread exit", "virtual time"])
def test_progress_restarts_the_window(what: str) -> None:
    """1000 points of busy work between progress events, 20 times over, with a window of 1500:
    well over the window in all, never over it without progress."""

    def busy(k: ds.Kernel) -> None:
        for _ in range(1000):
            k.point("work", 0, False)

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring") if what == "dma_fence_signal" else None
        c = ds.Completion("c") if what == "complete" else None
        for _ in range(20):
            busy(k)
            if tl is not None:
                tl.create().signal()
            elif c is not None:
                c.complete()
            elif what == "thread exit":
                k.join(k.spawn(lambda: None, name="short"))
            else:
                k.msleep(1)

    ex = run_first(scenario, max_steps=1_500)
    assert (ex.outcome, ex.findings) == ("completed", [])
    assert ex.steps > 20_000


def test_the_same_work_without_progress_is_a_livelock() -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        for _ in range(20_000):
            m.lock()  # a lock taken and released is not progress
            m.unlock()

    f = _livelock(run_first(scenario, max_steps=1_500))
    assert f.details["runnable"] == ["scenario"]
    assert f.details["last_progress"] == "start"


# ---------------------------------------------------------------- the runaway cap


def test_runaway_cap_is_reported_as_such() -> None:
    """A producer that never stops makes progress at every fence: no livelock, but the cap."""

    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("ring")
        while True:
            tl.create().signal()

    ex = run_first(scenario, max_steps=1_000, runaway_steps=20_000)
    assert (ex.outcome, ex.kinds) == ("runaway", ["runaway"])
    f = ex.findings[0]
    assert f.title == "runaway: more than 20000 scheduling points"
    assert f.details["runaway_steps"] == 20_000
    assert f.details["runnable"] == ["scenario"]
    assert f.details["last_progress"] == "dma_fence_signal"
    assert f.severity == "error"


def test_runaway_cap_defaults_far_above_the_livelock_window() -> None:
    cfg = ds.Config()
    assert cfg.runaway_steps >= 100 * cfg.max_steps
