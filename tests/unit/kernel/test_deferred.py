"""Deferred contexts: work items and workqueues, irq_work, timer_list, kthread parking."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.kernel.workqueue import DelayedWork
from tests.helpers import run, run_first


def _all_seeds(scenario: Any, n: int = 30, **kw: Any) -> list[ds.Execution]:
    return [ds.Kernel(seed=s, check_accesses=True, **kw).run(scenario) for s in range(n)]


def test_work_runs_in_process_context_once_per_queueing() -> None:
    ran: list[bool] = []
    queued: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        wq = ds.Workqueue("test_wq")
        work = ds.WorkStruct(lambda w: (ran.append(k.current.in_irq), k.msleep(1)), "w")
        queued.append(wq.queue_work(work))
        queued.append(wq.queue_work(work))  # False while still pending (W1)
        ds.flush_work(work)

    seen = set()
    for seed in range(30):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(scenario)
        assert ex.findings == []
        assert queued[0] is True and len(ran) == sum(queued)
        seen.add(tuple(queued))
        ran.clear()
        queued.clear()
    assert seen == {(True, False), (True, True)}


def test_cancel_work_sync_waits_for_a_running_work() -> None:
    order: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        started = ds.Completion("started")

        def fn(w: ds.WorkStruct) -> None:
            started.complete()
            k.msleep(5)
            order.append("work done")

        wq = ds.Workqueue("test_wq")
        work = ds.WorkStruct(fn, "w")
        wq.queue_work(work)
        started.wait_for_completion()
        assert ds.cancel_work_sync(work) is False  # running, not pending
        order.append("cancel returned")

    for ex in _all_seeds(scenario, 10):
        assert ex.findings == []
        assert order[-2:] == ["work done", "cancel returned"]


def test_cancel_work_sync_unqueues_a_pending_work() -> None:
    ran: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        wq = ds.Workqueue("test_wq")
        work = ds.WorkStruct(lambda w: ran.append(1), "w")
        wq.queue_work(work)
        if ds.cancel_work_sync(work):
            ran.append(0)
        wq.flush_workqueue()

    for s in range(20):
        ran.clear()
        ex = ds.Kernel(seed=s, check_accesses=True).run(scenario)
        assert ex.findings == []
        assert ran in ([0], [1])  # cancelled before it ran, or it ran once


def test_flush_work_from_inside_the_work_is_recursive_locking_on_its_map() -> None:
    def scenario(k: ds.Kernel) -> None:
        wq = ds.Workqueue("test_wq")
        work = ds.WorkStruct(lambda w: ds.flush_work(w), "self_flush")
        wq.queue_work(work)
        ds.flush_work(work)

    ex = run_first(scenario)
    assert ex.kinds == ["recursive-locking", "deadlock"]
    f = ex.findings[0]
    assert f.title == "WARNING: possible recursive locking detected"
    assert "(work_completion)(self_flush)" in f.report


def test_flush_work_under_a_lock_the_work_takes_is_circular_locking() -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("driver_lock")

        def fn(w: ds.WorkStruct) -> None:
            with m:
                pass

        wq = ds.Workqueue("test_wq")
        work = ds.WorkStruct(fn, "job_work")
        wq.queue_work(work)
        with m:
            ds.flush_work(work)

    found = set()
    for s in range(20):
        ex = run(scenario, seed=s)
        cyc = ex.by_kind("circular-locking")
        if cyc:
            found.add(tuple(cyc[0].details["chain"]))
    assert found
    for chain in found:
        assert sorted(chain) == ["(work_completion)(job_work)", "driver_lock"]


def test_flush_workqueue_waits_for_every_item() -> None:
    done: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        wq = ds.Workqueue("test_wq", ordered=True)
        for i in range(3):
            wq.queue_work(ds.WorkStruct(lambda w, i=i: done.append(i), f"w{i}"))
        wq.flush_workqueue()
        assert done == [0, 1, 2]  # ordered: in queueing order

    for s in range(10):
        done.clear()
        ex = ds.Kernel(seed=s, check_accesses=True).run(scenario)
        assert ex.findings == []


def test_delayed_work_runs_after_its_delay() -> None:
    at: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        wq = ds.Workqueue("test_wq")
        dw = DelayedWork(lambda w: at.append(k.now), "tdr")
        assert dw.queue(wq, 10 * ds.NSEC_PER_MSEC) is True
        assert dw.queue(wq, 10 * ds.NSEC_PER_MSEC) is False
        k.msleep(20)
        ds.flush_work(dw.work)

    ex = ds.Kernel(seed=0, check_accesses=True).run(scenario)
    assert ex.findings == []
    assert at == [10 * ds.NSEC_PER_MSEC]


def test_irq_work_runs_in_hardirq_and_might_sleep_fires() -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("driver_mutex")

        def fn(w: ds.IrqWork) -> None:
            with m:
                pass

        work = ds.IrqWork(fn, "kill_jobs")
        work.queue()
        work.sync()

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    f = ex.findings[0]
    assert f.details["call"] == "mutex_lock"
    assert f.details["atomic"][0] == {"what": "hardirq", "name": "irq_work:kill_jobs", "site": "None"}


def test_timer_callback_runs_in_softirq_at_its_time() -> None:
    at: list[tuple[int, bool]] = []

    def scenario(k: ds.Kernel) -> None:
        t = ds.TimerList(lambda tm: at.append((k.now, k.current.in_softirq)), "watchdog")
        t.mod_timer(5 * ds.NSEC_PER_MSEC)
        k.msleep(10)
        assert t.del_timer_sync() is False

    ex = ds.Kernel(seed=0, check_accesses=True).run(scenario)
    assert ex.findings == []
    assert at == [(5 * ds.NSEC_PER_MSEC, True)]


def test_del_timer_sync_from_its_own_callback_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        t = ds.TimerList(lambda tm: tm.del_timer_sync(), "self_del")
        t.mod_timer(1000)

    ex = run_first(scenario)
    assert ex.kinds == ["recursive-locking", "deadlock"]
    assert ex.findings[0].title == "WARNING: possible recursive locking detected"
    assert "(self_del)" in ex.findings[0].report
    assert "del_timer_sync" in ex.findings[1].report


def test_del_timer_sync_waits_for_a_running_callback() -> None:
    order: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        def fn(tm: ds.TimerList) -> None:
            order.append("callback")

        t = ds.TimerList(fn, "tm")
        t.mod_timer(1000)
        k.msleep(1)
        t.del_timer_sync()
        order.append("deleted")

    for ex in _all_seeds(scenario, 10, options={"early_timers": True}):
        assert ex.findings == []
    assert order[-1] == "deleted"


def test_kthread_park_and_unpark() -> None:
    log: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        wq = ds.WaitQueue("sched_wq")
        stop = [False]

        def loop() -> None:
            while not stop[0]:
                if ds.kthread_should_park():
                    log.append("parking")
                    ds.kthread_parkme()
                    log.append("unparked")
                wq.wait_event(lambda: stop[0] or ds.kthread_should_park())

        t = k.spawn(loop, name="sched")
        ds.kthread_park(t)
        log.append("parked")
        ds.kthread_unpark(t)
        stop[0] = True
        wq.wake_up()
        k.join(t)

    for s in range(10):
        log.clear()
        ex = ds.Kernel(seed=s).run(scenario)
        assert ex.findings == [], ex.findings
        assert log[:2] == ["parking", "parked"]


def test_kthread_cannot_park_itself() -> None:
    def scenario(k: ds.Kernel) -> None:
        def me() -> None:
            with pytest.raises(ds.UsageError):
                ds.kthread_park(k.current)

        k.join(k.spawn(me, name="me"))

    assert run(scenario).findings == []
