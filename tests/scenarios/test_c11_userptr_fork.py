"""C11: userptr racing fork()/mprotect(), with and without the sequence retry."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.dma.fence import SIGNALED
from dmabufsim.explore.explorer import explore
from dmabufsim.scenarios import c11_userptr_fork as c11
from dmabufsim.scenarios import check, discover


def test_c11_rows_match_their_verdicts() -> None:
    # A smaller budget than the rows' own (the exhaustive runs are the slow test below).
    res = check(discover().select(["C11"]), jobs=1, budget=300)
    got = {}
    for r in res.rows:
        assert r.found is not None and r.row.expected is not None
        # error kinds plus the info kinds the verdict requires (others are incidental)
        got[r.row.key] = (r.status, sorted(r.found.error_kinds | (r.found.kinds & r.row.expected.kinds)))
    assert got == {
        "C11/helper-fork": ("match", []),
        "C11/helper-mprotect": ("match", []),
        "C11/noretry-fork": ("match", ["dma-foreign-page"]),
        "C11/noretry-mprotect": ("match", ["user-incoherence"]),
    }


def test_noretry_fork_counterexample_is_the_child_page() -> None:
    rep = explore(c11.noretry_fork, "pct", budget=300, expected=["dma-foreign-page"], confirm_cycles=False)
    f = rep.by_kind("dma-foreign-page")[0].finding
    assert f.details["owner"].startswith("child#")
    assert f.details["owner_at_map"].startswith("app#")
    assert f.details["cause"] == "cow-owner-moved"
    assert (f.details["user_mm"], f.details["user_va"], f.details["va"]) == ("app", "0x100000", "0x40100000")
    # The replay token rebuilds the same execution.
    again = ds.Kernel(replay=rep.by_kind("dma-foreign-page")[0].token).run(c11.noretry_fork)
    assert "dma-foreign-page" in again.kinds


def test_helper_retries_instead_of_binding_stale_pages() -> None:
    """Over many schedules the helper either ran before the fork or looked the pages up again."""
    retried = 0
    for seed in range(60):
        out: dict[str, Any] = {}

        def scenario(k: ds.Kernel, out: dict[str, Any] = out) -> None:
            out.update(c11.run_userptr_race(k, "helper", "fork"))

        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.errors == [] and "user-incoherence" not in ex.kinds
        assert out["cs"] == "done"
        retried += out["up"].nr_retries
    assert retried > 0


def test_helper_mprotect_cs_gets_efault_or_runs_first() -> None:
    seen = set()
    for seed in range(40):
        out: dict[str, Any] = {}

        def scenario(k: ds.Kernel, out: dict[str, Any] = out) -> None:
            out.update(c11.run_userptr_race(k, "helper", "mprotect"))

        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.findings == []
        seen.add(out["cs"])
        # The ioctl returned once the job was queued; the teardown waited for it.
        assert out["cs"] == "EFAULT" or out["cs_fence"].flags & SIGNALED
    assert seen == {"done", "EFAULT"}


@pytest.mark.slow
def test_c11_helper_is_coherent_in_every_schedule_within_two_preemptions() -> None:
    res = check(discover().select(["C11/helper-fork"]), jobs=1)
    for r in res.rows:
        assert r.status == "match" and r.exhaustive, (r.row.key, r.found_text)
        assert "dpor exhausted (preemption bound 2)" in r.found_text


def test_c11_helper_mprotect_is_coherent_in_every_schedule() -> None:
    (r,) = check(discover().select(["C11/helper-mprotect"]), jobs=1).rows
    assert r.status == "match" and r.assurance is not None and r.assurance.proved
    assert r.guarantee == "proved (82 Mazurkiewicz traces)"
