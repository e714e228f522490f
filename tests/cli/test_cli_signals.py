"""Signals and the command line: workers die with their parent; SIGINT / SIGTERM print what was settled.

Every test starts ``dmabufsim`` in a subprocess, waits (by polling) until it
is doing what the test needs, sends a signal and checks what is left: no
timing assertion, only bounded waits.
"""

from __future__ import annotations

import os
import pathlib
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


def _forked_workers(parent: int, cmdline: bytes) -> list[int]:
    """The parent's children that are forks of it (same command line): its explorer jobs."""
    out = []
    for c in _children(parent):
        try:
            if pathlib.Path(f"/proc/{c}/cmdline").read_bytes() == cmdline:
                out.append(c)
        except OSError:
            pass
    return out


def test_explore_jobs_die_with_their_parent(tmp_path: pathlib.Path) -> None:
    ck = tmp_path / "ck.bin"
    proc = subprocess.Popen(
        _cmd("explore", _scenario_file(tmp_path), "--strategy", "random", "--budget", "100000000",
             "--jobs", "2", "--no-progress", "--checkpoint", str(ck)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        _poll(lambda: pathlib.Path(f"/proc/{proc.pid}/cmdline").read_bytes() != b"", "the parent to start")
        cmdline = pathlib.Path(f"/proc/{proc.pid}/cmdline").read_bytes()

        def two_workers() -> bool:
            workers[:] = _forked_workers(proc.pid, cmdline)
            return len(workers) == 2

        _poll(two_workers, "two explorer jobs")
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
