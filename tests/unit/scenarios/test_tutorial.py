"""docs/tutorial.md's files do what the tutorial says beyond the output it shows.

The tutorial's commands and their output are checked by tests/docs (every
``$ dmabufsim`` line is run and compared); here: the files the replay
writes are valid, and the fixed design is the broken one with only the
shrinker's lock changed.
"""

from __future__ import annotations

import pathlib

import pytest

from dmabufsim.cli import main
from dmabufsim.report import traceformat

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def test_the_fixed_driver_changes_only_how_the_shrinker_takes_the_lock() -> None:
    broken = (EXAMPLES / "my_driver.py").read_text().splitlines()
    fixed = (EXAMPLES / "my_driver_fixed.py").read_text().splitlines()
    assert [line for line in broken if line not in fixed] == [
        '"""A tiny GPU driver: a buffer cache protected by one mutex, and a shrinker for it."""',
        "from dmabufsim.mm.shrinker import SHRINK_EMPTY, Shrinker",
        "        self.lock.lock()                      # the design under test: a blocking lock in reclaim",
    ]


def test_the_replay_draws_a_valid_trace_and_the_cycle(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    token = "dbs1.eJxjYGBkYmIEQiDJCKIZAQDkABk"  # the confirmed deadlock the tutorial replays
    rc = main(["replay", token, str(EXAMPLES / "my_driver.py") + ":scenario", "--trace", "out.json",
               "--dot", "locks.dot"])
    out = capsys.readouterr().out
    assert rc == 1 and "INFO: task blocked forever: deadlock" in out
    assert traceformat.validate_file(str(tmp_path / "out.json")) == []
    dot = (tmp_path / "locks.dot").read_text()
    assert '"fs_reclaim" -> "my_driver.bo_lock"' in dot and "color=red" in dot
