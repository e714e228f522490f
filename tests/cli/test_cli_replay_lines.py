"""Replay commands that run as printed (run, explore, check), tokens printed once and whole."""

from __future__ import annotations

import pathlib
import re
import shlex
import shutil

import pytest
from rich.cells import cell_len

from dmabufsim.cli import main
from dmabufsim.scenarios import basics_locking

ABBA = str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "abba.py") + ":scenario"
TOKEN = re.compile(r"dbs2\.[-0-9a-f]+\.[0-9]+\.[A-Za-z0-9_-]+")

SPIN = '''
import dmabufsim as ds


def spinner(m):
    while True:
        with m:
            pass


def scenario(k):
    m = ds.Mutex("m")
    k.spawn(spinner, m, name="a")
    k.spawn(spinner, m, name="b")
'''


def _replay_words(out: str) -> list[str]:
    (line,) = [ln for ln in out.splitlines() if ln.startswith("replay: ")]
    return shlex.split(line.removeprefix("replay: "))


def test_run_prints_the_scenario_it_ran_and_the_token_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", ABBA, "--seed", "2"]) == 1
    out = capsys.readouterr().out
    words = _replay_words(out)
    assert words[:2] == ["dmabufsim", "replay"] and words[3:] == [ABBA]
    assert TOKEN.findall(out) == [words[2]]
    assert "<FILE.py:function>" not in out
    # ... and the command runs as printed: the same execution.
    assert main(words[1:]) == 1
    again = capsys.readouterr().out
    assert again.splitlines()[-3:] == out.splitlines()[-3:]


def test_a_scenario_path_with_a_space_is_quoted(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "my designs"
    d.mkdir()
    shutil.copy(ABBA.removesuffix(":scenario"), d / "abba.py")
    spec = f"{d / 'abba.py'}:scenario"
    assert main(["run", spec, "--seed", "2"]) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.endswith(f" {shlex.quote(spec)}")
    assert _replay_words(line)[3] == spec


def test_livelock_token_printed_once_with_max_steps_and_stacks(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spin.py").write_text(SPIN)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "spin.py:scenario", "--max-steps", "300"]) == 1
    out = capsys.readouterr().out
    words = _replay_words(out)
    assert words[3:] == ["spin.py:scenario", "--max-steps", "300"]
    assert TOKEN.findall(out) == [words[2]]
    lines = out.splitlines()
    i = lines.index("livelock: no progress within 300 scheduling points (last progress: thread exit at step 10, "
                    "301 points ago); runnable threads:")
    assert lines[i + 2:i + 6] == [
        "  a/1 next: mutex_lock #1",
        "      spinner+7 (spin.py:7)",
        "  b/2 next: mutex_lock #1",
        "      spinner+7 (spin.py:7)",
    ]
    assert main(words[1:]) == 1  # the livelock again, at the same step
    assert "livelock (error) at step 311" in capsys.readouterr().out


def test_explore_prints_runnable_replay_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", ABBA, "--budget", "50", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "<FILE.py:function>" not in out
    cmds = re.findall(r"replay: (dmabufsim replay \S+ \S+)", out)
    assert cmds and all(c.endswith(f" {ABBA}") for c in cmds)
    assert main(shlex.split(cmds[-1])[1:]) == 1
    assert "INFO: task blocked forever: deadlock" in capsys.readouterr().out


def test_check_scenarios_replay_lines_carry_the_directory(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A design of an extra catalog that is not built in: replaying it needs --scenarios DIR.
    src = pathlib.Path(basics_locking.__file__).read_text()
    src = src.replace("from ..", "from dmabufsim.").replace("from .catalog", "from dmabufsim.scenarios.catalog")
    src = src.replace('"abba-mutexes"', '"abba-mutexes-mine"')
    d = tmp_path / "designs"
    d.mkdir()
    (d / "basics_mine.py").write_text(src)
    assert main(["check", "--no-progress", "--jobs", "1", "--scenarios", str(d), "B1/abba-mutexes-mine"]) == 0
    out = capsys.readouterr().out
    table = out.split("counterexamples (replay one with its command):")[0]
    assert max(cell_len(ln) for ln in table.splitlines()) <= 100  # the replay lines below never wrap
    assert "dbs2." not in table
    (line,) = [ln for ln in out.splitlines() if "dmabufsim replay" in ln]
    ref, *words = shlex.split(line)
    assert ref == "#1" and words[3:] == ["B1/abba-mutexes-mine", "--scenarios", str(d)]
    assert TOKEN.fullmatch(words[2])
    assert main(words[1:]) == 1
    assert "INFO: task blocked forever: deadlock" in capsys.readouterr().out


def test_malformed_long_token_says_it_was_cut(capsys: pytest.CaptureFixture[str]) -> None:
    token = "dbs1." + "A" * 95
    assert main(["replay", token, "B1/abba-mutexes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dmabufsim: error: malformed replay token '{token[:40]}'… (100 chars): ")
    assert main(["replay", "x" * 40, "B1/abba-mutexes"]) == 2
    assert f"malformed replay token '{'x' * 40}': expected" in capsys.readouterr().err


def test_livelock_names_where_threads_not_started_yet_will_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "dbs1.eJwDAAAAAAE", "C18/no-retry", "--max-steps", "40"]) == 1
    lines = capsys.readouterr().out.splitlines()
    i = lines.index("livelock: no progress within 40 scheduling points (last progress: start at step 0, 41 points "
                    "ago); runnable threads:")
    assert lines[i + 2:i + 8] == [
        "  writer0/1 next: write_seqcount_begin #2",
        "      _writer+82 (c18_lockless_readers.py:82)",
        "  writer1/2 not started yet, will start in:",
        "      _writer+69 (c18_lockless_readers.py:69)",
        "  reader0/3 not started yet, will start in:",
        "      _reader+122 (c18_lockless_readers.py:122)",
    ]
    j = lines.index("writer1/2:")
    assert lines[j + 1:j + 3] == [" Call Trace:", "  _writer+69 (c18_lockless_readers.py:69)"]
