"""Signals and the command line: workers die with their parent; SIGINT / SIGTERM print what was settled.

Every test starts ``dmabufsim`` in a subprocess, waits (by polling) until it
is doing what the test needs, sends a signal and checks what is left: no
timing assertion, only bounded waits.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

#: Upper bound of every wait (a loaded machine is slow; nothing here measures speed).
WAIT = 60.0

CLEAN = '''
import dmabufsim as ds


def worker(a: ds.Mutex, b: ds.Mutex) -> None:
    for _ in range(3):
        with a:
            with b:
                pass


def scenario(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(worker, a, b, name="t1")
    k.spawn(worker, a, b, name="t2")
'''


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dmabufsim.cli", *args]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid``, or None when it is gone."""
    try:
        raw = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _children(pid: int) -> list[int]:
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None and st[1] == pid and st[0] != "Z":
                out.append(int(d.name))
    return sorted(out)


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _poll(cond: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"still waiting after {WAIT} s for {what}")
        time.sleep(0.05)


def _scenario_file(tmp_path: pathlib.Path, text: str = CLEAN) -> str:
    f = tmp_path / "scen.py"
    f.write_text(text)
    return f"{f}:scenario"


def _cpu_ticks(pid: int) -> int:
    """User CPU time of ``pid`` in clock ticks (0 when it is gone)."""
    try:
        return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[11])
    except (OSError, IndexError, ValueError):
        return 0


def _dask_workers(parent: int) -> list[int]:
    """The parent's children that are its local Dask cluster's worker processes (multiprocessing spawns)."""
    out = []
    for c in _children(parent):
        try:
            if b"spawn_main" in pathlib.Path(f"/proc/{c}/cmdline").read_bytes():
                out.append(c)
        except OSError:
            pass
    return out


#: The CLI with the parent-death signal unavailable (prctl fails with EINVAL): only the jobs' own check of
#: their parent's pid before each execution remains, as on a system without PR_SET_PDEATHSIG.
NO_PDEATHSIG = (
    "import sys, dmabufsim.explore.parallel as p; p.PR_SET_PDEATHSIG = -1; "
    "from dmabufsim.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("pdeathsig", [True, False], ids=["prctl", "parent-pid-check"])
def test_explore_jobs_die_with_their_parent(tmp_path: pathlib.Path, pdeathsig: bool) -> None:
    ck = tmp_path / "ck.bin"
    args = ("explore", _scenario_file(tmp_path), "--strategy", "random", "--budget", "100000000",
            "--jobs", "2", "--no-progress", "--checkpoint", str(ck))
    proc = subprocess.Popen(
        _cmd(*args) if pdeathsig else [sys.executable, "-c", NO_PDEATHSIG, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        def two_workers() -> bool:
            workers[:] = _dask_workers(proc.pid)
            return len(workers) == 2 and all(_cpu_ticks(w) > 150 for w in workers)  # both running their task

        _poll(two_workers, "two explorer jobs, running")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _poll(lambda: not any(_alive(w) for w in workers), "the jobs to die with their parent")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # the jobs this test started, if the fix failed
            if _alive(w):
                os.kill(w, signal.SIGKILL)


CATALOG = '''
import os
import pathlib
import time

import dmabufsim as ds
from dmabufsim.scenarios.catalog import Verdict


def _in_order(a: ds.Mutex, b: ds.Mutex) -> None:
    with a:
        with b:
            pass


def fast(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_in_order, a, b, name="t1")
    k.spawn(_in_order, a, b, name="t2")


def _slow_abba(a: ds.Mutex, b: ds.Mutex) -> None:
    with a:
        time.sleep(0.02)  # wall-clock work, no scheduling point
        with b:
            pass


def slow(k: ds.Kernel) -> None:
    with open(os.environ["DMABUFSIM_TEST_MARKER"], "a") as fh:  # the test waits for the slow row to run
        fh.write("execution\\n")
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_slow_abba, a, b, name="t1")
    k.spawn(_slow_abba, b, a, name="t2")


CLAIMS = [
    {"id": "X1", "design": "fast", "scenario": fast, "expected": "clean", "strategy": "seeds", "budget": 4,
     "kernel_options": {"lockdep": False}},
    {"id": "X2", "design": "slow", "scenario": slow, "expected": Verdict(kinds=frozenset({"deadlock"})),
     "strategy": "seeds", "budget": 1000000, "kernel_options": {"lockdep": False}},
]
'''


def _catalog(tmp_path: pathlib.Path) -> tuple[str, pathlib.Path, dict[str, str]]:
    d = tmp_path / "designs"
    d.mkdir()
    (d / "c_signals.py").write_text(CATALOG)  # catalog modules are named c*, basics_*, modern_*
    marker = tmp_path / "slow-row-started"
    return str(d), marker, {**os.environ, "DMABUFSIM_TEST_MARKER": str(marker)}


def _interrupt_when(proc: subprocess.Popen[str], ready: Callable[[], bool], sig: int) -> tuple[str, str]:
    def going() -> bool:
        assert proc.poll() is None, proc.communicate()
        return ready()

    try:
        _poll(going, "the command to get going")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, err


def _row_line(out: str, key: str) -> str:
    lines = [ln for ln in out.splitlines() if re.search(rf"\s{{2}}{re.escape(key)}\s{{2}}", ln)]
    assert len(lines) == 1, out
    return lines[0]


def test_check_on_ctrl_c_prints_the_settled_rows_and_the_partial_ones(tmp_path: pathlib.Path) -> None:
    d, marker, env = _catalog(tmp_path)
    proc = subprocess.Popen(_cmd("check", "--no-progress", "--jobs", "1", "--scenarios", d, "X1", "X2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = _interrupt_when(proc, lambda: marker.exists() and len(marker.read_text().split()) >= 3, signal.SIGINT)
    assert proc.returncode == 130, (out, err)
    assert err.splitlines()[-1] == "dmabufsim: interrupted (SIGINT)"
    # The fast row ran first (catalog order) and settled; the slow one is partial, with what it found so far.
    fast = _row_line(out, "X1/fast")
    assert "✓ match" in fast and "clean (4 executions, seeds; not exhaustive)" in fast
    slow = _row_line(out, "X2/slow")
    assert "⚠ interrupted" in slow and "so far: " in slow and "seeds; interrupted)" in slow
    summary = out.splitlines()[-1]
    assert summary.startswith("INTERRUPTED: 1 of 2 rows settled, 1 interrupted (partial: what was found so far); "
                              "1 match")


def test_check_on_sigterm_with_workers_prints_the_partial_rows(tmp_path: pathlib.Path) -> None:
    d, marker, env = _catalog(tmp_path)
    proc = subprocess.Popen(_cmd("check", "--no-progress", "--jobs", "2", "--scenarios", d, "X1", "X2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    workers: list[int] = []

    def slow_row_running() -> bool:
        workers[:] = _children(proc.pid)
        return marker.exists()

    out, err = _interrupt_when(proc, slow_row_running, signal.SIGTERM)
    assert proc.returncode == 143, (out, err)
    assert err.splitlines()[-1] == "dmabufsim: interrupted (SIGTERM)"
    assert "⚠ interrupted" in _row_line(out, "X2/slow")
    fast = _row_line(out, "X1/fast")  # settled, unless the signal came before its four executions ran
    assert ("✓ match" in fast and "clean (4 executions, seeds; not exhaustive)" in fast) or "⚠ interrupted" in fast
    assert out.splitlines()[-1].startswith("INTERRUPTED: ")
    _poll(lambda: not any(_alive(w) for w in workers), "the check's workers to exit")


def test_explore_jobs_on_sigterm_prints_the_partial_report(tmp_path: pathlib.Path) -> None:
    proc = subprocess.Popen(
        _cmd("explore", _scenario_file(tmp_path), "--strategy", "random", "--budget", "100000000", "--jobs", "2",
             "--no-progress"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    workers: list[int] = []

    def running() -> bool:
        workers[:] = _children(proc.pid)
        return len(workers) >= 2

    out, err = _interrupt_when(proc, running, signal.SIGTERM)
    assert proc.returncode == 143, (out, err)
    assert err.splitlines()[-1] == "dmabufsim: interrupted (SIGTERM)"
    assert "verdict: inconclusive: no finding within budget (interrupted): random" in out
    assert "explore " in out and "(jobs=2)" in out
    _poll(lambda: not any(_alive(w) for w in workers), "the explorer's jobs to exit")


def test_explore_on_ctrl_c_prints_the_partial_report(tmp_path: pathlib.Path) -> None:
    started = tmp_path / "started"
    scen = CLEAN.replace("def scenario(k: ds.Kernel) -> None:\n",
                         f"def scenario(k: ds.Kernel) -> None:\n    open({str(started)!r}, 'w').close()\n")
    proc = subprocess.Popen(
        _cmd("explore", _scenario_file(tmp_path, scen), "--strategy", "random", "--budget", "100000000",
             "--no-progress"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = _interrupt_when(proc, started.exists, signal.SIGINT)
    assert proc.returncode == 130, (out, err)
    assert err.splitlines()[-1] == "dmabufsim: interrupted (SIGINT)"
    assert "verdict: inconclusive: no finding within budget (interrupted): random" in out
