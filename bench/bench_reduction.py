"""Lipton reduction (``kernel/reduction.py``): executions and time to prove, with it and without, in one run.

Ordered dining philosophers (no deadlock: every fork a blocking-only lock,
each philosopher's meal a point on its own plate guarded by its second
fork), a locked read-modify-write counter (the counter guarded by its
mutex), and proved catalog rows (the model declares no guard or
blocking-only lock yet, so only thread-local points fold there). Each
search runs to exhaustion; the table shows executions and wall time with
reduction off and on and their ratios (off / on).

Run: ``.venv/bin/python bench/run.py reduction``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dmabufsim as ds
from dmabufsim.explore import DFS, DPOR, OptimalDPOR
from dmabufsim.explore.explorer import run_job
from dmabufsim.scenarios.catalog import discover

PLATE = 40_000
BUDGET = 200_000
TIME = 30.0


def ordered_philosophers(n: int) -> Callable[[ds.Kernel], None]:
    def dine(k: ds.Kernel) -> None:
        forks = [ds.Mutex(f"fork{i}") for i in range(n)]
        for f in forks:
            k.blocking_only(f)

        def eat(i: int) -> None:
            a, b = sorted((i, (i + 1) % n))
            k.guard(PLATE + i, forks[b])
            with forks[a], forks[b]:
                k.point("eat", PLATE + i, True)

        for i in range(n):
            k.spawn(eat, i, name=f"phil{i}")

    dine.__name__ = f"ordered_philosophers_{n}"
    return dine


def locked_counter(threads: int, incs: int) -> Callable[[ds.Kernel], None]:
    def counter(k: ds.Kernel) -> None:
        m = ds.Mutex("counter_lock")
        k.blocking_only(m)
        k.guard(PLATE, m)
        box = {"n": 0}

        def inc() -> None:
            for _ in range(incs):
                with m:
                    k.point("read", PLATE, False)
                    v = box["n"]
                    k.point("write", PLATE, True)
                    box["n"] = v + 1

        for i in range(threads):
            k.spawn(inc, name=f"inc{i}")

    counter.__name__ = f"locked_counter_{threads}x{incs}"
    return counter


def _search(scenario: Callable[..., Any], make: Callable[[], Any], reduction: bool,
            opts: dict[str, Any]) -> tuple[str, float]:
    strat = make()
    strat.reduction = reduction
    t0 = time.perf_counter()
    run = run_job(scenario, [(strat, BUDGET)], stop_on_first=False, coverage=False, kernel_options=opts,
                  time_budget=TIME)
    dt = time.perf_counter() - t0
    return (f"{run.executions:,}" if strat.complete else f">{run.executions:,}"), dt


def _ratio(a: str, b: str) -> str:
    if a.startswith(">") or b.startswith(">"):
        return "-"
    return f"{int(a.replace(',', '')) / int(b.replace(',', '')):.1f}x"


def main() -> None:
    cat = discover()
    rows: list[tuple[str, str, Callable[..., Any], Callable[[], Any], dict[str, Any]]] = []
    for n in (3, 4, 5):
        rows.append((f"ordered philosophers {n}", "dpor", ordered_philosophers(n), DPOR, {"lockdep": False}))
    for n in (5, 7, 8):
        rows.append((f"ordered philosophers {n}", "odpor", ordered_philosophers(n), OptimalDPOR, {"lockdep": False}))
    rows.append(("locked counter 2x2", "dfs", locked_counter(2, 2), DFS, {"lockdep": False}))
    rows.append(("locked counter 3x1", "dpor", locked_counter(3, 1), DPOR, {"lockdep": False}))
    for rid in ("B1/ordered-mutexes", "C9/torn-down", "M4/prealloc"):
        r = cat.get(rid)
        rows.append((rid, "odpor", r.scenario, OptimalDPOR, dict(r.kernel_options)))
    print(f"{'scenario':28} {'search':6} {'off: execs':>12} {'time':>7} {'on: execs':>12} {'time':>7} "
          f"{'execs off/on':>12} {'time off/on':>11}")
    for name, search, sc, make, opts in rows:
        off, t_off = _search(sc, make, False, opts)
        on, t_on = _search(sc, make, True, opts)
        print(f"{name:28} {search:6} {off:>12} {t_off:6.2f}s {on:>12} {t_on:6.2f}s {_ratio(off, on):>12} "
              f"{t_off / t_on if t_on else 0:10.1f}x")


if __name__ == "__main__":
    main()
