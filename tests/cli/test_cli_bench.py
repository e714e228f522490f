"""``dmabufsim bench``: finds the checkout's ``bench/``, lists and runs benchmarks, refuses bad input."""

from __future__ import annotations

import pathlib

import pytest

from dmabufsim.cli import main

REPO_BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"


def test_list_names_every_bench_module_of_the_checkout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names == sorted(p.stem.removeprefix("bench_") for p in REPO_BENCH.glob("bench_*.py"))
    assert {"scheduler", "fence", "soak", "explore"} <= set(names)


def test_unknown_benchmark_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nosuch"]) == 2
    assert "unknown benchmark(s) ['nosuch']" in capsys.readouterr().err


def test_runs_the_named_benchmarks_of_the_bench_dir(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bench directory of two tiny benchmarks, run through the checkout's own runner.
    (tmp_path / "run.py").write_text((REPO_BENCH / "run.py").read_text())
    for name in ("one", "two"):
        (tmp_path / f"bench_{name}.py").write_text(f"def main() -> None:\n    print('ran {name}')\n")
    monkeypatch.setenv("DMABUFSIM_BENCH_DIR", str(tmp_path))
    assert main(["bench", "two"]) == 0
    out = capsys.readouterr().out
    assert "ran two" in out and "ran one" not in out
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    assert out.index("ran one") < out.index("ran two")


def test_missing_bench_dir_is_one_line_and_exit_2(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DMABUFSIM_BENCH_DIR", str(tmp_path))
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not installed with the package" in err
