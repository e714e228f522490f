"""``--strategy dpor`` deepens its preemption bound (dpor R7) and every clean run names its guarantee (report R3)."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.cli import main
from dmabufsim.explore import DPOR, DeepeningDPOR, Guarantee, OptimalDPOR, explore
from dmabufsim.explore.explorer import run_job
from dmabufsim.explore.report import Assurance, PhaseResult, assurance_of

from .scenarios import NO_LOCKDEP, VAR, clean, make_counter, two_blocks

_QUIET: dict[str, Any] = {
    "kernel_options": NO_LOCKDEP, "shrink_findings": False, "confirm_cycles": False, "coverage": False,
}


def noisy_counter(k: ds.Kernel) -> None:
    """A lost update that needs one preemption, next to three threads racing on another variable:
    the noise gives a bound-2 search many two-preemption subtrees to explore first."""
    box = {"n": 0}

    def inc() -> None:
        k.point("load", VAR, False)
        v = box["n"]
        k.point("store", VAR, True)
        box["n"] = v + 1

    def noise() -> None:
        for _ in range(3):
            k.point("noise", VAR + 1, True)

    k.spawn(inc, name="inc0")
    k.spawn(inc, name="inc1")
    for i in range(3):
        k.spawn(noise, name=f"noise{i}")

    def check() -> None:
        if box["n"] != 2:
            k.report("assertion", "lost update", details={"n": box["n"]}, signature="lost-update",
                     rule="test: every increment counts")

    k.at_exit.append(check)


class _Recording(DeepeningDPOR):
    """Records the preemptions of every execution it ends."""

    def __init__(self, max_bound: int | None = None) -> None:
        super().__init__(max_bound)
        self.preemptions: list[int] = []

    def end_execution(self, ex: ds.Execution) -> None:
        self.preemptions.append(ex.preemptions)
        super().end_execution(ex)


class _RecordingDPOR(DPOR):
    def __init__(self, bound: int | None = None) -> None:
        super().__init__(bound)
        self.preemptions: list[int] = []

    def end_execution(self, ex: ds.Execution) -> None:
        self.preemptions.append(ex.preemptions)
        super().end_execution(ex)


def test_a_one_preemption_bug_is_found_at_bound_one_before_any_bound_two_work() -> None:
    strat = _Recording()
    rep = explore(noisy_counter, strat, budget=5000, **_QUIET)
    (f,) = rep.findings
    assert f.kind == "assertion" and f.signature == "lost-update"
    assert f.strategy == "dpor(preemption_bound=1)"
    assert strat.levels == [12, 61]  # bound 0 finished in 12 executions, found at the 61st of bound 1
    assert rep.executions == 73
    assert max(strat.preemptions) == 1  # no execution with two preemptions ran
    assert strat.preemptions[:12] == [0] * 12
    # A single bound-2 search spends its budget in two-preemption subtrees first.
    bounded = _RecordingDPOR(2)
    old = explore(noisy_counter, bounded, budget=5000, **_QUIET)
    assert old.kinds() == ["assertion"] and old.executions == 403
    assert bounded.preemptions.count(2) > 300


def test_deepening_is_deterministic() -> None:
    a = explore(noisy_counter, "dpor", budget=5000, **_QUIET)
    b = explore(noisy_counter, "dpor", budget=5000, **_QUIET)
    assert [(f.signature, f.token, f.execution) for f in a.findings] == [
        (f.signature, f.token, f.execution) for f in b.findings
    ]


def test_an_explicit_bound_deepens_up_to_it_and_says_so() -> None:
    strat = DeepeningDPOR(1)
    rep = explore(clean, strat, budget=10_000, **_QUIET)
    assert strat.levels == [6, 72]
    assert rep.verdict == "exhausted" and rep.bound == "preemption bound 1"
    assert rep.assurance == Assurance(Guarantee.BOUNDED, "dpor", 78, bound=1)
    assert rep.assurance.describe() == "exhausted up to 1 preemption (dpor, 78 executions)"
    assert rep.exit_code == 0


def test_without_a_bound_deepening_ends_with_the_unbounded_search_and_proves() -> None:
    strat = DeepeningDPOR()
    rep = explore(clean, strat, budget=10_000, **_QUIET)
    assert strat.levels == [6, 72, 378, 126]  # bounds 0, 1, 2, then unbounded DPOR with sleep sets
    assert rep.verdict == "exhausted" and rep.bound == "unbounded"
    assert rep.assurance is not None and rep.assurance.guarantee is Guarantee.PROVED
    assert rep.assurance.describe() == "proved: all schedules of this configuration (dpor, 582 executions, unbounded)"


def test_a_bound_that_cuts_nothing_ends_the_deepening_proved() -> None:
    def one_thread(k: ds.Kernel) -> None:
        def w() -> None:
            for _ in range(3):
                k.point("work", VAR, True)

        k.spawn(w, name="w")

    strat = DeepeningDPOR(5)
    rep = explore(one_thread, strat, budget=100, **_QUIET)
    assert strat.levels == [1]
    assert rep.bound == "unbounded"
    assert rep.assurance is not None and rep.assurance.proved


def test_the_budget_ending_a_level_keeps_the_bound_finished_before_it() -> None:
    rep = explore(clean, "dpor", budget=100, **_QUIET)  # bound 0 (6) and 1 (72), then 22 of bound 2
    assert rep.verdict == "inconclusive" and rep.exit_code == 3
    assert rep.assurance == Assurance(Guarantee.BOUNDED, "dpor", 100, bound=1)
    assert rep.verdict_line().endswith("; exhausted up to 1 preemption (dpor, 100 executions)")
    assert "guarantee: exhausted up to 1 preemption (dpor, 100 executions)" in rep.summary()


def test_checkpoint_resumes_inside_a_level(tmp_path: Any) -> None:
    path = str(tmp_path / "ck.pickle")
    full = explore(clean, "dpor", budget=10_000, checkpoint=None, **_QUIET)
    part = explore(clean, "dpor", budget=40, checkpoint=path, **_QUIET)  # stops inside bound 1
    assert part.assurance == Assurance(Guarantee.BOUNDED, "dpor", 40, bound=0)
    rest = explore(clean, "dpor", budget=10_000, checkpoint=path, resume=True, **_QUIET)
    assert rest.executions == full.executions == 582
    assert rest.assurance is not None and rest.assurance.proved
    with open(path, "rb") as fh:
        saved = pickle.load(fh)
    assert [name for name, _, _ in saved["strategies"]] == ["DeepeningDPOR"]


def test_a_job_whose_root_share_lies_beyond_the_bound_is_cut_not_proved() -> None:
    """The first decision preempts the spawning thread: at bound 0 job 1 of 2 owns nothing there.
    Its bounded search must count that as a cut (it used to end 'exhausted' with nothing cut)."""
    strat = DPOR(0)
    strat.split(1, 2)
    run_job(make_counter(2, 2), [(strat, 100)], job=1, jobs=2, stop_on_first=False, coverage=False,
            kernel_options=NO_LOCKDEP)
    assert strat.complete and strat.cut and not strat.proved()


def test_deepening_with_two_jobs_finds_the_same_bug_at_the_same_bound() -> None:
    one = explore(noisy_counter, "dpor", budget=5000, **_QUIET)
    two = explore(noisy_counter, "dpor", budget=5000, jobs=2, **_QUIET)
    assert [f.strategy for f in one.findings] == [f.strategy for f in two.findings] == ["dpor(preemption_bound=1)"]


def test_two_jobs_prove_only_when_both_shares_are_proved() -> None:
    rep = explore(two_blocks, "dpor", budget=10_000, jobs=2, **_QUIET)
    assert rep.verdict == "exhausted"
    assert rep.assurance is not None and rep.assurance.guarantee is Guarantee.PROVED
    part = explore(two_blocks, "dpor", budget=5, jobs=2, **_QUIET)
    assert part.assurance is not None and part.assurance.guarantee is not Guarantee.PROVED


# ---------------------------------------------------------------- guarantees (report R3)


def test_optimal_dpor_proves_with_traces() -> None:
    rep = explore(clean, "odpor", budget=1000, **_QUIET)
    assert rep.assurance == Assurance(Guarantee.PROVED, "odpor", rep.executions, traces=True)
    assert rep.assurance.describe() == (
        f"proved: all schedules of this configuration (odpor, {rep.executions} Mazurkiewicz traces, unbounded)"
    )


def test_an_exhausted_search_that_dropped_a_wakeup_sequence_is_not_proved() -> None:
    class Dropping(OptimalDPOR):
        def dropped(self) -> int:
            return 2

    rep = explore(clean, Dropping(), budget=1000, **_QUIET)
    assert rep.verdict == "exhausted"
    assert rep.assurance is not None and rep.assurance.guarantee is Guarantee.SAMPLED
    assert rep.assurance.describe() == (
        f"{rep.executions} samples, nothing found (odpor()); odpor exhausted but dropped 2 wakeup sequence(s), "
        "so proves nothing"
    )


def test_sampling_strategies_only_sample_and_a_bug_has_no_guarantee() -> None:
    rep = explore(clean, "pct", budget=20, **_QUIET)
    assert rep.assurance == Assurance(Guarantee.SAMPLED, "pct", 20)
    bug = explore(make_counter(2, 2), "dpor", budget=100, **_QUIET)
    assert bug.verdict == "finding" and bug.assurance is None
    assert json.loads(bug.to_json_text())["guarantee"] is None


def test_the_portfolio_names_the_strongest_phase() -> None:
    rep = explore(clean, budget=2000, **_QUIET)
    assert rep.assurance is not None
    assert rep.assurance.guarantee is Guarantee.BOUNDED and rep.assurance.bound == 2
    assert rep.assurance.strategy == "dpor"


def test_nondeterminism_proves_nothing() -> None:
    phases = [PhaseResult("dpor()", executions=5, exhausted=True, proved=True)]
    assert assurance_of(phases, 5, "dpor", nondeterminism=True).guarantee is Guarantee.SAMPLED
    assert assurance_of(phases, 5, "dpor", nondeterminism=False).guarantee is Guarantee.PROVED


def test_guarantees_are_ordered_strongest_first() -> None:
    assert [g.value for g in sorted(Guarantee, key=lambda g: g.rank)] == ["proved", "bounded", "sampled"]


def test_assurance_round_trips_through_json() -> None:
    a = Assurance(Guarantee.BOUNDED, "dpor", 78, bound=1, note="x")
    assert Assurance.from_json(a.to_json()) == a


@pytest.mark.parametrize(("args", "guarantee"), [
    (["--strategy", "dpor"], "proved"),
    (["--strategy", "dpor", "--preemption-bound", "1"], "bounded"),
    (["--strategy", "random", "--budget", "10"], "sampled"),
])
def test_explore_json_and_text_carry_the_guarantee(
    tmp_path: Any, capsys: Any, args: list[str], guarantee: str
) -> None:
    f = tmp_path / "scen.py"
    f.write_text(
        "import dmabufsim as ds\n"
        "def clean(k):\n"
        "    m = ds.Mutex('m')\n"
        "    def w():\n"
        "        with m:\n"
        "            k.point('work', 10_000, True)\n"
        "    for i in range(2):\n"
        "        k.spawn(w, name=f'w{i}')\n"
    )
    main(["explore", f"{f}:clean", *args, "--json", "--no-shrink"])
    data = json.loads(capsys.readouterr().out)
    assert data["guarantee"] == guarantee and data["assurance"]["guarantee"] == guarantee
    main(["explore", f"{f}:clean", *args, "--no-shrink"])
    out = capsys.readouterr().out
    assert f"guarantee: {Assurance.from_json(data['assurance']).describe()}" in out


def test_the_phase_line_says_which_bound_finished() -> None:
    rep = explore(clean, "dpor", budget=100, **_QUIET)
    assert "  dpor(preemption_bound=2): 100 executions, " in rep.summary()
    assert "-, not exhausted (bound 1 finished)" in rep.summary()


@pytest.mark.parametrize("strategy", ["dpor", "icb", "dfs"])
def test_a_capped_value_choice_leaves_no_bound_finished(strategy: str) -> None:
    """dfs R2: a ``Kernel.random`` choice of more than VALUE_CAP values is cut; the values beyond the
    cap never ran, so no preemption bound is exhausted and nothing is proved."""

    def scenario(k: ds.Kernel) -> None:
        def w() -> None:
            k.random(20)
            k.point("work", VAR, True)

        k.spawn(w, name="a")
        k.spawn(w, name="b")

    kw = {"preemption_bound": 1} if strategy == "dfs" else {}
    rep = explore(scenario, strategy, budget=20_000, **kw, **_QUIET)
    assert rep.verdict == "exhausted"
    assert rep.assurance is not None and rep.assurance.guarantee is Guarantee.SAMPLED
    assert rep.phases[0].bound_reached == -1 and not rep.phases[0].proved
