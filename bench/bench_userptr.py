"""The C11 race (userptr racing fork) as a search problem: speed and executions to the finding.

The scenario is ``scenarios/c11_userptr_fork.py`` ``noretry_fork``: a
userptr driver without the sequence retry; the bug needs the page lookup
before ``fork`` and the binding after the parent's copy-on-write break, a
window a few scheduling points wide.

Printed:

* executions per second under the random strategy (``RandomStrategy(seed=i)``
  for execution ``i``), for the broken design and for the shared helper
  (the baseline, same process), and their ratio;
* executions to reach ``dma-foreign-page``: the median over seeds of the
  explorer's count, for PCT (depth 3) and for the random walk (capped:
  a search that hits the cap is shown as ``>cap``).

Wall-clock numbers are ratios or rates of this run only; the execution
counts are deterministic.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import dmabufsim as ds
from dmabufsim.explore.explorer import explore
from dmabufsim.scenarios import c11_userptr_fork as c11

#: Executions of the throughput measurement, per design.
THROUGHPUT_RUNS = 600
#: Seeds of the executions-to-finding medians.
PCT_SEEDS = 9
RANDOM_SEEDS = 3
#: Execution budget of one search.
PCT_CAP = 2_000
RANDOM_CAP = 700


def _throughput(scenario: Callable[[ds.Kernel], None]) -> tuple[float, int]:
    hits = 0
    t0 = time.perf_counter()
    for seed in range(THROUGHPUT_RUNS):
        ex = ds.Kernel(seed=seed).run(scenario)
        hits += "dma-foreign-page" in ex.kinds
    return THROUGHPUT_RUNS / (time.perf_counter() - t0), hits


def _to_finding(strategy: str, seed: int, cap: int) -> int | None:
    rep = explore(c11.noretry_fork, strategy, budget=cap, seed=seed, expected=["dma-foreign-page"],
                  shrink_findings=False, check_replay=False, confirm_cycles=False, coverage=False)
    found = rep.by_kind("dma-foreign-page")
    return rep.executions if found else None


def _median(counts: list[int | None], cap: int) -> str:
    if sum(c is None for c in counts) * 2 >= len(counts):
        return f">{cap}"
    return f"{statistics.median(c if c is not None else cap + 1 for c in counts):.0f}"


def main() -> None:
    broken_rate, broken_hits = _throughput(c11.noretry_fork)
    helper_rate, helper_hits = _throughput(c11.helper_fork)
    print(f"C11 userptr racing fork, random strategy, {THROUGHPUT_RUNS} executions per design")
    print(f"  {'design':<10} {'exec/s':>9} {'findings':>9}")
    print(f"  {'noretry':<10} {broken_rate:>9.0f} {broken_hits:>9}")
    print(f"  {'helper':<10} {helper_rate:>9.0f} {helper_hits:>9}   (baseline)")
    print(f"  noretry / helper speed: {broken_rate / helper_rate:.2f}x")
    pct = [_to_finding("pct", s, PCT_CAP) for s in range(PCT_SEEDS)]
    rnd = [_to_finding("random", s, RANDOM_CAP) for s in range(RANDOM_SEEDS)]
    show = ", ".join(str(c) if c is not None else f">{PCT_CAP}" for c in pct)
    print(f"executions to dma-foreign-page, PCT depth 3, {PCT_SEEDS} seeds: median {_median(pct, PCT_CAP)} ({show})")
    show = ", ".join(str(c) if c is not None else f">{RANDOM_CAP}" for c in rnd)
    print(f"executions to dma-foreign-page, random walk, {RANDOM_SEEDS} seeds: median "
          f"{_median(rnd, RANDOM_CAP)} ({show})")


if __name__ == "__main__":
    main()
