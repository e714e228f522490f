"""A Kernel reset for the next execution (runtime R13) runs the execution a new Kernel would.

The explorer runs every execution of a phase on one Kernel, reset between
them. Whatever one execution leaves behind -- threads, object ids, timers,
freed objects, fences something depended on, lockdep's held locks, the
checkers' counts, the scenario's exit checks -- must not reach the next one:
the same trace digest, findings, token, steps and outcome as on a new Kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.check.isolation import isolation_checker
from dmabufsim.dma import fence as fence_mod
from dmabufsim.explore import OptimalDPOR, RandomWalk, explore
from dmabufsim.kernel import runtime
from dmabufsim.kernel.lifetime import lifetimes


def _two(a: ds.Mutex, b: ds.Mutex) -> None:
    with a, b:
        pass


def _mixed(k: ds.Kernel) -> None:
    """Locks in both orders (lockdep, deadlocks), a lost update checked at exit, fences one of
    which may never signal, a timer, a freed object and a leaked one: every room's state."""
    a, b = ds.Mutex("A"), ds.Mutex("B")
    box = {"n": 0}
    tl = dma.FenceContext("ring", driver="gpu")
    f = tl.create()
    f.add_callback(lambda fence, cb: None)  # depended on: never-signalled unless someone signals it

    def inc() -> None:
        k.point("load", 7_000, False)
        v = box["n"]
        k.point("store", 7_000, True)
        box["n"] = v + 1
        if box["n"] == 2:
            f.signal()

    def sleeper() -> None:
        k.msleep(1)  # a timer
        freed = ds.Kref("freed", track=True)
        freed.put()  # freed: a later execution must not see its id as freed
        leaked = ds.Kref("leaked", track=True)
        leaked.get()  # never put: a leak at the end of a completed execution

    k.spawn(_two, a, b, name="t1")
    k.spawn(_two, b, a, name="t2")
    k.spawn(inc, name="inc0")
    k.spawn(inc, name="inc1")
    k.spawn(sleeper, name="sleeper")

    def check() -> None:
        if box["n"] != 2:
            k.report("assertion", "lost update", signature="lost-update")

    k.at_exit.append(check)


def _small(k: ds.Kernel) -> None:
    """Fewer threads and no fences: a reused Kernel's next scenario may be another one."""
    m = ds.Mutex("m")

    def w() -> None:
        with m:
            k.point("x", 99, True)

    k.spawn(w, name="w0")
    k.spawn(w, name="w1")


def _view(ex: ds.Execution) -> tuple[Any, ...]:
    return (ex.trace_digest, ex.token, ex.steps, ex.now, ex.outcome, ex.preemptions, ex.threads,
            [(f.kind, f.signature, f.title, f.details, f.report, f.step, f.threads, f.token) for f in ex.findings])


def _fresh_run(scenario: Callable[[ds.Kernel], None], seed: int, index: int, **kw: Any) -> ds.Execution:
    strat = RandomWalk(seed)
    strat.index = index
    return ds.Kernel(strategy=strat, **kw).run(scenario)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), runs=st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=2,
                                                 max_size=6))
def test_reused_kernel_runs_what_a_fresh_one_runs(seed: int, runs: list[tuple[int, bool]]) -> None:
    strat = RandomWalk(seed)
    k: ds.Kernel | None = None
    for index, small in runs:
        scenario = _small if small else _mixed
        strat.index = index
        if k is None:
            k = ds.Kernel(strategy=strat)
        else:
            k.reset()
        reused = k.run(scenario)
        strat.end_execution(reused)  # as the explorer does: the next execution reseeds
        assert _view(reused) == _view(_fresh_run(scenario, seed, index))


def test_reused_kernel_leaves_nothing_of_the_execution_before() -> None:
    strat = RandomWalk(1)
    k = ds.Kernel(strategy=strat)
    first = k.run(_mixed)
    # the first execution left findings, threads, timers, freed and live objects behind
    assert first.kinds == ["circular-locking", "leak", "fence-never-signalled", "assertion"]
    assert len(lifetimes(k).live) == 1 and len(lifetimes(k).freed) == 2 and k.freed_oids is not None
    kept = {name: k.ext[name] for name in ("lifetime", "dma_fence", "isolation")}
    k.reset()
    assert (k.steps, k.now, k.findings, k.threads, k.at_exit, k.ext, k.freed_oids) == (0, 0, [], [], [], {}, None)
    assert k.new_oid() == 1  # object ids start again (they name objects in reports and tokens)
    k.reset()
    second = k.run(_small)
    assert second.kinds == []
    assert lifetimes(k).live == {} and lifetimes(k).freed == {}
    assert fence_mod.depended_fences(k) == []
    chk = isolation_checker(k)
    assert chk is not None and chk.statistics() == {"checked": 0}
    # the extensions' state objects were reset in place (lockdep's is made anew: it has no
    # reset), and the exit checks run in registration order, each extension's own
    assert all(k.ext[name] is kept[name] for name in kept)
    owners = {"lockdep": k.lockdep, **kept}
    assert [c.__self__ for c in k.at_exit] == [owners[name] for name, _, _ in runtime._EXTENSIONS]


def test_reset_refuses_a_running_or_replaying_kernel_and_run_needs_it() -> None:
    k = ds.Kernel(seed=1)
    k.run(_small)
    with pytest.raises(ds.UsageError, match=r"a Kernel runs one execution; create a new Kernel \(or reset\(\) it\)"):
        k.run(_small)
    tok = ds.Kernel(seed=1).run(_small).token
    rk = ds.Kernel(replay=tok)
    rk.run(_small)
    with pytest.raises(ds.UsageError, match="a replaying Kernel cannot be reset: it rebuilds one execution"):
        rk.reset()

    def resets_itself(kk: ds.Kernel) -> None:
        kk.reset()

    ex = ds.Kernel(seed=1).run(resets_itself)
    assert ex.kinds == ["exception"]
    assert ex.findings[0].details == {"type": "UsageError", "message": "Kernel.reset() while its execution runs"}


def test_extension_without_reset_is_set_up_anew_and_keeps_its_place() -> None:
    made: list[int] = []
    order: list[str] = []

    def setup(k: ds.Kernel) -> None:
        made.append(len(made))
        state = made[-1]
        k.ext["test.plain"] = state
        k.at_exit.append(lambda: order.append(f"plain{state}"))

    runtime.register_extension("test.plain", setup)
    try:
        k = ds.Kernel(seed=0)

        def scenario(kk: ds.Kernel) -> None:
            kk.at_exit.append(lambda: order.append("scenario"))

        k.run(scenario)
        k.reset()
        k.run(scenario)
        assert made == [0, 1]  # a new state each execution
        assert order == ["plain0", "scenario", "plain1", "scenario"]  # before the scenario's, each time
    finally:
        runtime._EXTENSIONS[:] = [e for e in runtime._EXTENSIONS if e[0] != "test.plain"]


def test_explorer_findings_and_tokens_are_those_of_fresh_kernels() -> None:
    """The explorer's reused Kernel: every finding's token replays to its digest on a new one."""
    rep = explore(_mixed, "random", budget=60, stop_on_first=False, shrink_findings=False, check_replay=True,
                  confirm_cycles=False, coverage=False)
    assert rep.nondeterminism == []
    kinds = {ef.kind for ef in rep.findings}
    assert {"circular-locking", "leak"} <= kinds
    for ef in rep.findings:
        assert ef.replay_ok
        again = ds.Kernel(replay=ef.token).run(_mixed)
        assert again.trace_digest == ef.trace_digest


def test_optimal_dpor_on_a_reused_kernel_explores_the_same_traces() -> None:
    """Optimal DPOR's exhaustive search counts the same executions and terminal states."""
    def dine(k: ds.Kernel) -> None:
        forks = [ds.Mutex(f"fork{i}") for i in range(4)]
        for i in range(4):
            lo, hi = sorted((i, (i + 1) % 4))
            k.spawn(_two, forks[lo], forks[hi], name=f"phil{i}")

    strat = OptimalDPOR()
    rep = explore(dine, strat, budget=10_000, kernel_options={"lockdep": False}, stop_on_first=False,
                  shrink_findings=False, check_replay=False, confirm_cycles=False, coverage=False)
    assert strat.complete and rep.findings == [] and strat.deviations == 0 and strat.redundant == 0
    assert rep.executions == 14


def test_coverage_on_a_reused_kernel_is_that_of_fresh_kernels() -> None:
    """With coverage on (the default), the explorer's reused Kernel and its one Recorder per
    phase count the same lock-order edges, contexts and preemptions as fresh Kernels would."""
    from dmabufsim.explore.coverage import Coverage, Recorder

    rep = explore(_mixed, "random", budget=40, seed=5, stop_on_first=False, shrink_findings=False,
                  check_replay=False, confirm_cycles=False, coverage=True)
    cov = Coverage()
    kinds: set[str] = set()
    for i in range(40):
        strat = RandomWalk(5)
        strat.index = i
        k = ds.Kernel(strategy=Recorder(strat, cov))
        cov.attach(k)
        kinds.update(k.run(_mixed).kinds)
    assert rep.executions == 40
    assert (rep.coverage.edges, rep.coverage.contexts) == (cov.edges, cov.contexts)
    assert (rep.coverage.preemptions, rep.coverage.preemptions_in_critical) == (
        cov.preemptions, cov.preemptions_in_critical)
    assert cov.edges == {("A", "B"), ("B", "A"), ("dma_fence_map", "ring.fence_lock")}
    assert {ef.kind for ef in rep.findings} | {ef.kind for ef in rep.info} == kinds
