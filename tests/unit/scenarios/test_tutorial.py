"""docs/tutorial.md stays true: its code blocks are extracted and its commands run."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from dmabufsim.cli import main
from dmabufsim.report import traceformat

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "tutorial.md"


def _blocks() -> dict[str, str]:
    out = {}
    for body in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S):
        first, _, rest = body.partition("\n")
        m = re.match(r"# ([\w/]+\.py)", first)
        if m:
            out[m.group(1)] = rest if "--" in first else body
    return out


@pytest.fixture
def tutorial_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    blocks = _blocks()
    assert sorted(blocks) == ["designs/basics_my_driver.py", "my_driver.py", "my_driver_fixed.py"]
    driver = blocks["my_driver.py"]
    (tmp_path / "my_driver.py").write_text(driver)
    # The fixed file is the same file with scan_objects replaced by the block shown.
    start = driver.index("    def scan_objects")
    end = driver.index("\n\n\ndef other_process")
    (tmp_path / "my_driver_fixed.py").write_text(driver[:start] + blocks["my_driver_fixed.py"].rstrip() + driver[end:])
    (tmp_path / "designs").mkdir()
    (tmp_path / "designs" / "basics_my_driver.py").write_text(blocks["designs/basics_my_driver.py"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_tutorial_commands(tutorial_dir: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 2. explore finds the cycle (exit 1: a finding nobody expected).
    assert main(["explore", "my_driver.py:scenario", "--budget", "500", "--no-progress", "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    first = rep["findings"][0]
    assert first["kind"] == "circular-locking"
    assert first["details"]["chain"] in (["my_driver.bo_lock", "fs_reclaim"], ["fs_reclaim", "my_driver.bo_lock"])
    # 3. the token replays it and draws it.
    rc = main(["replay", first["token"], "my_driver.py:scenario", "--trace", "out.json", "--dot", "locks.dot"])
    out = capsys.readouterr().out
    assert rc == 1 and "WARNING: possible circular locking dependency detected" in out
    assert traceformat.validate_file(str(tutorial_dir / "out.json")) == []
    dot = (tutorial_dir / "locks.dot").read_text()
    assert '"fs_reclaim" -> "my_driver.bo_lock"' in dot and "color=red" in dot
    # 5. the fixed design is clean, and the space within the bound is exhausted.
    assert main(["explore", "my_driver_fixed.py:scenario", "--budget", "2000", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "verdict: no finding, space exhausted: dpor(preemption_bound=2), preemption bound 2, " in out
    # 5b. (without a bound, by optimal DPOR: test_tutorial_odpor_exhausts_the_fixed_design, slow)
    # 6. both designs as catalog rows.
    assert main(["check", "--scenarios", "designs", "B90", "--no-progress", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 match" in out and "MISMATCH" not in out


@pytest.mark.slow
def test_tutorial_odpor_exhausts_the_fixed_design(tutorial_dir: pathlib.Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Step 5 without a bound: optimal DPOR exhausts the fixed design (13,300 executions since
    the allocator's free list is declared: which frame an allocation gets depends on the frees)."""
    assert main(["explore", "my_driver_fixed.py:scenario", "--strategy", "odpor", "--budget", "20000",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "verdict: no finding, space exhausted: odpor(), unbounded, 13,300 executions, exhausted" in out
