"""Shared test helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dmabufsim as ds


def run(scenario: Callable[..., Any], seed: int = 0, **kw: Any) -> ds.Execution:
    """Run one execution of ``scenario`` under a seeded random schedule."""
    return ds.Kernel(seed=seed, **kw).run(scenario)


def run_first(scenario: Callable[..., Any], **kw: Any) -> ds.Execution:
    """Run with the non-preemptive deterministic schedule (a sequential test)."""
    return ds.Kernel(strategy=ds.FirstStrategy(), **kw).run(scenario)


#: A scenario file for the command-line tests: ``abba`` (two threads take two mutexes in opposite
#: orders: circular locking, and a deadlock in some schedules) and ``clean`` (two threads under one mutex).
ABBA_AND_CLEAN = '''
import dmabufsim as ds

def _w(a, b):
    with a, b:
        pass

def abba(k):
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_w, a, b, name="t1")
    k.spawn(_w, b, a, name="t2")

def clean(k):
    m = ds.Mutex("m")
    def w():
        with m:
            k.point("x", 999, True)
    for i in range(2):
        k.spawn(w, name=f"w{i}")
'''


def scenario_file(tmp_path: Any, source: str = ABBA_AND_CLEAN, name: str = "sc.py") -> str:
    """Write ``source`` as ``tmp_path/name`` (a scenario file for ``FILE.py:function``); its path."""
    p = tmp_path / name
    p.write_text(source)
    return str(p)
