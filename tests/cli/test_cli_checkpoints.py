"""``explore --checkpoint/--resume``: a checkpoint resumes only the exploration it belongs to (explorer R9).

A checkpoint resumed for another scenario continued the other scenario's
search tree and ended in a false clean verdict ("no finding, space
exhausted" on a scenario that deadlocks); one resumed with another strategy
silently searched with the checkpoint's. Every refusal is one line, exit 2.
"""

from __future__ import annotations

import pathlib
import pickle

import pytest

import dmabufsim
from dmabufsim.cli import main
from dmabufsim.explore import explore
from tests.helpers import ABBA_AND_CLEAN, scenario_file

SCENARIO = ABBA_AND_CLEAN


def _file(tmp_path: pathlib.Path) -> str:
    return scenario_file(tmp_path)


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _explore(*argv: str) -> int:
    return main(["explore", *argv, "--no-progress"])


def test_a_checkpoint_of_another_scenario_is_refused(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck) == 0
    capsys.readouterr()
    # Before: exit 0, "no finding, space exhausted" for a scenario that deadlocks.
    assert _explore(f"{sc}:abba", "--strategy", "dpor", "--checkpoint", ck, "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {ck} belongs to another scenario: "
                              "it was made for clean, not abba")
    # The same scenario resumes (its space was exhausted: nothing left, the same verdict).
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck, "--resume") == 0
    assert "exhausted" in capsys.readouterr().out


def test_the_requested_strategy_is_never_replaced_by_the_checkpoints(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--preemption-bound", "2", "--budget", "1",
                    "--checkpoint", ck) == 3
    capsys.readouterr()
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck, "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {ck} was made with strategy "
                              "dpor(preemption_bound=2), not dpor(); resume it with the same strategy and parameters")
    assert _explore(f"{sc}:clean", "--strategy", "dfs", "--preemption-bound", "2", "--checkpoint", ck,
                    "--resume") == 2
    assert "was made with strategy dpor(preemption_bound=2), not dfs(preemption_bound=2)" in _error(capsys)
    # The same strategy and parameters, with a larger budget: the run goes on.
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--preemption-bound", "2", "--checkpoint", ck,
                    "--resume") == 0


def test_kernel_options_are_part_of_the_checkpoint(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--budget", "1", "--checkpoint", ck) == 3
    capsys.readouterr()
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck, "--resume", "--early-timers") == 2
    assert _error(capsys) == (
        f"dmabufsim: error: checkpoint {ck} was made with kernel options {{'max_steps': 200000}}, not "
        "{'max_steps': 200000, 'options': {'early_timers': True}}"
    )


def test_an_edited_scenario_file_is_another_version(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--budget", "1", "--checkpoint", ck) == 3
    capsys.readouterr()
    pathlib.Path(sc).write_text(SCENARIO.replace('k.point("x", 999, True)', 'k.point("x", 998, True)'))
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck, "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {ck} was made for another version of clean: "
                              "the code of its module changed since; start a new checkpoint")


def test_truncated_corrupt_and_missing_checkpoints_are_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck) == 0
    capsys.readouterr()
    data = pathlib.Path(ck).read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) // 2])
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", str(cut), "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {cut} is truncated or corrupt (UnpicklingError); "
                              "start a new checkpoint")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(pickle.dumps({"hello": 1}))
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", str(junk), "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {junk} is not a dmabufsim checkpoint (or is corrupt); "
                              "start a new checkpoint")
    missing = tmp_path / "missing.bin"
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", str(missing), "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: --resume: no checkpoint {missing} to resume "
                              "(it is written by a run with --checkpoint)")
    nodir = tmp_path / "no" / "ck.bin"
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", str(nodir)) == 2
    assert _error(capsys) == f"dmabufsim: error: --checkpoint {nodir}: no such directory: {tmp_path / 'no'}"


def test_an_old_format_checkpoint_is_refused(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--budget", "1", "--checkpoint", ck) == 3
    capsys.readouterr()
    with open(ck, "rb") as fh:
        data = pickle.load(fh)
    data["version"] = 1
    del data["identity"]
    with open(ck, "wb") as fh:
        pickle.dump(data, fh)
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck, "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {ck} has format version 1, this dmabufsim reads 2 "
                              "(older ones record no scenario); start a new checkpoint")


def test_a_checkpoint_of_another_package_version_is_refused(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    monkeypatch.setattr(dmabufsim, "__version__", "0.0.9")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--budget", "1", "--checkpoint", ck) == 3
    monkeypatch.undo()
    capsys.readouterr()
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--checkpoint", ck, "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {ck} was made by dmabufsim 0.0.9, this is "
                              f"{dmabufsim.__version__}; start a new checkpoint")


def test_jobs_refuse_a_foreign_checkpoint_before_any_job_starts(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc, ck = _file(tmp_path), str(tmp_path / "ck.bin")
    assert _explore(f"{sc}:clean", "--strategy", "dpor", "--jobs", "2", "--checkpoint", ck) == 0
    capsys.readouterr()
    assert _explore(f"{sc}:abba", "--strategy", "dpor", "--jobs", "2", "--checkpoint", ck, "--resume") == 2
    assert _error(capsys) == (f"dmabufsim: error: checkpoint {ck}.job0-of-2 belongs to another scenario: "
                              "it was made for clean, not abba")


def test_resume_without_a_checkpoint_file_is_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _explore(f"{_file(tmp_path)}:clean", "--strategy", "dpor", "--resume") == 2
    assert _error(capsys) == "dmabufsim: error: --resume needs --checkpoint FILE (the file the earlier run saved)"


def test_resume_without_a_checkpoint_is_refused() -> None:
    def scenario(k: dmabufsim.Kernel) -> None:
        pass

    with pytest.raises(dmabufsim.UsageError, match=r"^resume needs the checkpoint file to resume"):
        explore(scenario, "dpor", resume=True)
