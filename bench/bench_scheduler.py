"""Scheduler cost per scheduling point, against a bare greenlet ping-pong.

Two kthreads ping-pong a mutex (``lock``; one scheduling point of work;
``unlock``) and the cost of one scheduling point is compared, in the same
run, with one round trip of two bare greenlets switching to each other
(the floor any greenlet-based scheduler pays to run another thread and
come back). Three schedules of the same scenario:

* ``alternate``: a strategy that always picks the other thread, so every
  scheduling point is a context switch (worst case);
* ``random``: the default seeded random walk (about half the points switch);
* ``first``: non-preemptive, no switch at all (the pure bookkeeping cost);
* ``points-only alternate``: no mutex, the threads only take scheduling
  points, each one a switch (``Kernel.point`` plus a greenlet switch).

Printed: ns per scheduling point, ns per bare round trip, and the ratio
(target: ``random`` and ``alternate`` <= 3x a bare round trip).
Run: ``.venv/bin/python bench/run.py scheduler``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from greenlet import greenlet

import dmabufsim as ds

ITERS = 20_000
REPEATS = 5
TARGET = 3.0


class Alternate(ds.Strategy):
    """Always run a thread other than the current one (every point switches)."""

    name = "alternate"

    def next_thread(self, runnable: Sequence[ds.KThread], current: ds.KThread | None) -> ds.KThread:
        if current is None:
            return runnable[0]
        for t in runnable:
            if t is not current:
                return t
        return current

    def next_u64(self, bound: int) -> int:
        return 0


def _bare_loop_ns(n: int) -> float:
    """Round trip main -> g -> main, the tightest measurable ping-pong."""

    def body() -> None:
        main = g.parent
        assert main is not None
        while True:
            main.switch()

    best = float("inf")
    for _ in range(REPEATS):
        g = greenlet(body)
        g.switch()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            g.switch()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def mutex_ping_pong(make_kernel: Callable[[], ds.Kernel], iters: int, bare: bool = False) -> tuple[float, int, int]:
    """Best ns per scheduling point over REPEATS runs; also points and preemptions of the last run.

    ``bare``: the threads only take scheduling points (no mutex): the cost of
    ``Kernel.point`` and the switch alone.
    """

    def worker(k: ds.Kernel, m: ds.Mutex) -> None:
        if bare:
            for _ in range(iters * 3):
                k.point("work", 0, True)
            return
        for _ in range(iters):
            m.lock()
            k.point("work", 0, True)
            m.unlock()

    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("pingpong")
        k.spawn(worker, k, m, name="ping")
        k.spawn(worker, k, m, name="pong")

    best = float("inf")
    steps = switches = 0
    for _ in range(REPEATS):
        k = make_kernel()
        t0 = time.perf_counter_ns()
        ex = k.run(scenario)
        dt = time.perf_counter_ns() - t0
        if ex.findings:
            raise SystemExit(f"bench scenario produced findings: {[f.title for f in ex.findings]}")
        steps = ex.steps
        switches = ex.preemptions
        best = min(best, dt / ex.steps)
    return best, steps, switches


def main() -> dict[str, float]:
    rt = _bare_loop_ns(ITERS * 10)
    print(f"bare greenlet round trip (main -> g -> main): {rt:8.1f} ns")
    results: dict[str, float] = {"bare_round_trip_ns": rt}
    makers: dict[str, tuple[Callable[[], ds.Kernel], bool]] = {
        "alternate": (lambda: ds.Kernel(strategy=Alternate(), max_steps=10**7), False),
        "random": (lambda: ds.Kernel(seed=1, max_steps=10**7), False),
        "first": (lambda: ds.Kernel(strategy=ds.FirstStrategy(), max_steps=10**7), False),
        "points-only alternate": (lambda: ds.Kernel(strategy=Alternate(), max_steps=10**7), True),
    }
    ok = True
    for name, (make, bare) in makers.items():
        per_point, steps, switches = mutex_ping_pong(make, ITERS, bare)
        ratio = per_point / rt
        results[f"{name}_ns_per_point"] = per_point
        results[f"{name}_ratio"] = ratio
        verdict = "ok" if ratio <= TARGET else "MISSES TARGET"
        if name in ("alternate", "random") and ratio > TARGET:
            ok = False
        print(
            f"{name:21s}: {per_point:8.1f} ns per scheduling point "
            f"({steps} points, {switches} preemptions) = {ratio:5.2f}x bare round trip [{verdict}]"
        )
    print(f"target <= {TARGET}x: {'met' if ok else 'missed'}")
    return results


if __name__ == "__main__":
    main()
