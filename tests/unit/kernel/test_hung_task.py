"""The hung-task detector (kernel/hung_task.py): stalls over virtual time, not lock cycles."""

from __future__ import annotations

import pytest

import dmabufsim as ds
from dmabufsim.explore import explore
from dmabufsim.kernel.runtime import NSEC_PER_MSEC, NSEC_PER_SEC
from tests.helpers import run, run_first

HUNG_TITLE = "INFO: task {}:{} blocked for more than 120 seconds."


def _stall(k: ds.Kernel, log: list[str]) -> None:
    """A worker holds a mutex and waits, 100 ms at a time, in a loop, for an event whose
    producer needs that mutex first: no lock cycle is ever closed, and time keeps moving."""
    lock = ds.Mutex("dev_lock")
    done = ds.Completion("hw_done")

    def worker() -> None:
        with lock:
            while not done.wait_for_completion_timeout(100 * NSEC_PER_MSEC):
                log.append("timeout")

    def producer() -> None:
        k.msleep(1)  # the worker is in first
        with lock:
            done.complete()

    k.spawn(worker, name="worker")
    k.spawn(producer, name="producer")


def test_the_stall_is_a_hung_task() -> None:
    log: list[str] = []
    ex = run_first(lambda k: _stall(k, log))
    assert (ex.outcome, ex.kinds) == ("hung-task", ["hung-task"])
    f = ex.findings[0]
    assert f.title == HUNG_TITLE.format("worker", 1)
    assert f.details["hung"] == ["worker", "producer"]
    assert f.details["timeout_ns"] == 120 * NSEC_PER_SEC
    by_name = {b["thread"]: b for b in f.details["blocked"]}
    # The worker kept re-waiting for the same completion since t=0; the producer has been
    # asleep on the mutex since t=1 ms.
    assert (by_name["worker"]["waits"], by_name["worker"]["on"], by_name["worker"]["since"]) == (
        "wait_for_completion", "hw_done", 0)
    assert by_name["worker"]["held"] == ["dev_lock"]
    assert (by_name["producer"]["waits"], by_name["producer"]["on"], by_name["producer"]["since"]) == (
        "mutex_lock", "dev_lock", NSEC_PER_MSEC)
    # As debug_show_all_locks, the lock a thread sleeps on is in its held list (lockdep's
    # lock_acquire comes before the wait).
    assert by_name["producer"]["held"] == ["dev_lock"]
    assert {t.name for t in f.threads} == {"worker", "producer"}
    assert all(t.stack for t in f.threads)
    # Reported at the first time advance past 120 s of the worker's wait.
    assert ex.now == 120 * NSEC_PER_SEC + 100 * NSEC_PER_MSEC
    assert len(log) == 1200
    assert "blocked for more than 120 seconds" in f.report


def test_the_stall_with_a_shorter_timeout() -> None:
    log: list[str] = []
    ex = run_first(lambda k: _stall(k, log), hung_task_timeout=2 * NSEC_PER_SEC)
    f = ex.findings[0]
    assert f.title == "INFO: task worker:1 blocked for more than 2 seconds."
    assert ex.now == 2 * NSEC_PER_SEC + 100 * NSEC_PER_MSEC


@pytest.mark.parametrize("timed", [False, True])
def test_a_long_legitimate_wait_under_the_threshold_is_not_reported(timed: bool) -> None:
    """The event comes after 100 s (polled in 100 ms waits, or waited for in one sleep)."""

    def scenario(k: ds.Kernel) -> None:
        lock = ds.Mutex("dev_lock")
        done = ds.Completion("hw_done")

        def worker() -> None:
            if timed:
                while not done.wait_for_completion_timeout(100 * NSEC_PER_MSEC):
                    pass
            else:
                done.wait_for_completion()
            with lock:
                pass

        k.spawn(worker, name="worker")
        k.nsleep(100 * NSEC_PER_SEC)
        done.complete()

    ex = run_first(scenario)
    assert (ex.outcome, ex.findings) == ("completed", [])
    assert ex.now == 100 * NSEC_PER_SEC


def test_a_woken_waiter_starts_a_new_stall() -> None:
    """Woken for real every 60 s (and going back to sleep on the same mutex): never hung."""

    def scenario(k: ds.Kernel) -> None:
        lock = ds.Mutex("m")

        def holder() -> None:
            for _ in range(5):
                lock.lock()
                k.nsleep(60 * NSEC_PER_SEC)  # a 60 s msleep: under the threshold each time
                lock.unlock()

        def waiter() -> None:
            k.msleep(1)
            for _ in range(3):
                with lock:
                    pass

        k.spawn(holder, name="holder")
        k.spawn(waiter, name="waiter")

    ex = run_first(scenario)
    assert (ex.outcome, ex.findings) == ("completed", [])


def test_interruptible_and_idle_daemon_waits_are_not_hung() -> None:
    def scenario(k: ds.Kernel) -> None:
        done = ds.Completion("c")
        wq = ds.WaitQueue("work")
        work: list[int] = []

        def sleeper() -> None:
            done.wait_for_completion_interruptible()

        def daemon() -> None:
            wq.wait_event(lambda: bool(work))

        k.spawn(sleeper, name="sleeper")
        k.spawn(daemon, name="engine", daemon=True)
        k.nsleep(100 * NSEC_PER_SEC)
        k.nsleep(100 * NSEC_PER_SEC)  # 200 s in all, in two sleeps of 100 s
        done.complete()

    ex = run_first(scenario)
    assert (ex.outcome, ex.findings) == ("completed", [])


def test_the_detector_can_be_turned_off() -> None:
    def scenario(k: ds.Kernel) -> None:
        done = ds.Completion("c")
        k.spawn(done.wait_for_completion, name="waiter")
        k.nsleep(300 * NSEC_PER_SEC)
        done.complete()

    assert run_first(scenario).kinds == ["hung-task"]
    ex = run_first(scenario, hung_task_timeout=0)
    assert (ex.outcome, ex.findings) == ("completed", [])


def test_the_explorer_reports_it_like_any_finding() -> None:
    def scenario(k: ds.Kernel) -> None:
        _stall(k, [])

    rep = explore(scenario, "random", budget=3)
    assert [f.kind for f in rep.findings] == ["hung-task"]
    assert rep.nondeterminism == []  # its token replays to the same trace
    assert not rep.ok
    assert explore(scenario, "random", budget=3, expected=["hung-task"]).unexpected == []


def test_same_seed_same_report() -> None:
    a = run(lambda k: _stall(k, []), seed=4)
    b = run(lambda k: _stall(k, []), seed=4)
    assert a.trace_digest == b.trace_digest
    assert [f.details for f in a.findings] == [f.details for f in b.findings]


