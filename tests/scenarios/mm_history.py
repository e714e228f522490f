"""Shared checks of the kernel-history rows of the fault path and the memory manager (H4-H17)."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.explore import Guarantee
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios.runner import RowResult


def rows_of(claim: str) -> dict[str, RowResult]:
    """Check every design of ``claim`` with the catalog's own strategy and budget."""
    return {r.row.key: r for r in check(discover().select([claim]), jobs=1).rows}


def assert_buggy(r: RowResult, kinds: list[str], chain: tuple[str, ...] | None = None) -> ds.Execution:
    """The design's verdict matches with exactly ``kinds`` (and ``chain``); its token replays them."""
    assert r.status == "match", r.found_text
    assert r.found is not None and sorted(r.found.kinds) == sorted(kinds)
    if chain is not None:
        assert chain in r.found.chains
    assert r.token
    assert r.row.scenario is not None
    ex = ds.Kernel(replay=r.token, **dict(r.row.kernel_options)).run(r.row.scenario)
    assert ex.findings and set(ex.kinds) <= set(kinds)
    return ex


def assert_proved(r: RowResult) -> None:
    """The fix is clean in every schedule of its configuration (optimal DPOR exhausted it)."""
    assert r.status == "match", r.found_text
    assert r.found is not None and not r.found.error_kinds
    assert r.assurance is not None and r.assurance.guarantee is Guarantee.PROVED
    assert r.assurance.strategy == "odpor"
