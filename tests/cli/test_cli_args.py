"""The command line's arguments (``cli_args``): bad input is one line and exit 2, before anything runs.

Scenario specs in every form on run / explore / replay, what is wrong with a
scenario itself, out-of-range values, checkpoint paths, a closed pipe,
``--version`` and ``python -m dmabufsim``, and what ``--help`` shows.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmabufsim import __version__, cli_args
from dmabufsim.cli import main
from dmabufsim.explore.dfs import DFS, ICB
from dmabufsim.kernel.findings import KINDS

SCENARIO = '''\
import dmabufsim as ds

notcallable = 42


def _w(a, b):
    with a, b:
        pass


def abba(k):
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_w, a, b, name="t1")
    k.spawn(_w, b, a, name="t2")


def no_kernel():
    pass


def two_args(k, x):
    pass


def with_default(k, x=1):
    k.spawn(_w, ds.Mutex("A"), ds.Mutex("B"), name="t1")


def any_args(*args):
    pass
'''

SPEC_FORMS = "FILE.py:function, package.module:function, or a catalog row (C11/noretry-fork, C18)"
#: A token of no particular execution (replay refuses the scenario before decoding it matters).
TOKEN = "dbs1.eNpjYGBkYmRiAgAAHQAJ"


@pytest.fixture
def sc(tmp_path: pathlib.Path) -> str:
    p = tmp_path / "sc.py"
    p.write_text(SCENARIO)
    return str(p)


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI on bad input: exit 2, nothing on stdout, one line on stderr (returned without newline)."""
    rc = main(argv)
    out, err = capsys.readouterr()
    assert (rc, out) == (2, ""), err
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err[:-1]


# ---------------------------------------------------------------- tracebacks that are bad input


def test_pct_depth_zero_is_one_line(sc: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["explore", f"{sc}:abba", "--depth", "0"], capsys)
    assert err == "dmabufsim: error: --depth must be at least 1, got 0"


def test_checkpoint_into_a_missing_directory_is_one_line(
    sc: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = tmp_path / "nodir" / "ck.bin"
    err = _error(["explore", f"{sc}:abba", "--strategy", "dpor", "--checkpoint", str(ck)], capsys)
    assert err == f"dmabufsim: error: --checkpoint {ck}: no such directory: {tmp_path / 'nodir'}"
    err = _error(["explore", f"{sc}:abba", "--strategy", "dpor", "--checkpoint", str(tmp_path)], capsys)
    assert err == f"dmabufsim: error: --checkpoint {tmp_path} is a directory; name a file"


@pytest.mark.skipif(not pathlib.Path("/proc/self").is_dir(), reason="needs Linux /proc (unwritable even by root)")
def test_an_unwritable_checkpoint_is_refused_before_running(sc: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["explore", f"{sc}:abba", "--strategy", "dpor", "--checkpoint", "/proc/ck.bin"], capsys)
    assert err == "dmabufsim: error: --checkpoint /proc/ck.bin: cannot write there: No such file or directory"


def test_the_checkpoint_probe_leaves_nothing_behind(
    sc: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = tmp_path / "ck.bin"
    assert main(["explore", f"{sc}:abba", "--strategy", "dpor", "--json", "--checkpoint", str(ck)]) == 1
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.bin", "sc.py"]


def test_a_directory_is_not_a_scenario_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["run", f"{tmp_path}:abba"], capsys)
    assert err == f"dmabufsim: error: no such file: {tmp_path} (that is a directory)"
    assert _error(["run", f"{tmp_path}/no.py:abba"], capsys) == f"dmabufsim: error: no such file: {tmp_path}/no.py"


def test_a_scenario_file_that_raises_at_import_is_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "boom.py"
    p.write_text('import os\n\nraise RuntimeError("boom at import")\n')
    for cmd in (["run"], ["explore"], ["replay", TOKEN]):
        err = _error([*cmd, f"{p}:scenario"], capsys)
        assert err == f"dmabufsim: error: cannot import {p}: RuntimeError: boom at import (line 3)"
    p.write_text("import sys\nsys.exit(3)\n")
    err = _error(["run", f"{p}:scenario"], capsys)
    assert err == f"dmabufsim: error: cannot import {p}: it called sys.exit(3) (line 2)"


def test_a_module_that_raises_at_import_is_one_line(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "boom_module_at_import.py").write_text('raise KeyError("HOME")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _error(["run", "boom_module_at_import:scenario"], capsys)
    assert err == "dmabufsim: error: cannot import boom_module_at_import: KeyError: 'HOME'"


def test_a_catalog_module_that_raises_at_import_is_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "cat"
    d.mkdir()
    (d / "c99_boom.py").write_text('CLAIM = {}\nraise ValueError("boom in the catalog")\n')
    for argv in (["check", "--no-progress"], ["list"], ["run", "C1"], ["explore", "C1"], ["replay", TOKEN, "C1"]):
        err = _error([*argv, "--scenarios", str(d)], capsys)
        assert err == f"dmabufsim: error: cannot import {d / 'c99_boom.py'}: ValueError: boom in the catalog (line 2)"


@pytest.mark.parametrize("as_json", [False, True])
def test_a_closed_pipe_ends_quietly(sc: str, as_json: bool) -> None:
    # `dmabufsim run ... | head`: the reader is gone before the first write (the read end is closed here).
    argv = [sys.executable, "-m", "dmabufsim", "run", f"{sc}:abba", *(["--json"] if as_json else [])]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as a process killed by it
    assert err == b""


# ---------------------------------------------------------------- values checked up front


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explore", "{sc}:abba", "--strategy", "dpor", "--preemption-bound", "-1"],
         "--preemption-bound must be at least 0, got -1"),
        (["explore", "{sc}:abba", "--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["explore", "{sc}:abba", "--jobs", "-3"], "--jobs must be at least 1, got -3"),
        (["check", "B1", "--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["explore", "{sc}:abba", "--budget", "0"], "--budget must be at least 1, got 0"),
        (["explore", "{sc}:abba", "--max-steps", "0"], "--max-steps must be at least 1, got 0"),
        (["explore", "{sc}:abba", "--max-steps", "-1"], "--max-steps must be at least 1, got -1"),
        (["run", "{sc}:abba", "--max-steps", "0"], "--max-steps must be at least 1, got 0"),
        (["replay", TOKEN, "{sc}:abba", "--max-steps", "-1"], "--max-steps must be at least 1, got -1"),
        (["explore", "{sc}:abba", "--time", "-1"], "--time must be more than 0 seconds, got -1"),
        (["explore", "{sc}:abba", "--time", "0"], "--time must be more than 0 seconds, got 0"),
        (["explore", "{sc}:abba", "--resume"], "--resume needs --checkpoint FILE (the file the earlier run saved)"),
    ],
)
def test_bad_values_are_refused_before_anything_runs(
    argv: list[str], message: str, sc: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _error([a.format(sc=sc) for a in argv], capsys) == f"dmabufsim: error: {message}"


@settings(max_examples=200, deadline=None)
@given(dest=st.sampled_from(sorted(cli_args.MINIMUM)), value=st.integers(-10**6, 10**6))
def test_a_value_is_refused_exactly_below_its_minimum(dest: str, value: int) -> None:
    args = argparse.Namespace(**{dest: value})
    least = cli_args.MINIMUM[dest]
    too_many = dest == "jobs" and value > cli_args.max_jobs()
    try:
        cli_args.check_values(args)
        refused = False
    except cli_args.CliError as exc:
        refused = True
        if value < least:
            assert str(exc) == f"--{dest.replace('_', '-')} must be at least {least}, got {value}"
    assert refused == (value < least or too_many)


def test_jobs_are_capped_per_cpu(
    sc: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_args, "usable_cpus", lambda: 2)
    for cmd in (["explore", f"{sc}:abba"], ["check", "B1"]):
        err = _error([*cmd, "--jobs", "1000"], capsys)
        assert err == ("dmabufsim: error: --jobs 1000 is more than 8 processes (4 per CPU; 2 CPUs here): "
                       "each job is a process running flat out")
    monkeypatch.setattr(cli_args, "usable_cpus", lambda: 1)
    err = _error(["explore", f"{sc}:abba", "--jobs", "5"], capsys)
    assert err == ("dmabufsim: error: --jobs 5 is more than 4 processes (4 per CPU; 1 CPU here): "
                   "each job is a process running flat out")
    assert cli_args.usable_cpus() == 1 and cli_args.max_jobs() == 4


def test_usable_cpus_is_the_affinity_mask() -> None:
    import os

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cli_args.usable_cpus() == expected
    assert cli_args.max_jobs() == 4 * cli_args.usable_cpus()


def test_resume_of_a_missing_checkpoint_is_refused(
    sc: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = tmp_path / "ck.bin"
    err = _error(["explore", f"{sc}:abba", "--strategy", "dpor", "--checkpoint", str(ck), "--resume"], capsys)
    assert err == f"dmabufsim: error: --resume: no checkpoint {ck} to resume (it is written by a run with --checkpoint)"
    assert not ck.exists()  # nothing ran, nothing was saved


def test_resume_finds_the_per_job_files(sc: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A run with --jobs 2 saves ck.bin.job0-of-2 and ck.bin.job1-of-2, not ck.bin: that is a checkpoint to resume.
    ck = tmp_path / "ck.bin"
    base = ["explore", f"{sc}:abba", "--strategy", "dpor", "--all", "--json", "--checkpoint", str(ck)]
    assert main([*base, "--jobs", "2"]) == 1
    first = json.loads(capsys.readouterr().out)
    assert not ck.exists() and sorted(p.name for p in tmp_path.glob("ck.bin.job*")) == [
        "ck.bin.job0-of-2", "ck.bin.job1-of-2"]
    assert main([*base, "--jobs", "2", "--resume"]) == 1
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["executions"] == first["executions"] and resumed["verdict"] == "finding"


def test_the_library_refuses_a_negative_preemption_bound() -> None:
    with pytest.raises(ValueError, match=r"^preemption bound must be >= 0, got -1$"):
        DFS(-1)
    with pytest.raises(ValueError, match=r"^ICB's largest preemption bound must be >= 0, got -1$"):
        ICB(-1)


def test_argparse_errors_are_one_line(sc: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["explore", f"{sc}:abba", "--jobs", "abc"], capsys)
    assert err == "dmabufsim explore: error: argument --jobs: invalid int value: 'abc' (see dmabufsim explore --help)"
    err = _error([], capsys)
    assert err == "dmabufsim: error: the following arguments are required: COMMAND (see dmabufsim --help)"


# ---------------------------------------------------------------- what is wrong with the scenario itself


@pytest.mark.parametrize(
    ("func", "message"),
    [
        ("notcallable", "{sc}:notcallable is an int, not a function: a scenario is a function that takes the Kernel"),
        ("no_kernel", "scenario {sc}:no_kernel takes no argument: a scenario takes exactly one argument, "
                      "the Kernel (def no_kernel(k): ...)"),
        ("two_args", "scenario {sc}:two_args takes (k, x): a scenario takes exactly one argument, "
                     "the Kernel (def two_args(k): ...)"),
        ("nope", "{sc} has no function 'nope'; it defines abba, any_args, no_kernel, two_args, with_default"),
    ],
)
def test_a_wrong_scenario_says_what_is_wrong(
    func: str, message: str, sc: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for cmd in (["run"], ["explore"], ["replay", TOKEN]):
        err = _error([*cmd, f"{sc}:{func}"], capsys)
        assert err == "dmabufsim: error: " + message.format(sc=sc)


@settings(max_examples=200, deadline=None)
@given(
    positional=st.integers(0, 3),
    defaults=st.integers(0, 2),
    varargs=st.booleans(),
    kwonly=st.sampled_from(["", "required", "default"]),
    varkw=st.booleans(),
)
def test_the_signature_check_agrees_with_calling_the_scenario(
    positional: int, defaults: int, varargs: bool, kwonly: str, varkw: bool
) -> None:
    # Accepted exactly when scenario(kernel) would bind: the rule holds for any Python signature.
    params = [f"p{i}" for i in range(positional)] + [f"d{i}=0" for i in range(defaults)]
    if varargs:
        params.append("*args")
    if kwonly:
        params += [] if varargs else ["*"]
        params.append("kw" if kwonly == "required" else "kw=0")
    if varkw:
        params.append("**kwargs")
    ns: dict[str, object] = {}
    exec(f"def scenario({', '.join(params)}):\n    return 'ran'\n", ns)  # a generated signature
    fn = ns["scenario"]
    assert callable(fn)
    try:
        binds = fn(object()) == "ran"
    except TypeError:
        binds = False
    try:
        cli_args.check_signature(fn, "sc.py:scenario")
        accepted = True
    except cli_args.CliError as exc:
        accepted = False
        assert str(exc).startswith("scenario sc.py:scenario takes ")
        assert str(exc).endswith(": a scenario takes exactly one argument, the Kernel (def scenario(k): ...)")
    assert accepted == binds, params


def test_signatures_that_take_the_kernel_are_accepted(sc: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"{sc}:with_default", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    assert main(["run", f"{sc}:any_args", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


# ---------------------------------------------------------------- catalog rows everywhere


def test_explore_and_run_accept_catalog_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "C11/noretry-fork", "--strategy", "pct", "--budget", "300", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [f["kind"] for f in data["findings"]] == ["dma-foreign-page"]
    assert data["scenario"] == "C11/noretry-fork"
    assert main(["run", "c11/noretry-fork", "--json"]) == 0  # names are case-insensitive, as in check
    assert json.loads(capsys.readouterr().out)["outcome"] == "completed"


def test_a_catalog_row_runs_with_its_kernel_options(capsys: pytest.CaptureFixture[str]) -> None:
    # B1/abba-mutexes runs without lockdep (its row says so): only the deadlock, no circular-locking report.
    base = ["--strategy", "dpor", "--all", "--json"]
    assert main(["explore", "B1/abba-mutexes", *base]) == 1
    assert [f["kind"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["deadlock"]
    assert main(["explore", "dmabufsim.scenarios.basics_locking:abba_mutexes", *base]) == 1
    kinds = [f["kind"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert kinds == ["circular-locking", "deadlock"]
    assert main(["explore", "B1/abba-mutexes", *base, "--early-timers"]) == 1
    assert [f["kind"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["deadlock"]


def test_run_names_rows_of_scenarios_dirs(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "cat"
    d.mkdir()
    (d / "c98_mine.py").write_text(
        SCENARIO + '\nCLAIM = {"id": "C98", "title": "mine", "design": "abba", "scenario": abba,'
        ' "expected": "clean", "kernel_options": {"lockdep": False}}\n'
    )
    # Seed 0 takes the locks one thread after the other: lockdep still sees the inverted order...
    assert main(["run", f"{d / 'c98_mine.py'}:abba", "--json"]) == 1
    assert [f["kind"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["circular-locking"]
    # ...unless the row turns it off.
    assert main(["run", "C98/abba", "--scenarios", str(d), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("C99", "unknown claim 'C99'; known claims: {claims} (see dmabufsim list); a scenario is {forms}"),
        ("C11/nosuch", "unknown design 'C11/nosuch'; designs of C11: C11/helper-fork, C11/helper-mprotect, "
                       "C11/noretry-fork, C11/noretry-mprotect (see dmabufsim list); a scenario is {forms}"),
        ("C11", "claim 'C11' has several designs; name one of: C11/helper-fork, C11/helper-mprotect, "
                "C11/noretry-fork, C11/noretry-mprotect"),
        ("sc.py", "name the scenario function too: sc.py:function (a scenario is {forms})"),
        ("x.py:1abc", "'1abc' is not a function name (a scenario is {forms})"),
    ],
)
def test_a_spec_that_names_nothing_lists_the_forms(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from dmabufsim.scenarios import discover

    claims = ", ".join(discover().claims)
    for cmd in (["run"], ["explore"], ["replay", TOKEN]):
        err = _error([*cmd, spec], capsys)
        assert err == "dmabufsim: error: " + message.format(claims=claims, forms=SPEC_FORMS)


# ---------------------------------------------------------------- --version, python -m dmabufsim


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"dmabufsim {__version__}\n"


def test_python_dash_m_dmabufsim(sc: str) -> None:
    res = subprocess.run([sys.executable, "-m", "dmabufsim", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"dmabufsim {__version__}\n", "")
    res = subprocess.run([sys.executable, "-m", "dmabufsim", "run", f"{sc}:no_kernel"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (f"dmabufsim: error: scenario {sc}:no_kernel takes no argument: a scenario takes exactly "
                          "one argument, the Kernel (def no_kernel(k): ...)\n")


# ---------------------------------------------------------------- --help


def _help(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    assert main([*argv, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped: argparse wraps at the terminal's width


@pytest.mark.parametrize("command", ["run", "replay", "explore"])
def test_help_shows_every_spec_form_and_the_defaults(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _help([command], capsys, monkeypatch)
    assert (f"scenario the scenario: {SPEC_FORMS}; the function takes one argument, the Kernel. "
            "A catalog row runs with its own kernel options.") in text
    assert "is reported as a livelock (default: 200000)" in text
    if command != "replay":
        assert "(default: 0)" in text  # --seed
    assert "--scenarios DIR also load catalog modules from DIR, to name their rows (repeatable)" in text


def test_explore_help_lists_the_finding_kinds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _help(["explore"], capsys, monkeypatch).replace("- ", "-")  # argparse may break at a hyphen
    assert "--expect KIND a finding kind the scenario expects (repeatable): " + ", ".join(KINDS) in text
    assert ("preemptions allowed per execution, at least 0: dfs and icb bound at it; dpor deepens 0, 1, ... up "
            "to it (default: dfs unbounded, icb up to 3, dpor 0, 1, 2, then unbounded; the portfolio's dpor phase "
            "up to 2; odpor is always unbounded)") in text
    assert ("--jobs JOBS worker processes of a local Dask cluster, at most 4 per CPU (default 1: this process "
            "only; needs dmabufsim[cluster])") in text
    assert "--cluster ADDR run the jobs on the running Dask scheduler at ADDR" in text
    assert ("--time SECONDS wall-time budget in seconds, a hard limit: an execution still running then is "
            "stopped (default: none)") in text


def test_no_help_text_cites_rules(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from dmabufsim.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = ["", *sorted(sub.choices)]
    for command in commands:
        text = _help([command] if command else [], capsys, monkeypatch)
        assert not re.search(r"\bR\d+\b", text), (command, re.findall(r".{30}\bR\d+\b.{10}", text))
