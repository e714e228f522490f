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
