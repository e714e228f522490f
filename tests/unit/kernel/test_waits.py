"""Wait queues, completions, signals, atomic context."""

from __future__ import annotations

import pytest

import dmabufsim as ds
from tests.helpers import run, run_first


def test_sleep_under_spinlock_is_reported_with_the_lock() -> None:
    def scenario(k: ds.Kernel) -> None:
        s = ds.SpinLock("my_lock")
        m = ds.Mutex("m")
        with s:
            m.lock()
        m.unlock()

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    f = ex.findings[0]
    assert f.title == "BUG: sleeping function called from invalid context"
    assert f.details["call"] == "mutex_lock"
    assert [a["name"] for a in f.details["atomic"]] == ["my_lock"]
    assert "BUG: sleeping function called from invalid context" in f.report


def test_sleep_in_irq_handler_is_reported() -> None:
    def handler(k: ds.Kernel) -> None:
        k.msleep(1)

    def scenario(k: ds.Kernel) -> None:
        k.raise_irq(handler, k, name="gpu-irq")

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    assert ex.findings[0].details["atomic"][0]["what"] == "hardirq"


def test_irqsave_marks_irqs_disabled() -> None:
    def scenario(k: ds.Kernel) -> None:
        s = ds.SpinLock("irq_lock")
        flags = s.lock_irqsave()
        k.msleep(1)
        s.unlock_irqrestore(flags)

    ex = run_first(scenario)
    assert ex.findings[0].details["irqs_disabled"] is True


def test_signals_interrupt_only_interruptible_waits() -> None:
    got: dict[str, object] = {}

    def interruptible(c: ds.Completion) -> None:
        try:
            c.wait_for_completion_interruptible()
            got["i"] = "completed"
        except ds.ERESTARTSYS:
            got["i"] = "ERESTARTSYS"

    def uninterruptible(c: ds.Completion) -> None:
        c.wait_for_completion()
        got["u"] = "completed"

    def mutex_waiter(m: ds.Mutex) -> None:
        try:
            m.lock_interruptible()
            got["m"] = "locked"
            m.unlock()
        except ds.EINTR:
            got["m"] = "EINTR"

    def scenario(k: ds.Kernel) -> None:
        c = ds.Completion("c")
        m = ds.Mutex("m")
        m.lock()
        ti = k.spawn(interruptible, c, name="i")
        tu = k.spawn(uninterruptible, c, name="u")
        tm = k.spawn(mutex_waiter, m, name="mw")
        k.msleep(1)  # everyone is asleep now
        for t in (ti, tu, tm):
            k.send_signal(t)
        k.msleep(1)
        assert "u" not in got
        c.complete_all()
        m.unlock()

    for seed in range(5):
        got.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == []
        assert got == {"i": "ERESTARTSYS", "u": "completed", "m": "EINTR"}


def test_complete_releases_one_complete_all_releases_all() -> None:
    done: list[str] = []

    def waiter(c: ds.Completion, name: str) -> None:
        c.wait_for_completion()
        done.append(name)

    def scenario(k: ds.Kernel) -> None:
        one = ds.Completion("one")
        for i in range(3):
            k.spawn(waiter, one, f"w{i}", name=f"w{i}")
        k.msleep(1)
        one.complete()
        k.msleep(1)
        assert len(done) == 1
        one.complete_all()
        k.msleep(1)
        assert len(done) == 3
        # complete_all lets later waiters through too
        one.wait_for_completion()
        assert one.try_wait_for_completion()

    for seed in range(5):
        done.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == [], ex.findings


def test_complete_before_wait_is_not_lost() -> None:
    def scenario(k: ds.Kernel) -> None:
        c = ds.Completion("early")
        c.complete()
        assert c.completion_done()
        c.wait_for_completion()
        assert not c.try_wait_for_completion()

    assert run_first(scenario).findings == []


def test_wait_for_completion_timeout() -> None:
    got: dict[str, int] = {}

    def scenario(k: ds.Kernel) -> None:
        c = ds.Completion("c")
        got["timeout"] = c.wait_for_completion_timeout(3 * ds.NSEC_PER_MSEC)
        got["now"] = k.now
        k.spawn(lambda: (k.msleep(1), c.complete()), name="completer")
        got["left"] = c.wait_for_completion_timeout(3 * ds.NSEC_PER_MSEC)

    assert run_first(scenario).findings == []
    assert got == {"timeout": 0, "now": 3_000_000, "left": 2_000_000}


def test_wait_event_timeout_and_interruptible() -> None:
    got: dict[str, object] = {}

    def scenario(k: ds.Kernel) -> None:
        wq = ds.WaitQueue("wq")
        state = {"ready": False}
        got["t0"] = wq.wait_event_timeout(lambda: state["ready"], 2 * ds.NSEC_PER_MSEC)

        def setter() -> None:
            k.msleep(1)
            state["ready"] = True
            wq.wake_up()

        k.spawn(setter, name="setter")
        got["t1"] = wq.wait_event_timeout(lambda: state["ready"], 5 * ds.NSEC_PER_MSEC)
        k.send_signal(k.current)
        with pytest.raises(ds.ERESTARTSYS):
            wq.wait_event_interruptible(lambda: False)
        k.flush_signals()

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == {"t0": 0, "t1": 4_000_000}


def test_wait_event_in_atomic_context_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        s = ds.SpinLock("s")
        with s:
            ds.WaitQueue("wq").wait_event_timeout(lambda: False, 10)

    assert run_first(scenario).kinds == ["sleep-in-atomic"]


def test_timer_callback_runs_at_its_time() -> None:
    fired: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        k.add_timer(7_000, lambda: fired.append(k.now))
        k.msleep(1)

    run_first(scenario)
    assert fired == [7_000]
