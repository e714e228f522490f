"""The parallel engine (``explore/cluster.py``): executions/s with 1 and 2 Dask workers, as ratios.

* Executions per second of a random walk on a three-thread counter race
  (40,000 executions): in this process (``--jobs 1``, the baseline), on a
  local cluster of 1 worker and of 2 workers (started and warmed before the
  clock starts). Target of issue 15: 2 workers >= 1.8x one process.
* Time to prove a clean catalog row (C11/noretry-mprotect, optimal DPOR,
  496 traces) in one process and on 2 workers, with the executions each
  job ran: the split node's fan-out bounds the speedup (odpor R7).
* Executions per CPU-second of the thread that runs them, in this process and
  in a task on a worker: the load-independent cost of an execution. The
  worker's rate per CPU-second matches this process's (Dask's own threads
  take about 5% of the worker's CPU); a lower wall-clock rate on workers is
  the cores the machine gives them (the 1-minute load average is printed).
* Dispatch overhead: the round trip of an empty task on the warm cluster.
* The static split's predicted speedup for 8, 64 and 512 workers from the
  size of each alternative's subtree at the split node of that proof:
  total / largest share (every job beyond the fan-out is idle).

Run: ``.venv/bin/python bench/run.py cluster`` (about a minute; needs the
``cluster`` extra).
"""

from __future__ import annotations

import os
import time
from typing import Any

from dmabufsim.explore import explore
from dmabufsim.explore.cluster import connect
from dmabufsim.explore.job import plan, run_job
from dmabufsim.explore.odpor import OptimalDPOR
from dmabufsim.scenarios.catalog import discover

VAR = 10_000
QUIET: dict[str, Any] = {"stop_on_first": False, "shrink_findings": False, "check_replay": False,
                         "confirm_cycles": False, "coverage": False}


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


def _rate(jobs: int, n: int) -> tuple[float, int]:
    t = time.perf_counter()
    rep = explore(counter, "random", budget=n, jobs=jobs, **QUIET)
    return rep.executions / (time.perf_counter() - t), rep.executions


def main() -> None:
    n = 40_000
    for w in (1, 2):
        connect(w)  # started and warmed outside the clock
        explore(counter, "random", budget=200, jobs=w, **QUIET)
    base, _ = _rate(1, n)
    print(f"random walk, counter 3x2, {n:,} executions")
    print(f"  one process          {base:9,.0f} exec/s  1.00x")
    # one worker, one share: the engine's own overhead
    t = time.perf_counter()
    from dmabufsim.explore.cluster import run_parallel
    from dmabufsim.explore.options import ExploreOptions

    run, _ = run_parallel(counter, "random", ExploreOptions(budget=n, jobs=1, **QUIET), shares=1)
    one = run.executions / (time.perf_counter() - t)
    print(f"  cluster, 1 worker    {one:9,.0f} exec/s  {one / base:.2f}x")
    two, _ = _rate(2, n)
    print(f"  cluster, 2 workers   {two:9,.0f} exec/s  {two / base:.2f}x  (target >= 1.8x)")

    eng = connect(2)
    m = 5_000
    here, _ = _cpu_rate(m)
    there, extra = eng.client.submit(_cpu_rate, m, pure=False).result()
    print(f"per CPU-second ({m:,} executions): one process {here:,.0f}, a worker's task {there:,.0f} "
          f"({there / here:.2f}x; the worker's other threads add {100 * (extra - 1):.0f}% CPU); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rounds = 200
    t = time.perf_counter()
    for _ in range(rounds):
        eng.client.submit(_noop, pure=False).result()
    per = (time.perf_counter() - t) / rounds
    print(f"dispatch: {per * 1000:.1f} ms per empty task (round trip, warm local cluster)")

    row = discover(()).resolve("C11/noretry-mprotect")
    assert row.scenario is not None
    kw = {**QUIET, "kernel_options": dict(row.kernel_options)}
    t = time.perf_counter()
    a = explore(row.scenario, "odpor", budget=10_000, **kw)
    ta = time.perf_counter() - t
    t = time.perf_counter()
    b = explore(row.scenario, "odpor", budget=10_000, jobs=2, **kw)
    tb = time.perf_counter() - t
    print(f"proof of C11/noretry-mprotect (odpor): one process {a.executions} executions {ta:.2f} s "
          f"({a.verdict}); 2 workers {b.executions} executions {tb:.2f} s ({b.verdict}): {ta / tb:.2f}x")
    # the static split: each alternative of the split node is one job's subtree
    shares = []
    fan = 1
    for jobs in (2, 3, 4, 6, 8):
        parts = [run_job(row.scenario, [(OptimalDPOR(), 100_000)], job=j, jobs=jobs, stop_on_first=False,
                         coverage=False, kernel_options=dict(row.kernel_options)).executions for j in range(jobs)]
        if 0 in parts:  # more jobs than alternatives at the split node
            break
        fan, shares = jobs, parts
    total = sum(shares)
    print(f"split node fan-out {fan}: subtrees {shares} (total {total}; one process {a.executions})")
    for w in (8, 64, 512):
        print(f"  predicted speedup on {w} workers: {a.executions / max(shares):.2f}x (bounded by the fan-out)")


if __name__ == "__main__":
    main()
