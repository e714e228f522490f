"""C4: holding the reservation lock stops new fences only; pinned users carry no fence."""

from __future__ import annotations

import pytest

import dmabufsim as ds
from dmabufsim.scenarios import c04_resv_not_idle as c4
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios.runner import merge, run_executions

#: The catalog verdict of every design of the claim (status, kinds found).
EXPECTED: dict[str, tuple[str, list[str] | None]] = {
    "C4/lock-then-free": ("match", ["dma-freed-page"]),
    "C4/wait-ignore-pinned": ("match", ["dma-freed-page"]),
    "C4/lock-wait-refuse-pinned": ("match", []),
}


def test_c4_rows_match_over_30_seeds() -> None:
    """Each design reaches its catalog verdict over the first 30 random schedules."""
    got: dict[str, tuple[str, list[str] | None]] = {}
    for row in discover().select(["C4"]):
        r = merge(row, [run_executions(row, 0, 30)], 30)
        got[row.key] = (r.status, sorted(r.found.kinds) if r.found else None)
    assert got == EXPECTED


@pytest.mark.slow
def test_c4_rows_match_their_verdicts_with_the_catalog_budget() -> None:
    res = check(discover().select(["C4"]), jobs=1)
    got = {r.row.key: (r.status, sorted(r.found.kinds) if r.found else None) for r in res.rows}
    assert got == EXPECTED


def test_lock_then_free_hits_the_job_in_flight() -> None:
    for seed in range(10):
        ex = ds.Kernel(seed=seed).run(c4.lock_then_free)
        assert ex.kinds == ["dma-freed-page"]
        f = ex.findings[0]
        assert (f.details["device"], f.details["cause"], f.details["owner"]) == (
            "render-gpu", "passthrough-unmapped", "free")
        assert f.details["job"].startswith("render-gpu#")


def test_waiting_is_not_enough_for_the_unfenced_scanout() -> None:
    for seed in range(10):
        ex = ds.Kernel(seed=seed).run(c4.wait_ignore_pinned)
        assert ex.kinds == ["dma-freed-page"]
        f = ex.findings[0]
        # The display reads with no job and no fence: a direct device access.
        assert (f.details["device"], f.details["job"], f.details["owner"]) == ("display", None, "free")


def test_refusing_pinned_buffers_is_clean_and_keeps_the_scanout_fed() -> None:
    for seed in range(10):
        ex = ds.Kernel(seed=seed).run(c4.lock_wait_refuse_pinned)
        assert ex.findings == []
