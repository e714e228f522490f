"""H13: amdkfd's mmput inside its MMU notifier callback (2021-2025): exit_mmap runs inside the reverse-map
walk and waits for the anon_vma lock its own thread holds; pinning the mm for the deferred work instead is clean."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import h13_amdkfd_mmput_notifier as h13


def test_h13_rows_match_and_the_bug_is_the_kernels_hang() -> None:
    res = check(discover().select(["H13"]), jobs=1)
    by = {r.row.key: r for r in res.rows}
    assert {k: (r.status, sorted(r.found.kinds) if r.found else None) for k, r in by.items()} == {
        "H13/mmput-in-callback": ("match", ["circular-locking", "deadlock", "recursive-locking"]),
        "H13/mmget-when-queueing": ("match", []),
    }
    assert by["H13/mmput-in-callback"].row.year == 2021
    assert "20250623165936.6178-1-Philip.Yang@amd.com" in by["H13/mmget-when-queueing"].row.source

    bug = by["H13/mmput-in-callback"]
    ex = ds.Kernel(replay=bug.token).run(h13.mmput_in_callback)
    assert sorted(ex.kinds) == ["circular-locking", "deadlock", "recursive-locking", "recursive-locking"]
    hang = ex.by_kind("deadlock")[0]
    assert "kcompactd/2 blocked in rwsem_down on app.anon_vma" in hang.report
    assert "already held by this thread" in hang.report
    chains = sorted(tuple(f.details["chain"]) for f in ex.by_kind("recursive-locking"))
    assert chains == [("app.anon_vma", "app.anon_vma"),
                      ("mmu_notifier_invalidate_range_start", "mmu_notifier_invalidate_range_start")]
    # exit_mmap inside the callback takes mmap_lock under the notifier's map; the cycle closes through
    # fs_reclaim (allocations under mmap_lock, the notifier map primed under fs_reclaim)
    assert ex.by_kind("circular-locking")[0].details["chain"] == [
        "mmap_lock", "fs_reclaim", "mmu_notifier_invalidate_range_start"]
    assert ex.trace_digest == ds.Kernel(replay=bug.token).run(h13.mmput_in_callback).trace_digest


def test_the_fix_is_clean_declared_and_releases_the_kfd_process() -> None:
    for seed in range(20):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(h13.mmget_when_queueing)
        assert ex.findings == []  # no leak: exit_mmap ran the notifier's release in every schedule
