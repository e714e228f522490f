"""Lipton reduction (``kernel/reduction.py``): the folded points change no terminal state and no finding.

Soundness is checked the way the audit checks DPOR: on random lock programs
with guarded and unguarded variables, thread-local steps and blocking-only
locks, plain DFS *without* reduction, DFS with it and optimal DPOR with it
reach exactly the same terminal states and findings. Optimal DPOR still
runs one execution per Mazurkiewicz trace with it on, and a declaration
that does not hold is reported, never silently reduced.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import DFS, DPOR, OptimalDPOR, explore
from dmabufsim.explore.explorer import run_job
from dmabufsim.scenarios.catalog import discover

from .test_odpor import Prog, mazurkiewicz_traces

VAR = 30_000
UNGUARDED = 2  # variable 2 is guarded by nothing; variables 0 and 1 by locks 0 and 1

#: ("cs", lock, accesses): lock, read/write the variable it guards, unlock;
#: ("cs2", a, b): lock a then b (an ABBA when another thread nests them the other way), write both;
#: ("r" | "w",): an access of the unguarded variable; ("think",): a thread-local step.
guarded_op = st.one_of(
    st.tuples(st.just("cs"), st.integers(0, 1), st.lists(st.sampled_from("rw"), min_size=1, max_size=2)),
    st.tuples(st.just("cs2"), st.integers(0, 1), st.integers(0, 1)).filter(lambda o: o[1] != o[2]),
    st.tuples(st.sampled_from(["r", "w"])),
    st.tuples(st.just("think")),
)
guarded_programs = st.lists(st.lists(guarded_op, min_size=1, max_size=3), min_size=2, max_size=2)


def guarded_scenario(programs: list[list[tuple[Any, ...]]], lock_cls: Any = ds.Mutex) -> Any:
    """Threads running the programs; every access is declared, so the final state is a function
    of the Mazurkiewicz trace (what DFS, DPOR and optimal DPOR must agree on)."""

    def scenario(k: ds.Kernel) -> None:
        locks = [lock_cls(f"m{i}") for i in range(2)]
        for i, lk in enumerate(locks):
            k.guard(VAR + i, lk)  # __guarded_by(m<i>)
            k.blocking_only(lk)
        mem = [0, 0, 0]
        seen: list[tuple[int, int]] = []

        def access(tid: int, rw: str, v: int, acc: int) -> int:
            if rw == "r":
                k.point("read", VAR + v, False)
                return acc * 3 + mem[v]
            k.point("write", VAR + v, True)
            mem[v] = tid * 10 + acc % 7 + 1
            return acc

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            acc = 0
            for o in prog:
                if o[0] == "cs":
                    with locks[o[1]]:
                        for rw in o[2]:
                            acc = access(tid, rw, o[1], acc)
                elif o[0] == "cs2":
                    with locks[o[1]], locks[o[2]]:
                        acc = access(tid, "w", o[1], acc)
                        acc = access(tid, "w", o[2], acc)
                elif o[0] == "think":
                    k.point("think", -1, False)
                else:
                    acc = access(tid, o[0], UNGUARDED, acc)
            seen.append((tid, acc))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (tuple(mem), tuple(sorted(seen)))

    return scenario


def _search(scenario: Any, strategy: Any, reduction: bool, budget: int = 2500, lockdep: bool = False) -> Any:
    strategy.reduction = reduction
    return run_job(scenario, [(strategy, budget)], stop_on_first=False, collect_states=True, coverage=False,
                   kernel_options={"lockdep": lockdep})


def _agree(programs: list[list[tuple[Any, ...]]], lock_cls: Any = ds.Mutex, lockdep: bool = False) -> None:
    sc = guarded_scenario(programs, lock_cls)
    dfs, rdfs, rodpor = DFS(), DFS(), OptimalDPOR()
    full = _search(sc, dfs, False, lockdep=lockdep)
    if not dfs.complete:
        return  # too large to enumerate without reduction
    reduced = _search(sc, rdfs, True, lockdep=lockdep)
    optimal = _search(sc, rodpor, True, lockdep=lockdep)
    rdpor = DPOR()
    classic = _search(sc, rdpor, True, lockdep=lockdep)
    assert rdfs.complete and rodpor.complete and rdpor.complete
    assert reduced.states == full.states
    assert optimal.states == full.states
    assert classic.states == full.states
    assert set(reduced.findings) == set(full.findings) == set(optimal.findings) == set(classic.findings)
    assert not any(s[1] and any("unguarded" in f for f in s[1]) for s in full.states)
    assert reduced.executions <= full.executions
    assert rodpor.redundant == 0 and rodpor.deviations == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guarded_programs)
def test_reduction_keeps_terminal_states_and_findings(programs: list[list[tuple[Any, ...]]]) -> None:
    """DFS without reduction = DFS, DPOR and optimal DPOR with it: terminal states (outcome,
    findings, memory, what each thread read) and the findings' signatures."""
    _agree(programs)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guarded_programs)
def test_reduction_keeps_findings_with_spinlocks_and_lockdep(programs: list[list[tuple[Any, ...]]]) -> None:
    """The same with spinlocks and lockdep on: the lockdep reports do not depend on the folding."""
    _agree(programs, ds.SpinLock, lockdep=True)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(guarded_op, min_size=1, max_size=2), min_size=3, max_size=3))
def test_reduction_keeps_terminal_states_of_three_threads(programs: list[list[tuple[Any, ...]]]) -> None:
    """The same agreement with three threads (DFS without reduction exhausts fewer of them)."""
    _agree(programs)


def test_abba_deadlock_and_lockdep_report_survive_the_reduction() -> None:
    programs = [[("cs2", 0, 1)], [("cs2", 1, 0)]]
    sc = guarded_scenario(programs)
    for reduction in (False, True):
        r = _search(sc, DFS(), reduction, lockdep=True)
        kinds = {sig.split(":")[0] for sig in r.findings}
        assert {"deadlock", "circular-locking"} <= kinds, (reduction, sorted(r.findings))


def test_critical_sections_fold_to_one_step_per_transaction() -> None:
    """Two threads, one locked read-modify-write each: without reduction DFS offers a choice at
    the read, the write and the unlock; with it the section runs from its lock to the next one."""
    sc = guarded_scenario([[("cs", 0, ["r", "w"])], [("cs", 0, ["r", "w"])]])
    full, reduced = _search(sc, DFS(), False), _search(sc, DFS(), True)
    assert full.states == reduced.states
    assert len(reduced.states) == 2  # who goes first
    assert reduced.executions < full.executions


@pytest.mark.parametrize("progs", [
    [[("w", 0)], [("r", 0)], [("r", 0)]],
    [[("r", 0), ("w", 0)]] * 3,
    [[("w", 0), ("w", 1)], [("w", 1)]],
])
def test_one_execution_per_trace_with_reduction_on(progs: list[Prog]) -> None:
    """Optimal DPOR with reduction on: one execution per Mazurkiewicz trace of the read/write
    program (the brute-force count of ``test_odpor``), thread-local steps between the accesses
    folded into them."""

    def scenario(k: ds.Kernel) -> None:
        mem = [0, 0]
        seen: list[tuple[int, int]] = []

        def run(tid: int, prog: Prog) -> None:
            acc = 0
            for op, var in prog:
                k.point("think", -1, False)  # folded
                if op == "r":
                    k.point("read", VAR + var, False)
                    acc = acc * 3 + mem[var]
                else:
                    k.point("write", VAR + var, True)
                    mem[var] = tid * 10 + acc % 7 + 1
                k.point("think", -1, False)  # folded
            seen.append((tid, acc))

        for i, p in enumerate(progs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (tuple(mem), tuple(sorted(seen)))

    odpor, dpor = OptimalDPOR(), DPOR()
    o, d = _search(scenario, odpor, True), _search(scenario, dpor, False)
    assert odpor.complete and dpor.complete
    assert o.executions == mazurkiewicz_traces(progs)
    assert odpor.redundant == 0 and odpor.deviations == 0
    assert o.states == d.states


def _unguarded(k: ds.Kernel) -> None:
    m = ds.Mutex("obj_lock")
    k.guard(VAR, m)

    def good() -> None:
        with m:
            k.point("write", VAR, True)

    def bad() -> None:
        k.point("write", VAR, True)  # planted: no lock

    k.spawn(good, name="good")
    k.spawn(bad, name="bad")


@pytest.mark.parametrize("reduction", [False, True])
def test_a_planted_access_without_its_lock_is_reported(reduction: bool) -> None:
    ex = ds.Kernel(seed=1, reduction=reduction, lockdep=False).run(_unguarded)
    found = [f for f in ex.findings if f.kind == "unguarded-access"]
    assert len(found) == 1
    f = found[0]
    assert f.title == f"write of #{VAR} without holding obj_lock, which guards it"
    assert f.severity == "error"
    assert f.threads[0].name == "bad"
    assert f.rule == "reduction L2: a guarded object is only accessed with its lock held"


def test_the_explorer_reports_the_planted_access() -> None:
    rep = explore(_unguarded, "odpor", budget=100, kernel_options={"lockdep": False})
    assert [f.finding.kind for f in rep.findings] == ["unguarded-access"]


@pytest.mark.parametrize(("how", "op"), [("trylock", "mutex_trylock"), ("is_locked", "mutex_is_locked"),
                                          ("lock_interruptible", "mutex_lock_interruptible")])
def test_testing_a_blocking_only_lock_is_reported(how: str, op: str) -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("fork")
        k.blocking_only(m)

        def t() -> None:
            r = getattr(m, how)()
            if how != "is_locked" and (how != "trylock" or r):
                m.unlock()

        k.spawn(t, name="t")

    ex = ds.Kernel(seed=0, reduction=True).run(scenario)
    assert [(f.kind, f.title) for f in ex.findings] == [
        ("unguarded-access", f"{op} on fork, which is declared blocking-only")]


def test_a_token_made_with_reduction_replays_without_it() -> None:
    """reduction L4: a folded point records the running thread as its choice."""
    sc = guarded_scenario([[("cs", 0, ["r", "w"]), ("think",)], [("w",), ("cs", 0, ["w"])]])
    strat = DFS()
    strat.new_execution()
    strat.new_execution()
    k = ds.Kernel(strategy=strat, reduction=True, lockdep=False, record_trace=True)
    strat.attach(k)
    ex = k.run(sc)
    again = ds.Kernel(replay=ex.token, lockdep=False, record_trace=True).run(sc)
    assert again.trace_digest == ex.trace_digest
    assert [e.op for e in again.events] == [e.op for e in ex.events]


@pytest.mark.parametrize("row", ["B1/ordered-mutexes", "C9/torn-down", "M4/prealloc"])
def test_proved_catalog_rows_reach_the_same_verdict_with_and_without_reduction(row: str) -> None:
    r = discover().get(row)
    reps = [explore(r.scenario, "odpor", budget=2000, stop_on_first=False, kernel_options=dict(r.kernel_options),
                    shrink_findings=False, reduction=red) for red in (False, True)]
    for rep in reps:
        assert rep.phases[0].proved, row
    off, on = reps
    assert off.verdict == on.verdict
    assert sorted(f.finding.signature for f in off.findings) == sorted(f.finding.signature for f in on.findings)
    assert on.executions <= off.executions


def test_folded_points_join_the_access_checkers_segment() -> None:
    """A folded point ends no segment (accesses A1): its event is one more declared access of
    the step it joined, and a proved row stays free of undeclared accesses with reduction on."""
    r = discover().get("C9/torn-down")
    rep = explore(r.scenario, "odpor", budget=100, stop_on_first=False, shrink_findings=False,
                  kernel_options={**dict(r.kernel_options), "check_accesses": True})
    assert rep.phases[0].proved
    assert not [f for f in rep.findings if f.finding.kind == "undeclared-access"]


PHILOSOPHERS = '''
import dmabufsim as ds


def ordered_philosophers(k):
    forks = [ds.Mutex(f"fork{i}") for i in range(3)]
    for f in forks:
        k.blocking_only(f)

    def eat(i):
        a, b = sorted((i, (i + 1) % 3))
        with forks[a], forks[b]:
            k.point("eat", 40_000 + i, True)

    for i in range(3):
        k.spawn(eat, i, name=f"phil{i}")
'''


def test_explore_no_reduction_explores_every_point(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``explore --no-reduction``: deepening DPOR (bounds 0, 1, 2, then unbounded) on three ordered
    philosophers runs 1,565 executions; with the releases of the blocking-only forks folded, 1,360
    (a sleeping thread wakes on any access of its whole step, folded release included, dpor R3);
    both exhaust it."""
    import json

    from dmabufsim.cli import main

    p = tmp_path / "phil.py"
    p.write_text(PHILOSOPHERS)
    base = ["explore", f"{p}:ordered_philosophers", "--strategy", "dpor", "--budget", "5000", "--json",
            "--no-progress"]
    runs = []
    for extra in ([], ["--no-reduction"]):
        assert main([*base, *extra]) == 0
        data = json.loads(capsys.readouterr().out)
        runs.append((data["verdict"], data["executions"]))
    assert runs == [("exhausted", 1360), ("exhausted", 1565)]


def test_a_checkpoint_resumes_only_as_it_was_made(tmp_path: Any) -> None:
    """A systematic search's stack depends on the reduction: a checkpoint made with it is refused
    by a run without it (explorer R9), and resumed by a run with it."""
    sc = guarded_scenario([[("cs", 0, ["r", "w"])], [("cs", 0, ["w"])]])
    ck = str(tmp_path / "ck")
    explore(sc, "dfs", budget=3, checkpoint=ck, kernel_options={"lockdep": False}, shrink_findings=False)
    with pytest.raises(ds.UsageError, match=r"was made with kernel options \{'lockdep': False\}, not "
                                             r"\{'lockdep': False, 'reduction': False\}"):
        explore(sc, "dfs", budget=3, checkpoint=ck, resume=True, kernel_options={"lockdep": False},
                reduction=False)
    rep = explore(sc, "dfs", budget=1000, checkpoint=ck, resume=True, kernel_options={"lockdep": False},
                  shrink_findings=False)
    assert rep.phases[0].exhausted


def test_a_checkpoint_of_a_search_without_reduction_is_refused_by_one_with_it() -> None:
    """A checkpoint from before the reduction (its identity names none) holds a stack of
    unreduced schedules: refused by a systematic search with reduction (explorer R9)."""
    from dmabufsim.explore.job import _refusal, checkpoint_identity, plan

    sc = guarded_scenario([[("cs", 0, ["w"])], [("w",)]])
    want = checkpoint_identity(sc, plan("dfs", 10), {}, True)
    assert want["reduction"] is True
    old = {k: v for k, v in want.items() if k != "reduction"}
    assert _refusal("ck", old, want) == (
        "checkpoint ck was made without reduction of its systematic search, this run is with "
        "(explore --no-reduction); start a new checkpoint or resume it as it was made")
    assert _refusal("ck", want, want) is None
    assert checkpoint_identity(sc, plan("random", 10), {}, True)["reduction"] is False


def _timed(k: ds.Kernel) -> None:
    m = ds.Mutex("m")
    k.guard(VAR, m)
    k.blocking_only(m)

    def w(i: int) -> None:
        for _ in range(2):
            with m:
                k.point("write", VAR, True)
            k.msleep(1 + i)  # a folded point, then a timer
            k.point("think", -1, False)

    for i in range(3):
        k.spawn(w, i, name=f"w{i}")


@pytest.mark.parametrize("seed", range(6))
def test_tokens_replay_without_reduction_with_early_timers(seed: int) -> None:
    """reduction L4 with runtime R8: a folded point still offers the early timer (recorded), then
    records the running thread; the token replays the same trace without reduction."""
    opts: dict[str, Any] = {"options": {"early_timers": True}, "lockdep": False}
    ex = ds.Kernel(seed=seed, reduction=True, **opts).run(_timed)
    assert ex.outcome == "completed" and not ex.findings
    again = ds.Kernel(replay=ex.token, **opts).run(_timed)
    assert again.trace_digest == ex.trace_digest
    assert again.choices == ex.choices


def test_a_thread_id_is_not_a_guarded_object() -> None:
    """``spawn`` and ``signal`` points name a thread id, which may equal a guarded object's id."""

    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        for oid in range(1, 8):
            if oid != m.oid:
                k.guard(oid, m)  # ids that are also the threads' ids below

        def w() -> None:
            k.point("think", -1, False)

        t = k.spawn(w, name="w")
        k.spawn(w, name="w2")
        k.send_signal(t)

    ex = ds.Kernel(seed=0, reduction=True, lockdep=False).run(scenario)
    assert list(ex.findings) == []


def test_the_jobs_on_a_cluster_search_as_the_one_process_does_with_and_without_reduction(tmp_path: Any) -> None:
    """``explore(reduction=False)`` reaches the workers' kernels: two jobs run the unreduced search
    (638 executions, as one process does), not the reduced one (45). A checkpoint made by a DFS split
    on two workers with reduction (one file, cluster C8) resumes on one worker only with it (explorer R9)."""
    sc = guarded_scenario([[("cs", 0, ["r", "w"])], [("cs", 0, ["w"])]])
    kw: dict[str, Any] = {"kernel_options": {"lockdep": False}, "shrink_findings": False, "stop_on_first": False}
    counts = {(jobs, red): explore(sc, "dfs", budget=1000, jobs=jobs, reduction=red, **kw).executions
              for jobs in (1, 2) for red in (True, False)}
    assert counts == {(1, True): 45, (1, False): 638, (2, True): 45, (2, False): 638}
    ck = str(tmp_path / "ck")
    part = explore(sc, "dfs", budget=10, jobs=2, checkpoint=ck, **kw)
    assert part.executions == 10 and not part.phases[0].exhausted
    with pytest.raises(ds.UsageError, match=r"^checkpoint .*/ck was made with kernel options "
                                             r"\{'lockdep': False\}, not \{'lockdep': False, 'reduction': False\}$"):
        explore(sc, "dfs", budget=1000, jobs=1, checkpoint=ck, resume=True, reduction=False, **kw)
    rest = explore(sc, "dfs", budget=1000, jobs=1, checkpoint=ck, resume=True, **kw)
    assert rest.jobs == 1 and rest.phases[0].exhausted and rest.executions == 45
