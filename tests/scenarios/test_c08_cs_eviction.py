"""C8: command submission evicting under its own ww acquire context."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.scenarios import c08_cs_eviction as c8
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios.runner import merge, run_executions

#: The catalog verdict of every design of the claim (status, kinds found).
EXPECTED: dict[str, tuple[str, list[str] | None]] = {
    "C8/drop-lru-lock": ("match", []),
    "C8/lock-under-lru": ("match", ["deadlock", "sleep-in-atomic"]),
}


def test_c8_rows_match_over_30_seeds() -> None:
    """Each design reaches its catalog verdict over the first 30 random schedules."""
    got: dict[str, tuple[str, list[str] | None]] = {}
    for row in discover().select(["C8"]):
        r = merge(row, [run_executions(row, 0, 30)], 30)
        got[row.key] = (r.status, sorted(r.found.kinds) if r.found else None)
    assert got == EXPECTED


@pytest.mark.slow
def test_c8_rows_match_their_verdicts_with_the_catalog_budget() -> None:
    res = check(discover().select(["C8"]), jobs=1)
    got = {r.row.key: (r.status, sorted(r.found.kinds) if r.found else None) for r in res.rows}
    assert got == EXPECTED


def test_contention_is_resolved_by_backing_off() -> None:
    """Over many schedules the CS threads do meet each other's locks, and every time they back off."""
    drivers: list[Any] = []
    orig = c8.AmdgpuExporter

    class Spy(orig):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            drivers.append(self)

    c8.AmdgpuExporter = Spy  # type: ignore[misc]
    try:
        for seed in range(30):
            ex = ds.Kernel(seed=seed).run(c8.drop_lru_lock)
            assert ex.findings == [] and ex.outcome == "completed"
    finally:
        c8.AmdgpuExporter = orig  # type: ignore[misc]
    assert sum(d.nr_backoffs for d in drivers) > 0
    assert all(d.ttm.stats.evictions >= 2 * c8.SUBMITS for d in drivers)


def test_locking_the_victim_under_the_lru_spinlock_sleeps_in_atomic_context() -> None:
    ex = ds.Kernel(seed=0).run(c8.lock_under_lru)
    f = ex.by_kind("sleep-in-atomic")[0]
    assert f.details["call"] == "ww_mutex_lock"
    assert [(a["what"], a["name"]) for a in f.details["atomic"]] == [("spinlock", "amdgpu.lru_lock")]
    deadlocked = [s for s in range(40) if ds.Kernel(seed=s).run(c8.lock_under_lru).outcome == "deadlock"]
    assert deadlocked
    dl = ds.Kernel(seed=deadlocked[0]).run(c8.lock_under_lru).by_kind("deadlock")[0]
    # Both CS threads (and the scenario joining them) are stuck.
    assert set(dl.details["blocked"]) == {"cs-a", "cs-b", "scenario"}
    assert dl.details["blocked"]["cs-a"] in ("spin_lock", "ww_mutex_lock")


def _smallest(lock_under_lru: bool) -> Any:
    """One submission per thread, one 1-page buffer each, one page of VRAM: the configuration the proof measured."""

    def scenario(k: ds.Kernel) -> None:
        c8.run_c8(k, lock_under_lru=lock_under_lru, submits=1, bos=1, bo_pages=1)

    return scenario


def test_the_smallest_configuration_still_shows_both_bugs_of_lock_under_lru() -> None:
    """The configuration measured for drop-lru-lock's proof (proofs.NOT_PROVED) keeps its sibling's verdict."""
    bad = _smallest(True)
    kinds = {s: sorted({f.kind for f in ds.Kernel(seed=s).run(bad).findings}) for s in range(30)}
    deadlocked = [s for s, k in kinds.items() if k == ["deadlock", "sleep-in-atomic"]]
    assert deadlocked  # two of the first 30 schedules today
    # the others sleep under the LRU lock, unless pass 1's trylock found the victim free (ttm's
    # _evict_one; one of the first 30 today)
    assert all(k in (["sleep-in-atomic"], []) for s, k in kinds.items() if s not in deadlocked)
    assert sum(k == ["sleep-in-atomic"] for k in kinds.values()) >= 25
    f = ds.Kernel(seed=0).run(bad).by_kind("sleep-in-atomic")[0]
    assert f.details["call"] == "ww_mutex_lock"
    assert [(a["what"], a["name"]) for a in f.details["atomic"]] == [("spinlock", "amdgpu.lru_lock")]
    dl = ds.Kernel(seed=deadlocked[0]).run(bad)
    assert dl.outcome == "deadlock"
    assert set(dl.by_kind("deadlock")[0].details["blocked"]) == {"cs-a", "cs-b", "scenario"}


def test_the_smallest_configuration_of_drop_lru_lock_is_clean() -> None:
    good = _smallest(False)
    for seed in range(20):
        ex = ds.Kernel(seed=seed).run(good)
        assert ex.findings == [] and ex.outcome == "completed"
