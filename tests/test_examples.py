"""The README's example behaves as the README says."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import dmabufsim as ds
from dmabufsim.explore import explore

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_sequential_schedule_completes_but_lockdep_reports_the_inversion() -> None:
    abba = _load("abba")
    ex = ds.Kernel(strategy=ds.FirstStrategy()).run(abba.scenario)
    assert ex.outcome == "completed"
    assert [(f.kind, f.details["chain"]) for f in ex.findings] == [("circular-locking", ["A", "B"])]


def test_explore_confirms_a_concrete_deadlock_that_replays() -> None:
    abba = _load("abba")
    report = explore(abba.scenario, budget=50, seed=0)
    assert report.verdict == "finding"
    [cycle] = [f for f in report.findings if f.kind == "circular-locking"]
    conf = cycle.confirmation
    assert conf is not None and conf.confirmed and conf.chain == ("A", "B")
    again = ds.Kernel(replay=conf.token).run(abba.scenario)
    assert again.outcome == "deadlock"
    assert sorted(again.by_kind("deadlock")[0].details["waiting_for"].values()) == ["A", "B"]
    assert ds.Kernel(replay=cycle.token).run(abba.scenario).kinds == ["circular-locking"]
