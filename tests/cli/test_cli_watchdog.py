"""``run`` / ``replay`` / ``explore`` of a scenario whose thread never reaches a scheduling point."""

from __future__ import annotations

import pathlib
import re

import pytest

from dmabufsim.cli import main

SPIN = '''
import dmabufsim as ds


def spin(m: ds.Mutex) -> None:
    x = 0
    with m:
        while True:
            x += 1


def other(m: ds.Mutex) -> None:
    with m:
        pass


def scenario(k: ds.Kernel) -> None:
    m = ds.Mutex("m")
    k.spawn(other, m, name="other")
    k.spawn(spin, m, name="spinner")
'''

TITLE = re.compile(r"watchdog: BUG: soft lockup - CPU#0 stuck for \d\.\ds! \[spinner:2\]")


@pytest.fixture
def spin(tmp_path: pathlib.Path) -> str:
    f = tmp_path / "spin.py"
    f.write_text(SPIN)
    return f"{f}:scenario"


def test_run_reports_the_soft_lockup_and_exits_1(spin: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", spin, "--watchdog", "0.2"]) == 1
    out = capsys.readouterr().out
    assert TITLE.search(out)
    assert "CPU: 0 PID: 2 Comm: spinner" in out and "\nRIP: spin+" in out
    assert "outcome: soft-lockup  steps: 4  virtual time: 0 ns  findings: 1" in out
    token = re.search(r"replay: dmabufsim replay (\S+)", out)
    assert token is not None
    # W3: the token replays the schedule up to the stuck thread, which locks up again.
    assert main(["replay", token.group(1), spin, "--watchdog", "0.2"]) == 1
    again = capsys.readouterr().out
    assert TITLE.search(again) and "outcome: soft-lockup  steps: 4" in again and "diverged" not in again


def test_explore_finds_the_soft_lockup(spin: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", spin, "--strategy", "random", "--watchdog", "0.2", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "[soft-lockup] " in out and TITLE.search(out)
    assert "verdict: finding: 1 distinct (soft-lockup) in 1 execution" in out


def test_explore_time_is_a_hard_limit(spin: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The watchdog off: only the time limit can end it (before, this never returned).
    assert main(["explore", spin, "--watchdog", "0", "--time", "0.3", "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "verdict: inconclusive: no finding within budget (time budget): portfolio, 0 executions" in out


def test_a_negative_watchdog_is_refused(spin: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", spin, "--watchdog", "-1"]) == 2
    assert capsys.readouterr().err == "dmabufsim: error: --watchdog must be 0 (off) or a number of seconds, got -1\n"
    assert main(["explore", spin, "--watchdog", "-1"]) == 2
    assert capsys.readouterr().err == "dmabufsim: error: --watchdog must be 0 (off) or a number of seconds, got -1\n"
