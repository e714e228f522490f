"""Per-acquire cost of the lock-dependency validator, against the plain held-lock tracker.

Nested lock/unlock at depth 4 over 8 lock classes (windows of a fixed order,
so the graph stops growing after the first pass), in one thread. Measured
after a warm-up pass, i.e. with the graph and the chain cache stable:
that is the steady state of an exploration (``Config.options["lockdep_graph"]``
keeps it across executions). Printed: ns per acquire+release pair with
``Kernel(lockdep=False)`` (the baseline, ``LockTracker``) and with lockdep,
and their ratio, for bare lockdep maps (the tracker's own cost, the harshest
ratio) and for mutexes (what a scenario pays).

Target: ratio <= 2 once the graph is stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dmabufsim as ds
from dmabufsim.locking.lockdep_graph import LockGraph

DEPTH = 4
CLASSES = 8
ROUNDS = 4000
REPEATS = 5


def _workload(kind: str, rounds: int, out: list[float]) -> Callable[[ds.Kernel], None]:
    def scenario(k: ds.Kernel) -> None:
        locks: list[Any]
        if kind == "map":
            locks = [ds.LockdepMap(f"L{i}") for i in range(CLASSES)]
            take: list[Callable[[], None]] = [m.acquire for m in locks]
            drop: list[Callable[[], None]] = [m.release for m in locks]
        else:
            locks = [ds.Mutex(f"L{i}") for i in range(CLASSES)]
            take = [m.lock for m in locks]
            drop = [m.unlock for m in locks]
        windows = [list(range(b, b + DEPTH)) for b in range(CLASSES - DEPTH + 1)]
        # Warm-up: every chain once, so the graph and the chain cache are stable.
        for w in windows:
            for i in w:
                take[i]()
            for i in reversed(w):
                drop[i]()
        t0 = time.perf_counter()
        nw = len(windows)
        for r in range(rounds):
            w = windows[r % nw]
            for i in w:
                take[i]()
            for i in reversed(w):
                drop[i]()
        out.append(time.perf_counter() - t0)

    return scenario


def measure(kind: str, lockdep: bool) -> float:
    """Best-of-REPEATS nanoseconds per acquire+release pair."""
    best = float("inf")
    graph = LockGraph()
    for _ in range(REPEATS):
        out: list[float] = []
        opts: dict[str, Any] = {"lockdep_graph": graph, "isolation": False}
        ex = ds.Kernel(strategy=ds.FirstStrategy(), lockdep=lockdep, max_steps=10_000_000, options=opts).run(
            _workload(kind, ROUNDS, out)
        )
        if ex.findings:
            raise SystemExit(f"benchmark workload is not clean: {[f.title for f in ex.findings]}")
        best = min(best, out[0])
    return best / (ROUNDS * DEPTH) * 1e9


def main() -> None:
    print(f"nested lock/unlock, depth {DEPTH}, {CLASSES} classes, {ROUNDS} rounds, best of {REPEATS}")
    for kind in ("map", "mutex"):
        off = measure(kind, False)
        on = measure(kind, True)
        label = "LockdepMap acquire/release" if kind == "map" else "Mutex lock/unlock"
        print(f"  {label:28s} off {off:7.0f} ns/pair   on {on:7.0f} ns/pair   ratio {on / off:4.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
