"""The parallel engine (``explore/cluster.py``): executions/s with 1 and 2 Dask workers, as ratios.

* Time to prove a clean catalog row by DFS (split dynamically, ``split.py``
  D1-D6), and to exhaust a longer one within a preemption bound: in this
  process (the baseline), on a local cluster of 1 worker and of 2 workers
  (started and warmed before the clock starts). The
  target: 2 workers >= 1.8x one process. The 1-minute load average is
  printed: on a shared machine the second core is often someone else's.
* Executions per second of a random walk (dealt by index, parallel R1), the
  same way.
* Executions per CPU-second of the thread that runs them, in this process and
  in a task on a worker: the load-independent cost of an execution.
* Dispatch overhead: the round trip of an empty task on the warm cluster.
* Optimal DPOR split dynamically (``osplit.py``, ``--jobs``/``--cluster``
  since cluster C9): time to prove clean catalog rows and a 3-thread counter
  in this process and on a local cluster of 1 and 2 workers (executions,
  distinct traces, exec/s, ratios, load); and, in this process, the
  executions and distinct traces the pieces run against one process's
  traces, and the speedup its rounds predict on 2, 8 and 64 workers (each
  round a greedy schedule of its slices' measured times plus the dispatch;
  the rounds back to back) over one process's measured time.
* The predicted speedup of a split DFS proof on 8, 64 and 512 workers: the
  proof's piece tree is run in this process (``run_here``), each slice's
  time measured; a greedy list schedule of that tree on ``W`` workers,
  each slice costing its time plus the measured dispatch, gives the
  makespan; the prediction is the slices' time back to back (one
  process) over it.

Run: ``.venv/bin/python bench/run.py cluster`` (a few minutes; needs the
``cluster`` extra). ``ROWS`` names the proofs of the prediction.
"""

from __future__ import annotations

import heapq
import os
import time
from typing import Any

from dmabufsim.explore import explore, osplit
from dmabufsim.explore.cluster import connect
from dmabufsim.explore.job import JobOptions, plan, run_job
from dmabufsim.explore.odpor import OptimalDPOR
from dmabufsim.explore.split import Segment, run_here
from dmabufsim.scenarios.catalog import discover

VAR = 10_000
QUIET: dict[str, Any] = {"stop_on_first": False, "shrink_findings": False, "check_replay": False,
                         "confirm_cycles": False, "coverage": False}
#: The clean rows whose DFS searches are timed on 1 and 2 workers (with their preemption bound): a proof
#: (unbounded, 1,806 executions) and a longer search exhausted within a bound (3,710 executions).
TIMED: tuple[tuple[str, int | None], ...] = (("M4/gfp-nowait", None), ("M1/evict-waits-bookkeep", 3))
#: The rows whose DFS searches' piece trees predict the speedup on many workers (with their preemption
#: bound): the largest the catalog's clean rows have that DFS exhausts in seconds.
ROWS: tuple[tuple[str, int | None], ...] = (("M4/gfp-nowait", None), ("C9/torn-down", 3),
                                            ("M1/evict-waits-bookkeep", 3), ("C6/nowait-notifier", 3))


#: The round trip of an empty task measured on this machine at a load average of 7 (seconds): the
#: prediction also uses it, the dispatch of a busy moment being mostly the machine's load.
IDLE = 0.016


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


def _cpu_rate(n: int) -> tuple[float, float]:
    """Executions per CPU-second of this thread, and the process's CPU over this thread's."""
    th, pr = time.thread_time(), time.process_time()
    run = run_job(counter, plan("random", n), stop_on_first=False, coverage=False)
    th, pr = time.thread_time() - th, time.process_time() - pr
    return run.executions / th, pr / th


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


#: Clean rows proved by optimal DPOR whose dynamic split (``osplit.py``) is measured.
ODPOR_ROWS = ("C11/noretry-mprotect", "C9/torn-down")


def rounds_makespan(segments: list[osplit.OSegment], workers: int, dispatch: float) -> float:
    """Rounds back to back (osplit O2), each the greedy schedule of its slices, longest first."""
    by_round: dict[int, list[float]] = {}
    for s in segments:
        by_round.setdefault(s.round, []).append((s.run.phases[0].elapsed if s.run.phases else 0.0) + dispatch)
    total = 0.0
    for costs in by_round.values():
        loads = [0.0] * workers
        for c in sorted(costs, reverse=True):
            i = loads.index(min(loads))
            loads[i] += c
        total += max(loads)
    return total


def _odpor(key: str, dispatch: float) -> None:
    row = discover(()).resolve(key)
    assert row.scenario is not None
    o = JobOptions(stop_on_first=False, coverage=False, kernel_options=dict(row.kernel_options))
    one = OptimalDPOR()
    t = time.perf_counter()
    a = run_job(row.scenario, [(one, 10**6)], o)
    t1 = time.perf_counter() - t
    run, traces, rounds = osplit.run_here(row.scenario, o, 10**6)
    pred = ", ".join(f"{w}: {t1 / rounds_makespan(rounds.segments, w, dispatch):.1f}x" for w in (2, 8, 64))
    print(f"  {key} by optimal DPOR (proved {a.phases[0].proved} / {run.phases[0].proved}): one process "
          f"{a.executions:,} traces in {t1:.2f} s; pieces {run.executions:,} executions, {traces:,} distinct "
          f"traces, {len(rounds.segments)} slices in {rounds.rounds} rounds; predicted {pred}; {_load()}")


#: Optimal DPOR proofs timed in this process and on 1 and 2 workers (cluster C9).
ODPOR_TIMED = ("C11/noretry-mprotect", "C14/helper", "counter")


def _odpor_timed(key: str) -> None:
    if key == "counter":
        scenario: Any = counter
        kw: dict[str, Any] = dict(QUIET)
    else:
        row = discover(()).resolve(key)
        assert row.scenario is not None
        scenario = row.scenario
        kw = {**QUIET, "kernel_options": dict(row.kernel_options)}
    t = time.perf_counter()
    a = explore(scenario, "odpor", budget=10**6, **kw)
    ta = time.perf_counter() - t
    print(f"{key} by optimal DPOR (proved {a.phases[0].proved}): one process {a.executions:,} traces, {ta:.2f} s "
          f"({a.executions / ta:,.0f} exec/s); {_load()}")
    from dmabufsim.explore.cluster import run_osplit
    from dmabufsim.explore.options import ExploreOptions

    for w in (1, 2):
        t = time.perf_counter()
        b, _ = run_osplit(scenario, ExploreOptions(budget=10**6, jobs=w, **kw))  # (jobs=1 alone: one process)
        tw = time.perf_counter() - t
        traces = b.phases[0].executions
        same = traces == a.executions and b.phases[0].proved == a.phases[0].proved
        print(f"  cluster, {w} worker{'s' if w > 1 else ' '} {b.executions:,} executions for "
              f"{traces:,} traces, {tw:.2f} s ({b.executions / tw:,.0f} exec/s, same proof {same}): "
              f"{ta / tw:.2f}x{'  (target >= 1.8x)' if w == 2 else ''}; {_load()}")


def _timed(key: str, bound: int | None) -> None:
    from dmabufsim.explore.cluster import run_split
    from dmabufsim.explore.options import ExploreOptions

    row = discover(()).resolve(key)
    assert row.scenario is not None
    kw = {**QUIET, "kernel_options": dict(row.kernel_options), "preemption_bound": bound}
    t = time.perf_counter()
    a = explore(row.scenario, "dfs", budget=10**6, **kw)
    ta = time.perf_counter() - t
    what = "proved" if a.phases[0].proved else f"exhausted within bound {bound}"
    print(f"{key} by DFS ({what}): one process {a.executions:,} executions, {ta:.2f} s "
          f"({a.executions / ta:,.0f} exec/s); {_load()}")
    for w in (1, 2):
        t = time.perf_counter()
        run, _ = run_split(row.scenario, ExploreOptions(budget=10**6, jobs=w, **kw))
        tw = time.perf_counter() - t
        same = run.executions == a.executions and run.phases[0].exhausted and not run.findings
        print(f"  cluster, {w} worker{'s' if w > 1 else ' '} {run.executions:,} executions, {tw:.2f} s "
              f"({run.executions / tw:,.0f} exec/s, same result {same}): {ta / tw:.2f}x"
              f"{'  (target >= 1.8x)' if w == 2 else ''}; {_load()}")


def main() -> None:
    for w in (1, 2):
        connect(w)  # started and warmed outside the clock
        explore(counter, "dfs", budget=50, jobs=w, **QUIET)
    eng = connect(2)
    rounds = 100
    t = time.perf_counter()
    for _ in range(rounds):
        eng.client.submit(_noop, pure=False).result()
    dispatch = (time.perf_counter() - t) / rounds
    print(f"dispatch: {dispatch * 1000:.1f} ms per empty task (round trip, warm local cluster); {_load()}")
    for key, bound in TIMED:
        _timed(key, bound)

    n = 20_000
    t = time.perf_counter()
    explore(counter, "random", budget=n, **QUIET)
    base = n / (time.perf_counter() - t)
    t = time.perf_counter()
    explore(counter, "random", budget=n, jobs=2, **QUIET)
    two = n / (time.perf_counter() - t)
    print(f"random walk, counter 3x2, {n:,} executions: one process {base:,.0f} exec/s, 2 workers "
          f"{two:,.0f} exec/s: {two / base:.2f}x; {_load()}")
    m = 5_000
    here, _ = _cpu_rate(m)
    there, extra = eng.client.submit(_cpu_rate, m, pure=False).result()
    print(f"per CPU-second ({m:,} executions): one process {here:,.0f}, a worker's task {there:,.0f} "
          f"({there / here:.2f}x; the worker's other threads add {100 * (extra - 1):.0f}% CPU); {_load()}")

    for key in ODPOR_TIMED:
        _odpor_timed(key)
    print(f"optimal DPOR split dynamically, in this process ({dispatch * 1000:.0f} ms dispatch):")
    for key in ODPOR_ROWS:
        _odpor(key, dispatch)
    print("predicted speedup of split DFS searches (list schedule of the measured piece tree, at the "
          "dispatch measured now and at the one of a quiet moment):")
    for key, bound in ROWS:
        r = discover(()).resolve(key)
        assert r.scenario is not None
        o = JobOptions(stop_on_first=False, coverage=False, kernel_options=dict(r.kernel_options))
        run, tree = run_here(r.scenario, o, 10**6, bound)
        t1 = sum(s.run.phases[0].elapsed for _, s in tree if s.run.phases)  # one process: the slices back to back
        sizes = sorted(s.run.executions for _, s in tree)
        q = [sizes[int(p * (len(sizes) - 1))] for p in (0.0, 0.5, 0.9, 1.0)]
        pred = "; ".join(f"{d * 1000:.0f} ms dispatch " + ", ".join(
            f"{w}: {t1 / makespan(tree, w, d):.1f}x" for w in (2, 8, 64, 512)) for d in sorted({dispatch, IDLE}))
        what = "proved" if run.phases[0].proved else f"exhausted within bound {bound}"
        print(f"  {key} ({what}): {run.executions:,} executions, {t1:.2f} s, {len(tree)} slices, "
              f"executions per slice min/median/p90/max {q}; predicted {pred}")


if __name__ == "__main__":
    main()
