"""An internal error is never reported as a finding in the user's code (kernel R6).

Before, ``explore --strategy dfs --preemption-bound -1`` reported the
strategy's own ``IndexError`` as an ``exception`` finding "in scenario", and
then blamed the scenario for nondeterminism when its replay differed.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import pytest

import dmabufsim as ds
from dmabufsim.cli import main
from dmabufsim.explore import explore
from dmabufsim.explore import job as job_mod
from dmabufsim.explore.cluster import connect
from dmabufsim.explore.dfs import DFS
from dmabufsim.kernel.strategy import RandomStrategy
from dmabufsim.kernel.thread import KThread, ThreadState
from tests.helpers import ABBA_AND_CLEAN, scenario_file

SCENARIO = ABBA_AND_CLEAN


def _clean(k: ds.Kernel) -> None:
    m = ds.Mutex("m")

    def w() -> None:
        with m:
            k.point("x", 999, True)
            k.random(3)

    for i in range(2):
        k.spawn(w, name=f"w{i}")


class _Broken(RandomStrategy):
    """A strategy that fails at its ``n``-th call of ``where``."""

    def __init__(self, where: str, n: int = 1) -> None:
        super().__init__(0)
        self.where, self.left = where, n

    def _tick(self, here: str) -> None:
        if here == self.where:
            self.left -= 1
            if self.left == 0:
                raise IndexError("list index out of range")

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        self._tick("next_thread")
        return super().next_thread(runnable, current)

    def next_u64(self, bound: int) -> int:
        self._tick("next_u64")
        return super().next_u64(bound)

    def describe(self) -> str:
        return f"broken({self.where})"


@pytest.mark.parametrize(("where", "n"), [("next_thread", 1), ("next_thread", 3), ("next_u64", 1)])
def test_a_failing_strategy_is_an_internal_error_not_a_finding(where: str, n: int) -> None:
    with pytest.raises(ds.SimulatorError, match=rf"^internal error in strategy broken\({where}\): IndexError: list "
                       r"index out of range \(a bug of the explorer, not of the scenario\)$"):
        ds.Kernel(strategy=_Broken(where, n)).run(_clean)


class _Chooser(RandomStrategy):
    """A strategy that breaks its contract: it picks a thread that is not runnable."""

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        t = super().next_thread(runnable, current)
        t.state = ThreadState.BLOCKED
        return t

    def describe(self) -> str:
        return "chooser"


def test_a_strategy_breaking_its_contract_is_an_internal_error() -> None:
    with pytest.raises(ds.SimulatorError, match=r"^internal error in strategy chooser: strategy random chose "
                       r"<KThread .*>, which is not runnable \(a bug of the explorer, not of the scenario\)$"):
        ds.Kernel(strategy=_Chooser(0)).run(_clean)


class _Refuser(RandomStrategy):
    def next_u64(self, bound: int) -> int:
        raise ds.UsageError("this strategy models no schedule-controlled values")


def test_a_strategy_refusing_the_scenario_is_the_users_error_as_raised() -> None:
    with pytest.raises(ds.UsageError, match=r"^this strategy models no schedule-controlled values$"):
        ds.Kernel(strategy=_Refuser(0)).run(_clean)


def test_the_scenarios_own_exception_is_still_a_finding() -> None:
    def scenario(k: ds.Kernel) -> None:
        def bad() -> None:
            k.random(2)
            [][0]

        k.spawn(bad, name="bad")

    ex = ds.Kernel(seed=1).run(scenario)
    assert [(f.kind, f.title) for f in ex.findings] == [("exception", "IndexError in bad: list index out of range")]


class _BrokenDFS(DFS):
    """A DFS whose bookkeeping breaks on its second choice (as a negative bound did before it was refused)."""

    calls = 0

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        self.calls += 1
        if self.calls == 2:
            raise IndexError("list index out of range")
        return super().next_thread(runnable, current)

    def describe(self) -> str:
        return "dfs(broken)"


def test_explore_surfaces_a_strategy_failure() -> None:
    with pytest.raises(ds.SimulatorError, match=r"^internal error in strategy dfs\(broken\): IndexError"):
        explore(_clean, _BrokenDFS(), budget=5)


_MAKE = job_mod.make_strategy


def _broken(name: str, **kw: object) -> _BrokenDFS:
    return _BrokenDFS()


def _break_workers(broken: bool) -> None:
    """On a worker: make (or unmake) the broken DFS the only strategy (the monkeypatch, there)."""
    job_mod.make_strategy = _broken if broken else _MAKE  # type: ignore[assignment]


def _file(tmp_path: pathlib.Path) -> str:
    return scenario_file(tmp_path)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_cli_prints_an_internal_error_in_one_line_exit_4(
    jobs: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A DFS whose bookkeeping breaks (what --preemption-bound -1 did before it was rejected).
    monkeypatch.setattr(job_mod, "make_strategy", _broken)
    client = connect(int(jobs)).client if jobs != "1" else None
    if client is not None:  # the jobs run on the workers of a local Dask cluster: break them there too
        client.run(_break_workers, True)
    try:
        code = main(["explore", f"{_file(tmp_path)}:clean", "--strategy", "dfs", "--no-progress", "--jobs", jobs])
    finally:
        if client is not None:
            client.run(_break_workers, False)
    assert code == 4
    c = capsys.readouterr()
    assert "exception" not in c.out and "NONDETERMINISM" not in c.out
    assert c.err == ("dmabufsim: internal error in strategy dfs(broken): IndexError: list index out of "
                     "range (a bug of the explorer, not of the scenario)\n")
