"""The catalog under optimal DPOR: every step declares what it touches, no wakeup sequence is dropped.

A wakeup sequence is dropped (odpor R6) when the reduction believed two steps
independent and the execution showed otherwise: a read no point declares
(``kernel.accesses`` finds those), or an order virtual time forbids (odpor
R3: a reversal that needs the clock to advance while the first racing
thread can still run).
"""

from __future__ import annotations

from typing import Any

import pytest

from dmabufsim.explore import DPOR, OptimalDPOR
from dmabufsim.explore.explorer import run_job
from dmabufsim.scenarios import discover


def _rows() -> dict[str, Any]:
    return {r.key: r for r in discover().rows if r.scenario is not None and not r.same_as}


def _seen(run: Any) -> set[str]:
    return set(run.findings) | set(run.info)


@pytest.mark.parametrize("key", ["C3/wait-free-keep-sg", "C9/torn-down"])
def test_device_rows_drop_no_wakeup_sequence_and_find_what_classic_dpor_finds(key: str) -> None:
    """Before odpor R3's time rule these rows dropped 2 sequences each: a reversal that put an
    engine's post-sleep steps before a thread that could still run."""
    row = _rows()[key]
    odpor, dpor = OptimalDPOR(), DPOR()
    runs = [run_job(row.scenario, [(s, 2000)], stop_on_first=False, coverage=False,
                    kernel_options=dict(row.kernel_options)) for s in (odpor, dpor)]
    assert odpor.complete and dpor.complete
    assert odpor.deviations == 0 and odpor.redundant == 0
    assert _seen(runs[0]) == _seen(runs[1]) and runs[0].executions < runs[1].executions


@pytest.mark.parametrize("key", ["C10/unmap-under-resv", "C14/wait-free-keep-sg"])
def test_userptr_rows_run_no_redundant_execution(key: str) -> None:
    """A submission's lockless look at the object's binding used to be undeclared: optimal DPOR
    then reached a state where every runnable thread slept (a redundant execution)."""
    row = _rows()[key]
    odpor = OptimalDPOR()
    run_job(row.scenario, [(odpor, 100)], stop_on_first=False, coverage=False,
            kernel_options=dict(row.kernel_options))
    assert odpor.redundant == 0 and odpor.deviations == 0


@pytest.mark.slow
def test_the_checker_finds_nothing_under_systematic_search() -> None:
    """The undeclared-access mode over the schedules optimal and bounded DPOR pick (not only
    random walks), every row: nothing undeclared."""
    bad = []
    for key, row in _rows().items():
        opts = dict(row.kernel_options)
        opts["check_accesses"] = True
        for s in (OptimalDPOR(), DPOR(preemption_bound=2)):
            run = run_job(row.scenario, [(s, 40)], stop_on_first=False, coverage=False, kernel_options=opts)
            bad += [f"{key} {s.name}: {ef.finding.title}" for ef in run.findings.values()
                    if ef.finding.kind == "undeclared-access"]
    assert bad == []


@pytest.mark.slow
def test_no_catalog_row_drops_a_wakeup_sequence() -> None:
    """Every row, buggy and correct designs, a bounded odpor search each: nothing dropped."""
    bad = []
    for key, row in _rows().items():
        odpor = OptimalDPOR()
        run_job(row.scenario, [(odpor, 60)], stop_on_first=False, coverage=False,
                kernel_options=dict(row.kernel_options))
        if odpor.deviations:
            bad.append(f"{key}: {odpor.deviations} dropped")
    assert bad == []
