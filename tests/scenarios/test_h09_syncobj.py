"""H9: drm_syncobj replace vs get (2017): the unlocked lookup is a use-after-free; the locked one is proved clean."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import h09_syncobj as h9


def test_h9_rows_match_and_the_fix_is_proved() -> None:
    res = check(discover().select(["H9"]), jobs=1)
    by = {r.row.key: r for r in res.rows}
    assert {k: (r.status, sorted(r.found.kinds) if r.found else None) for k, r in by.items()} == {
        "H9/unlocked-get": ("match", ["use-after-free"]),
        "H9/locked": ("match", []),
    }
    fixed = by["H9/locked"]
    assert fixed.exhaustive and fixed.found_text == "clean (1 execution, odpor; odpor exhausted (unbounded))"
    assert fixed.assurance is not None and fixed.assurance.proved
    assert fixed.row.year == 2017 and fixed.row.source.startswith("drm_syncobj locking")

    bug = by["H9/unlocked-get"]
    assert bug.first is not None and bug.first["title"] == "BUG: KASAN: slab-use-after-free in dma_fence_get"
    again = ds.Kernel(replay=bug.token).run(h9.scenario_unlocked)
    uaf = [f for f in again.findings if f.kind == "use-after-free"]
    assert len(uaf) == 1
    f = uaf[0]
    assert f.details["op"] == "dma_fence_get" and f.details["freed_in"] == "kmem_cache_free(syncobj_fences)"
    assert [t.name for t in f.threads] == ["waiter", "signaller"]
    assert [fr.function for fr in f.threads[0].stack] == ["fence_get", "_waiter"]
    assert [fr.function for fr in f.threads[1].stack] == ["replace_fence", "_signaller"]
    assert again.trace_digest == ds.Kernel(replay=bug.token).run(h9.scenario_unlocked).trace_digest
