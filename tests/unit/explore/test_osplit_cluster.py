"""Optimal DPOR on a local Dask cluster of two workers, split dynamically (``cluster.py`` C9,
``osplit.py`` O1-O5): the verdict and the traces of one process."""

from __future__ import annotations

import os
import pathlib
import signal
import threading
import time
from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.explore import explore, osplit
from dmabufsim.explore.cluster import checkpoint_kind, connect

from .scenarios import NO_LOCKDEP, abba, make_counter, philosophers, two_blocks

QUIET: dict[str, Any] = {"stop_on_first": False, "shrink_findings": False, "confirm_cycles": False,
                         "check_replay": False, "kernel_options": NO_LOCKDEP}


@pytest.fixture
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 1, 2, 4 executions (the client deals them, O2): a hand-off after nearly every execution."""
    monkeypatch.setattr(osplit, "SLICE_FIRST", 1)
    monkeypatch.setattr(osplit, "SLICE_MAX", 4)


def _same_proof(one: ds.explore.Report, two: ds.explore.Report) -> None:
    assert two.phases[0].executions == one.executions  # O4: the distinct traces are one process's traces
    assert two.executions >= one.executions
    assert (two.verdict, two.phases[0].exhausted, two.phases[0].proved) == (
        one.verdict, one.phases[0].exhausted, one.phases[0].proved)
    assert sorted(f.signature for f in two.findings) == sorted(f.signature for f in one.findings)
    assert str(two.assurance) == str(one.assurance)


@pytest.mark.usefixtures("tiny_slices")
@pytest.mark.parametrize(("scenario", "traces"), [
    (make_counter(2, 2), 34), (make_counter(3, 1), 36), (philosophers(3), 7), (abba, 3), (two_blocks, 2),
], ids=["counter-2x2", "counter-3x1", "philosophers-3", "abba", "two-blocks"])
def test_odpor_on_two_workers_is_the_one_process_search(scenario: Any, traces: int) -> None:
    """C9: the pieces run as tasks explore every trace one process explores: the same distinct traces,
    findings, verdict and proof (each trace counted once, O4)."""
    one = explore(scenario, "odpor", budget=100_000, **QUIET)
    two = explore(scenario, "odpor", budget=100_000, jobs=2, **QUIET)
    assert one.executions == traces
    _same_proof(one, two)


def test_odpor_stops_on_the_first_finding_as_one_process_does(tiny_slices: None) -> None:
    """O5: with stop-on-first, the slices after the first that stopped in the round's order do not count."""
    kw = {**QUIET, "stop_on_first": True}
    one = explore(make_counter(2, 2), "odpor", budget=100_000, **kw)
    two = explore(make_counter(2, 2), "odpor", budget=100_000, jobs=2, **kw)
    assert one.verdict == two.verdict == "finding"
    assert [f.signature for f in two.findings] == [f.signature for f in one.findings] == ["lost-update"]
    assert two.reason == "first finding"


def test_an_odpor_checkpoint_resumes_on_a_cluster_of_another_size(tiny_slices: None, tmp_path: pathlib.Path) -> None:
    """C9: stopped by its budget on two workers, resumed on one with a larger budget: one process's proof."""
    ck = str(tmp_path / "ck")
    part = explore(make_counter(3, 1), "odpor", budget=20, jobs=2, checkpoint=ck, **QUIET)
    assert part.executions == 20 and not part.phases[0].exhausted
    assert checkpoint_kind(ck) == "odpor"
    rest = explore(make_counter(3, 1), "odpor", budget=100_000, jobs=1, checkpoint=ck, resume=True,
                   cluster=connect(1).address, **QUIET)
    whole = explore(make_counter(3, 1), "odpor", budget=100_000, jobs=2, **QUIET)
    one = explore(make_counter(3, 1), "odpor", budget=100_000, **QUIET)
    _same_proof(one, rest)
    assert rest.executions == whole.executions  # O2: the rounds are a function of the scenario and budget


def test_an_odpor_checkpoint_refuses_another_scenario(tmp_path: pathlib.Path) -> None:
    """Explorer R9 for a split optimal DPOR search's checkpoint (C9): one line, before anything runs."""
    ck = str(tmp_path / "ck")
    explore(make_counter(2, 2), "odpor", budget=100, jobs=2, checkpoint=ck, **QUIET)
    with pytest.raises(ds.UsageError, match=r"^checkpoint .*/ck belongs to another scenario: it was made for "
                                            r"make_counter\.<locals>\.counter\[2, 2\], not two_blocks$"):
        explore(two_blocks, "odpor", budget=100, jobs=2, checkpoint=ck, resume=True, **QUIET)


def test_a_killed_worker_changes_nothing_in_an_odpor_search() -> None:
    """C2, C9: a slice whose worker died reruns elsewhere from the same piece: the same proof and count."""
    scenario = make_counter(2, 4)
    calm = explore(scenario, "odpor", budget=1_000_000, jobs=2, **QUIET)
    eng = connect(2)
    pids = sorted(eng.client.run(os.getpid).values())
    got: list[ds.explore.Report] = []
    t = threading.Thread(target=lambda: got.append(explore(scenario, "odpor", budget=1_000_000, jobs=2,
                                                           **QUIET)))
    t.start()
    time.sleep(1.0)
    os.kill(pids[0], signal.SIGKILL)
    t.join(timeout=300)
    assert got, "the run did not finish"
    hit = got[0]
    assert (hit.executions, hit.phases[0].executions, hit.phases[0].proved) == (
        calm.executions, calm.phases[0].executions, calm.phases[0].proved)
    assert calm.phases[0].executions == 3334 and calm.phases[0].exhausted
    assert [(f.signature, f.execution) for f in hit.findings] == [(f.signature, f.execution) for f in calm.findings]
    eng.client.wait_for_workers(2, timeout=60)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if len(eng.client.run(os.getpid)) == 2:
                break
        except OSError:
            pass
        time.sleep(0.2)
