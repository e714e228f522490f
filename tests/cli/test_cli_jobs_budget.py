"""``explore --budget B --jobs N`` runs B executions in all, not B per job (parallel R6).

Before, ``--budget 1000 --jobs 2`` ran 2,000 executions of a systematic
strategy (each job took the whole budget for its part of the tree).
"""

from __future__ import annotations

import json
import pathlib

import pytest

from dmabufsim.cli import main
from dmabufsim.explore import explore
from dmabufsim.explore.explorer import _Run
from dmabufsim.explore.parallel import deal
from dmabufsim.explore.report import PhaseResult
from tests.unit.explore.scenarios import NO_LOCKDEP, make_counter

SCENARIO = '''
import dmabufsim as ds

def counter(k):
    box = {"n": 0}
    def inc():
        for _ in range(3):
            k.point("load", 10_000, False)
            v = box["n"]
            k.point("store", 10_000, True)
            box["n"] = v + 1
    for i in range(2):
        k.spawn(inc, name=f"inc{i}")
'''


def _explore_json(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    p = tmp_path / "sc.py"
    p.write_text(SCENARIO)
    rc = main(["explore", f"{p}:counter", "--json", "--no-shrink", *argv])
    assert rc == 3  # the budget ran out: inconclusive
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


@pytest.mark.parametrize("strategy", ["dpor", "dfs", "random", "portfolio"])
def test_the_budget_is_the_total_of_the_jobs(
    strategy: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _explore_json(tmp_path, capsys, "--strategy", strategy, "--budget", "40")
    two = _explore_json(tmp_path, capsys, "--strategy", strategy, "--budget", "40", "--jobs", "2")
    assert one["executions"] == two["executions"] == 40  # before: 80 with two jobs (dpor, dfs, portfolio)


def test_a_job_done_early_leaves_its_budget_to_the_others() -> None:
    # counter(2, 3): the root has two alternatives, so the third job's part of the tree is empty; its
    # share is dealt to the two others, which still stop at the total.
    rep = explore(make_counter(2, 3), "dpor", budget=90, jobs=3, stop_on_first=False, shrink_findings=False,
                  kernel_options=NO_LOCKDEP, confirm_cycles=False)
    assert rep.executions == 90 and rep.verdict == "finding" and not rep.phases[0].exhausted
    again = explore(make_counter(2, 3), "dpor", budget=90, jobs=3, stop_on_first=False, shrink_findings=False,
                    kernel_options=NO_LOCKDEP, confirm_cycles=False)
    assert [(f.signature, f.token, f.execution) for f in again.findings] == [
        (f.signature, f.token, f.execution) for f in rep.findings
    ]


def test_jobs_that_exhaust_their_parts_end_exhausted_within_the_total() -> None:
    full = explore(make_counter(2, 2), "dpor", budget=10_000, jobs=3, stop_on_first=False, shrink_findings=False,
                   kernel_options=NO_LOCKDEP, confirm_cycles=False)
    assert full.phases[0].exhausted
    n = full.executions  # every job's part of the deepening search (bounds 0, 1, 2, then unbounded)
    # 132 before the split node carried its sleep set into the unbounded level (DPOR R5); one process: 88.
    assert n == 99
    # A total of exactly n is enough: what a job leaves unused when its part is exhausted early is dealt
    # to the jobs that stopped at their budget, until every part is exhausted.
    rep = explore(make_counter(2, 2), "dpor", budget=n, jobs=3, stop_on_first=False, shrink_findings=False,
                  kernel_options=NO_LOCKDEP, confirm_cycles=False)
    assert rep.phases[0].exhausted and rep.executions == n
    short = explore(make_counter(2, 2), "dpor", budget=n - 4, jobs=3, stop_on_first=False, shrink_findings=False,
                    kernel_options=NO_LOCKDEP, confirm_cycles=False)
    assert short.executions == n - 4 and not short.phases[0].exhausted


def _run(reason: str, done: int, exhausted: bool) -> _Run:
    p = PhaseResult("dpor()")
    p.exhausted = exhausted
    return _Run(phases=[p], reason=reason, phase_done=done)


def test_deal_rounds() -> None:
    given = {0: 10, 1: 10, 2: 10}
    # Job 2 exhausted its part after 4: 6 are left, dealt 3/3 to the two jobs that stopped at their budget.
    runs = {0: _run("execution budget", 10, False), 1: _run("execution budget", 10, False),
            2: _run("space exhausted", 4, True)}
    assert deal(runs, given, 30, 0, True) == {0: 3, 1: 3}
    # An odd remainder goes to the lowest jobs first.
    runs[2] = _run("space exhausted", 5, True)
    assert deal(runs, given, 30, 0, True) == {0: 3, 1: 2}
    # Nothing left, nobody to take it, or a job stopped for another reason: no round.
    assert deal({j: _run("execution budget", 10, False) for j in range(3)}, given, 30, 0, True) == {}
    assert deal({j: _run("space exhausted", 3, True) for j in range(3)}, given, 30, 0, True) == {}
    found = {**runs, 1: _run("first finding", 2, False)}
    assert deal(found, given, 30, 0, True) == {}
    timed = {**runs, 0: _run("time budget", 7, False)}
    assert deal(timed, given, 30, 0, True) == {}
