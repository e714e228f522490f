"""M1: an eviction must wait for BOOKKEEP fences; waiting like implicit sync loses device writes."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import modern_resv_usage as m1


def test_m1_rows() -> None:
    res = check(discover().select(["M1"]), jobs=1)
    by = {r.row.key: r for r in res.rows}
    assert by["M1/evict-waits-bookkeep"].status == "match" and by["M1/evict-waits-bookkeep"].exhaustive
    broken = by["M1/evict-waits-read"]
    assert broken.status == "match" and broken.found is not None
    assert broken.found.kinds == {"assertion", "iommu-fault"}  # the late writes fault: the job lost them


def test_lost_write_report() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy()).run(m1.evict_waits_read)
    (f,) = ex.by_kind("assertion")
    assert f.title == "BUG: eviction lost a device write"
    assert f.details == {"expected": ["result0", "result1"], "moved": ["0", "0"], "usage_waited": "READ"}
    # The late writes fault: the job lost them (an error, which the row expects).
    assert [(x.kind, x.title, x.severity) for x in ex.findings if x.kind != "assertion"] == [
        ("iommu-fault", "GPU VM fault: DMA write fault (no PTE)", "error")
    ]
    assert ds.Kernel(strategy=ds.FirstStrategy()).run(m1.evict_waits_bookkeep).findings == []
