"""The commands README.md and docs/*.md show print what the docs say they print (doccmd D1-D5).

When a change of the CLI's output is intended, regenerate the docs with
``python -m tests.docs.update`` and review the diff.
"""

from __future__ import annotations

import difflib
import io
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .doccmd import (
    CLAIMS_DOC,
    ROOT,
    Command,
    commands,
    doc_files,
    matches,
    normalise,
    rows_blocks,
    rows_table,
    run,
    sources,
    update,
    updated_output,
)

COMMANDS = commands()


def _param(cmd: Command) -> object:
    return pytest.param(cmd, id=cmd.id, marks=[pytest.mark.slow] if cmd.slow else [])


@pytest.mark.parametrize("cmd", [_param(c) for c in COMMANDS])
def test_documented_command_prints_what_the_doc_shows(cmd: Command) -> None:
    code, actual = run(cmd)
    if not matches(cmd.expected, actual):
        diff = "\n".join(difflib.unified_diff(normalise(cmd.expected), normalise(actual), "doc", "actual", lineterm=""))
        pytest.fail(f"{cmd.id}: `{cmd.text}` prints something else than the doc shows "
                    f"(python -m tests.docs.update rewrites the doc):\n{diff}")
    assert code == cmd.exit_code, f"{cmd.id}: `{cmd.text}` exits {code}, the doc says exit={cmd.exit_code}"


def test_the_docs_show_commands_of_the_readme_and_the_tutorial() -> None:
    docs = {c.doc.name for c in COMMANDS}
    assert {"README.md", "tutorial.md"} <= docs


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: p.name)
def test_source_blocks_show_the_example_files(doc: pathlib.Path) -> None:
    for src in sources(doc):
        text = (ROOT / src.path).read_text()
        if src.excerpt:
            assert src.shown in text, f"{src.id}: the excerpt is not in {src.path}"
        else:
            assert src.shown == text, f"{src.id}: the block is not {src.path} (python -m tests.docs.update)"


def test_claims_doc_lists_every_claim_with_the_catalogs_rows() -> None:
    from dmabufsim.scenarios.catalog import discover

    blocks = rows_blocks(CLAIMS_DOC)
    assert [claim for claim, *_ in blocks] == discover().claims
    for claim, _, _, body in blocks:
        assert body == rows_table(claim), f"docs/claims.md: the rows of {claim} (python -m tests.docs.update)"


def test_no_doc_points_at_a_claims_file_outside_the_repository() -> None:
    for doc in [*doc_files(), ROOT / "docs" / "catalog.md", ROOT / "CHANGELOG.md"]:
        assert "CLAIMS.md" not in doc.read_text(), doc.name


# ---------------------------------------------------------------- the checker itself


def test_normalise_blanks_wall_clock_seconds_and_timing_columns_only() -> None:
    a = ["  random(seed=0): 200 executions, 0.29 s, -, not exhausted",
         "            explore x            ",
         "┏━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━┓",
         "┃ strategy ┃ executions ┃ time (s) ┃ exec/s ┃",
         "│ random   │ 1,200      │ 1.06     │ 972    │",
         "3 match (slowest: C5/shrinker-trylock 0.8 s)"]
    b = ["  random(seed=0): 200 executions, 12.31 s, -, not exhausted",
         "   explore x   ",
         "┏━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━┓",
         "┃ strategy ┃ executions ┃ time (s) ┃ exec/s   ┃",
         "│ random   │ 1,200      │ 10.60    │ 1,972    │",
         "3 match (slowest: C5/shrinker-blocking-lock 1.2 s)"]
    assert normalise(a) == normalise(b)
    c = list(b)
    c[4] = "│ random   │ 1,201      │ 10.60    │ 1,972    │"
    assert normalise(a) != normalise(c)  # an execution count is not a timing
    assert normalise(["  lock(B);"]) != normalise(["lock(B);"])  # indentation outside tables counts


def test_an_ellipsis_stands_for_the_middle_of_the_output() -> None:
    out = ["a", "b", "c", "d"]
    assert matches(["a", "...", "d"], out)
    assert matches(["a", "b", "..."], out)
    assert not matches(["a", "...", "c"], out)
    assert not matches(["a", "b", "c", "...", "c", "d"], out)
    assert updated_output(["x", "...", "y"], ["a", "b", "c", "d"]) == ["a", "...", "d"]
    assert updated_output(["x", "y"], out) == out


def test_update_rewrites_a_stale_output_and_exit_code_keeping_the_elision(tmp_path: pathlib.Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text("Intro.\n\n```console\n$ dmabufsim run examples/abba.py:scenario --seed 0\nstale head\n...\n"
                   "stale tail\n```\n\nEnd.\n")
    assert update([doc]) == [f"{doc}:4: dmabufsim run examples/abba.py:scenario --seed 0"]
    text = doc.read_text()
    assert text.startswith("Intro.\n\n```console exit=1\n$ dmabufsim run examples/abba.py:scenario --seed 0\n\n...\n"
                           "replay: dmabufsim replay ")
    assert text.endswith("\n```\n\nEnd.\n")
    assert update([doc]) == []  # now it matches: nothing to rewrite
    assert doc.read_text() == text


@given(st.lists(st.tuples(st.floats(0, 1e4), st.integers(0, 10**7)), min_size=2, max_size=2),
       st.integers(0, 10**6))
def test_normalise_is_blind_to_timings_and_sees_every_count(timings: list[tuple[float, int]], count: int) -> None:
    def render(seconds: float, rate: int, n: int) -> list[str]:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="explore x")
        for col in ("strategy", "executions", "time (s)", "exec/s"):
            t.add_column(col)
        t.add_row("dpor(preemption_bound=2)", f"{n:,}", f"{seconds:.2f}", f"{rate:,}")
        con = Console(width=100, record=True, file=io.StringIO())
        con.print(t)
        return [f"verdict: {n:,} executions, exhausted ({seconds:.2f} s)", *con.export_text().splitlines()]

    (s1, r1), (s2, r2) = timings
    assert normalise(render(s1, r1, count)) == normalise(render(s2, r2, count))
    assert normalise(render(s1, r1, count)) != normalise(render(s1, r1, count + 1))
