"""C1: pipelined moves of a shared buffer -- the exporter never blocks, importers never see stale memory."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.device.ttm import MemType
from dmabufsim.dma.resv import DmaResvUsage
from dmabufsim.drivers.amdgpu_exporter import AmdgpuExporter
from dmabufsim.drivers.dma_buf_importers import DynamicImporter
from dmabufsim.scenarios import c01_pipelining as c1
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios.runner import merge, run_executions

#: The catalog verdict of every design of the claim (status, kinds found).
EXPECTED: dict[str, tuple[str, list[str] | None]] = {
    "C1/pipelined": ("match", []),
    "C1/importer-ignores-fences": ("match", ["assertion"]),
    "C1/ghost-frees-early": ("match", ["assertion", "iommu-fault"]),
    "C1/non-pipelined": ("match", ["assertion"]),
}


def test_freeing_the_old_store_before_the_move_fence_is_caught() -> None:
    """The copy faults on the torn-down old pages and the importers read what was never copied."""
    ex = ds.Kernel(seed=0).run(c1.ghost_frees_early)
    faults = {(f.details["device"], f.details["job"]) for f in ex.by_kind("iommu-fault")}
    assert ("amdgpu", "amdgpu.move:shared") in faults
    assert [f.title for f in ex.by_kind("assertion")] == [
        "claim C1 violated: an importer read memory the move had not filled (stale read)"
    ]
    assert ds.Kernel(seed=0).run(c1.pipelined).findings == []


def test_c1_rows_match_over_30_seeds() -> None:
    """Each design reaches its catalog verdict over the first 30 random schedules."""
    got: dict[str, tuple[str, list[str] | None]] = {}
    for row in discover().select(["C1"]):
        r = merge(row, [run_executions(row, 0, 30)], 30)
        got[row.key] = (r.status, sorted(r.found.kinds) if r.found else None)
    assert got == EXPECTED


@pytest.mark.slow
def test_c1_rows_match_their_verdicts_with_the_catalog_budget() -> None:
    res = check(discover().select(["C1"]), jobs=1)
    got = {r.row.key: (r.status, sorted(r.found.kinds) if r.found else None) for r in res.rows}
    assert got == EXPECTED


def test_importer_jobs_after_a_move_start_after_the_move_fence() -> None:
    """Every importer job submitted after a move lists the move fence among its dependencies."""
    for seed in range(20):
        out: dict[str, Any] = {}

        def scenario(k: ds.Kernel, out: dict[str, Any] = out) -> None:
            drv = AmdgpuExporter("amdgpu", vram_pages=8)
            bo = drv.create_bo(2, name="shared", value="frame")
            buf = drv.export(bo)
            imp = DynamicImporter("gpu1")
            att = imp.attach(buf)
            imp.access(att, write=False).wait()  # maps: moves VRAM -> GTT
            drv.move(bo, (MemType.VRAM,))
            (move,) = bo.resv.get_fences(DmaResvUsage.KERNEL)
            f = imp.access(att, write=False, duration_ns=10_000)  # re-maps: moves back to GTT
            assert f is not None
            job = imp.jobs[-1]
            # The second move replaced the first in the resv (same copy timeline) and the job
            # depends on it; the job ran after both copies.
            (move2,) = job.deps
            out["deps_are_the_move"] = move2 in bo.resv.get_fences(DmaResvUsage.KERNEL) and move2 is not move
            out["remaps"] = imp.nr_remaps
            out["notified"] = imp.notifications
            f.wait()
            out["after_moves"] = move.timestamp <= move2.timestamp <= f.timestamp - 10_000
            out["read"] = job.results
            imp.release(att)
            buf.put()
            drv.destroy(bo)
            drv.wait_idle()

        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.findings == []
        assert out == {
            "deps_are_the_move": True, "remaps": 2, "notified": 3, "after_moves": True, "read": ["frame", "frame"],
        }


def test_stale_read_counterexample_names_the_importer_and_zero_pages() -> None:
    for seed in range(40):
        ex = ds.Kernel(seed=seed).run(c1.importer_ignores_fences)
        if ex.findings:
            break
    else:
        raise AssertionError("no stale read in 40 schedules")
    assert ex.kinds == ["assertion"]
    f = ex.findings[0]
    assert f.title == "claim C1 violated: an importer read memory the move had not filled (stale read)"
    name, job, values = f.details["reads"][0]
    assert name in ("gpu1", "gpu2") and job.startswith(name) and 0 in values
    again = ds.Kernel(replay=ex.token).run(c1.importer_ignores_fences)
    assert again.kinds == ["assertion"] and again.trace_digest == ex.trace_digest


def test_non_pipelined_exporter_blocks_for_every_move() -> None:
    ex = ds.Kernel(seed=3).run(c1.non_pipelined)
    assert ex.kinds == ["assertion"]
    f = ex.findings[0]
    assert f.title == "claim C1 violated: the exporting CPU thread blocked on a fence"
    assert len(f.details["blocked_ns"]) == len(c1.MOVES) == 1 and all(b > 0 for b in f.details["blocked_ns"])
    assert f.details["cpu_waits"] >= len(c1.MOVES)


def test_the_smallest_configuration_still_shows_every_siblings_bug() -> None:
    """catalog R8: two importers reading once, one move, one page; each buggy design caught in it."""
    assert (c1.IMPORTERS, c1.READS, c1.PAGES, c1.START, c1.MOVES) == (2, 1, 1, (MemType.TT,), ((MemType.VRAM,),))
    seen: dict[str, set[str]] = {}
    for name, fn in (("ignores", c1.importer_ignores_fences), ("early", c1.ghost_frees_early),
                     ("blocks", c1.non_pipelined)):
        seen[name] = set()
        for seed in range(30):
            ex = ds.Kernel(seed=seed).run(fn)
            seen[name] |= {f.signature if f.kind == "assertion" else f.kind for f in ex.findings}
    assert seen == {
        "ignores": {"c1:stale-read"},
        "early": {"c1:stale-read", "iommu-fault"},
        "blocks": {"c1:exporter-blocked"},
    }
    # proved in this configuration (optimal DPOR, dma_fence R14): no documented exception any more
    row = discover().get("C1/pipelined")
    assert not row.unproved and row.strategy == "odpor"
