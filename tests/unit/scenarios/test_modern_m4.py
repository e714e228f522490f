"""M4: an allocation inside a fence-signalling critical section, and its two fixes."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import modern_fence_signalling as m4


def test_m4_rows() -> None:
    res = check(discover().select(["M4"]), jobs=1)
    assert {r.row.key: r.status for r in res.rows} == {
        "M4/alloc-in-signalling": "match",
        "M4/gfp-nowait": "match",
        "M4/prealloc": "match",
    }
    assert all(r.exhaustive for r in res.rows if r.row.expected and r.row.expected.clean)


def test_the_report_is_raised_at_the_allocation_in_every_schedule() -> None:
    for seed in range(10):
        ex = ds.Kernel(seed=seed).run(m4.alloc_in_signalling)
        (f,) = ex.findings
        assert f.kind == "circular-locking"
        assert f.details["chain"] == ["fs_reclaim", "mmu_notifier_invalidate_range_start", "dma_fence_map"]
        assert f.threads[0].name == "retire"
        assert ds.Kernel(seed=seed).run(m4.prealloc).findings == []
