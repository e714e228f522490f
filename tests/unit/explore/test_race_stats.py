"""Race statistics of optimal DPOR (``explore/race_stats.py``): exact rows, and a search unchanged."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import OptimalDPOR, RaceRow, RaceStats
from dmabufsim.explore.explorer import run_job

from .scenarios import NO_LOCKDEP, VAR, two_blocks
from .test_odpor import Prog, rw_scenario

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def writer_readers(k: ds.Kernel) -> None:
    def writer() -> None:
        k.point("store", VAR, True, "x")

    def reader() -> None:
        k.point("load", VAR, False, "x")

    k.spawn(writer, name="writer")
    k.spawn(reader, name="reader1")
    k.spawn(reader, name="reader2")


def test_writer_readers_rows_name_the_store_racing_each_load() -> None:
    """Four traces: the first execution's two store/load races and the reversed load/store race
    insert the three other executions' sequences (S1); the last reversal is covered by a sleeping
    thread. Each race is seen twice (once per execution that has it, before and after replay)."""
    r = ds.explore(writer_readers, "odpor", race_stats=True, budget=100)
    assert r.verdict == "exhausted" and r.executions == 4
    stats = r.races
    assert stats is not None
    x = f"#{VAR} x"
    assert stats.rows() == [
        RaceRow("T1 writer store", "T2 reader1 load", x, 2, 1),
        RaceRow("T1 writer store", "T3 reader2 load", x, 2, 1),
        RaceRow("T2 reader1 load", "T1 writer store", x, 2, 1),
        RaceRow("T3 reader2 load", "T1 writer store", x, 2, 0),
    ]
    assert (stats.races, stats.inserted) == (8, 3)
    assert stats.rows(1) == stats.rows()[:1]
    assert r.to_json()["races"] == {"races": 8, "inserted": 3, "rows": [row.to_json() for row in stats.rows(10)]}


def test_a_lock_race_names_the_acquisitions_and_the_mutex() -> None:
    """two_blocks: the unlock's race with the other thread's lock is reversed as the two
    acquisitions (odpor R3), named by the mutex (not by the thread whose spawn event carries
    the same number: a spawn's object is a thread id); the second execution's reversal is
    covered by its sleep set."""
    r = ds.explore(two_blocks, "odpor", race_stats=True, budget=100, kernel_options=NO_LOCKDEP)
    assert r.executions == 2
    assert r.races is not None
    assert r.races.rows() == [
        RaceRow("T1 a mutex_lock", "T2 b mutex_lock", "#1 m", 1, 1),
        RaceRow("T2 b mutex_lock", "T1 a mutex_lock", "#1 m", 1, 0),
    ]


def test_without_race_stats_the_report_has_none() -> None:
    r = ds.explore(writer_readers, "odpor", budget=100)
    assert r.races is None and r.to_json()["races"] is None


def test_race_stats_need_odpor_and_one_process() -> None:
    with pytest.raises(ds.UsageError, match="use strategy odpor"):
        ds.explore(writer_readers, "dpor", race_stats=True, budget=10)
    with pytest.raises(ds.UsageError, match="need one process"):
        ds.explore(writer_readers, "odpor", race_stats=True, budget=10, jobs=2)


def _run(progs: list[Prog], stats: RaceStats | None) -> tuple[Any, OptimalDPOR]:
    odpor = OptimalDPOR()
    odpor.race_stats = stats
    run = run_job(rw_scenario(progs), [(odpor, 20_000)], stop_on_first=False, collect_states=True, coverage=False,
                  kernel_options=NO_LOCKDEP)
    return run, odpor


prog = st.lists(st.tuples(st.sampled_from(["r", "w"]), st.integers(0, 1)), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(prog, min_size=2, max_size=3))
def test_statistics_leave_the_search_unchanged_and_count_one_sequence_per_extra_trace(progs: list[Prog]) -> None:
    """S3: the same executions (terminal states, in the same order) with and without the
    statistics; and each inserted sequence is one more execution of the exhausted search."""
    stats = RaceStats()
    on, s_on = _run(progs, stats)
    off, s_off = _run(progs, None)
    assert s_on.complete and s_off.complete
    assert on.executions == off.executions and on.states == off.states
    assert stats.inserted == on.executions - 1
    assert sum(row.inserted for row in stats.rows()) == stats.inserted


def test_cli_prints_the_top_rows_and_json_carries_them() -> None:
    spec = f"{EXAMPLES / 'writer_readers.py'}:scenario"
    cmd = [sys.executable, "-m", "dmabufsim", "explore", spec, "--strategy", "odpor", "--no-progress"]
    out = subprocess.run([*cmd, "--race-stats", "2", "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    races = json.loads(out.stdout)["races"]
    assert (races["races"], races["inserted"]) == (8, 3)
    assert [(r["first"], r["second"], r["races"], r["inserted"]) for r in races["rows"]] == [
        ("T1 writer store", "T2 reader1 load", 2, 1),
        ("T1 writer store", "T3 reader2 load", 2, 1),
    ]
    bad = subprocess.run([*cmd, "--race-stats", "0"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("--race-stats shows at least 1 row, got 0")
