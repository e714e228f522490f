"""Fence and reservation-object throughput, as ratios measured in one run.

1. fence create + add_callback + signal, against ``concurrent.futures.Future``
   create + add_done_callback + set_result (the baseline). The target: the
   fence at least 3x faster, tracing off.
2. ``add_fence`` throughput with 1, 8 and 64 contexts (each add replaces its
   context's previous fence in place), and lockless iteration
   (``get_fences(BOOKKEEP)``) over lists of 1, 8 and 64 fences, both also as
   multiples of the Future baseline's operation rate.

Everything runs in one kthread of a ``Kernel`` (``FirstStrategy``, no trace
recording), so each model operation is a real scheduling point with the
lockdep validator on (``lockdep=False`` is shown too: the held-lock tracker
still runs, only the dependency validator is off).

Times are CPU time of this process (``time.process_time``): the machine is
shared, and wall-clock ratios there swing with the other load.

Where it lands (2026-11-25, shared 2-core machine): Future 1.73 us/op; the
fence 8.3 us/op with lockdep (4.8x slower), 6.7 us without (3.9x slower).
The 3x-faster target (0.58 us) is out of reach for a modelled fence: the
``floor`` rows time only the work it must do (4 scheduling points, 2 in-step
events, 3 lockdep pairs with the validator, 2 held-lock records without):
3.0 us and 2.7 us, already 1.7x and 1.6x the whole Future op. See
docs/fences.md, "Cost".

Run: ``.venv/bin/python bench/run.py fence``.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable
from typing import Any

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma import DmaResv, DmaResvUsage
from dmabufsim.dma.fence import DmaFence, DmaFenceCb
from dmabufsim.kernel.lockdep_map import LockdepMap

N_FENCE = 5_000
N_ADD = 3_000
N_ITER = 1_000


def _cb(*_: Any) -> None:
    return None


def future_per_op(n: int) -> float:
    """Seconds per Future create + add_done_callback + set_result."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            f: cf.Future[int] = cf.Future()
            f.add_done_callback(_cb)
            f.set_result(1)
        best = min(best, time.process_time() - t0)
    return best / n


def _in_kernel(body: Callable[[ds.Kernel], float], **kw: Any) -> float:
    out: list[float] = []

    def scenario(k: ds.Kernel) -> None:
        out.append(body(k))

    ex = ds.Kernel(strategy=ds.FirstStrategy(), **kw).run(scenario)
    if ex.errors:
        raise SystemExit(f"benchmark scenario reported {ex.kinds}")
    return out[0]


def fence_per_op(k: ds.Kernel) -> float:
    """Seconds per fence create + add_callback + signal (one timeline, shared lock)."""
    tl = dma.FenceContext("bench")
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(N_FENCE):
            f = tl.create()
            f.add_callback(DmaFenceCb(_cb))
            f.signal()
        best = min(best, time.process_time() - t0)
    return best / N_FENCE


def floor_per_op(k: ds.Kernel) -> float:
    """Seconds of the work a modelled fence op cannot skip: its trace steps and lockdep pairs.

    create + add_callback + signal takes 4 scheduling points (add_callback's
    ``spin_lock``; signal's ``dma_fence_signal``, ``spin_lock``,
    ``spin_unlock``: a callback runs inside) and 2 in-step events
    (``dma_fence_add_callback``, ``spin_unlock``), and lockdep sees 3
    acquire/release pairs (the fence lock twice, ``dma_fence_map`` once;
    with the validator off the held-lock tracker still records the fence
    lock twice, and the signalling annotation is a no-op). Measured here with the cheapest calls
    (precomputed trace words, no call-site walk), so this is a lower bound.
    """
    t = k.current
    m = LockdepMap("bench_floor")
    pairs = 3 if k.config.lockdep else 2
    ld = k.lockdep
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(N_FENCE):
            k.point("bench", 1, True, "", 12345)
            k.point("bench", 1, True, "", 12345)
            k.point("bench", 1, True, "", 12345)
            k.point("bench", 1, True, "", 12345)
            k.event("bench", 1, True)
            k.event("bench", 1, True)
            for _ in range(pairs):
                ld.lock_acquire(t, m, 0, False, 0, None, None)
                ld.lock_release(t, m)
        best = min(best, time.process_time() - t0)
    return best / N_FENCE


def add_fence_per_op(nctx: int) -> Callable[[ds.Kernel], float]:
    def body(k: ds.Kernel) -> float:
        tls = [dma.FenceContext(f"c{i}") for i in range(nctx)]
        fences = [tls[i % nctx].create() for i in range(N_ADD)]
        resv = DmaResv("bench")
        resv.lock(None)
        t0 = time.process_time()
        for f in fences:
            resv.reserve_fences(1)
            resv.add_fence(f, DmaResvUsage.WRITE)
        dt = time.process_time() - t0
        resv.unlock()
        for f in fences:
            f.signal()
        return dt / N_ADD

    return body


def iterate_per_fence(nfences: int) -> Callable[[ds.Kernel], float]:
    def body(k: ds.Kernel) -> float:
        fences: list[DmaFence] = [dma.FenceContext(f"c{i}").create() for i in range(nfences)]
        resv = DmaResv("bench")
        with resv:
            resv.reserve_fences(nfences)
            for f in fences:
                resv.add_fence(f, DmaResvUsage.READ)
        reps = max(1, N_ITER * 8 // nfences)
        t0 = time.process_time()
        for _ in range(reps):
            got = resv.get_fences(DmaResvUsage.BOOKKEEP)
            for g in got:
                g.put()
        dt = time.process_time() - t0
        for f in fences:
            f.signal()
        return dt / (reps * nfences)

    return body


def main() -> None:
    base = future_per_op(N_FENCE)
    print(f"baseline  Future create+add_done_callback+set_result: {base * 1e6:7.2f} us/op")
    print(f"target    3x faster than the Future: <= {base / 3 * 1e6:.2f} us/op")
    for lockdep in (True, False):
        on = "on" if lockdep else "off"
        per = _in_kernel(fence_per_op, lockdep=lockdep)
        ratio = base / per
        verdict = "faster" if ratio >= 1 else "slower"
        factor = ratio if ratio >= 1 else 1 / ratio
        print(
            f"fence     create+add_callback+signal (lockdep={on}): {per * 1e6:7.2f} us/op"
            f"  -> fence/Future = {ratio:.2f} ({factor:.1f}x {verdict}; target >= 3.0x faster)"
        )
        floor = _in_kernel(floor_per_op, lockdep=lockdep)
        print(
            f"  floor   4 points + 2 events + {3 if lockdep else 2} lock pairs (lockdep={on}): "
            f"{floor * 1e6:7.2f} us/op = {floor / base:.2f} x the Future op, {floor / per:.0%} of the fence op"
        )
    for n in (1, 8, 64):
        per = _in_kernel(add_fence_per_op(n))
        print(f"add_fence {n:2d} contexts: {1 / per:10.0f} adds/s  ({per * 1e6:6.2f} us, {base / per:.2f} x Future op)")
    for n in (1, 8, 64):
        per = _in_kernel(iterate_per_fence(n))
        print(
            f"lockless get_fences over {n:2d} fences: {1 / per:10.0f} fences/s  "
            f"({per * 1e6:6.2f} us/fence, {base / per:.2f} x Future op)"
        )


if __name__ == "__main__":
    main()
