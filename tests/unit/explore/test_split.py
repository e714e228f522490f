"""Dynamic splitting of DFS (``dfs.py`` R5, ``split.py`` D1-D6, ``cluster.py`` C8).

In-process tests run the piece tree with :func:`run_here` in any order; the
cluster tests use the local Dask cluster of two workers.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import random
import signal
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import explore
from dmabufsim.explore import split as split_mod
from dmabufsim.explore.cluster import connect
from dmabufsim.explore.dfs import DFS
from dmabufsim.explore.job import JobOptions, run_job
from dmabufsim.explore.split import Piece, run_here, run_piece

from .scenarios import NO_LOCKDEP, VAR, make_counter, two_blocks

QUIET: dict[str, Any] = {"stop_on_first": False, "shrink_findings": False, "confirm_cycles": False,
                         "kernel_options": NO_LOCKDEP}
ALL = JobOptions(stop_on_first=False, coverage=False, kernel_options=NO_LOCKDEP, collect_states=True)


def _findings(run: Any) -> list[tuple[str, str, int]]:
    return sorted((sig, f.token, f.execution) for sig, f in {**run.findings, **run.info}.items())


def test_a_handoff_gives_away_the_shallowest_untried_alternatives() -> None:
    """R5: after one execution of a 2x2 counter, the root decision (two threads) has the second thread
    untried: the piece owns exactly it, with nothing above; the search keeps the first."""
    d = DFS()
    run_job(make_counter(2, 2), [(d, 1)], ALL)
    piece = d.handoff()
    assert piece is not None
    assert [(n.idx, n.end) for n in piece._stack] == [(1, 2)]
    assert (d._stack[0].idx, d._stack[0].end) == (0, 1)
    assert piece.path() == (1,) and d.path()[0] == 0
    second = piece.handoff()
    assert second is None  # a piece that ran nothing has no decision with an untried alternative below it


def test_an_old_checkpointed_node_owns_all_its_alternatives() -> None:
    """A DFS node pickled before R5 (no ``end``) owns every alternative it has."""
    d = DFS()
    run_job(make_counter(2, 1), [(d, 1)], ALL)
    node = d._stack[0]
    state = node.__getstate__()[1]
    del state["end"]
    back = pickle.loads(pickle.dumps(node))
    back.__setstate__((None, state))
    assert back.end == len(node.options)


@settings(max_examples=8, deadline=None)
@given(
    shape=st.sampled_from([(2, 1), (2, 2), (1, 3)]),
    bound=st.sampled_from([None, 0, 1]),
    first=st.sampled_from([2, 5]),
    order=st.integers(min_value=0, max_value=1000),
)
def test_the_pieces_together_are_exactly_the_one_process_search(
    shape: tuple[int, int], bound: int | None, first: int, order: int
) -> None:
    """D2, D3, D6: whatever the slice sizes and the order the pieces run in, the union is the one-process
    search: the same count, terminal states, findings with the same tokens at the same indices, and the
    same exhausted / proved verdict (with a preemption bound: the same cut)."""
    scenario = make_counter(*shape)
    one = run_job(scenario, [(DFS(bound), 100_000)], ALL)
    rng = random.Random(order)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(split_mod, "SLICE_FIRST", first)
        mp.setattr(split_mod, "SLICE_MAX", 8 * first)
        run, segs = run_here(scenario, ALL, 100_000, bound, pick=lambda n: rng.randrange(n))
    assert run.executions == one.executions
    assert run.states == one.states
    assert _findings(run) == _findings(one)
    assert (run.phases[0].exhausted, run.phases[0].proved) == (one.phases[0].exhausted, one.phases[0].proved)
    assert run.phases[0].bound == one.phases[0].bound
    assert run.phases[0].bound_reached == one.phases[0].bound_reached
    if one.executions > 2 * first:
        assert len(segs) > 1


@pytest.fixture
def monkeypatch_slices(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_slices(first: int, most: int) -> None:
        monkeypatch.setattr(split_mod, "SLICE_FIRST", first)
        monkeypatch.setattr(split_mod, "SLICE_MAX", most)

    return set_slices


@pytest.mark.parametrize("budget", [7, 100, 1000])
def test_a_budget_gives_the_same_run_in_any_order(budget: int, monkeypatch_slices: Any) -> None:
    """D2, D4: the tree of pieces and their allotments do not depend on which ran first: a budget that
    stops the search gives the same executions and findings in any order, and spends all of it."""
    monkeypatch_slices(4, 32)
    scenario = make_counter(2, 2)
    runs = []
    for seed in (0, 1, 2):
        rng = random.Random(seed)
        runs.append(run_here(scenario, ALL, budget, pick=lambda n, r=rng: r.randrange(n))[0])
    assert all(r.executions == budget for r in runs)
    assert all(r.states == runs[0].states and _findings(r) == _findings(runs[0]) for r in runs)
    assert not any(r.phases[0].exhausted for r in runs)


def test_pieces_that_end_early_hand_their_allotment_to_the_others(monkeypatch_slices: Any) -> None:
    """D4: the two_blocks search (402 executions) with budget 400 spends exactly 400: what the pieces
    with small subtrees did not need is dealt to those that stopped at their allotment."""
    monkeypatch_slices(4, 16)
    run, segs = run_here(two_blocks, ALL, 400)
    assert run.executions == 400 and run.reason == "execution budget"
    assert len(segs) > 10
    whole, _ = run_here(two_blocks, ALL, 100_000)
    assert whole.executions == 402 and whole.phases[0].proved


def test_stop_on_first_keeps_the_one_process_finding_and_count(monkeypatch_slices: Any) -> None:
    """D5: the search stops at the first finding in the order of one process, whichever piece ran first."""
    monkeypatch_slices(1, 4)
    first = JobOptions(stop_on_first=True, coverage=False, kernel_options=NO_LOCKDEP)
    one = run_job(make_counter(2, 2), [(DFS(), 100_000)], first)
    for seed in (0, 3):
        rng = random.Random(seed)
        run, _ = run_here(make_counter(2, 2), first, 100_000, pick=lambda n, r=rng: r.randrange(n))
        assert run.reason == "first finding"
        assert run.executions == one.executions
        assert _findings(run) == _findings(one)


def test_a_slice_is_its_generations_length() -> None:
    """D2: 8 executions for the root, doubling per generation, at most 128."""
    assert [Piece(DFS(), 10**6, g).slice for g in (0, 1, 2, 4, 5, 40)] == [8, 16, 32, 128, 128, 128]
    seg = run_piece(make_counter(3, 1), Piece(DFS(), 10**6), ALL)
    assert seg.run.executions == 8
    assert [(p.allot, p.gen) for p in seg.after] == [(10**6 - 8 - (10**6 - 8) // 2, 1), ((10**6 - 8) // 2, 1)]


# --- on the local cluster of two workers (cluster C8) ---


_NOTED: set[str] = set()


def pid_counter(k: ds.Kernel) -> None:
    """A value with one possible answer, then the two-thread counter race (two increments each): the root
    has a single alternative. A process running it notes itself in ``$SPLIT_PIDS``."""
    folder = os.environ.get("SPLIT_PIDS")
    if folder and folder not in _NOTED:
        _NOTED.add(folder)
        pathlib.Path(folder, str(os.getpid())).touch()
    box = {"n": k.random(1)}

    def inc() -> None:
        for _ in range(2):
            k.point("load", VAR, False)
            v = box["n"]
            k.point("store", VAR, True)
            box["n"] = v + 1

    for i in range(2):
        k.spawn(inc, name=f"inc{i}")
    k.ext["explore.state"] = lambda: box["n"]


def test_a_root_with_one_alternative_keeps_both_workers_busy(tmp_path: pathlib.Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """C8: the root piece hands work off after its first slice: both workers ran executions, and the
    result is the one-process proof with the same count."""
    monkeypatch.setenv("SPLIT_PIDS", str(tmp_path))
    eng = connect(2)
    eng.client.wait_for_workers(2, timeout=60)
    workers = set(eng.client.run(os.getpid).values())
    eng.client.run(os.environ.__setitem__, "SPLIT_PIDS", str(tmp_path))
    two = explore(pid_counter, "dfs", budget=100_000, jobs=2, **QUIET)
    ran = {int(p.name) for p in tmp_path.iterdir()}
    assert ran == workers
    monkeypatch.delenv("SPLIT_PIDS")
    one = explore(pid_counter, "dfs", budget=100_000, **QUIET)
    assert two.executions == one.executions == 4752
    assert two.verdict == one.verdict == "exhausted" and two.phases[0].proved


def test_a_killed_worker_changes_nothing_in_a_split_search() -> None:
    """C2, C8: a slice whose worker died reruns elsewhere from the same piece: the same proof."""
    calm = explore(make_counter(3, 1), "dfs", budget=15_000, jobs=2, **QUIET)
    eng = connect(2)
    pids = sorted(eng.client.run(os.getpid).values())
    got: list[ds.explore.Report] = []
    t = threading.Thread(target=lambda: got.append(explore(make_counter(3, 1), "dfs", budget=15_000, jobs=2,
                                                           **QUIET)))
    t.start()
    time.sleep(1.0)
    os.kill(pids[0], signal.SIGKILL)
    t.join(timeout=180)
    assert got, "the run did not finish"
    hit = got[0]
    assert hit.executions == calm.executions == 15_000
    assert [(f.signature, f.token, f.execution) for f in hit.findings] == [
        (f.signature, f.token, f.execution) for f in calm.findings]
    eng.client.wait_for_workers(2, timeout=60)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if len(eng.client.run(os.getpid)) == 2:
                break
        except OSError:
            pass
        time.sleep(0.2)


def test_a_split_checkpoint_resumes_on_a_cluster_of_another_size(tmp_path: pathlib.Path) -> None:
    """C8: stopped by its budget on two workers, resumed on one with a larger budget: the one-process
    proof, with the same count and findings."""
    ck = str(tmp_path / "ck")
    part = explore(make_counter(2, 2), "dfs", budget=1000, jobs=2, checkpoint=ck, **QUIET)
    assert part.executions == 1000 and part.verdict == "finding"
    rest = explore(make_counter(2, 2), "dfs", budget=100_000, jobs=1, checkpoint=ck, resume=True,
                   cluster=connect(1).address, **QUIET)
    one = explore(make_counter(2, 2), "dfs", budget=100_000, **QUIET)
    assert rest.executions == one.executions == 4752
    assert rest.phases[0].proved == one.phases[0].proved
    assert [(f.signature, f.token, f.execution) for f in rest.findings] == [
        (f.signature, f.token, f.execution) for f in one.findings]


def test_a_split_checkpoint_refuses_another_scenario(tmp_path: pathlib.Path) -> None:
    """Explorer R9 for a split DFS's checkpoint (C8): one line, before anything runs."""
    ck = str(tmp_path / "ck")
    explore(make_counter(2, 2), "dfs", budget=100, jobs=2, checkpoint=ck, **QUIET)
    with pytest.raises(ds.UsageError, match=r"^checkpoint .*/ck belongs to another scenario: it was made for "
                                            r"make_counter\.<locals>\.counter\[2, 2\], not two_blocks$"):
        explore(two_blocks, "dfs", budget=100, jobs=2, checkpoint=ck, resume=True, **QUIET)
