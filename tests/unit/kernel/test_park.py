"""Kernel._park: blocking a thread chosen at its mutex_lock point without switching to it.

Parking is an optimisation only: with it disabled (``_park`` returning the
chosen thread, so every thread runs its own point and sleep) every
execution must be identical -- trace digest, token, choices, steps,
preemptions, outcome, findings (reports with their stacks) and how every
thread ended -- under random schedules, replay and PCT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.explore.pct import PCT
from dmabufsim.kernel.runtime import Kernel
from dmabufsim.kernel.thread import ThreadState


def _ping_pong(k: ds.Kernel) -> None:
    m = ds.Mutex("m")

    def worker(i: int) -> None:
        for j in range(6):
            m.lock()
            k.point("work", i, True)
            m.unlock()
            if j % 3 == i % 3:
                k.point("idle", i, False)

    for i in range(3):
        k.spawn(worker, i, name=f"w{i}")


def _nested_and_mixed(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")
    s = ds.SpinLock("s")
    wq = ds.WaitQueue("wq")
    box = {"n": 0}

    def w1() -> None:
        for _ in range(3):
            with a:
                with b:
                    box["n"] += 1
                with s:
                    pass
            wq.wake_up()

    def w2() -> None:
        for _ in range(3):
            if a.trylock():
                a.unlock()
            with a:
                k.point("work", 2, True)
        wq.wait_event(lambda: box["n"] >= 3)

    def w3() -> None:
        for _ in range(2):
            with b:
                k.msleep(1)
            k.point("idle", 3, False)

    k.spawn(w1, name="w1")
    k.spawn(w2, name="w2")
    k.spawn(w3, name="w3")


def _abba(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")

    def t(x: ds.Mutex, y: ds.Mutex) -> None:
        for _ in range(2):
            with x:
                k.point("work", 0, True)
                with y:
                    pass

    k.spawn(t, a, b, name="t1")
    k.spawn(t, b, a, name="t2")
    k.spawn(t, a, a, name="t3")  # recursive: blocks on its own mutex forever


def _signals(k: ds.Kernel) -> None:
    m = ds.Mutex("m")

    def holder() -> None:
        with m:
            k.point("work", 0, True)
            k.point("work", 1, True)

    def waiter() -> None:
        try:
            m.lock_interruptible()
        except ds.EINTR:
            return
        m.unlock()

    k.spawn(holder, name="holder")
    w = k.spawn(waiter, name="waiter")
    k.spawn(lambda: [m.lock(), m.unlock()], name="plain")
    k.send_signal(w)


SCENARIOS: dict[str, Callable[[ds.Kernel], None]] = {
    "ping_pong": _ping_pong,
    "nested_and_mixed": _nested_and_mixed,
    "abba": _abba,
    "signals": _signals,
}


def _summary(ex: ds.Execution) -> tuple[Any, ...]:
    return (
        ex.trace_digest,
        ex.token,
        tuple(ex.choices),
        ex.steps,
        ex.preemptions,
        ex.now,
        ex.outcome,
        ex.threads,
        tuple((f.kind, f.title, f.report, f.signature, f.step, f.details, f.threads) for f in ex.findings),
    )


def _run(make: Callable[[], ds.Kernel], scenario: Callable[[ds.Kernel], None]) -> tuple[Any, ...]:
    return _summary(make().run(scenario))


@pytest.fixture
def parks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count what _park did: points it finished ("points") and woken threads it requeued ("requeued")."""
    real = Kernel._park
    count = {"points": 0, "requeued": 0}

    def counting(self: Kernel, nxt: ds.KThread) -> ds.KThread:
        before = self.steps
        woken = [t for t in self._runnable if t.parked]
        out = real(self, nxt)
        count["points"] += self.steps - before
        count["requeued"] += sum(1 for t in woken if t.state is ThreadState.BLOCKED)
        return out

    monkeypatch.setattr(Kernel, "_park", counting)
    return count


def _unparked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Kernel, "_park", lambda self, nxt: nxt)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_parking_changes_nothing_under_random_schedules(
    name: str, parks: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = SCENARIOS[name]
    fast = [_run(lambda s=seed: ds.Kernel(seed=s), scenario) for seed in range(40)]
    assert parks["points"] > 0, "the scenario never exercised parking"
    if name == "ping_pong":
        assert parks["requeued"] > 0, "no woken thread found its mutex taken again"
    _unparked(monkeypatch)
    slow = [_run(lambda s=seed: ds.Kernel(seed=s), scenario) for seed in range(40)]
    for seed, (f, s) in enumerate(zip(fast, slow, strict=True)):
        assert f == s, f"{name} seed {seed} differs with parking"


def test_parking_replays_and_reports_deadlocks_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    exs = [ds.Kernel(seed=s).run(_abba) for s in range(30)]
    dead = [ex for ex in exs if ex.outcome == "deadlock"]
    assert dead
    for ex in exs:
        assert _summary(ds.Kernel(replay=ex.token).run(_abba)) == _summary(ex)
    _unparked(monkeypatch)
    for ex in exs:
        assert _summary(ds.Kernel(replay=ex.token).run(_abba)) == _summary(ex)


def test_parking_with_pct_and_a_recorded_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    def runs() -> list[tuple[Any, ...]]:
        out = [_run(lambda s=seed: ds.Kernel(strategy=PCT(seed=s, depth=3)), _ping_pong) for seed in range(10)]
        out += [_run(lambda s=seed: ds.Kernel(seed=s, record_trace=True), _ping_pong) for seed in range(5)]
        return out

    fast = runs()
    _unparked(monkeypatch)
    assert runs() == fast


def _contended(k: ds.Kernel) -> None:
    m = ds.Mutex("m")

    def worker(i: int) -> None:
        for _ in range(2):
            with m:
                k.point("work", 100 + i, True)

    for i in range(3):
        k.spawn(worker, i, name=f"w{i}")


def _odpor_runs(scenario: Callable[[ds.Kernel], None]) -> list[tuple[Any, ...]]:
    """Every execution of an exhaustive optimal DPOR run (its trace tap is on), summarised."""
    from dmabufsim.explore import OptimalDPOR

    strat = OptimalDPOR()
    out = []
    while strat.new_execution():
        k = ds.Kernel(strategy=strat)
        strat.attach(k)
        ex = k.run(scenario)
        strat.end_execution(ex)
        out.append(_summary(ex))
        assert len(out) <= 2000
    assert strat.complete and strat.deviations == 0 and strat.redundant == 0
    return out


def _sleep_under_mutex(k: ds.Kernel) -> None:
    m = ds.Mutex("m")

    def worker(i: int) -> None:
        with m:
            k.point("work", 100 + i, True)
            k.msleep(1)

    for i in range(3):
        k.spawn(worker, i, name=f"w{i}")


@pytest.mark.parametrize("scenario", [_abba, _sleep_under_mutex], ids=["abba", "sleep_under_mutex"])
def test_parking_under_an_explorers_tap_changes_nothing(
    scenario: Callable[[ds.Kernel], None], parks: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tap takes no Event, so parking stays on under optimal DPOR; it calls the tap itself.
    # Optimal DPOR chooses a thread waiting at its mutex_lock point only when every runnable
    # thread is one (odpor R1): the deadlocks of _abba, a holder sleeping on the clock.
    fast = _odpor_runs(scenario)
    assert parks["points"] > 0, "optimal DPOR's executions never parked a thread"
    _unparked(monkeypatch)
    assert _odpor_runs(scenario) == fast
