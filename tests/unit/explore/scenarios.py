"""Small scenarios with known state spaces, shared by the explorer's tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import dmabufsim as ds

#: Object ids of plain shared variables (above any oid these scenarios allocate).
VAR = 10_000


def _abba_worker(a: ds.Mutex, b: ds.Mutex) -> None:
    with a, b:
        pass


def abba(k: ds.Kernel) -> None:
    """Two threads taking two mutexes in opposite orders: deadlocks in some schedules."""
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_abba_worker, a, b, name="t1")
    k.spawn(_abba_worker, b, a, name="t2")


def two_blocks(k: ds.Kernel) -> None:
    """Two threads each running one locked block on shared state: two orders."""
    m = ds.Mutex("m")
    log: list[str] = []

    def block(name: str) -> None:
        with m:
            k.point("append", VAR, True)
            log.append(name)

    k.spawn(block, "a", name="a")
    k.spawn(block, "b", name="b")
    k.ext["explore.state"] = lambda: tuple(log)


def make_counter(threads: int, incs: int) -> Callable[[ds.Kernel], None]:
    """``threads`` threads each doing ``incs`` unlocked load/store increments (lost updates)."""

    def counter(k: ds.Kernel) -> None:
        box = {"n": 0}

        def inc() -> None:
            for _ in range(incs):
                k.point("load", VAR, False)
                v = box["n"]
                k.point("store", VAR, True)
                box["n"] = v + 1

        for i in range(threads):
            k.spawn(inc, name=f"inc{i}")
        k.ext["explore.state"] = lambda: box["n"]

        def check() -> None:
            if box["n"] != threads * incs:
                k.report("assertion", "lost update", details={"n": box["n"]}, signature="lost-update",
                         rule="test: every increment counts")

        k.at_exit.append(check)

    counter.__name__ = f"counter_{threads}x{incs}"
    return counter


def brute_force_counter(threads: int, incs: int) -> set[int]:
    """Every final value of the counter, enumerating the interleavings of the ops directly."""
    finals: set[int] = set()
    steps = 2 * incs  # load, store, load, store, ...

    def go(pos: tuple[int, ...], regs: tuple[int, ...], n: int) -> None:
        if all(p == steps for p in pos):
            finals.add(n)
            return
        for t in range(threads):
            p = pos[t]
            if p == steps:
                continue
            npos = (*pos[:t], p + 1, *pos[t + 1:])
            if p % 2 == 0:
                go(npos, (*regs[:t], n, *regs[t + 1:]), n)
            else:
                go(npos, regs, regs[t] + 1)

    go((0,) * threads, (0,) * threads, 0)
    return finals


def philosophers(n: int) -> Callable[[ds.Kernel], None]:
    """``n`` dining philosophers, each taking its left then its right fork."""

    def dine(k: ds.Kernel) -> None:
        forks = [ds.Mutex(f"fork{i}") for i in range(n)]

        def eat(i: int) -> None:
            with forks[i], forks[(i + 1) % n]:
                k.point("eat", VAR + i, True)

        for i in range(n):
            k.spawn(eat, i, name=f"phil{i}")

    dine.__name__ = f"philosophers_{n}"
    return dine


def ordering_bug(steps: int = 12) -> Callable[[ds.Kernel], None]:
    """A depth-2 ordering bug: t2's first step, then all of t1, then t2's second step."""

    def scenario(k: ds.Kernel) -> None:
        log: list[tuple[str, int]] = []

        def t1() -> None:
            for i in range(steps):
                k.point("t1", VAR + 1, True)
                log.append(("t1", i))

        def t2() -> None:
            for i in range(steps):
                k.point("t2", VAR + 2, True)
                log.append(("t2", i))
                if i == 1 and len(log) == steps + 2 and log[0] == ("t2", 0):
                    k.report("assertion", "ordering bug", signature="ordering-bug", rule="test: depth 2")

        k.spawn(t1, name="t1")
        k.spawn(t2, name="t2")

    return scenario


def noisy_abba(noise: int = 4, steps: int = 6) -> Callable[[ds.Kernel], None]:
    """ABBA with ``noise`` unrelated busy threads: random schedules that deadlock are long."""

    def scenario(k: ds.Kernel) -> None:
        abba(k)

        def busy(i: int) -> None:
            for _ in range(steps):
                k.point("busy", VAR + 100 + i, True)

        for i in range(noise):
            k.spawn(busy, i, name=f"busy{i}")

    return scenario


def clean(k: ds.Kernel) -> None:
    """Three threads serialised by one mutex: no bug in any schedule."""
    m = ds.Mutex("m")

    def w() -> None:
        with m:
            k.point("work", VAR, True)

    for i in range(3):
        k.spawn(w, name=f"w{i}")


_runs = itertools.count()


def nondeterministic(k: ds.Kernel) -> None:
    """ABBA whose thread set depends on a counter outside the model (breaks replay)."""
    if next(_runs) % 2:
        k.spawn(lambda: k.point("extra", VAR, True), name="extra")
    abba(k)


NO_LOCKDEP: dict[str, Any] = {"lockdep": False}
