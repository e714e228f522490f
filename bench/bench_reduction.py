"""Lipton reduction (``kernel/reduction.py``): executions and time to prove, with it and without, in one run.

Ordered dining philosophers (no deadlock: every fork a blocking-only lock,
each philosopher's meal a point on its own plate guarded by its second
fork), a locked read-modify-write counter (the counter guarded by its
mutex), and proved catalog rows (the model declares no guard or
blocking-only lock yet, so only thread-local points fold there). Each
search runs to exhaustion; the table shows executions and wall time with
reduction off and on and their ratios (off / on).

Run: ``.venv/bin/python bench/run.py reduction`` (about 95 s: the searches
without reduction that do not exhaust stop at 30 s).

Measured 2026-12-07 (shared 2-core machine, the suite running beside it;
executions to exhaust, off / on; ``>``: not exhausted in 30 s):

======================== ====== =========== ======== =========
scenario                 search off         on       off / on
======================== ====== =========== ======== =========
ordered philosophers 3   dpor   628         69       9.1x
ordered philosophers 4   dpor   6,988       339      20.6x
ordered philosophers 5   dpor   >6,804      1,853    (30 s vs 12.9 s)
ordered philosophers 5   odpor  30          30       1.0x
ordered philosophers 7   odpor  126         126      1.0x (1.65 s vs 0.43 s)
ordered philosophers 8   odpor  254         254      1.0x (1.97 s vs 1.23 s)
locked counter 2x2       dfs    >18,994     224      (30 s vs 0.43 s)
locked counter 3x1       dpor   126         10       12.6x
B1/ordered-mutexes       odpor  2           2        1.0x
C9/torn-down             odpor  9           9        1.0x
M4/prealloc              odpor  15          15       1.0x
======================== ====== =========== ======== =========

Optimal DPOR already runs one execution per Mazurkiewicz trace, and a folded
point only joins the event before it: the trace count cannot drop (the
orders of the critical sections are the traces), only the events per
execution (ordered philosophers 7: 2-4x less time in one run; the times on
this machine vary about 2x between runs). DFS and classic DPOR, which
offer a choice at every point, gain 9-20x and more.
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
