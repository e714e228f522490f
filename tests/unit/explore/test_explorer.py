"""Verdicts, expectations, PCT vs random walk, shrinking, replay checks, jobs, interruption, checkpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.explore import PCT, RandomWalk, explore, shrink
from dmabufsim.explore.explorer import run_job
from dmabufsim.kernel.token import decode

from .scenarios import NO_LOCKDEP, abba, clean, make_counter, noisy_abba, nondeterministic, ordering_bug, philosophers


def test_budget_limited_run_without_finding_is_inconclusive_everywhere() -> None:
    rep = explore(clean, "random", budget=30, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "inconclusive"
    assert rep.reason == "execution budget"
    assert rep.executions == 30
    assert not rep.ok
    assert rep.exit_code == 3
    assert rep.verdict_line() == (
        f"inconclusive: no finding within budget (execution budget): random, 30 executions, {rep.elapsed:.2f} s"
        "; 30 samples, nothing found (random)"
    )
    data = json.loads(rep.to_json_text())
    assert data["verdict"] == "inconclusive" and data["ok"] is False and data["exit_code"] == 3
    assert data["guarantee"] == "sampled" and data["assurance"]["executions"] == 30
    assert "verdict: inconclusive" in rep.summary()


def test_time_budget_is_inconclusive_not_a_pass() -> None:
    rep = explore(clean, "dfs", budget=10**9, time_budget=0.0, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "inconclusive"
    assert rep.reason == "time budget"
    assert rep.exit_code == 3


def test_systematic_run_cut_by_the_execution_budget_is_inconclusive() -> None:
    rep = explore(clean, "dfs", budget=5, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "inconclusive"
    assert rep.executions == 5
    assert rep.phases[0].exhausted is False


def test_finding_carries_token_strategy_and_replays() -> None:
    rep = explore(abba, "random", budget=200, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "finding"
    assert rep.exit_code == 1
    (f,) = rep.findings
    assert f.kind == "deadlock"
    assert f.strategy == "random(seed=0)"
    assert f.replay_ok
    ex = ds.Kernel(replay=f.token, lockdep=False).run(abba)
    assert ex.outcome == "deadlock"
    assert [x.signature for x in ex.findings] == [f.signature]
    assert f"dmabufsim replay {f.token}" in rep.summary()


def test_expected_findings_do_not_fail_and_missing_ones_do() -> None:
    rep = explore(abba, "dpor", budget=500, expected=("deadlock",), kernel_options=NO_LOCKDEP)
    assert rep.verdict == "finding" and rep.ok and rep.exit_code == 0
    assert rep.findings[0].expected
    rep = explore(clean, "dpor", budget=5000, expected=("deadlock",), kernel_options=NO_LOCKDEP)
    assert rep.verdict == "exhausted"
    assert rep.missing_expected == ["deadlock"]
    assert not rep.ok and rep.exit_code == 1
    rep = explore(clean, "random", budget=5, expected=("deadlock",), kernel_options=NO_LOCKDEP)
    assert rep.exit_code == 3


def test_collect_all_deduplicates_by_signature_and_counts() -> None:
    rep = explore(abba, "random", budget=100, stop_on_first=False, shrink_findings=False, kernel_options=NO_LOCKDEP)
    assert rep.kinds() == ["deadlock", "deadlock"] or rep.kinds() == ["deadlock"]
    assert len({f.signature for f in rep.findings}) == len(rep.findings)
    assert sum(f.occurrences for f in rep.findings) > len(rep.findings)
    assert rep.executions == 100


def test_pct_finds_a_depth_two_bug_far_more_often_than_random_walk() -> None:
    scenario = ordering_bug(12)

    def hits(strategy: PCT | RandomWalk) -> int:
        run = run_job(scenario, [(strategy, 1500)], stop_on_first=False, coverage=False, kernel_options=NO_LOCKDEP)
        f = run.findings.get("ordering-bug")
        return f.occurrences if f is not None else 0

    pct = sum(hits(PCT(seed, depth=2)) for seed in range(2))
    rnd = sum(hits(RandomWalk(seed)) for seed in range(2))
    assert pct >= 10
    assert pct >= 10 * max(rnd, 1)


def test_shrinking_reduces_a_long_schedule_and_the_token_still_reproduces() -> None:
    scenario = noisy_abba(noise=4, steps=6)
    rep = explore(scenario, "random", budget=500, kernel_options=NO_LOCKDEP)
    (f,) = rep.findings
    assert f.shrunk
    assert f.original_preemptions > f.preemptions == 1
    assert len(decode(f.token)) < len(decode(f.original_token))
    ex = ds.Kernel(replay=f.token, lockdep=False).run(scenario)
    assert ex.outcome == "deadlock"
    assert ex.preemptions == 1
    assert ex.findings[0].signature == f.signature


def test_shrink_keeps_the_original_when_the_finding_does_not_reproduce() -> None:
    ex = ds.Kernel(seed=0, lockdep=False).run(clean)
    res = shrink(clean, list(ex.choices), "deadlock:nothing", lockdep=False)
    assert not res.shrunk
    assert res.choices == tuple(ex.choices)


def test_replay_divergence_is_reported_as_scenario_nondeterminism() -> None:
    rep = explore(nondeterministic, "random", budget=50, shrink_findings=False, kernel_options=NO_LOCKDEP)
    assert rep.findings
    assert rep.nondeterminism
    assert "uncontrolled nondeterminism" in rep.nondeterminism[0]
    assert "diverged at choice" in rep.nondeterminism[0]
    assert "first divergent step" in rep.nondeterminism[0]
    assert rep.exit_code == 1


def test_systematic_search_refuses_a_nondeterministic_scenario() -> None:
    rep = explore(nondeterministic, "dfs", budget=50, kernel_options=NO_LOCKDEP, stop_on_first=False)
    assert any("not deterministic" in m for m in rep.nondeterminism)
    assert rep.verdict != "exhausted"


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "dpor"])
def test_jobs_two_find_the_same_findings_as_jobs_one(strategy: str) -> None:
    kw: dict[str, Any] = {"budget": 300, "stop_on_first": False, "shrink_findings": False,
                          "kernel_options": NO_LOCKDEP, "seed": 3}
    one = explore(abba, strategy, jobs=1, **kw)
    two = explore(abba, strategy, jobs=2, **kw)
    assert {f.signature for f in one.findings} == {f.signature for f in two.findings}
    assert one.findings
    if strategy in ("random", "pct"):
        assert one.executions == two.executions
        assert [f.original_token for f in one.findings] == [f.original_token for f in two.findings]
    else:
        assert one.verdict == two.verdict


def test_dpor_split_among_jobs_is_exhaustive_too() -> None:
    one = explore(make_counter(2, 2), "dpor", budget=5000, stop_on_first=False, shrink_findings=False,
                  kernel_options=NO_LOCKDEP)
    two = explore(make_counter(2, 2), "dpor", budget=5000, stop_on_first=False, shrink_findings=False,
                  jobs=2, kernel_options=NO_LOCKDEP)
    assert one.phases[0].exhausted and two.phases[0].exhausted
    assert {f.signature for f in one.findings} == {f.signature for f in two.findings} == {"lost-update"}


def test_interrupted_run_keeps_and_prints_what_it_found() -> None:
    seen = []

    def progress(n: int, found: int, elapsed: float, name: str) -> None:
        seen.append(n)
        if n == 5:
            raise KeyboardInterrupt

    rep = explore(abba, "random", budget=1000, stop_on_first=False, progress=progress, kernel_options=NO_LOCKDEP)
    assert rep.reason == "interrupted"
    assert rep.executions == 5
    assert rep.findings and rep.verdict == "finding"
    assert "[deadlock]" in rep.summary()
    rep = explore(clean, "dfs", budget=1000, progress=progress, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "inconclusive" and rep.reason == "interrupted"


def test_checkpoint_and_resume_reach_the_same_exhausted_run(tmp_path: Any) -> None:
    path = str(tmp_path / "ck.pickle")
    full = explore(make_counter(2, 2), "dpor", budget=10_000, stop_on_first=False, shrink_findings=False,
                   kernel_options=NO_LOCKDEP)
    part = explore(make_counter(2, 2), "dpor", budget=3, stop_on_first=False, shrink_findings=False,
                   kernel_options=NO_LOCKDEP, checkpoint=path)
    assert part.verdict == "finding" or part.verdict == "inconclusive"
    assert part.executions == 3
    rest = explore(make_counter(2, 2), "dpor", budget=10_000, stop_on_first=False, shrink_findings=False,
                   kernel_options=NO_LOCKDEP, checkpoint=path, resume=True)
    assert rest.phases[0].exhausted
    assert rest.executions == full.executions
    assert {f.signature for f in rest.findings} == {f.signature for f in full.findings}


def test_portfolio_reports_which_strategy_found_each_finding() -> None:
    rep = explore(philosophers(3), budget=200, kernel_options=NO_LOCKDEP)
    assert rep.strategy == "portfolio"
    (f,) = rep.findings
    assert f.kind == "deadlock"
    assert f.strategy == "random(seed=0)"
    assert sorted(f.finding.details["holding"]) == ["phil0", "phil1", "phil2"]


def test_portfolio_without_finding_ends_with_bounded_dpor() -> None:
    rep = explore(clean, budget=2000, kernel_options=NO_LOCKDEP)
    assert [p.strategy.split("(")[0] for p in rep.phases] == ["random", "pct", "dpor"]
    assert rep.verdict == "exhausted"
    assert rep.bound == "preemption bound 2"


def test_coverage_counts_lock_order_edges_and_critical_preemptions() -> None:
    rep = explore(abba, "dpor", budget=500, stop_on_first=False, kernel_options=NO_LOCKDEP)
    assert rep.coverage.edges == {("A", "B"), ("B", "A")}
    assert rep.coverage.contexts == {("A", "process"), ("B", "process")}
    assert rep.coverage.preemptions_in_critical > 0


def test_jobs_report_progress_and_the_last_count_is_the_total() -> None:
    calls: list[tuple[int, int]] = []
    rep = explore(abba, "random", budget=200, jobs=2, stop_on_first=False, shrink_findings=False,
                  kernel_options=NO_LOCKDEP, progress=lambda n, found, el, name: calls.append((n, found)))
    assert calls
    assert calls[-1][0] == rep.executions == 200


def test_coverage_sees_pseudo_locks_and_irq_context() -> None:
    def scenario(k: ds.Kernel) -> None:
        lock = ds.SpinLock("dev_lock")
        reclaim = ds.LockdepMap("fs_reclaim")

        def irq() -> None:
            with lock:
                k.point("irq_work", 40_000, True)

        def proc() -> None:
            with reclaim:
                k.point("alloc", 40_001, True)
                lock.lock_irqsave()
                k.point("update", 40_000, True)
                lock.unlock_irqrestore()

        k.spawn(proc, name="proc")
        k.raise_irq(irq, name="dev_irq")
        k.raise_softirq(lambda: (lock.lock(), lock.unlock()), name="tasklet")

    rep = explore(scenario, "dpor", budget=200, stop_on_first=False)
    assert ("fs_reclaim", "dev_lock") in rep.coverage.edges
    assert ("dev_lock", "irq") in rep.coverage.contexts
    assert ("dev_lock", "softirq") in rep.coverage.contexts
    assert ("dev_lock", "process") in rep.coverage.contexts
    assert ("fs_reclaim", "process") in rep.coverage.contexts


def test_checkpoint_with_two_jobs_resumes_each_jobs_share(tmp_path: Any) -> None:
    path = str(tmp_path / "ck.pickle")
    scen = make_counter(2, 2)
    full = explore(scen, "dpor", budget=10_000, stop_on_first=False, shrink_findings=False, jobs=2,
                   kernel_options=NO_LOCKDEP)
    assert full.phases[0].exhausted
    part = explore(scen, "dpor", budget=3, stop_on_first=False, shrink_findings=False, jobs=2,
                   kernel_options=NO_LOCKDEP, checkpoint=path)
    assert part.executions == 3 and not part.phases[0].exhausted  # 2 + 1: the budget is the total (parallel R6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pickle.job0-of-2", "ck.pickle.job1-of-2"]
    # Resumed on a cluster of another size (one worker): the two jobs' shares go on (cluster C1).
    rest = explore(scen, "dpor", budget=10_000, stop_on_first=False, shrink_findings=False, jobs=1,
                   kernel_options=NO_LOCKDEP, checkpoint=path, resume=True)
    assert rest.phases[0].exhausted and rest.jobs == 2
    assert rest.executions == full.executions  # nothing run twice, nothing skipped
    assert {f.signature for f in rest.findings} == {f.signature for f in full.findings} == {"lost-update"}
    assert [f.token for f in rest.findings] == [f.token for f in full.findings]
    # Resuming a finished run finds every job's share exhausted at once.
    again = explore(scen, "dpor", budget=10_000, stop_on_first=False, shrink_findings=False, jobs=2,
                    kernel_options=NO_LOCKDEP, checkpoint=path, resume=True)
    assert again.executions == full.executions and again.phases[0].exhausted


def test_findings_already_held_are_reported_without_text_and_the_kept_one_has_it() -> None:
    """Explorer R2 + Kernel.wants_text: later occurrences of a held signature skip the
    report text and stacks; the finding the explorer keeps is the first, with both."""
    rep = explore(philosophers(3), "random", budget=30, stop_on_first=False, shrink_findings=False,
                  check_replay=False, confirm_cycles=False)
    cyc = [f for f in rep.findings if f.finding.kind == "circular-locking"]
    assert len(cyc) == 1 and cyc[0].occurrences > 1
    f = cyc[0].finding
    assert "Possible unsafe locking scenario" in f.report and f.threads[0].stack
    # The same execution under a kernel that already holds the signature: title only, no stacks.
    k = ds.Kernel(replay=cyc[0].token)
    k.known_findings = {f.signature}
    quiet = [g for g in k.run(philosophers(3)).findings if g.signature == f.signature]
    assert len(quiet) == 1 and quiet[0].report == quiet[0].title and quiet[0].threads[0].stack == ()
    assert quiet[0].details["chain"] == f.details["chain"] and quiet[0].details["edges"] == f.details["edges"]
    assert ds.Kernel(replay=cyc[0].token).run(philosophers(3)).findings[0].report == f.report


def test_deadlock_already_held_is_reported_without_stacks() -> None:
    ex = next(e for e in (ds.Kernel(seed=s, lockdep=False).run(abba) for s in range(50)) if e.outcome == "deadlock")
    full = ex.findings[0]
    assert any(t.stack for t in full.threads) and "      " in full.report
    k = ds.Kernel(replay=ex.token, lockdep=False)
    k.known_findings = {full.signature}
    quiet = k.run(abba).findings[0]
    assert quiet.signature == full.signature and quiet.details == full.details
    assert all(t.stack == () for t in quiet.threads) and quiet.report.count("\n") < full.report.count("\n")


def test_an_execution_of_held_findings_only_makes_no_token_until_asked() -> None:
    """Kernel.known_findings: when every finding is already held, the findings carry no
    token (nobody reads it); the execution still makes its token when asked, the same one."""
    seed = next(s for s in range(50) if ds.Kernel(seed=s, lockdep=False).run(abba).outcome == "deadlock")
    ex = ds.Kernel(seed=seed, lockdep=False).run(abba)
    assert ex.findings[0].token == ex.token and ex.token.startswith("dbs2.")
    k = ds.Kernel(seed=seed, lockdep=False)
    k.known_findings = {ex.findings[0].signature}
    quiet = k.run(abba)
    assert [f.signature for f in quiet.findings] == [ex.findings[0].signature]
    assert quiet.findings[0].token == "" and quiet._token is None
    assert quiet.token == ex.token and quiet.trace_digest == ex.trace_digest
    # a finding not held yet: every finding of the execution gets the token
    k = ds.Kernel(seed=seed, lockdep=False)
    k.known_findings = {"something-else"}
    assert [f.token for f in k.run(abba).findings] == [ex.token]


def test_the_explorer_keeps_a_token_for_every_finding_it_holds() -> None:
    rep = explore(philosophers(3), "random", budget=30, stop_on_first=False, shrink_findings=False,
                  check_replay=False, confirm_cycles=False, kernel_options=NO_LOCKDEP)
    assert rep.findings and all(f.occurrences > 1 for f in rep.findings)
    for f in rep.findings:
        assert f.finding.token == f.token and f.token.startswith("dbs2.")
        again = ds.Kernel(replay=f.token, lockdep=False).run(philosophers(3))
        assert again.findings[0].signature == f.finding.signature


@pytest.mark.parametrize("lockdep", [True, False])
def test_coverage_watches_acquisitions_not_the_trace(lockdep: bool) -> None:
    """Coverage is a lock observer: the trace stays unobserved (the execution runs, digest
    and all, as it would without coverage), and boot-time lockdep priming is not counted."""
    from dmabufsim.explore.coverage import Coverage

    cov = Coverage()
    k = ds.Kernel(seed=3, lockdep=lockdep)
    cov.attach(k)
    ex = k.run(abba)
    assert not k.trace._active
    assert ex.trace_digest == ds.Kernel(seed=3, lockdep=lockdep).run(abba).trace_digest
    assert cov.contexts == {("A", "process"), ("B", "process")}
    assert cov.edges <= {("A", "B"), ("B", "A")} and cov.edges


def test_an_exhausted_portfolio_is_named_as_such_with_the_phase_that_exhausted_it() -> None:
    rep = explore(clean, budget=2000, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "exhausted"
    assert rep.strategy == "portfolio"
    assert rep.exhausted_by == "dpor(preemption_bound=2)"
    assert rep.summary().splitlines()[0] == "explore tests.unit.explore.scenarios:clean with portfolio (jobs=1)"
    assert rep.verdict_line().startswith(
        f"no finding, space exhausted: dpor(preemption_bound=2) phase of portfolio, preemption bound 2, "
        f"{rep.executions:,} executions, exhausted (")
    assert rep.to_json()["exhausted_by"] == "dpor(preemption_bound=2)"


def test_an_exhausted_single_strategy_names_itself_with_its_parameters() -> None:
    rep = explore(clean, "dpor", budget=2000, kernel_options=NO_LOCKDEP)
    assert (rep.verdict, rep.strategy, rep.exhausted_by) == ("exhausted", "dpor()", "")
