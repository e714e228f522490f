"""Claims C5 and C6 at the lockdep level: the verdicts, the chains and the splat."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.report.text import render_finding
from dmabufsim.scenarios import c05_c06_reclaim_locking as c56
from dmabufsim.scenarios import check, discover


def test_c5_c6_rows_match_their_verdicts() -> None:
    res = check(discover().select(["C5", "C6"]), jobs=1)
    got = {r.row.key: (r.status, sorted(r.found.kinds) if r.found else None) for r in res.rows}
    assert got == {
        "C5/notifier-blocking-lock": ("match", ["circular-locking"]),
        "C5/shrinker-blocking-lock": ("match", ["circular-locking", "deadlock", "recursive-locking"]),
        "C5/shrinker-trylock": ("match", []),
        "C6/gfp-noio-unprimed": ("match", []),
        "C6/one-gfp-kernel-left": ("match", ["circular-locking", "deadlock", "recursive-locking"]),
        # scenarios/c06_noio_notifier.py: the notifier's remaining cycle, and GFP_NOWAIT
        "C6/noio-notifier": ("match", ["circular-locking"]),
        "C6/nowait-notifier": ("match", []),
    }
    by = {r.row.key: r for r in res.rows}
    assert by["C5/notifier-blocking-lock"].found.chains == (  # type: ignore[union-attr]
        ("reservation_ww_class_mutex", "fs_reclaim", "mmu_notifier_invalidate_range_start"),
    )
    assert by["C5/shrinker-blocking-lock"].found.chains == (  # type: ignore[union-attr]
        ("reservation_ww_class_mutex", "fs_reclaim"),
    )
    # Both clean designs are proved: every schedule of the configuration, nothing dropped.
    for key, traces in (("C5/shrinker-trylock", 696), ("C6/gfp-noio-unprimed", 46)):
        r = by[key]
        assert r.exhaustive and r.found_text == f"clean ({traces} executions, odpor; odpor exhausted (unbounded))"
        assert r.assurance is not None and r.assurance.proved and r.assurance.traces


def test_shrinker_splat_names_both_chains() -> None:
    # The other process reclaims first (FirstStrategy runs the scenario, then cs, then it):
    # the priming already knows resv -> fs_reclaim, so the shrinker's blocking lock is the cycle.
    ex = ds.Kernel(strategy=ds.FirstStrategy()).run(c56.shrinker_blocking_lock)
    cyc = ex.by_kind("circular-locking")
    assert len(cyc) == 1
    f = cyc[0]
    assert f.title == "WARNING: possible circular locking dependency detected"
    assert f.details["chain"] == ["reservation_ww_class_mutex", "fs_reclaim"]
    text = render_finding(f, "C5/shrinker-blocking-lock")
    assert "(reservation_ww_class_mutex)" in text and "(fs_reclaim)" in text
    assert "scan_objects+" in text and "*** DEADLOCK ***" in text


def test_gfp_noio_needs_the_priming_off() -> None:
    # With the boot-time order (resv holders may allocate with GFP_KERNEL) the
    # shrinker's blocking lock is reported even though every allocation is GFP_NOIO.
    primed = [ds.Kernel(seed=s).run(c56.gfp_noio_unprimed).kinds for s in range(5)]
    assert all(k == ["circular-locking"] for k in primed)
    unprimed = [ds.Kernel(seed=s, prime_lockdep=False).run(c56.gfp_noio_unprimed).kinds for s in range(5)]
    assert unprimed == [[]] * 5
