"""The parallel engine (``explore/cluster.py``): executions/s with 1 and 2 Dask workers, as ratios.

* Time to prove a clean catalog row by DFS (split dynamically, ``split.py``
  D1-D6): in this process (the baseline), on a local cluster of 1 worker and
  of 2 workers (started and warmed before the clock starts). Target of
  issue 15: 2 workers >= 1.8x one process. The 1-minute load average is
  printed: on a shared machine the second core is often someone else's.
* Executions per second of a random walk (dealt by index, parallel R1), the
  same way.
* Dispatch overhead: the round trip of an empty task on the warm cluster.
* The predicted speedup of a split DFS proof on 8, 64 and 512 workers: the
  proof's piece tree is run in this process (``run_here``), each slice's
  time measured; a greedy list schedule of that tree on ``W`` workers,
  each slice costing its time plus the measured dispatch, gives the
  makespan; the prediction is one process's time over it.

Run: ``.venv/bin/python bench/run.py cluster`` (a few minutes; needs the
``cluster`` extra). ``ROWS`` names the proofs of the prediction.
"""

from __future__ import annotations

import heapq
import os
import time
from typing import Any

from dmabufsim.explore import explore
from dmabufsim.explore.cluster import connect
from dmabufsim.explore.dfs import DFS
from dmabufsim.explore.job import JobOptions, run_job
from dmabufsim.explore.split import Segment, run_here
from dmabufsim.scenarios.catalog import discover

VAR = 10_000
QUIET: dict[str, Any] = {"stop_on_first": False, "shrink_findings": False, "check_replay": False,
                         "confirm_cycles": False, "coverage": False}
#: The clean row whose DFS proof is timed on 1 and 2 workers.
ROW = "M4/gfp-nowait"
#: The rows whose DFS proofs' piece trees predict the speedup on many workers (with their preemption bound).
ROWS: tuple[tuple[str, int | None], ...] = (("M4/gfp-nowait", None), ("C9/torn-down", 1),
                                            ("M1/evict-waits-bookkeep", 1))


def counter(k: Any) -> None:
    box = {"n": 0}

    def inc() -> None:
        for _ in range(2):
            k.point("load", VAR, False)
            v = box["n"]
            k.point("store", VAR, True)
            box["n"] = v + 1

    for i in range(3):
        k.spawn(inc, name=f"inc{i}")


def _noop() -> int:
    return 0


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def makespan(tree: list[tuple[int, Segment]], workers: int, dispatch: float) -> float:
    """The greedy list schedule of a piece tree on ``workers``: a slice is ready when the slice that
    handed its piece out ended; each costs its measured time plus ``dispatch``."""
    children: dict[int, list[int]] = {}
    for i, (parent, _) in enumerate(tree):
        children.setdefault(parent, []).append(i)
    ready = list(children.get(-1, []))
    running: list[tuple[float, int]] = []
    now = 0.0
    end = 0.0
    while ready or running:
        while ready and len(running) < workers:
            i = ready.pop(0)
            cost = tree[i][1].run.phases[0].elapsed + dispatch if tree[i][1].run.phases else dispatch
            heapq.heappush(running, (now + cost, i))
        now, i = heapq.heappop(running)
        end = max(end, now)
        ready += children.get(i, [])
    return end


def main() -> None:
    row = discover(()).resolve(ROW)
    assert row.scenario is not None
    kw = {**QUIET, "kernel_options": dict(row.kernel_options)}
    for w in (1, 2):
        connect(w)  # started and warmed outside the clock
        explore(row.scenario, "dfs", budget=50, jobs=w, **kw)
    eng = connect(2)
    rounds = 100
    t = time.perf_counter()
    for _ in range(rounds):
        eng.client.submit(_noop, pure=False).result()
    dispatch = (time.perf_counter() - t) / rounds
    print(f"dispatch: {dispatch * 1000:.1f} ms per empty task (round trip, warm local cluster); {_load()}")

    t = time.perf_counter()
    a = explore(row.scenario, "dfs", budget=10**6, **kw)
    ta = time.perf_counter() - t
    print(f"proof of {ROW} by DFS: one process {a.executions:,} executions, {ta:.2f} s "
          f"({a.executions / ta:,.0f} exec/s, {a.verdict}, proved {a.phases[0].proved}); {_load()}")
    for w in (1, 2):
        from dmabufsim.explore.cluster import run_split
        from dmabufsim.explore.options import ExploreOptions

        t = time.perf_counter()
        if w == 1:  # one worker: the engine's own overhead
            run, _ = run_split(row.scenario, ExploreOptions(budget=10**6, jobs=1, **kw))
            n, proved = run.executions, run.phases[0].proved
        else:
            b = explore(row.scenario, "dfs", budget=10**6, jobs=2, **kw)
            n, proved = b.executions, b.phases[0].proved
        tw = time.perf_counter() - t
        print(f"  cluster, {w} worker{'s' if w > 1 else ' '}  {n:,} executions, {tw:.2f} s, proved {proved}: "
              f"{ta / tw:.2f}x{'  (target >= 1.8x)' if w == 2 else ''}; {_load()}")

    n = 20_000
    t = time.perf_counter()
    explore(counter, "random", budget=n, **QUIET)
    base = n / (time.perf_counter() - t)
    t = time.perf_counter()
    explore(counter, "random", budget=n, jobs=2, **QUIET)
    two = n / (time.perf_counter() - t)
    print(f"random walk, counter 3x2, {n:,} executions: one process {base:,.0f} exec/s, 2 workers "
          f"{two:,.0f} exec/s: {two / base:.2f}x; {_load()}")

    print("predicted speedup of split DFS proofs (list schedule of the measured piece tree, "
          f"{dispatch * 1000:.0f} ms dispatch per slice):")
    for key, bound in ROWS:
        r = discover(()).resolve(key)
        assert r.scenario is not None
        o = JobOptions(stop_on_first=False, coverage=False, kernel_options=dict(r.kernel_options))
        t = time.perf_counter()
        one = run_job(r.scenario, [(DFS(bound), 10**6)], o)
        t1 = time.perf_counter() - t
        run, tree = run_here(r.scenario, o, 10**6, bound)
        sizes = sorted(s.run.executions for _, s in tree)
        q = [sizes[int(p * (len(sizes) - 1))] for p in (0.0, 0.5, 0.9, 1.0)]
        pred = ", ".join(f"{w}: {t1 / makespan(tree, w, dispatch):.1f}x" for w in (2, 8, 64, 512))
        what = "proved" if run.phases[0].proved else f"exhausted within {run.phases[0].bound}"
        print(f"  {key} (dfs, bound {bound}): {one.executions:,} executions ({what}) in {t1:.2f} s, "
              f"{len(tree)} slices, sizes min/median/p90/max {q}; predicted {pred}")


if __name__ == "__main__":
    main()
