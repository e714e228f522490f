"""The ``check`` table (commands R3, R4): fits 80 and 100 columns, never splits a word, tokens below it."""

from __future__ import annotations

import io
import shlex

import pytest
from rich.cells import cell_len
from rich.console import Console

from dmabufsim.report import commands
from dmabufsim.scenarios import discover
from dmabufsim.scenarios.runner import CheckResult, RowResult

# A long token (a livelock's are tens of kilobytes) and a short one.
LONG = "dbs1." + "eJw9TQkOwDAIkla89v__jqbLMBxqjAYsM1trbxGCu8OcFgxj0lTFyMoKUZksyEt6XaNPzy4kDHlE6eTYSXVVbepJd" * 3
SHORT = "dbs1.eJxjYGRkYgBiIACTAACtABc"


def _result() -> CheckResult:
    """Every modelled row of the catalog, with the longest texts the catalog has."""
    rows = [r for r in discover() if r.modelled and r.expected is not None]
    out = []
    for i, row in enumerate(rows):
        assert row.expected is not None
        exp = row.expected.describe()
        if i % 7 == 3:
            out.append(RowResult(row, "mismatch", found_text="clean (200 executions, portfolio; not exhaustive)",
                                 why=f"not found: {exp}"))
        else:
            found = f"{exp} (1 execution, portfolio; stopped: every expected bug found)"
            out.append(RowResult(row, "match", found_text=found, token=LONG if i % 2 else SHORT))
    return CheckResult(out)


def _render(result: CheckResult, width: int) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, soft_wrap=False, color_system=None).print(commands.check_table(result, width))
    return buf.getvalue()


@pytest.mark.parametrize("width", [80, 100])
def test_check_table_fits_the_terminal_and_splits_no_word(width: int) -> None:
    result = _result()
    out = _render(result, width)
    lines = out.splitlines()
    assert max(cell_len(ln) for ln in lines) <= width
    words = {w for ln in lines for w in ln.split()}
    for r in result.rows:
        assert r.row.key in words  # the row's name is whole, on one line
        text = r.found_text if r.status == "match" else f"expected {r.row.expected.describe()}; found"  # type: ignore[union-attr]
        for w in text.split():
            assert w in words, f"{w!r} was split at {width} columns"
    assert "dbs1." not in out  # no token in the table, only references


def test_replay_lines_carry_whole_tokens_and_run_as_printed() -> None:
    result = _result()
    lines = commands.replay_lines(result, ("my designs",))
    assert lines[0] == "counterexamples (replay one with its command):"
    with_token = [r for r in result.rows if r.token]
    assert len(lines) == 1 + len(with_token)
    first = with_token[0]
    assert lines[1] == f"  #1  dmabufsim replay {first.token} {first.row.key} --scenarios 'my designs'"
    for i, (line, r) in enumerate(zip(lines[1:], with_token, strict=True), 1):
        ref, *cmd = shlex.split(line)
        assert ref == f"#{i}"
        assert cmd == ["dmabufsim", "replay", r.token, r.row.key, "--scenarios", "my designs"]
    # The references of the table are those of the lines below it.
    table = _render(result, 100)
    assert f" #{len(with_token)} " in table and f" #{len(with_token) + 1} " not in table


def test_a_mismatch_shows_what_was_expected() -> None:
    result = _result()
    bad = next(r for r in result.rows if r.status == "mismatch")
    assert bad.row.expected is not None
    out = " ".join(_render(CheckResult([bad]), 120).split())
    assert f"{bad.row.key} ✗ MISMATCH expected {bad.row.expected.describe()}; found clean" in out


def test_a_wide_terminal_gets_the_expected_column() -> None:
    result = _result()
    out = _render(result, 200)
    header = next(ln for ln in out.splitlines() if "verdict" in ln)
    assert header.split() == ["#", "row", "expected", "verdict", "found"]
    assert max(cell_len(ln) for ln in out.splitlines()) <= 200
    words = {w for ln in out.splitlines() for w in ln.split()}
    assert "[reservation_ww_class_mutex" in words and "dbs1." not in out
