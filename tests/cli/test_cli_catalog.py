"""``dmabufsim check / list / replay --trace``: exit codes, JSON, bad input (one line, exit 2)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from dmabufsim.cli import main
from dmabufsim.report import traceformat
from dmabufsim.scenarios import basics_locking, discover

BASICS = pathlib.Path(basics_locking.__file__)


def _out(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    c = capsys.readouterr()
    return c.out, c.err


def test_check_passes_on_the_rows_of_this_room(capsys: pytest.CaptureFixture[str]) -> None:
    # The fast part of the default run; the whole catalog is the slow test below.
    claims = ["B1", "B2", "B3", "C5", "C6", "M1", "M4"]
    assert main(["check", "--no-progress", *claims]) == 0
    out, _ = _out(capsys)
    assert "MISMATCH" not in out and "PENDING" not in out
    assert f"{len(discover().select(claims))} match" in out


@pytest.mark.slow
def test_check_passes_on_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    # `dmabufsim check` with the default budgets, as the README's first command runs it.
    assert main(["check", "--no-progress"]) == 0
    out, _ = _out(capsys)
    assert "✓ match" in out and "MISMATCH" not in out
    pending = [r.claim for r in discover() if not r.modelled]
    if pending:
        assert f"{len(pending)} PENDING (not yet modelled: {', '.join(pending)})" in out
    else:
        assert "PENDING" not in out


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "--jobs", "1", "B1"]) == 0
    out, err = _out(capsys)
    doc = json.loads(out)
    assert err == ""
    assert doc["ok"] is True and doc["counts"] == {"match": 3}
    keys = [r["key"] for r in doc["rows"]]
    assert keys[-3:] == ["B1/abba-mutexes", "B1/abba-mutexes-lockdep", "B1/ordered-mutexes"]
    abba = doc["rows"][-3]
    assert abba["status"] == "match" and abba["found"] == ["deadlock"] and abba["token"].startswith("dbs2.")
    assert abba["replay"] == f"dmabufsim replay {abba['token']} B1/abba-mutexes"


def _broken_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the basics module whose ABBA design takes the locks in one order (no deadlock)."""
    src = BASICS.read_text()
    src = src.replace("from ..", "from dmabufsim.").replace("from .catalog", "from dmabufsim.scenarios.catalog")
    bad = '    k.spawn(_take_in_order, b, a, name="t2")'
    assert src.count(bad) == 1
    src = src.replace(bad, '    k.spawn(_take_in_order, a, b, name="t2")')
    d = tmp_path / "designs"
    d.mkdir()
    (d / "basics_locking_broken.py").write_text(src)
    return d


def test_a_broken_copy_of_a_design_fails_the_check(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _broken_copy(tmp_path)
    assert main(["check", "--no-progress", "--scenarios", str(d), "B1"]) == 1
    out, _ = _out(capsys)
    assert "B1/abba-mutexes: verdict does not match: not found: deadlock" in out
    assert "B1/abba-mutexes-lockdep: verdict does not match: not found: circular-locking, deadlock" in out
    assert "1 match, 2 MISMATCH" in out
    # The untouched copy of the other design still matches, over processes too.
    assert main(["check", "--no-progress", "--jobs", "2", "--scenarios", str(d), "B1/ordered-mutexes"]) == 0


def test_check_exit_code_from_a_real_process(tmp_path: pathlib.Path) -> None:
    d = _broken_copy(tmp_path)
    cmd = [sys.executable, "-m", "dmabufsim.cli", "check", "--scenarios", str(d), "--budget", "20"]
    assert subprocess.run([*cmd, "B2"], capture_output=True, text=True).returncode == 0
    bad = subprocess.run([*cmd, "B1/abba-mutexes"], capture_output=True, text=True)
    assert bad.returncode == 1 and "MISMATCH" in bad.stdout


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(_out(capsys)[0])["rows"]
    claims = {r["claim"] for r in rows}
    assert {f"C{i}" for i in range(1, 19)} <= claims
    assert all(r["status"].startswith(("modelled", "not yet modelled (needs: ")) for r in rows)
    aliases = [r for r in rows if r["status"].startswith("modelled (the experiment of ")]
    assert {r["claim"] for r in aliases} >= {"M2", "M3"}
    assert main(["list"]) == 0
    out = _out(capsys)[0]
    assert "B1" in out and "abba-mutexes" in out and " modelled, " in out
    assert main(["list", "--markdown"]) == 0
    md = _out(capsys)[0]
    assert md.startswith("# The claim catalog") and "## C11: " in md


def test_replay_catalog_row_with_trace_and_dot(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "--jobs", "1", "B1/abba-mutexes"]) == 0
    token = json.loads(_out(capsys)[0])["rows"][0]["token"]
    trace, graph = tmp_path / "out.json", tmp_path / "out.dot"
    rc = main(["replay", token, "B1/abba-mutexes", "--trace", str(trace), "--dot", str(graph)])
    out, _ = _out(capsys)
    assert rc == 1  # the deadlock is a finding of severity error
    assert "INFO: task blocked forever: deadlock" in out and " Call Trace:" in out
    doc = json.loads(trace.read_text())
    assert traceformat.validate(doc) == []
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"scenario/0", "t1/1", "t2/2"} <= names
    assert "color=red" in graph.read_text()


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dmabufsim: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "C99"], "unknown claim 'C99'; known claims: C1, "),
        (["check", "--jobs", "0", "B1"], "--jobs must be at least 1"),
        (["check", "--scenarios", "/no/such/dir", "B1"], "no such scenario directory: /no/such/dir"),
        (["replay", "dbs1.eNpjYGBkYmRiAgAAHQAJ", "/no/such/file.py:scenario"], "no such file: /no/such/file.py"),
        (["replay", "not-a-token", "B1/abba-mutexes"], "malformed replay token 'not-a-token'"),
        (["replay", "dbs1.@@@", "B1/abba-mutexes"], "malformed replay token 'dbs1.@@@'"),
        (["replay", "dbs1.eNpjYGBkYmRiAgAAHQAJ", "C99"], "unknown claim 'C99'"),
        (["replay", "dbs1.eNpjYGBkYmRiAgAAHQAJ", "B1"], "claim 'B1' has several designs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    _, err = _out(capsys)
    assert message in _one_error_line(err)


def test_a_package_file_by_path_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{BASICS}:abba_mutexes"]) == 2
    line = _one_error_line(_out(capsys)[1])
    assert "cannot import" in line and "name it as package.module:function" in line
    assert main(["run", "dmabufsim.scenarios.basics_locking:lock_held_at_exit"]) == 1
    assert "still has locks held!" in _out(capsys)[0]


def _with_a_pending_claim(monkeypatch: pytest.MonkeyPatch) -> str:
    """Add a claim no module models (the catalog may have modelled every real one)."""
    from dmabufsim.scenarios import catalog as cat_mod

    monkeypatch.setattr(cat_mod, "CLAIM_INDEX", (*cat_mod.CLAIM_INDEX, ("M99", "test", "not built", ("room",))))
    return "M99"


def test_replay_of_a_pending_claim(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    claim = _with_a_pending_claim(monkeypatch)
    assert main(["replay", "dbs1.eNpjYGBkYmRiAgAAHQAJ", claim]) == 2
    assert f"claim '{claim}' is not modelled yet" in _one_error_line(_out(capsys)[1])


def test_strict_fails_on_pending(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    claim = _with_a_pending_claim(monkeypatch)
    assert main(["check", "--no-progress", "--jobs", "1", "B3", claim]) == 0
    out = _out(capsys)[0]
    assert "1 match" in out and "1 PENDING (not yet modelled: M99) -- pending claims fail only with --strict" in out
    assert main(["check", "--strict", "--no-progress", "--jobs", "1", "B3", claim]) == 1
    assert "-- fails with --strict" in _out(capsys)[0]


def test_unreadable_file_and_unwritable_trace(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.py"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not python")
    assert main(["replay", "dbs1.eNpjYGBkYmRiAgAAHQAJ", f"{garbage}:scenario"]) == 2
    assert _one_error_line(_out(capsys)[1]).startswith(f"dmabufsim: error: syntax error in {garbage}")
    folder = tmp_path / "folder.py"
    folder.mkdir()
    assert main(["replay", "dbs1.eNpjYGBkYmRiAgAAHQAJ", f"{folder}:scenario"]) == 2
    assert "no such file" in _one_error_line(_out(capsys)[1])
    rc = main(["replay", "dbs1.eNpjYGBkYmRiAgAAHQAJ", "B1/abba-mutexes", "--trace", str(tmp_path / "no" / "x.json")])
    assert rc == 2
    assert "cannot write" in _one_error_line(_out(capsys)[1])


def test_check_markdown_has_verdicts_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--markdown", "--jobs", "1", "--no-progress", "B2"]) == 0
    md = _out(capsys)[0]
    assert "| B2 | mutex-under-spinlock | sleep-in-atomic | sleep-in-atomic (" in md
    assert "### design `mutex-under-spinlock`" in md and "### design `trylock-under-spinlock`" in md
    block = md.split("### design `mutex-under-spinlock`")[1].split("### design")[0]
    assert "- found: sleep-in-atomic (" in block and "**match**" in block
    assert "```\n======" in block and "BUG: sleeping function called from invalid context at " in block
    # The clean row's guarantee, in the table, under its design and in the proofs table.
    assert "| B2 | trylock-under-spinlock | clean | clean (3 executions, odpor; odpor exhausted (unbounded)) | " \
        "proved (3 Mazurkiewicz traces) | match |" in md
    assert "- guarantee: proved: all schedules of this configuration (odpor, 3 Mazurkiewicz traces, unbounded)" in md
    assert "1 of 1 clean rows (not counting" in md
    assert "| B2/trylock-under-spinlock | odpor, 100 | proved: all schedules of this configuration (odpor, 3 " \
        "Mazurkiewicz traces, unbounded) |  |" in md
