"""Lockdep-guided confirmation turns possible cycles into concrete deadlocks; the shared lockdep graph."""

from __future__ import annotations

import pytest

import dmabufsim as ds
from dmabufsim.explore import explore
from dmabufsim.explore.guided import LockdepGuided, confirm

from .scenarios import abba, clean, philosophers


@pytest.mark.parametrize(("scenario", "n"), [(abba, 2), (philosophers(8), 8), (philosophers(5), 5)])
def test_guided_confirmation_turns_the_cycle_into_a_replayable_deadlock(scenario: object, n: int) -> None:
    rep = explore(scenario, "random", budget=50, expected=("circular-locking",))  # type: ignore[arg-type]
    (cyc,) = rep.by_kind("circular-locking")
    assert len(cyc.finding.details["chain"]) == n
    c = cyc.confirmation
    assert c is not None and c.confirmed
    assert c.executions == 1
    assert c.deadlock is not None
    holding = c.deadlock.details["holding"]
    assert len(holding) == n and all(len(v) == 1 for v in holding.values())
    assert sorted(v[0] for v in holding.values()) == sorted(cyc.finding.details["chain"])
    ex = ds.Kernel(replay=c.token).run(scenario)  # type: ignore[arg-type]
    assert ex.outcome == "deadlock"
    assert ex.by_kind("deadlock")[0].signature == c.deadlock.signature
    assert "confirmed as a concrete deadlock in 1 guided execution" in rep.summary()
    assert rep.to_json()["findings"][0]["confirmation"]["confirmed"] is True


def _lock_in_order(a: ds.Mutex, b: ds.Mutex) -> None:
    with a, b:
        pass


def fake_cycle(k: ds.Kernel) -> None:
    """Both orders taken, but by one thread after the other under an outer lock: no deadlock possible."""
    outer = ds.Mutex("outer")
    a, b = ds.Mutex("A"), ds.Mutex("B")

    def t(x: ds.Mutex, y: ds.Mutex) -> None:
        with outer:
            _lock_in_order(x, y)

    k.spawn(t, a, b, name="t1")
    k.spawn(t, b, a, name="t2")


def test_guided_confirmation_says_when_it_could_not() -> None:
    c = confirm(fake_cycle, ["A", "B"], budget=20)
    assert not c.confirmed
    assert c.executions == 20
    assert c.summary() == "lockdep cycle A -> B -> A: could not be turned into a deadlock within 20 guided executions"


def test_guided_strategy_refuses_a_one_class_chain() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        LockdepGuided(["A"])


def order_by_choice(k: ds.Kernel) -> None:
    """One thread; a fault-injection value picks the lock order: no single execution has a cycle."""
    a, b = ds.Mutex("A"), ds.Mutex("B")

    def t() -> None:
        if k.random(2):
            _lock_in_order(a, b)
        else:
            _lock_in_order(b, a)

    k.spawn(t, name="t")


def test_lockdep_graph_accumulates_across_executions() -> None:
    shared = explore(order_by_choice, "dfs", budget=100, stop_on_first=False)
    assert shared.kinds() == ["circular-locking"]
    assert shared.findings[0].finding.details["chain"] in (["A", "B"], ["B", "A"])
    fresh = explore(order_by_choice, "dfs", budget=100, stop_on_first=False, lockdep_graph=False)
    assert fresh.verdict == "exhausted"
    assert fresh.findings == []


def test_clean_scenario_has_nothing_to_confirm() -> None:
    rep = explore(clean, "dpor", budget=2000)
    assert rep.verdict == "exhausted"
    assert all(f.confirmation is None for f in rep.findings)
