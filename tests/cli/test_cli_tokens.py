"""``dmabufsim replay``: a token belongs to one scenario (kernel.token R1-R4, kernel.identity).

Before, the ABBA token replayed against ``C11/noretry-fork`` exited 0 with
"findings: 0" and no warning, the reverse blamed "uncontrolled
nondeterminism", and a short (shrunk) token was silently extended and a
different token printed back.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from dmabufsim.cli import main
from dmabufsim.kernel.identity import scenario_id
from dmabufsim.kernel.token import encode, parse
from dmabufsim.scenarios import c11_userptr_fork
from tests.helpers import ABBA_AND_CLEAN

ROOT = pathlib.Path(__file__).resolve().parents[2]
ABBA = str(ROOT / "examples" / "abba.py")

SCENARIO = ABBA_AND_CLEAN


def _token(out: str) -> str:
    """The token of the execution's own ``replay:`` line (the last; each finding's report has one too)."""
    lines = [x for x in out.splitlines() if x.startswith("replay: dmabufsim replay ")]
    return lines[-1].split()[3]


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_token_of_another_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "dmabufsim.scenarios.c11_userptr_fork:noretry_fork"]) == 0
    c11 = _token(capsys.readouterr().out)
    assert main(["run", f"{ABBA}:scenario"]) == 1
    abba = _token(capsys.readouterr().out)
    c11_id = scenario_id(c11_userptr_fork.noretry_fork).short
    assert c11.startswith(f"dbs2.{c11_id}.") and abba.startswith("dbs2.") and abba.split(".")[1] != c11_id
    abba_id = abba.split(".")[1]
    assert main(["replay", abba, "C11/noretry-fork"]) == 2
    assert _error(capsys) == ("dmabufsim: error: replay token belongs to another scenario: the token's scenario id "
                              f"is {abba_id}, noretry_fork() has {c11_id}")
    assert main(["replay", c11, f"{ABBA}:scenario"]) == 2
    assert _error(capsys) == ("dmabufsim: error: replay token belongs to another scenario: the token's scenario id "
                              f"is {c11_id}, scenario() has {abba_id}")
    # Each replays against its own scenario, file or catalog row alike.
    assert main(["replay", c11, "C11/noretry-fork"]) == 0
    assert main(["replay", c11, "dmabufsim.scenarios.c11_userptr_fork:noretry_fork"]) == 0
    assert main(["replay", abba, f"{ABBA}:scenario"]) == 1


def test_a_shrunk_token_is_printed_back_as_given(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", f"{ABBA}:scenario", "--no-progress"]) == 1
    out = capsys.readouterr().out
    shrunk = next(x.split()[3] for x in out.splitlines() if x.startswith("replay: dmabufsim replay"))
    tok = parse(shrunk)
    assert tok.length == 7 and tok.choices == []  # shrunk: its default tail (all of it) is not in the token
    assert main(["replay", shrunk, f"{ABBA}:scenario"]) == 1
    out = capsys.readouterr().out
    assert _token(out) == shrunk  # before: a different, longer token
    assert "note:" not in out and "warning:" not in out


def test_an_old_short_token_still_replays_and_says_it_was_extended(capsys: pytest.CaptureFixture[str]) -> None:
    # The README's dbs1 token of the ABBA deadlock: every choice it holds is the execution's.
    assert main(["replay", "dbs1.eJxjYGBkZGJiBAAAGwAI", f"{ABBA}:scenario"]) == 1
    out = capsys.readouterr().out
    assert "outcome: deadlock" in out and "note:" not in out
    assert _token(out).startswith(f"dbs2.{scenario_id(_abba_of(ABBA)).short}.7.")
    # A dbs1 token of one choice: the rest of the execution ran on default choices, and it says so.
    one = "dbs1." + encode([1]).rsplit(".", 1)[1]
    assert main(["replay", one, f"{ABBA}:scenario"]) == 1
    out = capsys.readouterr().out
    assert ("note: the replay token holds 1 choice and the execution made 6: the rest were the default "
            "(non-preemptive) ones; the token printed is the whole execution's") in out
    assert _token(out) != one


def _abba_of(path: str) -> object:
    from dmabufsim.cli import load_scenario

    return load_scenario(f"{path}:scenario")


def test_a_token_of_an_edited_scenario_replays_with_a_note(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = tmp_path / "sc.py"
    sc.write_text(SCENARIO)
    assert main(["run", f"{sc}:abba", "--seed", "3"]) == 1
    tok = _token(capsys.readouterr().out)
    old_id = tok.split(".")[1]
    sc.write_text(SCENARIO.replace('name="t1")', 'name="t1")\n    k.spawn(_w, a, b, name="t3")'))
    main(["replay", tok, f"{sc}:abba"])
    out = capsys.readouterr().out
    new_id = _token(out).split(".")[1]
    assert new_id != old_id and new_id[:4] == old_id[:4]  # same name, other code
    assert (f"note: the replay token was made for another version of abba() (scenario id {old_id}; its module's "
            f"code now has {new_id}): the replay may not rebuild the execution it recorded") in out
    assert "uncontrolled nondeterminism" not in out  # a changed scenario is not blamed on the scenario's randomness


def test_a_truncated_token_is_refused_not_extended(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{ABBA}:scenario"]) == 1
    tok = _token(capsys.readouterr().out)
    cut = tok[:-6]
    assert main(["replay", cut, f"{ABBA}:scenario"]) == 2
    assert _error(capsys) == (f"dmabufsim: error: replay token {cut!r} is truncated (its data ends early): "
                              "copy the whole token")
    assert main(["replay", "dbs2.ee26778dab.7", f"{ABBA}:scenario"]) == 2
    assert _error(capsys) == ("dmabufsim: error: malformed replay token 'dbs2.ee26778dab.7': expected "
                              "'dbs2.<scenario>.<length>.<data>'")


def test_a_long_malformed_token_says_it_is_shown_cut(capsys: pytest.CaptureFixture[str]) -> None:
    bad = "dbs2.-.3." + "A" * 60 + "!"
    assert main(["replay", bad, f"{ABBA}:scenario"]) == 2
    assert _error(capsys).startswith(f"dmabufsim: error: malformed replay token {bad[:40]!r}… (70 chars): ")


def test_the_same_execution_has_the_same_token_in_another_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{ABBA}:scenario", "--seed", "4"]) == 1
    here = _token(capsys.readouterr().out)
    there = subprocess.run([sys.executable, "-m", "dmabufsim.cli", "run", f"{ABBA}:scenario", "--seed", "4"],
                           capture_output=True, text=True, cwd=ROOT).stdout
    assert _token(there) == here
