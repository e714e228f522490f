"""Lockdep's chain-cache fast paths (``lock_acquire``, ``lock_acquire_plain``) change no outcome.

With the fast path bypassed (every acquisition through ``Lockdep._acquire``)
every execution must be identical: findings and their reports, trace digest,
token, and the lock graph's statistics (chains validated, cache hits),
including with one graph kept across executions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.locking.lockdep import Lockdep
from dmabufsim.locking.lockdep_graph import LockClass, LockGraph


def _mixed(k: ds.Kernel) -> None:
    a, b, c = ds.Mutex("A"), ds.Mutex("B"), ds.Mutex("C")
    s = ds.SpinLock("S")
    r = ds.RwSem("R")

    def irq() -> None:
        with s:
            pass

    def t1() -> None:
        for _ in range(3):
            with a, b:
                k.point("work", 1, True)
            with c, s:
                pass
        k.raise_irq(irq, name="irq")

    def t2() -> None:
        for i in range(3):
            with b:
                if i == 2:
                    with a:  # closes A -> B -> A
                        pass
            r.down_read()
            r.up_read()
        with s, c:  # spinlock -> mutex: sleeping in atomic, and an irq-safe -> irq-unsafe order
            pass

    def t3() -> None:
        for _ in range(2):
            with c:
                c2 = c.trylock()
                if c2:
                    c.unlock()
            a.lock(subclass=1)
            a.unlock()
            a.lock()
            a.lock()  # recursive
            a.unlock()

    k.spawn(t1, name="t1")
    k.spawn(t2, name="t2")
    k.spawn(t3, name="t3")


def _summary(ex: ds.Execution, g: LockGraph) -> tuple[Any, ...]:
    return (
        ex.trace_digest,
        ex.token,
        ex.outcome,
        ex.threads,
        tuple((f.kind, f.title, f.report, f.signature, f.step, f.details, f.threads) for f in ex.findings),
        g.statistics(),
    )


def _runs(shared: bool) -> list[tuple[Any, ...]]:
    out = []
    g = LockGraph()
    for seed in range(25):
        graph = g if shared else LockGraph()
        ex = ds.Kernel(seed=seed, options={"lockdep_graph": graph}).run(_mixed)
        out.append(_summary(ex, graph))
    return out


@pytest.mark.parametrize("shared", [False, True])
def test_fast_path_changes_nothing(shared: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _runs(shared)
    assert any(s[4] for s in fast), "the scenario reports nothing: it does not exercise lockdep"
    assert any(s[-1].chain_hits for s in fast)
    slow_acquire: Callable[..., Any] = Lockdep._acquire
    monkeypatch.setattr(Lockdep, "lock_acquire", slow_acquire)
    # lock_acquire_plain (what Mutex.lock calls) can only take its fast path through the
    # chain memo: classes that never memoise send it to _acquire every time. (Patching the
    # method with a wrapper would put the wrapper's frame into the reports' stacks.)
    real_init = LockClass.__init__

    def no_memo_init(self: LockClass, *args: Any) -> None:
        real_init(self, *args)
        self.chained = _NoMemo()

    monkeypatch.setattr(LockClass, "__init__", no_memo_init)
    assert _runs(shared) == fast


class _NoMemo(dict[int, int]):
    """A chain memo that forgets everything."""

    def __setitem__(self, key: int, value: int) -> None:
        pass
