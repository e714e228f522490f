"""Each known bug is found within N executions by each strategy (Hypothesis's tests/quality idea).

N is about three times what was measured when the test was written, so a
regression in a strategy (or in the runtime's schedule space) shows here
first. ``None`` documents that a strategy is known not to find the bug in
that many executions (PCT depth 2 on five philosophers needs a preemption
in every philosopher; DPOR cannot reorder undeclared accesses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dmabufsim.explore import explore
from tests.unit.explore.scenarios import NO_LOCKDEP, abba, make_counter, ordering_bug, philosophers
from tests.unit.explore.test_interrupts import EARLY, device_completion

STRATEGIES: list[tuple[str, dict[str, Any]]] = [
    ("random", {}), ("pct", {}), ("dfs", {}), ("icb", {}), ("dpor", {}), ("dpor", {"preemption_bound": 2}),
]

#: (name, scenario, kernel options, finding kind, {strategy label: executions allowed})
KNOWN: list[tuple[str, Callable[..., Any], dict[str, Any], str, dict[str, int]]] = [
    ("abba", abba, NO_LOCKDEP, "deadlock",
     {"random": 10, "pct": 10, "dfs": 40, "icb": 20, "dpor": 20, "dpor/2": 20}),
    ("lost-update", make_counter(2, 2), NO_LOCKDEP, "assertion",
     {"random": 10, "pct": 10, "dfs": 10, "icb": 15, "dpor": 10, "dpor/2": 10}),
    ("lost-wakeup-irq", device_completion("check-then-register"), EARLY, "deadlock",
     {"random": 10, "pct": 15, "dfs": 10, "icb": 25, "dpor": 10, "dpor/2": 10}),
    ("philosophers-5", philosophers(5), NO_LOCKDEP, "deadlock",
     {"random": 150, "pct": 3500, "icb": 7000, "dpor": 4200, "dpor/2": 18000}),
]


def _label(name: str, kw: dict[str, Any]) -> str:
    return f"{name}/{kw['preemption_bound']}" if "preemption_bound" in kw else name


@pytest.mark.parametrize(("name", "scenario", "opts", "kind", "limits"), KNOWN, ids=[k[0] for k in KNOWN])
@pytest.mark.parametrize(("strategy", "kw"), STRATEGIES, ids=[_label(s, k) for s, k in STRATEGIES])
def test_known_bug_found_within_n_executions(
    name: str, scenario: Callable[..., Any], opts: dict[str, Any], kind: str, limits: dict[str, int],
    strategy: str, kw: dict[str, Any],
) -> None:
    limit = limits.get(_label(strategy, kw))
    if limit is None:
        pytest.skip(f"{strategy} is not expected to find {name} quickly (see the module docstring)")
    rep = explore(scenario, strategy, budget=limit, kernel_options=opts, shrink_findings=False,
                  check_replay=False, confirm_cycles=False, coverage=False, **kw)
    assert rep.verdict == "finding", rep.verdict_line()
    assert rep.kinds() == [kind]


def test_pct_finds_the_depth_two_ordering_bug_random_does_not() -> None:
    sc = ordering_bug(12)
    pct = explore(sc, "pct", depth=2, budget=400, kernel_options=NO_LOCKDEP, shrink_findings=False)
    assert pct.kinds() == ["assertion"]
    rnd = explore(sc, "random", budget=400, kernel_options=NO_LOCKDEP, shrink_findings=False)
    assert rnd.verdict == "inconclusive"


def test_guided_confirmation_finds_eight_philosophers_in_one_execution() -> None:
    rep = explore(philosophers(8), "random", budget=10, expected=("circular-locking",))
    (f,) = rep.findings
    assert f.confirmation is not None and f.confirmation.confirmed and f.confirmation.executions == 1
