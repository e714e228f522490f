"""DFS and DPOR cover small state spaces exactly; DPOR with fewer executions; the audit agrees."""

from __future__ import annotations

import pytest

from dmabufsim.explore import DFS, DPOR, ICB, audit, explore
from dmabufsim.explore.explorer import run_job

from .scenarios import NO_LOCKDEP, abba, brute_force_counter, make_counter, two_blocks


def _states(strategy: DFS | DPOR | ICB, scenario: object, budget: int = 50_000) -> tuple[set[object], int, bool]:
    run = run_job(scenario, [(strategy, budget)], stop_on_first=False, collect_states=True,  # type: ignore[arg-type]
                  coverage=False, kernel_options=NO_LOCKDEP)
    return {s[2] for s in run.states}, run.executions, strategy.complete


@pytest.mark.parametrize(("threads", "incs"), [(2, 1), (2, 2)])
def test_counter_final_values_match_brute_force(threads: int, incs: int) -> None:
    expected = brute_force_counter(threads, incs)
    scenario = make_counter(threads, incs)
    dfs_states, dfs_n, dfs_done = _states(DFS(), scenario)
    dpor_states, dpor_n, dpor_done = _states(DPOR(), scenario)
    assert dfs_done and dpor_done
    assert dfs_states == expected
    assert dpor_states == expected
    assert dpor_n < dfs_n


@pytest.mark.parametrize(("threads", "incs"), [(3, 1)])
def test_dpor_matches_brute_force_with_three_threads(threads: int, incs: int) -> None:
    # plain DFS needs tens of thousands of executions here; DPOR alone is checked against brute force
    states, _n, done = _states(DPOR(), make_counter(threads, incs))
    assert done
    assert states == brute_force_counter(threads, incs)


def test_two_threads_one_locked_block_reach_both_orders() -> None:
    for strat in (DFS(), DPOR()):
        states, _, done = _states(strat, two_blocks)
        assert done
        assert states == {("a", "b"), ("b", "a")}


def test_dpor_runs_far_fewer_executions_than_dfs_on_two_blocks() -> None:
    _, dfs_n, _ = _states(DFS(), two_blocks)
    _, dpor_n, _ = _states(DPOR(), two_blocks)
    assert dpor_n * 10 < dfs_n


@pytest.mark.parametrize("scenario", [two_blocks, make_counter(2, 2), abba])
def test_audit_dfs_and_dpor_agree(scenario: object) -> None:
    res = audit(scenario, kernel_options=NO_LOCKDEP)  # type: ignore[arg-type]
    assert res.exhausted
    assert res.ok, res.summary()
    assert res.summary().startswith("audit ok")
    assert res.dpor_executions < res.dfs_executions


def test_audit_reports_an_explorer_bug_when_dpor_misses_states() -> None:
    class BrokenDPOR(DPOR):
        def _add(self, i: int, p: int) -> None:  # never reverse a race: unsound on purpose
            return

    dfs_states, _, _ = _states(DFS(), make_counter(2, 1))
    broken, _, done = _states(BrokenDPOR(), make_counter(2, 1))
    assert done and broken < dfs_states


def test_exhausted_verdict_states_the_bound() -> None:
    rep = explore(make_counter(2, 1), "dpor", budget=1000, stop_on_first=False, kernel_options=NO_LOCKDEP,
                  expected=("assertion",))
    assert rep.verdict == "finding"
    rep = explore(two_blocks, "dpor", budget=1000, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "exhausted"
    assert rep.bound == "unbounded"
    assert rep.verdict_line().startswith("no finding, space exhausted: dpor(), unbounded, ")
    assert rep.exit_code == 0 and rep.ok
    rep = explore(two_blocks, "dpor", budget=1000, preemption_bound=0, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "exhausted"
    assert rep.bound == "preemption bound 0"


def test_dfs_preemption_bound_zero_misses_abba_and_says_so() -> None:
    rep = explore(abba, "dfs", budget=10_000, preemption_bound=0, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "exhausted"
    assert rep.bound == "preemption bound 0"
    rep = explore(abba, "dfs", budget=10_000, preemption_bound=1, kernel_options=NO_LOCKDEP)
    assert rep.kinds() == ["deadlock"]
    assert rep.findings[0].preemptions == 1


def test_icb_exhausts_without_bound_when_no_preemption_is_cut() -> None:
    strat = ICB(max_bound=10)
    states, _, done = _states(strat, two_blocks)
    assert done and not strat.cut
    assert strat.bound() == "unbounded (no preemption was cut)"
    assert states == {("a", "b"), ("b", "a")}


def test_dpor_with_bound_finds_abba_deadlock_with_one_preemption() -> None:
    rep = explore(abba, "dpor", budget=1000, preemption_bound=1, kernel_options=NO_LOCKDEP)
    assert rep.kinds() == ["deadlock"]
    f = rep.findings[0]
    assert f.finding.details["holding"] in ({"t1": ["A"], "t2": ["B"]}, {"t1": ["B"], "t2": ["A"]})
