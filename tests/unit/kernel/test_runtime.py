"""The runtime: scheduling, determinism, replay, deadlock, livelock, exceptions, time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import dmabufsim as ds
from tests.helpers import run, run_first


def _abba_worker(a: ds.Mutex, b: ds.Mutex) -> None:
    with a, b:
        pass


def abba(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_abba_worker, a, b, name="t1")
    k.spawn(_abba_worker, b, a, name="t2")


def racy_counter(k: ds.Kernel) -> None:
    box = {"n": 0}
    wq = ds.WaitQueue("dummy")

    def inc() -> None:
        for _ in range(3):
            k.point("load", wq.oid, False)
            v = box["n"]
            k.point("store", wq.oid, True)
            box["n"] = v + 1

    for i in range(3):
        k.spawn(inc, name=f"inc{i}")


def test_abba_some_seed_deadlocks_and_names_threads_and_locks() -> None:
    outcomes = {s: run(abba, seed=s) for s in range(30)}
    dead = [ex for ex in outcomes.values() if ex.outcome == "deadlock"]
    clean = [ex for ex in outcomes.values() if ex.outcome == "completed"]
    assert dead and clean
    ex = dead[0]
    deadlocks = [f for f in ex.findings if f.kind == "deadlock"]
    assert len(deadlocks) == 1
    f = deadlocks[0]
    assert sorted(t.name for t in f.threads) == ["t1", "t2"]
    assert f.details["waiting_for"] == {"t1": "B", "t2": "A"} or f.details["waiting_for"] == {"t1": "A", "t2": "B"}
    assert sorted(f.details["holding"].values()) == [["A"], ["B"]]
    replayed = ds.Kernel(replay=ex.token).run(abba)
    assert replayed.trace_digest == ex.trace_digest
    assert replayed.outcome == "deadlock"
    assert replayed.diverged_at is None


def test_same_seed_same_digest_and_some_seeds_differ() -> None:
    digests = {run(racy_counter, seed=s).trace_digest for s in range(10)}
    assert len(digests) > 1
    assert run(racy_counter, seed=7).trace_digest == run(racy_counter, seed=7).trace_digest


def test_determinism_across_processes(tmp_path: object) -> None:
    code = textwrap.dedent(
        """
        import dmabufsim as ds
        from tests.unit.kernel.test_runtime import racy_counter, abba
        print(ds.Kernel(seed=11).run(racy_counter).trace_digest, ds.Kernel(seed=3).run(abba).trace_digest)
        """
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": str(h)}
        ).stdout
        for h in (1, 2)
    }
    assert len(outs) == 1
    here = f"{run(racy_counter, seed=11).trace_digest} {run(abba, seed=3).trace_digest}\n"
    assert outs == {here}


def test_replay_of_a_foreign_token_is_refused() -> None:
    ex = run(racy_counter, seed=5)
    with pytest.raises(ds.ReplayError, match=r"^replay token belongs to another scenario: the token's scenario "
                       rf"id is {ex.scenario_id}, abba\(\) has \w{{10}}$"):
        ds.Kernel(replay=ex.token).run(abba)


def test_replay_of_a_foreign_old_token_reports_divergence() -> None:
    """An old ``dbs1`` token names no scenario: a foreign one still replays, and diverges."""
    ex = run(racy_counter, seed=5)
    old = "dbs1." + ex.token.rsplit(".", 1)[1]
    other = ds.Kernel(replay=old).run(abba)
    assert other.diverged_at is not None


def test_token_version_is_checked() -> None:
    with pytest.raises(ds.ReplayError, match="version 'dbs9'"):
        ds.Kernel(replay="dbs9.AAAA")
    with pytest.raises(ds.ReplayError, match="malformed"):
        ds.Kernel(replay="garbage")


def test_exception_in_thread_is_a_finding_not_a_crash() -> None:
    def boom() -> None:
        raise ValueError("bad value 42")

    def scenario(k: ds.Kernel) -> None:
        k.spawn(boom, name="bad")

    ex = run(scenario)
    assert ex.kinds == ["exception"]
    f = ex.findings[0]
    assert f.title == "ValueError in bad: bad value 42"
    assert f.threads[0].name == "bad"
    assert f.threads[0].stack[0].function == "boom"


def test_livelock_budget() -> None:
    def spin(k: ds.Kernel, flag: dict[str, bool]) -> None:
        while not flag["go"]:
            k.point("poll", 0, False)

    def scenario(k: ds.Kernel) -> None:
        k.spawn(spin, k, {"go": False}, name="poller")

    ex = run(scenario, max_steps=500)
    assert ex.outcome == "livelock"
    assert ex.kinds == ["livelock"]
    assert ex.findings[0].details["runnable"] == ["poller"]


def test_thread_exit_holding_lock_is_a_leak() -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("leaky")
        k.spawn(m.lock, name="holder")

    ex = run(scenario)
    assert ex.kinds == ["leak"]
    assert ex.findings[0].details == {"locks": ["leaky"]}
    assert ex.findings[0].title == "BUG: holder/1 still has locks held!"


def test_virtual_time_and_sleep() -> None:
    log: list[tuple[str, int]] = []

    def sleeper(k: ds.Kernel, name: str, ms: int) -> None:
        k.msleep(ms)
        log.append((name, k.now))

    def scenario(k: ds.Kernel) -> None:
        k.spawn(sleeper, k, "slow", 5, name="slow")
        k.spawn(sleeper, k, "fast", 2, name="fast")

    ex = run(scenario, seed=3)
    assert log == [("fast", 2_000_000), ("slow", 5_000_000)]
    assert ex.now == 5_000_000
    assert ex.findings == []


def test_schedule_timeout_returns_time_left() -> None:
    got: dict[str, int] = {}

    def waiter(k: ds.Kernel) -> None:
        got["left"] = k.schedule_timeout(10 * ds.NSEC_PER_MSEC)

    def scenario(k: ds.Kernel) -> None:
        t = k.spawn(waiter, k, name="w")
        k.msleep(4)
        k.wake(t)

    run_first(scenario)
    assert got["left"] == 6 * ds.NSEC_PER_MSEC


def test_daemon_blocked_at_end_is_not_a_deadlock() -> None:
    def engine(wq: ds.WaitQueue) -> None:
        wq.wait_event(lambda: False)

    def scenario(k: ds.Kernel) -> None:
        k.spawn(engine, ds.WaitQueue("jobs"), name="engine", daemon=True)

    ex = run(scenario)
    assert ex.outcome == "completed" and ex.findings == []
    assert [t.state for t in ex.threads] == ["exited", "blocked"]


def test_non_daemon_blocked_forever_is_a_deadlock() -> None:
    def scenario(k: ds.Kernel) -> None:
        ds.Completion("never").wait_for_completion()

    ex = run(scenario)
    assert ex.outcome == "deadlock"
    assert ex.findings[0].details["waiting_for"] == {"scenario": "never"}


def test_model_object_outside_a_kernel_is_a_usage_error() -> None:
    with pytest.raises(ds.NotRunningError):
        ds.Mutex("x")


def test_kernel_runs_once() -> None:
    k = ds.Kernel()
    k.run(lambda k: None)
    with pytest.raises(ds.UsageError):
        k.run(lambda k: None)


def test_unknown_option_is_a_usage_error() -> None:
    with pytest.raises(ds.UsageError, match="max_stepz"):
        ds.Kernel(max_stepz=3)


def test_stop_on_first() -> None:
    def scenario(k: ds.Kernel) -> None:
        s = ds.SpinLock("s")
        with s:
            k.msleep(1)
            raise AssertionError("not reached: the execution stops at the first finding")

    ex = run(scenario, stop_on_first=True)
    assert ex.outcome == "stopped"
    assert ex.kinds == ["sleep-in-atomic"]


def test_join_returns_result() -> None:
    got = {}

    def child() -> int:
        return 42

    def scenario(k: ds.Kernel) -> None:
        t = k.spawn(child, name="child")
        got["r"] = k.join(t)

    for seed in range(5):
        ex = run(scenario, seed=seed)
        assert ex.findings == [] and got["r"] == 42


def test_a_ctrl_c_during_teardown_is_not_swallowed() -> None:
    """A KeyboardInterrupt raised while the runtime tears a blocked thread down reaches the caller."""

    def stuck() -> None:
        try:
            ds.Completion("never").wait_for_completion()
        finally:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C right then

    def scenario(k: ds.Kernel) -> None:
        k.spawn(stuck, name="stuck", daemon=True)

    with pytest.raises(KeyboardInterrupt):
        run(scenario)
    assert run(lambda k: None).outcome == "completed"  # and the next execution can run


def test_a_ctrl_c_in_a_kthread_is_the_caller_s_not_a_finding() -> None:
    """R6: a KeyboardInterrupt (Ctrl-C, or SIGTERM in the CLI) escaping a kthread ends the execution,
    which is torn down (the other threads too), and reaches the caller instead of becoming a finding."""
    torn_down: list[str] = []

    def waiter() -> None:
        try:
            ds.Completion("never").wait_for_completion()
        finally:
            torn_down.append("waiter")

    def interrupted(k: ds.Kernel) -> None:
        k.spawn(waiter, name="waiter")
        k.point("work", -1, False)
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C right here

    for seed in range(4):
        torn_down.clear()
        with pytest.raises(KeyboardInterrupt):
            run(interrupted, seed=seed)
        assert torn_down in (["waiter"], [])  # [] when the waiter had not started yet
    assert run(lambda k: None).outcome == "completed"  # and the next execution can run
