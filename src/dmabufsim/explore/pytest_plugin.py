"""A pytest plugin: explore a scenario inside a test, assert in one line.

Installing dmabufsim registers it with pytest (the ``pytest11`` entry
point ``dmabufsim``): every test run in that environment has the fixture
and the options, with no configuration (``-p no:dmabufsim`` turns it off;
do not also list it in ``pytest_plugins``, which would register the module
a second time). Then::

    def test_abba_deadlocks(explore_scenario):
        explore_scenario(abba, strategy="dpor", budget=500).assert_finds("deadlock")

    def test_clean_design(explore_scenario):
        explore_scenario(design, strategy="dpor", preemption_bound=2).assert_clean()

Rules:

* R1: ``assert_clean`` passes only on an *exhausted* search with no bug; an
  inconclusive run (budget spent, nothing found) fails with the amount
  searched -- a budget running out is never a pass.
* R1a: ``assert_proved`` passes only when no bug was found and the search
  reached the *proved* guarantee (every schedule of the configuration,
  report R4); a bounded exhaustion or a sample fails with the guarantee
  reached.
* R2: ``assert_finds(kind, **details)`` passes when a finding of ``kind``
  (whose details contain ``details``) was found -- or a lockdep cycle was
  confirmed as one (``assert_finds("deadlock")`` on ABBA: the search stops
  at the circular-locking report, and its confirmation is the deadlock;
  report R3); a failure message carries the whole report, replay tokens
  included.
* R3: the command-line options ``--dmabufsim-budget``, ``--dmabufsim-jobs``
  and ``--dmabufsim-seed`` (when the plugin is loaded as a plugin) override
  the defaults of every exploration in the run, never an explicit argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .explorer import ExploredFinding, Report, explore


class Explored:
    """A :class:`Report` with one-line assertions (R1, R2)."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def __getattr__(self, name: str) -> Any:
        return getattr(self.report, name)

    def assert_finds(self, kind: str, **details: Any) -> ExploredFinding:
        """Assert a finding of ``kind`` whose details include ``details``; return it (R2)."""
        for f in self.report.showed(kind):
            if all(f.finding.details.get(k) == v for k, v in details.items()):
                return f
        raise AssertionError(f"no {kind} finding{' with ' + repr(details) if details else ''}:\n"
                             f"{self.report.summary()}")

    def assert_clean(self) -> Report:
        """Assert an exhausted search with no unexpected bug (R1)."""
        rep = self.report
        if rep.verdict == "exhausted" and rep.ok:
            return rep
        if rep.verdict == "inconclusive":
            raise AssertionError(f"not a pass: {rep.verdict_line()}\n{rep.summary()}")
        raise AssertionError(f"expected a clean exhausted search, got {rep.verdict_line()}\n{rep.summary()}")

    def assert_proved(self) -> Report:
        """Assert no bug and every schedule of the configuration explored (R1a)."""
        rep = self.report
        a = rep.assurance
        if rep.ok and a is not None and a.proved:
            return rep
        got = a.describe() if a is not None else rep.verdict_line()
        raise AssertionError(f"not proved: {got}\n{rep.summary()}")

    def assert_verdict(self, verdict: str) -> Report:
        """Assert the verdict (``finding``, ``exhausted``, ``inconclusive``)."""
        if self.report.verdict != verdict:
            raise AssertionError(f"expected verdict {verdict}, got {self.report.verdict_line()}\n"
                                 f"{self.report.summary()}")
        return self.report


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("dmabufsim", "dmabufsim explorer")
    g.addoption("--dmabufsim-budget", type=int, default=None, help="default executions per exploration")
    g.addoption("--dmabufsim-jobs", type=int, default=None, help="default processes per exploration")
    g.addoption("--dmabufsim-seed", type=int, default=None, help="default seed of randomised strategies")


@pytest.fixture
def explore_scenario(request: pytest.FixtureRequest) -> Callable[..., Explored]:
    """``explore_scenario(scenario, **explore_kwargs) -> Explored`` (see the module docstring)."""
    defaults: dict[str, Any] = {}
    for opt, key in (("--dmabufsim-budget", "budget"), ("--dmabufsim-jobs", "jobs"), ("--dmabufsim-seed", "seed")):
        try:
            v = request.config.getoption(opt)
        except ValueError:  # the plugin's options are not registered (fixture imported into a conftest)
            v = None
        if v is not None:
            defaults[key] = v

    def run(scenario: Callable[..., Any], **kw: Any) -> Explored:
        return Explored(explore(scenario, **{**defaults, **kw}))

    return run
