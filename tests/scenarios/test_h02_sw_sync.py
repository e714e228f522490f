"""H2: sw_sync points, free vs signal: three buggy designs found with their kinds, the list-reference design proved."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import h02_sw_sync as h2


def test_h2_rows_match_and_the_last_design_is_proved() -> None:
    res = check(discover().select(["H2"]), jobs=1)
    by = {r.row.key: r for r in res.rows}
    assert {k: (r.status, sorted(r.found.kinds) if r.found else None) for k, r in by.items()} == {
        "H2/unlocked-release-check": ("match", ["use-after-free"]),
        "H2/locked-release": ("match", ["deadlock", "recursive-locking"]),
        "H2/deferred-put": ("match", ["use-after-free"]),
        "H2/list-reference": ("match", []),
    }
    fixed = by["H2/list-reference"]
    assert fixed.exhaustive and fixed.found_text == "clean (2 executions, odpor; odpor exhausted (unbounded))"
    assert fixed.assurance is not None and fixed.assurance.proved
    assert [by[d].row.year for d in ("H2/unlocked-release-check", "H2/deferred-put", "H2/list-reference")] == [
        2019, 2023, 2024]
    for key, scenario in (("H2/unlocked-release-check", h2.scenario_unlocked_release_check),
                          ("H2/locked-release", h2.scenario_locked_release),
                          ("H2/deferred-put", h2.scenario_deferred_put)):
        r = by[key]
        a = ds.Kernel(replay=r.token).run(scenario)
        b = ds.Kernel(replay=r.token).run(scenario)
        assert r.first is not None
        assert a.trace_digest == b.trace_digest and r.first["title"] in [f.title for f in a.findings]


def _first(scenario: object, kind: str) -> ds.Finding:
    for seed in range(50):
        ex = ds.Kernel(seed=seed).run(scenario)
        for f in ex.findings:
            if f.kind == kind:
                return f
    raise AssertionError(f"no {kind} in 50 seeds")


def test_unlocked_release_check_frees_the_point_being_signalled() -> None:
    f = _first(h2.scenario_unlocked_release_check, "use-after-free")
    assert f.title == "BUG: KASAN: slab-use-after-free in dma_fence_signal"
    assert f.details["object"].startswith("dma_fence sw_sync:sw_sync #")
    assert [t.name for t in f.threads] == ["signaller", "closer"]
    assert [fr.function for fr in f.threads[0].stack] == ["_signaller"]  # model frames are hidden
    assert [fr.function for fr in f.threads[1].stack] == ["_closer"]


def test_locked_release_recurses_on_the_timeline_lock() -> None:
    f = _first(h2.scenario_locked_release, "recursive-locking")
    assert f.title == "WARNING: possible recursive locking detected"
    assert "sw_sync.lock" in f.report


def test_deferred_put_gets_a_point_whose_count_is_zero() -> None:
    f = _first(h2.scenario_deferred_put, "use-after-free")
    assert f.title == "refcount_t: addition on 0; use-after-free."
    assert f.details["op"] == "dma_fence_get"


def test_list_reference_runs_clean_over_seeds() -> None:
    for seed in range(30):
        ex = ds.Kernel(seed=seed).run(h2.scenario_list_reference)
        assert ex.findings == [], (seed, ex.findings)
