"""Explorer throughput and time to first finding, against frontrun in the same run.

Executions per second on a two-thread ABBA, a three-thread counter race and
dining philosophers (n = 5 and 8), for dmabufsim's random walk and DPOR and
for frontrun 0.7.0 (random and DPOR) on equivalent Python code with
``threading.Lock``. frontrun is used only if it can be imported (install it
outside the project, e.g. ``pip install --target /tmp/frontrun_site
frontrun`` and set ``FRONTRUN_PATH=/tmp/frontrun_site``); otherwise the
baseline is plain ``threading`` (one real run of the threads per
execution) and the table says so. Then, per strategy, executions and wall
time to the first finding, and the lockdep-guided confirmation of the
philosophers' deadlocks.

Then the random walk's CPU time per execution against the floor's
(``_FloorWalk`` below) on counter-3 and philosophers-5 (target: at most
3x), optimal DPOR's against the random walk's on ordered philosophers
(target: at most 2x), both with the load average, what lockdep adds to a short
execution on a fresh graph (the booted copy of the primed graph against
priming in place, ``lockdep_priming`` R4), and the proofs that ordered
philosophers never deadlock (n = 5..10, every Mazurkiewicz trace; targets:
n = 7 within 3 s, n = 8 within 15 s) next to SPIN's exhaustive run of the
same model in Promela, compile included, when ``spin`` and ``gcc`` are
installed (``apt-get install spin gcc``; the anchor is skipped otherwise).

Run: ``.venv/bin/python bench/run.py explore`` (about 30 s).

Measured 2026-11-25, session 3 (shared 2-core machine, frontrun 0.7.0 in
the same run, warmed up, 120 executions per measurement). Earlier runs
measured frontrun cold on the first scenario (abba), where its first
exploration in a process runs 10-20x slower than later ones: the "abba
280x" of those runs was that artifact. Warm, frontrun's rates still vary
~4x between runs (counter-3 random 349-1,349 executions/s, abba random
230-952), and the ratios with them: random / DPOR / optimal DPOR -- abba
16-66x / 47-131x / 31-85x; counter-3 15-55x / 23-30x / 16-22x;
philosophers-5 25-58x / 26-28x / 18-20x; philosophers-8 116-125x / 18x /
12x (frontrun's random walk deadlocks there and waits out its timeouts).
dmabufsim's own rates are stable within ~5%: abba 15.2-15.7k / 9.7-10.0k /
6.4k executions/s, counter-3 19.2-19.6k / 11.0k / 8.0k, philosophers-5
11.0k / 5.2k / 3.6k, philosophers-8 7.8-8.0k / 3.8k / 2.5k. Optimal DPOR's
executions cost more, but philosophers 3/4/5 exhaust in 49 / 225 / 961 of
them (classic DPOR 595 / 6,877 / not within 5 s).

The ``floor`` columns run the cheapest explorer any greenlet-based design
could have (``_FloorWalk``: pooled greenlets, a seeded random choice at each
of the scenario's scheduling points, no model, no locks, no trace, no replay
log, no checkers, no result) on the same thread and point counts. On
counter-3 it manages ~135k executions/s: 101x frontrun in a run where
frontrun was fast, 387x where it was slow. At the fast end 100x *is* the
floor, leaving nothing above bare greenlets for a Kernel, four kthreads,
lockdep's held-lock tracking, the trace digest, the replay log, the
checkers and the result. A dmabufsim execution costs ~52 us there.

Measured 2026-12-07 (CPU time, best of interleaved rounds, on a machine at
load 4-14, so wall-clock rates were useless): random walk / floor on
counter-3 9.0-9.2x before the booted lockdep copy, the shared Config, the
inline uniform draw and the cheap Execution, 7.7-7.8x after; philosophers-5
7.4-7.7x -> 6.6-6.8x; optimal DPOR / random walk on ordered philosophers
8 and 10: 2.4-2.6x either way (the targets are <= 3x and <= 2x). What stands
between: a Kernel that runs one thread doing nothing costs ~40 us of CPU
(3x the floor's whole counter-3 execution), of which ~5 us is reseeding the
Mersenne Twister per execution (random walk R1: the schedules, so the
digests, depend on it) and the rest is spread thin over the set-up, the
extensions' per-execution state and end checks and the result, each 1-8 us
and each several times cheaper in a tight loop than after the greenlet
switches of a real execution (cold caches); optimal DPOR's extra cost is
its own bookkeeping, about half of its execution, spread the same way.

Measured 2026-12-07 (CPU time, best of 6 interleaved pairs per
process, the code before and after alternating in 3 rounds; load 5-20):
optimal DPOR / random walk on ordered philosophers 8 2.40x -> 2.27x (odpor
641 -> 597 us an execution, random 263-267 us), most of it the wakeup-tree
insertion's dependence scans (``_after``: 11.0 -> 8.2 us a call over the
1,939 calls of one n = 8 proof, ~7.6 an execution). An odpor execution's
own work is now about half of it: the analysis of the positions not
replayed (vector clocks, races, the walk down the wakeup tree, the
sleep-set test; ~25%) and the choices and events of every step (~20%);
none of it grows with the replayed prefix. Random walk / floor unchanged:
counter-3 7.75x and philosophers-5 6.2x at load 5 (8.7x / 7.3x at load
17). The proofs met their targets with room to spare (CPU / wall at load
17): n = 5 30 executions 0.02 / 0.13 s, 6 62 0.04 / 0.27 s, 7 126 0.10 /
0.64 s (target 3 s), 8 254 0.20 / 1.23 s (target 15 s), 10 1,022 1.06 /
7.4 s.

Measured 2026-12-07, session 5 (CPU time, best of interleaved runs; this
bench's code on the library before and after in one sitting, load 11-20):
one Kernel per phase, reset between executions (runtime R13, the lifetime,
fence and isolation checkers resetting their state in place), and fewer
calls per execution (the uniform draw inline after blocks and exits, exit
and summary paths, the reseed without random.py's wrapper). The
``floor_cost_table`` (random walk / floor): counter-3 116 -> 86 us,
8.5x -> 6.4x; philosophers-5 253 -> 173 us, 8.4x -> 5.9x (target 3x:
missed). A Kernel that runs one thread doing nothing went 49-55 -> 35 us.
Optimal DPOR on ordered philosophers 8: 714 -> 592 us an execution, but
the random walk fell as much (307 -> 258 us), so the ratio stays 2.3x
(n = 10: 2.1-2.2x; target 2x: missed). What remains is spread thin: in
the random walk, ~220 Python calls per counter-3 execution against the
floor's ~30 (spawn and exit paths, the extensions' end checks, the result,
the watchdog); in optimal DPOR, a strategy call per choice, forced step
and trace event (~95 per execution of n = 8) and the analysis of the ~15
new positions.

Measured 2026-12-08 (the library before and after, loaded side by side in
one process and interleaved, best of 4 rounds; CPU time, load 16-25, so
the ratios move ~10% from run to run): fewer calls per execution, the same
schedules and digests -- the lock's operation words computed once per
process, the event words looked up by subscript, one ``len`` per choice,
odpor's dependence scans by membership test and its enabled set by a
comprehension. Python calls per execution (cProfile, deterministic):
counter-3 222 -> 202, philosophers-5 572 -> 495, ordered philosophers 8
random 891 -> 765, optimal DPOR 2,364 -> 1,996. CPU time moved within the
noise: creating a mutex ~9% cheaper (50 per execution: 88.7 -> 80.4 us),
a scheduling point ~1%; over five such runs random walk / floor on
counter-3 7.1-7.8x before and after, philosophers-5 6.1-6.9x before and
6.4-6.9x after, optimal DPOR / random walk on ordered philosophers 8
2.45-2.75x before and 2.55-2.9x after: no change this machine can
measure. Both targets are still missed. A random-walk execution of a scenario that does
nothing costs ~24 us (the Mersenne Twister's reseed alone ~4 us: random
walk R1, which every pinned digest depends on), and each thread that only
starts and exits ~4 us against the floor's ~0.5 us; no single function
holds more than a few per cent of either.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from greenlet import greenlet

import dmabufsim as ds
from dmabufsim.explore import DPOR, OptimalDPOR, explore

N_SIM = 1000  #: executions per dmabufsim throughput measurement
N_FR = 120  #: executions per frontrun measurement
TARGET = 100.0  #: the target: at least 100x frontrun's executions per second
QUIET: dict[str, Any] = {"shrink_findings": False, "check_replay": False, "confirm_cycles": False,
                         "coverage": False, "stop_on_first": False}


# ------------------------------------------------------------------ dmabufsim scenarios

def _two(a: ds.Mutex, b: ds.Mutex) -> None:
    with a, b:
        pass


def sim_abba(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_two, a, b, name="t1")
    k.spawn(_two, b, a, name="t2")


def sim_counter(k: ds.Kernel) -> None:
    box = {"n": 0}

    def inc() -> None:
        k.point("load", 10_000, False)
        v = box["n"]
        k.point("store", 10_000, True)
        box["n"] = v + 1

    for i in range(3):
        k.spawn(inc, name=f"inc{i}")

    def check() -> None:
        if box["n"] != 3:
            k.report("assertion", "lost update", signature="lost-update")

    k.at_exit.append(check)


def sim_philosophers(n: int) -> Callable[[ds.Kernel], None]:
    def dine(k: ds.Kernel) -> None:
        forks = [ds.Mutex(f"fork{i}") for i in range(n)]
        for i in range(n):
            k.spawn(_two, forks[i], forks[(i + 1) % n], name=f"phil{i}")

    return dine


def sim_ordered_philosophers(n: int) -> Callable[[ds.Kernel], None]:
    """``n`` philosophers taking the lower-numbered fork first: no deadlock in any schedule."""

    def dine(k: ds.Kernel) -> None:
        forks = [ds.Mutex(f"fork{i}") for i in range(n)]
        for i in range(n):
            a, b = i, (i + 1) % n
            k.spawn(_two, forks[min(a, b)], forks[max(a, b)], name=f"phil{i}")

    return dine


# ------------------------------------------------------------------ plain Python equivalents

class _Locks:
    def __init__(self, n: int) -> None:
        self.locks = [threading.Lock() for _ in range(n)]
        self.v = 0


def _py_pair(i: int, j: int) -> Callable[[_Locks], None]:
    def w(s: _Locks) -> None:
        with s.locks[i], s.locks[j]:
            pass

    return w


def _py_inc(s: _Locks) -> None:
    t = s.v
    s.v = t + 1


PY: dict[str, tuple[Callable[[], _Locks], list[Callable[[_Locks], None]]]] = {
    "abba": (lambda: _Locks(2), [_py_pair(0, 1), _py_pair(1, 0)]),
    "counter-3": (lambda: _Locks(0), [_py_inc] * 3),
    "philosophers-5": (lambda: _Locks(5), [_py_pair(i, (i + 1) % 5) for i in range(5)]),
    "philosophers-8": (lambda: _Locks(8), [_py_pair(i, (i + 1) % 8) for i in range(8)]),
}
SIM: dict[str, Callable[[ds.Kernel], None]] = {
    "abba": sim_abba, "counter-3": sim_counter,
    "philosophers-5": sim_philosophers(5), "philosophers-8": sim_philosophers(8),
}


def _frontrun() -> Any:
    path = os.environ.get("FRONTRUN_PATH", "/tmp/frontrun_site")
    if os.path.isdir(path) and path not in sys.path:
        sys.path.insert(0, path)
    try:
        import frontrun
        from frontrun._cooperative import patch_locks
    except ImportError:
        return None
    patch_locks()  # what `frontrun pytest` does: cooperative threading primitives
    # Warm up: frontrun's first exploration in a process runs at a fraction of its later
    # speed (its tracing machinery starts up), which made the first scenario measured
    # (abba) look 10-20x slower than it is.
    fr = frontrun
    for strategy in ("random", "dpor"):
        _fr_rate(fr, "counter-3", strategy)
    return fr


def _fr_rate(fr: Any, name: str, strategy: str) -> float:
    setup, workers = PY[name]
    t0 = time.perf_counter()
    if strategy == "dpor":
        r = fr.explore(setup=setup, workers=workers, invariant=lambda s: True, strategy="dpor",
                       stop_on_first=False, max_executions=N_FR, deadlock_timeout=0.5, total_timeout=15)
    else:
        r = fr.explore(setup=setup, workers=workers, invariant=lambda s: True, strategy="random",
                       max_attempts=N_FR, seed=1, deadlock_timeout=0.5)
    dt = time.perf_counter() - t0
    return max(1, int(r.num_explored)) / dt


def _threading_rate(name: str) -> float:
    setup, workers = PY[name]
    if name.startswith("philosophers") or name == "abba":
        workers = [_py_pair(0, 1)] * len(workers)  # same lock traffic, deadlock-free under real threads
    t0 = time.perf_counter()
    n = 200
    for _ in range(n):
        s = setup()
        ts = [threading.Thread(target=w, args=(s,)) for w in workers]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return n / (time.perf_counter() - t0)


#: Per scenario: (threads, scheduling points per thread) of its dmabufsim version
#: (a mutex lock or unlock, a load or a store: one point each; the scenario thread's spawns).
SHAPE: dict[str, tuple[int, int]] = {"abba": (2, 4), "counter-3": (3, 2), "philosophers-5": (5, 4),
                                     "philosophers-8": (8, 4)}


class _FloorWalk:
    """The floor of any greenlet-based explorer: pooled greenlets, a random walk, nothing else.

    One execution: a scenario greenlet spawns the threads (a point each), every
    thread takes its points; at each point with two or more runnable threads a
    seeded random choice, and a switch when it picks another. No model, no
    locks (so no blocking), no trace, no replay log, no checkers, no result.
    """

    def __init__(self) -> None:
        self.rng = random.Random(1)
        self.idle: list[greenlet] = []
        self.run: list[greenlet] = []
        self.hub: greenlet = greenlet.getcurrent()

    def point(self) -> None:
        run = self.run
        if len(run) > 1:
            nxt = run[int(self.rng.random() * len(run))]
            if nxt is not greenlet.getcurrent():
                nxt.switch()

    def _worker(self) -> None:
        me = greenlet.getcurrent()
        while True:
            me.body()
            self.run.remove(me)
            self.idle.append(me)
            self.hub.switch()

    def _start(self, body: Callable[[], None]) -> None:
        g = self.idle.pop() if self.idle else greenlet(self._worker)
        g.parent = self.hub
        g.body = body
        self.run.append(g)

    def execution(self, threads: int, points: int) -> None:
        def thread() -> None:
            for _ in range(points):
                self.point()

        def scenario() -> None:
            for _ in range(threads):
                self._start(thread)
                self.point()

        self.hub = greenlet.getcurrent()
        self._start(scenario)
        run, rng = self.run, self.rng
        while run:
            run[int(rng.random() * len(run))].switch()


def _floor_rate(name: str) -> float:
    walk = _FloorWalk()
    threads, points = SHAPE[name]
    for _ in range(100):
        walk.execution(threads, points)
    n = 5 * N_SIM
    t0 = time.perf_counter()
    for _ in range(n):
        walk.execution(threads, points)
    return n / (time.perf_counter() - t0)


def _sim_rate(name: str, strategy: str) -> float:
    t0 = time.perf_counter()
    rep = explore(SIM[name], strategy, budget=N_SIM, kernel_options={"lockdep": False}, **QUIET)
    return rep.executions / (time.perf_counter() - t0)


def _first(name: str, strategy: str, **kw: Any) -> tuple[str, str]:
    t0 = time.perf_counter()
    rep = explore(SIM[name], strategy, budget=20_000, time_budget=1.5, kernel_options={"lockdep": False},
                  shrink_findings=False, check_replay=False, confirm_cycles=False, coverage=False, **kw)
    dt = time.perf_counter() - t0
    if rep.findings:
        return f"{rep.executions:,}", f"{dt * 1000:.1f} ms"
    return f"none in {rep.executions:,}", f"{dt:.1f} s"


def main() -> None:
    fr = _frontrun()
    base = "frontrun 0.7.0" if fr is not None else "plain threading (frontrun not importable)"
    print(f"baseline: {base}")
    print(f"{'scenario':16} {'sim random/s':>13} {'sim dpor/s':>11} {'sim odpor/s':>12} {'base random/s':>14} "
          f"{'base dpor/s':>12} {'ratio random':>13} {'ratio dpor':>11} {'ratio odpor':>12} {'floor/s':>10} "
          f"{'floor ratio':>12}")
    met: list[str] = []
    missed: list[str] = []
    for name in SIM:
        sr, sd, so = _sim_rate(name, "random"), _sim_rate(name, "dpor"), _sim_rate(name, "odpor")
        if fr is not None:
            br, bd = _fr_rate(fr, name, "random"), _fr_rate(fr, name, "dpor")
        else:
            br = bd = _threading_rate(name)
        fl = _floor_rate(name)
        print(f"{name:16} {sr:13,.0f} {sd:11,.0f} {so:12,.0f} {br:14,.1f} {bd:12,.1f} {sr / br:12,.0f}x "
              f"{sd / bd:10,.0f}x {so / bd:11,.0f}x {fl:10,.0f} {fl / br:11,.0f}x")
        if fr is not None:
            for col, r in (("random", sr / br), ("dpor", sd / bd), ("odpor", so / bd)):
                (met if r >= TARGET else missed).append(f"{name} {col} {r:,.0f}x")
    if fr is not None:
        print(f"target >= {TARGET:.0f}x frontrun: met for {', '.join(met) or 'none'}; "
              f"missed for {', '.join(missed) or 'none'}")
    print()
    print("executions / wall time to the first finding (lockdep off: the deadlock or lost update itself)")
    print(f"{'scenario':16} " + " ".join(f"{s:>24}" for s in ("random", "pct(d=3)", "dfs", "dpor", "dpor(pb=2)",
                                                                  "odpor")))
    for name in SIM:
        cells = [_first(name, "random"), _first(name, "pct"), _first(name, "dfs"), _first(name, "dpor"),
                 _first(name, "dpor", preemption_bound=2), _first(name, "odpor")]
        print(f"{name:16} " + " ".join(f"{a + ' / ' + b:>24}" for a, b in cells))
    print()
    print("executions to exhaust the whole space (no bound; lockdep off)")
    for n in (3, 4, 5):
        cells = []
        for strat in (DPOR(), OptimalDPOR()):
            t0 = time.perf_counter()
            rep = explore(sim_philosophers(n), strat, budget=50_000, time_budget=5, stop_on_first=False,
                          kernel_options={"lockdep": False}, shrink_findings=False, check_replay=False,
                          confirm_cycles=False, coverage=False)
            dt = time.perf_counter() - t0
            extra = (f", {strat.sleep_blocked:,} sleep-set blocked" if isinstance(strat, DPOR)
                     else f", {strat.redundant} redundant")
            done = "exhausted" if rep.phases[0].exhausted else "NOT exhausted"
            cells.append(f"{strat.name} {rep.executions:,} ({done}{extra}, {dt:.2f} s)")
        print(f"philosophers-{n}: " + "; ".join(cells))
    print()
    print("lockdep-guided confirmation (lockdep on: cycle report, then the concrete deadlock)")
    for n in (5, 8):
        t0 = time.perf_counter()
        rep = explore(SIM[f"philosophers-{n}"], "random", budget=10, expected=("circular-locking",))
        dt = time.perf_counter() - t0
        c = rep.findings[0].confirmation
        ok = c is not None and c.confirmed
        print(f"philosophers-{n}: cycle of {len(rep.findings[0].finding.details['chain'])} classes, "
              f"{'confirmed' if ok else 'NOT confirmed'} in {c.executions if c else 0} guided execution(s); "
              f"whole explore() {dt * 1000:.1f} ms")
    floor_cost_table()
    odpor_cost_table()
    lockdep_cost_table()
    proofs_table()
    claims_table()


#: The targets: optimal DPOR's cost per execution against a random walk's on the same
#: scenario, and the wall time of the proof that ordered philosophers never deadlock.
ODPOR_COST_TARGET = 2.0
PROOF_TARGETS = {7: 3.0, 8: 15.0}
#: Wall-clock cap of one proof (the machine is shared: a slow run says "not within").
PROOF_CAP = 120.0


#: The target: a random-walk execution costs at most this many times the floor's (``_FloorWalk``).
FLOOR_COST_TARGET = 3.0


def _per_execution(scenario: Callable[[ds.Kernel], None], strategy: Any, budget: int) -> float:
    """CPU seconds per execution (the machine is shared: wall time measures the neighbours)."""
    t0 = time.process_time()
    rep = explore(scenario, strategy, budget=budget, kernel_options={"lockdep": False}, **QUIET)
    return (time.process_time() - t0) / rep.executions


def _floor_per_execution(name: str, n: int = 5000) -> float:
    walk = _FloorWalk()
    threads, points = SHAPE[name]
    for _ in range(100):
        walk.execution(threads, points)
    t0 = time.process_time()
    for _ in range(n):
        walk.execution(threads, points)
    return (time.process_time() - t0) / n


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def floor_cost_table() -> None:
    """CPU time per random-walk execution against the floor's (``_FloorWalk``), interleaved, best of 5."""
    print()
    print(f"random walk cost per execution against the greenlet floor (CPU time, lockdep off; best of 5 "
          f"interleaved runs; target <= {FLOOR_COST_TARGET:.0f}x; {_load()})")
    print(f"{'scenario':26} {'random us/exec':>15} {'floor us/exec':>14} {'ratio':>7}")
    for name in ("counter-3", "philosophers-5"):
        rnd, flo = [], []
        for _ in range(5):
            rnd.append(_per_execution(SIM[name], "random", N_SIM))
            flo.append(_floor_per_execution(name))
        r, f = min(rnd), min(flo)
        verdict = "met" if r / f <= FLOOR_COST_TARGET else "MISSED"
        print(f"{name:26} {r * 1e6:15,.1f} {f * 1e6:14,.1f} {r / f:6.2f}x  {verdict}")
    print(f"({_load()})")


def odpor_cost_table() -> None:
    """CPU time per execution of optimal DPOR and of the random walk, interleaved, best of 3."""
    print()
    print(f"optimal DPOR cost per execution against the random walk (CPU time, lockdep off; best of 3 "
          f"interleaved runs of up to 1,000 executions; target <= {ODPOR_COST_TARGET:.0f}x; {_load()})")
    print(f"{'scenario':26} {'random us/exec':>15} {'odpor us/exec':>14} {'ratio':>7}")
    for n in (8, 10):  # 254 and 1,022 executions exhaust them
        scen = sim_ordered_philosophers(n)
        rnd, opt = [], []
        for _ in range(3):
            rnd.append(_per_execution(scen, "random", 1000))
            opt.append(_per_execution(scen, OptimalDPOR(), 1000))
        r, o = min(rnd), min(opt)
        verdict = "met" if o / r <= ODPOR_COST_TARGET else "MISSED"
        print(f"{f'ordered-philosophers-{n}':26} {r * 1e6:15,.0f} {o * 1e6:14,.0f} {o / r:6.2f}x  {verdict}")


def lockdep_cost_table() -> None:
    """What lockdep adds to a short execution that starts from a fresh graph (a replay, a
    shrink step, ``Kernel.run``): the booted copy of the primed graph (priming R4) against
    priming in place, per execution of counter-3, best of 5 interleaved runs of 500."""
    from dmabufsim.locking.lockdep_graph import LockGraph

    def per_exec(opts: Callable[[], dict[str, Any]]) -> float:
        t0 = time.perf_counter()
        for i in range(500):
            ds.Kernel(seed=i, **opts()).run(sim_counter)
        return (time.perf_counter() - t0) / 500

    rows: dict[str, list[float]] = {"lockdep off": [], "booted copy": [], "primed in place": []}
    for _ in range(5):
        rows["lockdep off"].append(per_exec(lambda: {"lockdep": False}))
        rows["booted copy"].append(per_exec(dict))
        rows["primed in place"].append(per_exec(lambda: {"options": {"lockdep_graph": LockGraph()}}))
    off = min(rows["lockdep off"])
    print()
    print("lockdep on a fresh graph, counter-3 Kernel.run (us per execution; ratio to lockdep off)")
    for name, ts in rows.items():
        print(f"{name:16} {min(ts) * 1e6:8,.0f} {min(ts) / off:6.2f}x")


def promela_philosophers(n: int) -> str:
    """The ordered philosophers in Promela: a fork is a bit, taking it an atomic test-and-set."""
    lines = [f"bit fork[{n}];", "", "proctype phil(byte lo; byte hi) {",
             "    atomic { fork[lo] == 0 -> fork[lo] = 1 };",
             "    atomic { fork[hi] == 0 -> fork[hi] = 1 };",
             "    fork[hi] = 0;", "    fork[lo] = 0", "}", "", "init {", "    atomic {"]
    for i in range(n):
        a, b = i, (i + 1) % n
        lines.append(f"        run phil({min(a, b)}, {max(a, b)});")
    lines += ["    }", "}", ""]
    return "\n".join(lines)


def spin_proof(n: int) -> str:
    """SPIN's exhaustive safety run (invalid end states: deadlock) of :func:`promela_philosophers`,
    timed including ``spin -a`` and the C compile of ``pan``; "" when spin or gcc is missing."""
    spin, cc = shutil.which("spin"), shutil.which("gcc") or shutil.which("cc")
    if spin is None or cc is None:
        return ""
    version = subprocess.run([spin, "-V"], capture_output=True, text=True).stdout.strip().split("--")[0].strip()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "phil.pml"), "w") as fh:
            fh.write(promela_philosophers(n))
        t0 = time.perf_counter()
        subprocess.run([spin, "-a", "phil.pml"], cwd=d, check=True, capture_output=True)
        subprocess.run([cc, "-O2", "-DSAFETY", "-o", "pan", "pan.c"], cwd=d, check=True, capture_output=True)
        out = subprocess.run(["./pan", "-m100000"], cwd=d, check=True, capture_output=True, text=True).stdout
        dt = time.perf_counter() - t0
    errors = next((ln.split("errors:")[1].strip() for ln in out.splitlines() if "errors:" in ln), "?")
    stored = next((ln.split()[0] for ln in out.splitlines() if "states, stored" in ln), "?")
    return f"{version}: {dt:.2f} s ({stored} states, errors: {errors})"


def proofs_table() -> None:
    """Ordered philosophers proved deadlock-free by optimal DPOR (every Mazurkiewicz trace),
    with SPIN's exhaustive run of the same model as the anchor where spin is installed."""
    print()
    print("proofs: ordered philosophers, every schedule (odpor, no bound, lockdep off)")
    for n in (5, 6, 7, 8, 10):
        strat = OptimalDPOR()
        t0 = time.perf_counter()
        rep = explore(sim_ordered_philosophers(n), strat, budget=1_000_000, time_budget=PROOF_CAP,
                      kernel_options={"lockdep": False}, **QUIET)
        dt = time.perf_counter() - t0
        done = "proved clean" if strat.complete and not rep.findings else "NOT exhausted"
        target = PROOF_TARGETS.get(n)
        aim = (f"; target <= {target:.0f} s: {'met' if strat.complete and dt <= target else 'MISSED'}"
               if target is not None else "")
        anchor = spin_proof(n)
        print(f"ordered-philosophers-{n}: {done} in {rep.executions:,} executions, {dt:.2f} s "
              f"({dt / rep.executions * 1e6:,.0f} us/exec){aim}"
              f"{'; ' + anchor if anchor else '; spin not installed (no anchor)'}")


def _claim_first(row: Any, strategy: str, **kw: Any) -> str:
    """Executions and wall time until an explorer strategy shows the row's first expected bug."""
    t0 = time.perf_counter()
    rep = explore(row.scenario, strategy, budget=5_000, time_budget=CLAIM_SECONDS,
                  kernel_options=dict(row.kernel_options), shrink_findings=False, check_replay=False,
                  confirm_cycles=False, coverage=False, stop_on_first=True, **kw)
    dt = time.perf_counter() - t0
    wanted = row.expected.error_kinds
    hit = [f for f in rep.findings if f.finding.kind in wanted]
    if hit:
        # PCT numbers its calibration run -1: that run is an execution too.
        return f"{max(hit[0].execution + 1, 1):,} / {dt * 1000:.0f} ms"
    return f"none in {rep.executions:,}"


def claims_table() -> None:
    """Per catalog row that expects a bug: executions / wall time to it, per strategy."""
    from dmabufsim.scenarios import discover

    rows = [r for r in discover().rows if r.scenario is not None and r.expected is not None
            and r.expected.error_kinds and not r.same_as]
    print()
    print(f"claim scenarios: executions / wall time to the first expected bug (each run capped at {CLAIM_SECONDS} s)")
    print(f"{'row':34} " + " ".join(f"{s:>20}" for s in ("random", "pct(d=3)", "dpor(pb=2)")))
    for row in rows:
        cells = [_claim_first(row, "random"), _claim_first(row, "pct"),
                 _claim_first(row, "dpor", preemption_bound=2)]
        print(f"{row.key:34} " + " ".join(f"{c:>20}" for c in cells))


#: Wall-clock cap of one strategy on one claim row in the claims table.
CLAIM_SECONDS = 1.0


if __name__ == "__main__":
    main()
