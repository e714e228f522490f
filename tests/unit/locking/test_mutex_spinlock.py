"""Mutex and spinlock semantics."""

from __future__ import annotations

import dmabufsim as ds
from tests.helpers import run, run_first


def test_mutex_mutual_exclusion_over_seeds() -> None:
    inside: list[int] = []
    overlap: list[bool] = []

    def worker(m: ds.Mutex, k: ds.Kernel, i: int) -> None:
        for _ in range(3):
            with m:
                inside.append(i)
                overlap.append(len(inside) > 1)
                k.point("work", 0, True)
                inside.remove(i)

    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        for i in range(3):
            k.spawn(worker, m, k, i, name=f"w{i}")

    for seed in range(20):
        overlap.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == []
        assert overlap and not any(overlap)


def test_trylock() -> None:
    got: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        s = ds.SpinLock("s")
        got.append(m.trylock())
        got.append(m.trylock())
        m.unlock()
        got.append(s.trylock())
        got.append(s.trylock())
        s.unlock()
        got.append(m.is_locked() or s.is_locked())

    assert run_first(scenario).findings == []
    assert got == [True, False, True, False, False]


def test_unlock_not_held_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        m.lock()
        m.unlock()
        m.unlock()

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: bad unlock balance detected!"


def test_spinlock_contention_spins_without_sleep_report() -> None:
    def worker(s: ds.SpinLock, k: ds.Kernel) -> None:
        with s:
            k.point("work", 0, True)

    def scenario(k: ds.Kernel) -> None:
        s = ds.SpinLock("s")
        for i in range(3):
            k.spawn(worker, s, k, name=f"w{i}")

    for seed in range(10):
        assert run(scenario, seed=seed).findings == []


def test_mutex_aa_deadlocks() -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        m.lock()
        m.lock()

    ex = run_first(scenario)
    assert "deadlock" in ex.kinds
