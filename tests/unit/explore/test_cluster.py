"""The parallel engine on a local Dask cluster of two workers (``cluster.py`` C1-C7, ``parallel.py`` R1-R7)."""

from __future__ import annotations

import os
import pathlib
import signal
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.cli import main
from dmabufsim.cli_args import load_scenario
from dmabufsim.explore import ExploreOptions, explore
from dmabufsim.explore import cluster as cluster_mod
from dmabufsim.explore.cluster import ShippedScenario, connect, ship
from dmabufsim.explore.dfs import DFS
from dmabufsim.explore.dpor import DPOR
from dmabufsim.explore.explorer import run_job
from dmabufsim.explore.odpor import OptimalDPOR
from dmabufsim.scenarios.catalog import discover

from .scenarios import NO_LOCKDEP, VAR, make_counter, two_blocks

QUIET: dict[str, Any] = {"stop_on_first": False, "shrink_findings": False, "confirm_cycles": False,
                         "kernel_options": NO_LOCKDEP}


def _same(one: ds.explore.Report, two: ds.explore.Report) -> None:
    assert [(f.signature, f.token, f.execution) for f in two.findings] == [
        (f.signature, f.token, f.execution) for f in one.findings]
    assert two.verdict == one.verdict
    assert [p.exhausted for p in two.phases] == [p.exhausted for p in one.phases]
    assert [p.proved for p in two.phases] == [p.proved for p in one.phases]


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_two_workers_run_exactly_the_one_process_search(strategy: str) -> None:
    """Randomised executions dealt by index, DFS split into a partition: the same executions,
    the same findings at the same indices (lowest-index merge), the same verdict."""
    one = explore(make_counter(2, 2), strategy, budget=400, **QUIET)
    two = explore(make_counter(2, 2), strategy, budget=400, jobs=2, **QUIET)
    _same(one, two)
    assert two.executions == one.executions
    assert {f.signature for f in two.findings} == {"lost-update"}


def test_a_proof_by_dfs_is_the_same_proof_with_the_same_count() -> None:
    one = explore(two_blocks, "dfs", budget=10_000, **QUIET)
    two = explore(two_blocks, "dfs", budget=10_000, jobs=2, **QUIET)
    assert one.verdict == two.verdict == "exhausted"
    assert one.phases[0].proved and two.phases[0].proved
    assert two.executions == one.executions
    _same(one, two)


@pytest.mark.parametrize("strategy", ["dpor", "odpor"])
def test_partial_order_reductions_find_the_same_with_a_split_node(strategy: str) -> None:
    """DPOR and optimal DPOR split at the first choice (DPOR R5, odpor R7): the same findings, tokens and
    exhausted verdict; the split node is explored fully, so the count may exceed one process's."""
    one = explore(make_counter(2, 2), strategy, budget=10_000, **QUIET)
    two = explore(make_counter(2, 2), strategy, budget=10_000, jobs=2, **QUIET)
    assert [f.token for f in two.findings] == [f.token for f in one.findings]
    assert two.verdict == one.verdict == "finding"
    assert two.phases[-1].exhausted and one.phases[-1].exhausted
    assert two.executions >= one.executions


@pytest.mark.parametrize(("key", "one_count", "two_count"), [("M4/gfp-nowait", 3, 3), ("C9/torn-down", 3, 3)])
def test_a_catalog_proof_on_two_workers_is_the_same_proof(key: str, one_count: int, two_count: int) -> None:
    """cluster C9: a clean catalog row proved by optimal DPOR is proved on two workers too, by pieces of one
    search (``osplit`` O1-O5), with one process's traces (before: the static split's 7 and 16, odpor R7)."""
    row = discover(()).resolve(key)
    assert row.scenario is not None
    kw = {"stop_on_first": False, "shrink_findings": False, "kernel_options": dict(row.kernel_options)}
    one = explore(row.scenario, "odpor", budget=10_000, **kw)
    two = explore(row.scenario, "odpor", budget=10_000, jobs=2, **kw)
    assert one.verdict == two.verdict == "exhausted"
    assert one.phases[0].proved and two.phases[0].proved
    assert (one.executions, two.executions) == (one_count, two_count)


def test_the_split_node_of_odpor_sleeps_the_other_jobs_threads() -> None:
    """odpor R7: before, the split node kept no sleep set and each of two jobs ran every trace its thread
    could start (34 + 34 where one process runs 34); each other job's thread is now probed once and sleeps."""
    runs = [run_job(make_counter(2, 2), [(OptimalDPOR(), 10_000)], job=j, jobs=2, stop_on_first=False,
                    coverage=False, kernel_options=NO_LOCKDEP, collect_states=True) for j in range(2)]
    one = run_job(make_counter(2, 2), [(OptimalDPOR(), 10_000)], stop_on_first=False, coverage=False,
                  kernel_options=NO_LOCKDEP, collect_states=True)
    assert one.executions == 34
    assert [r.executions for r in runs] == [34, 1]
    assert runs[0].states | runs[1].states == one.states


def test_the_split_node_of_dpor_carries_its_sleep_set() -> None:
    """DPOR R5: before, job 1's part of the split node slept nothing job 0 had tried, and ran again every
    schedule job 0 ran (34 + 34 where one process runs 34); with the split node's sleep set, 34 + 1."""
    runs = [run_job(make_counter(2, 2), [(DPOR(), 10_000)], job=j, jobs=2, stop_on_first=False, coverage=False,
                    kernel_options=NO_LOCKDEP) for j in range(2)]
    one = run_job(make_counter(2, 2), [(DPOR(), 10_000)], stop_on_first=False, coverage=False,
                  kernel_options=NO_LOCKDEP)
    assert one.executions == 34
    assert [r.executions for r in runs] == [34, 1]
    assert all(r.phases[0].exhausted for r in runs)
    assert set(runs[0].findings) | set(runs[1].findings) == set(one.findings) == {"lost-update"}


def nested(k: ds.Kernel) -> None:
    """The scenario asks for a value with one possible answer before it spawns the racing two: the
    first decision (the root) has a single alternative (DFS R2)."""
    box = {"n": 0}

    def inc() -> None:
        k.point("load", VAR, False)
        v = box["n"]
        k.point("store", VAR, True)
        box["n"] = v + 1

    box["n"] = k.random(1)
    k.spawn(inc, name="a")
    k.spawn(inc, name="b")


@pytest.mark.parametrize("make", [DFS, DPOR], ids=["dfs", "dpor"])
def test_a_root_with_one_alternative_keeps_both_jobs_busy(make: Any) -> None:
    """DFS R4 / DPOR R5: the split is at the first decision with a choice, not at the root."""
    strategies = [make() for _ in range(2)]
    runs = [run_job(nested, [(strategies[j], 1000)], job=j, jobs=2, stop_on_first=False, coverage=False,
                    kernel_options=NO_LOCKDEP) for j in range(2)]
    assert [s._split_pos for s in strategies] == [1, 1]  # the root offered one thread
    assert all(r.executions > 0 for r in runs)
    whole = run_job(nested, [(make(), 1000)], stop_on_first=False, coverage=False, kernel_options=NO_LOCKDEP)
    assert all(r.phases[0].exhausted for r in runs)
    if make is DFS:
        assert sum(r.executions for r in runs) == whole.executions


def test_a_killed_worker_changes_neither_the_verdict_nor_the_findings() -> None:
    """C2: the task of a worker killed mid-run reruns elsewhere from its inputs."""
    quiet = {**QUIET, "check_replay": False}
    calm = explore(make_counter(2, 2), "random", budget=6000, jobs=2, **quiet)
    eng = connect(2)
    pids = sorted(eng.client.run(os.getpid).values())
    got: list[ds.explore.Report] = []
    t = threading.Thread(target=lambda: got.append(explore(make_counter(2, 2), "random", budget=6000, jobs=2,
                                                           **quiet)))
    t.start()
    time.sleep(1.5)  # the tasks are running (the cluster is warm)
    os.kill(pids[0], signal.SIGKILL)
    t.join(timeout=120)
    assert got, "the run did not finish"
    hit = got[0]
    assert hit.executions == calm.executions == 6000
    _same(calm, hit)
    eng.client.wait_for_workers(2, timeout=60)  # the nanny starts a new worker (the next tests use two)
    end = time.monotonic() + 60
    while True:
        try:
            now = sorted(eng.client.run(os.getpid).values())
        except OSError:  # the dead worker is still being removed
            now = []
        if len(now) == 2 or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert len(now) == 2 and now != pids


USER = '''
import dmabufsim as ds

VAR = 10_000


def racy(k):
    box = {"n": 0}

    def inc():
        k.point("load", VAR, False)
        v = box["n"]
        k.point("store", VAR, True)
        box["n"] = v + 1

    k.spawn(inc, name="a")
    k.spawn(inc, name="b")

    def check():
        if box["n"] != 2:
            k.report("assertion", "lost update", signature="lost-update", rule="test")

    k.at_exit.append(check)
'''


def test_a_scenario_from_a_users_file_travels_to_the_workers(tmp_path: pathlib.Path) -> None:
    """C6: the file's source travels; the worker loads it under the client's module name."""
    f = tmp_path / "elsewhere.py"
    f.write_text(USER)
    fn = load_scenario(f"{f}:racy")
    assert isinstance(ship(fn), ShippedScenario)
    one = explore(fn, "dfs", budget=100, **QUIET)
    two = explore(fn, "dfs", budget=100, jobs=2, **QUIET)
    assert {x.signature for x in two.findings} == {"lost-update"}
    _same(one, two)
    assert two.executions == one.executions


def test_a_scenario_that_cannot_travel_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    lock = threading.Lock()

    def holds_a_lock(k: ds.Kernel) -> None:
        with lock:
            pass

    with pytest.raises(ds.UsageError, match=r"scenario .*holds_a_lock cannot travel to the workers"):
        explore(holds_a_lock, "random", budget=10, jobs=2)


def test_options_object_and_keywords_are_one_call() -> None:
    o = ExploreOptions(budget=50, stop_on_first=False, shrink_findings=False, kernel_options=NO_LOCKDEP)
    a = explore(make_counter(2, 1), "dfs", options=o)
    b = explore(make_counter(2, 1), "dfs", budget=50, stop_on_first=False, shrink_findings=False,
                kernel_options=NO_LOCKDEP)
    assert a.executions == b.executions and a.verdict == b.verdict
    with pytest.raises(TypeError, match="budgett"):
        explore(make_counter(2, 1), "dfs", budgett=5)


def test_the_cli_runs_a_users_file_on_two_workers(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "elsewhere.py"
    f.write_text(USER)
    assert main(["explore", f"{f}:racy", "--strategy", "dfs", "--jobs", "2", "--no-progress", "--all"]) == 1
    out = capsys.readouterr().out
    assert "(jobs=2)" in out and "[assertion] lost update  -- found by dfs(), execution #2" in out


def test_a_running_cluster_by_address_and_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """--cluster ADDR / DMABUFSIM_CLUSTER: a scheduler someone started (here: the local one's address);
    one job per worker, the same result as one process."""
    eng = connect(2)
    eng.client.wait_for_workers(2, timeout=60)
    address = eng.address
    one = explore(make_counter(2, 2), "random", budget=300, **QUIET)
    by_arg = explore(make_counter(2, 2), "random", budget=300, cluster=address, **QUIET)
    monkeypatch.setenv("DMABUFSIM_CLUSTER", address)
    by_env = explore(make_counter(2, 2), "random", budget=300, **QUIET)
    for rep in (by_arg, by_env):
        assert rep.jobs == 2
        _same(one, rep)
        assert rep.executions == one.executions


def test_no_scheduler_at_the_address_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(ds.UsageError, match=r"^cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        explore(make_counter(2, 2), "random", budget=10, cluster="tcp://127.0.0.1:9")


@settings(max_examples=12, deadline=None)
@given(
    shape=st.sampled_from([(2, 1), (2, 2), (3, 1)]),
    jobs=st.integers(min_value=2, max_value=3),
    make=st.sampled_from([DFS, DPOR, OptimalDPOR]),
)
def test_the_jobs_together_reach_every_terminal_state_of_one_process(
    shape: tuple[int, int], jobs: int, make: Any
) -> None:
    """parallel R1 (DFS R4, DPOR R5, odpor R7), in general: the union of the jobs' searches reaches the
    terminal states one process reaches, each job exhausts its part, and a DFS split is a partition."""
    scenario = make_counter(*shape)
    kw: dict[str, Any] = {"stop_on_first": False, "coverage": False, "kernel_options": NO_LOCKDEP,
                          "collect_states": True}
    one = run_job(scenario, [(make(), 100_000)], **kw)
    parts = [run_job(scenario, [(make(), 100_000)], job=j, jobs=jobs, **kw) for j in range(jobs)]
    assert all(p.phases[0].exhausted for p in parts)
    assert set().union(*(p.states for p in parts)) == one.states
    assert set().union(*(set(p.findings) for p in parts)) == set(one.findings)
    if make is DFS:
        assert sum(p.executions for p in parts) == one.executions
