"""H3: lockless reservation-object readers on a type-safe-by-RCU fence slab (2016, 2019)."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import h03_resv_readers as h3


def test_h3_rows_match_and_the_fix_is_proved() -> None:
    res = check(discover().select(["H3"]), jobs=1)
    by = {r.row.key: r for r in res.rows}
    assert {k: (r.status, sorted(r.found.kinds) if r.found else None) for k, r in by.items()} == {
        "H3/no-recheck": ("match", ["assertion"]),
        "H3/recheck-leaks-excl": ("match", ["leak"]),
        "H3/fixed": ("match", []),
    }
    fixed = by["H3/fixed"]
    assert fixed.exhaustive and fixed.found_text == "clean (365 executions, odpor; odpor exhausted (unbounded))"
    assert fixed.assurance is not None and fixed.assurance.proved
    assert by["H3/no-recheck"].found.asserts == frozenset({"h3-snapshot"})  # type: ignore[union-attr]
    for key, scenario in (("H3/no-recheck", h3.scenario_no_recheck),
                          ("H3/recheck-leaks-excl", h3.scenario_recheck_leaks_excl)):
        r = by[key]
        a = ds.Kernel(replay=r.token).run(scenario)
        assert a.trace_digest == ds.Kernel(replay=r.token).run(scenario).trace_digest
        assert r.first is not None and r.first["title"] in [f.title for f in a.findings]


def test_the_2016_restart_leaks_the_exclusive_fence_the_reader_took() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy()).run(h3.scenario_recheck_leaks_excl)
    assert ex.kinds == ["leak"]
    leak = ex.findings[0]
    assert leak.title.startswith("kmemleak: unreferenced object dma_fence i915:excl #")
    assert leak.details["refcount"] == 1
    # allocation, the object's reference, the reader's first get (leaked at the restart), its second (put)
    assert leak.details["taken_by"] == ["scenario", "scenario", "reader", "reader"]


def test_the_reader_without_recheck_returns_a_recycled_fence() -> None:
    (r,) = check(discover().select(["H3/no-recheck"]), jobs=1).rows
    ex = ds.Kernel(replay=r.token).run(h3.scenario_no_recheck)
    assert ex.kinds == ["assertion"]
    f = ex.findings[0]
    assert f.title == "lockless reader returned fences the object never held"
    assert f.details["result"] not in f.details["states"]
    held = {tuple(o) for st in f.details["states"] for o in [st[0], *st[1]] if o}
    got = {tuple(o) for o in [f.details["result"][0], *f.details["result"][1]] if o}
    assert got - held  # a (context, seqno) the object never held: a fence recycled in the memory read


def test_fixed_reader_is_clean_over_seeds() -> None:
    for seed in range(40):
        assert ds.Kernel(seed=seed).run(h3.scenario_fixed).findings == []
