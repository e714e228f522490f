"""The soft-lockup watchdog and the wall-time limit (runtime R9, ``kernel/watchdog.py``).

No timing assertion: the thresholds are small so that the tests are quick,
and every assertion is about what was reported, never how fast.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import explore
from dmabufsim.kernel import watchdog

#: A small threshold: the tests wait this long (wall clock) for each lockup.
THRESH = 0.2


def _spin(m: ds.Mutex) -> None:
    x = 0
    with m:
        while True:  # no scheduling point, ever
            x += 1


#: The lines of the endless loop (the signal is handled at its backward jump: either line).
SPIN_LINES = (_spin.__code__.co_firstlineno + 3, _spin.__code__.co_firstlineno + 4)


def _other(m: ds.Mutex) -> None:
    with m:
        pass


def spinner(k: ds.Kernel) -> None:
    m = ds.Mutex("m")
    k.spawn(_other, m, name="other")
    k.spawn(_spin, m, name="spinner")


def _ping(m: ds.Mutex, n: int) -> None:
    for _ in range(n):
        with m:
            ds.current_kernel().point("work", m.oid, True)


def pingpong(k: ds.Kernel) -> None:
    m = ds.Mutex("m")
    for i in range(3):
        k.spawn(_ping, m, 40, name=f"t{i}")


def long_pingpong(k: ds.Kernel) -> None:
    m = ds.Mutex("m")
    for i in range(3):
        k.spawn(_ping, m, 1000, name=f"t{i}")  # some milliseconds: several 2 ms ticks land inside


@pytest.fixture(autouse=True)
def _no_alarm_left() -> Iterator[None]:
    yield
    # Each test leaves the process as it found it: disarm (W2 would do it within two idle ticks).
    if watchdog._wd.armed:
        watchdog._disarm()
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)


def test_a_thread_without_scheduling_points_is_a_soft_lockup() -> None:
    ex = ds.Kernel(seed=0, softlockup_thresh=THRESH).run(spinner)
    assert ex.outcome == "soft-lockup"
    assert [f.kind for f in ex.findings] == ["soft-lockup"]
    f = ex.findings[0]
    assert f.severity == "error" and f.signature == "soft-lockup:spinner"
    assert re.fullmatch(r"watchdog: BUG: soft lockup - CPU#0 stuck for \d\.\ds! \[spinner:2\]", f.title)
    assert f.details["thread"] == "spinner" and f.details["tid"] == 2
    line = f.details["line"]
    assert f.details["function"] == "_spin" and line in SPIN_LINES
    assert f.details["file"] == __file__ and f.details["deterministic"] is False
    assert f.details["threshold"] == THRESH and f.details["stuck_for"] >= THRESH
    assert f.rule.startswith("watchdog W1")
    [t] = f.threads
    assert (t.name, t.tid) == ("spinner", 2)
    assert (t.stack[0].function, t.stack[0].lineno) == ("_spin", line)
    lines = f.report.splitlines()
    assert lines[0] == f.title
    assert lines[1:4] == ["CPU: 0 PID: 2 Comm: spinner", f"RIP: _spin+{line} (test_watchdog.py:{line})",
                          "Call Trace:"]
    # How the threads stood when the spinner was stopped.
    assert {t.name: t.state for t in ex.threads} == {"scenario": "runnable", "other": "exited", "spinner": "runnable"}
    # The machine is usable afterwards.
    assert ds.Kernel(seed=0).run(pingpong).outcome == "completed"


def test_a_soft_lockup_replays_to_the_same_step() -> None:
    # W3: the token rebuilds the schedule up to the stuck thread, which spins until the watchdog fires again.
    ex = ds.Kernel(seed=3, softlockup_thresh=THRESH).run(spinner)
    again = ds.Kernel(replay=ex.token, softlockup_thresh=THRESH).run(spinner)
    assert again.outcome == "soft-lockup" and again.diverged_at is None
    assert [(f.signature, f.step) for f in again.findings] == [(f.signature, f.step) for f in ex.findings]
    assert again.trace_digest == ex.trace_digest


def _stuck_timer() -> None:
    while True:
        pass


def stuck_timer_while_sleeping(k: ds.Kernel) -> None:
    k.add_timer(k.now + 1000, _stuck_timer, name="stuck")
    k.msleep(1)  # the timer fires from this thread's schedule(): it interrupts this thread


def stuck_timer_when_idle(k: ds.Kernel) -> None:
    k.add_timer(k.now + 1000, _stuck_timer, name="stuck")  # fires once every thread exited


@pytest.mark.parametrize(("scenario", "task"), [(stuck_timer_while_sleeping, "scenario:0"),
                                                 (stuck_timer_when_idle, "swapper/0:0")])
def test_a_stuck_timer_callback_is_reported_on_the_task_it_interrupted(scenario: Any, task: str) -> None:
    ex = ds.Kernel(softlockup_thresh=THRESH).run(scenario)
    assert ex.outcome == "soft-lockup"
    [f] = ex.findings
    assert f.signature == f"soft-lockup:{task.split(':')[0]}" and f.title.endswith(f"! [{task}]")
    assert f.details["in_timer"] is True and f.details["function"] == "_stuck_timer"
    assert "in a timer callback (timer interrupt)" in f.report.splitlines()


def test_the_watchdog_off_and_a_deadline_stop_a_spinning_thread_without_a_finding() -> None:
    # W4: the deadline passes while the thread spins; it reaches no point, so it is stopped where it is.
    ex = ds.Kernel(seed=0, softlockup_thresh=0, deadline=time.monotonic() + 0.1).run(spinner)
    assert ex.outcome == "time-limit" and ex.findings == []


def test_a_passed_deadline_stops_at_the_next_scheduling_point() -> None:
    ex = ds.Kernel(seed=0, deadline=time.monotonic() - 1).run(pingpong)
    assert ex.outcome == "time-limit" and ex.findings == []
    # stopped at its first scheduling point after the first tick: nowhere near the end
    assert ex.steps < ds.Kernel(seed=0).run(pingpong).steps


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_sampling_changes_nothing(monkeypatch_tick: Any, seed: int) -> None:
    # W3: a tick every 2 ms, interrupting the model anywhere, leaves the trace as it is.
    calls = monkeypatch_tick
    watched = ds.Kernel(seed=seed, softlockup_thresh=30.0).run(long_pingpong)
    plain = ds.Kernel(seed=seed, softlockup_thresh=0).run(long_pingpong)
    assert (watched.trace_digest, watched.token, watched.outcome) == (plain.trace_digest, plain.token, "completed")
    assert watched.steps == plain.steps > 9000
    assert calls[0] > 0  # the handler sampled a running machine (see the fixture)


@pytest.fixture(scope="module")
def monkeypatch_tick() -> Iterator[list[int]]:
    calls = [0]
    real = watchdog._progress
    old_tick = watchdog.MAX_TICK

    def counting(k: ds.Kernel) -> tuple[int, int, int, int]:
        calls[0] += 1
        return real(k)

    watchdog.MAX_TICK = 0.002
    watchdog._progress = counting
    try:
        yield calls
    finally:
        watchdog.MAX_TICK = old_tick
        watchdog._progress = real
        if watchdog._wd.armed:
            watchdog._disarm()


def test_someone_else_s_alarm_turns_the_watchdog_off() -> None:
    # W5: pytest-timeout or an application handles SIGALRM: leave it alone.
    def theirs(signum: int, frame: Any) -> None:
        raise AssertionError("not ours to deliver")

    old = signal.signal(signal.SIGALRM, theirs)
    try:
        ex = ds.Kernel(seed=0, deadline=time.monotonic() - 1).run(pingpong)
        assert ex.outcome == "completed"
        assert signal.getsignal(signal.SIGALRM) is theirs
    finally:
        signal.signal(signal.SIGALRM, old)


def test_executions_in_other_threads_are_not_watched() -> None:
    out: list[ds.Execution] = []
    th = threading.Thread(target=lambda: out.append(ds.Kernel(seed=0, deadline=time.monotonic() - 1).run(pingpong)))
    th.start()
    th.join()
    assert out[0].outcome == "completed"


def test_the_watchdog_disarms_itself_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "MAX_TICK", 0.01)
    ds.Kernel(seed=0, softlockup_thresh=0.02).run(pingpong)
    end = time.monotonic() + 30
    while signal.getsignal(signal.SIGALRM) is watchdog._on_alarm and time.monotonic() < end:
        time.sleep(0.01)
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL and not watchdog._wd.armed


def test_explore_reports_a_soft_lockup_without_shrinking_or_replaying_it() -> None:
    rep = explore(spinner, "random", budget=5, kernel_options={"softlockup_thresh": THRESH})
    assert rep.verdict == "finding" and rep.exit_code == 1
    [ef] = rep.findings
    assert ef.kind == "soft-lockup" and ef.execution == 0 and not ef.shrunk
    assert ef.token == ef.original_token and not rep.nondeterminism


@pytest.mark.parametrize("strategy", ["random", "pct", "dpor"])
def test_explore_time_is_a_hard_limit(strategy: str) -> None:
    # Before the limit was hard, this never returned: every execution spins and the watchdog is off
    # (PCT's calibration execution included).
    rep = explore(spinner, strategy, budget=100, time_budget=0.2, kernel_options={"softlockup_thresh": 0})
    assert (rep.verdict, rep.reason, rep.executions, rep.exit_code) == ("inconclusive", "time budget", 0, 3)


EXIT_WITH_A_TICK_DUE = """
import signal, sys, time
import dmabufsim as ds
ds.Kernel(seed=0).run(lambda k: None)  # arms the watchdog; its next tick is up to a second away
margin = float(sys.argv[1])
while 0 < signal.getitimer(signal.ITIMER_REAL)[0] > margin:
    pass  # exit just before the tick: it falls while the interpreter finalizes
"""


def test_a_tick_due_at_exit_does_not_kill_the_process() -> None:
    # Finalizing restores SIGALRM's default action (terminate): the timer must be off by then.
    import subprocess
    import sys

    codes = [subprocess.run([sys.executable, "-c", EXIT_WITH_A_TICK_DUE, str(m)], check=False).returncode
             for m in (0.0005, 0.001, 0.002, 0.004, 0.008)]
    assert codes == [0] * 5


def test_at_exit_disarms() -> None:
    ds.Kernel(seed=0).run(pingpong)
    assert watchdog._wd.armed and signal.getsignal(signal.SIGALRM) is watchdog._on_alarm
    watchdog._at_exit()
    assert not watchdog._wd.armed and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
