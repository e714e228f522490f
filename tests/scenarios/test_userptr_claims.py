"""The userptr and notifier claims (C3, C7, C9, C10, C12-C17): verdicts, chains, details, the C10 splat."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.device.device import Device
from dmabufsim.drivers.userptr_common import UserptrBo
from dmabufsim.drivers.userptr_helper import Userptr
from dmabufsim.drivers.userptr_modern import ModernUserptrDriver
from dmabufsim.drivers.userptr_unsync import UnsyncUserptr
from dmabufsim.explore.explorer import explore
from dmabufsim.kernel.errors import EPERM
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE
from dmabufsim.scenarios import c10_unmap_under_resv as c10
from dmabufsim.scenarios import c13_amdgpu2018 as c13
from dmabufsim.scenarios import c15_iommu_gone as c15
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios.catalog import same_cycle
from dmabufsim.scenarios.userptr_lab import run_lab
from tests.helpers import run_first

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "docs" / "golden" / "c10_lockdep_splat.txt"

#: Per row: the error kinds found plus the info kinds the verdict requires (incidental info
#: findings, e.g. a fault of a job that raced a teardown, depend on where the search stopped).
EXPECTED = {
    "C3/wait-free-keep-sg": ["dirty-while-mapped", "dma-foreign-page", "stale-mapping"],
    "C7/i915-fork": [],
    "C7/i915-munmap": [],
    "C7/i915-notifier-trylock-skip-exported": ["dirty-while-mapped", "dma-foreign-page", "stale-mapping"],
    "C7/i915-shrink-exported": ["iommu-fault"],  # expected: an importer job lost its data (-EIO)
    "C7/i915-shrink-exported-forget-importers": ["dirty-while-mapped", "dma-foreign-page", "stale-mapping"],
    "C7/i915-shrink-exported-remap": [],
    "C9/stale-sg": ["dirty-while-mapped", "dma-foreign-page", "stale-mapping"],
    "C9/torn-down": ["iommu-fault"],
    "C10/i915-style": [],
    "C10/unmap-under-resv": ["circular-locking"],
    "C12/kernel-integrity": ["dma-foreign-page"],
    "C12/userspace-race": ["user-incoherence"],
    "C13/fork-rogue": ["dirty-while-mapped", "dma-foreign-page", "stale-mapping"],
    "C13/munmap-rogue": ["dirty-while-mapped", "stale-mapping", "user-incoherence"],
    "C14/amdgpu-2018": ["dirty-while-mapped", "stale-mapping"],
    "C14/helper": [],
    "C14/i915-2018": [],
    "C14/unsync": [],
    "C14/wait-free-keep-sg": ["dirty-while-mapped", "dma-freed-page", "stale-mapping"],
    "C15/amdgpu-2018": ["dirty-while-mapped", "stale-mapping"],
    "C15/helper": [],
    "C15/i915-2018": [],
    "C16/modern-fork-rogue": ["iommu-fault"],
    "C16/modern-mprotect": [],
    "C16/modern-munmap-reuse": ["iommu-fault"],
    "C17/root-only-unsync-fork": ["dma-foreign-page"],
    "C17/root-only-unsync-munmap": ["user-incoherence"],
}


def test_userptr_rows_match_their_verdicts() -> None:
    claims = sorted({key.split("/")[0] for key in EXPECTED})
    res = check(discover().select(claims), jobs=1)
    got = {}
    for r in res.rows:
        assert r.found is not None and r.row.expected is not None, r.row.key
        wanted = r.found.error_kinds | (r.found.kinds & r.row.expected.kinds)
        got[r.row.key] = (r.status, sorted(wanted))
    assert got == {key: ("match", kinds) for key, kinds in EXPECTED.items()}
    c10_row = next(r for r in res.rows if r.row.key == "C10/unmap-under-resv")
    assert c10_row.found is not None and c10_row.found.chains == (c10.CHAIN,)


def test_c10_splat_is_the_golden_report() -> None:
    text = c10.splat()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    for needle in ("WARNING: possible circular locking dependency detected",
                   "(reservation_ww_class_mutex)", "(fs_reclaim)", "(mmu_notifier_invalidate_range_start)",
                   "*** DEADLOCK ***", "invalidate_bo+"):
        assert needle in text


def test_c10_chain_in_the_first_schedule() -> None:
    ex = run_first(c10.unmap_under_resv)
    cyc = ex.by_kind("circular-locking")
    assert [f.details["chain"] for f in cyc] == [list(c10.CHAIN)]
    assert cyc[0].details["new_edge"] == ["mmu_notifier_invalidate_range_start", "reservation_ww_class_mutex"]


def test_c13_rogue_job_writes_the_childs_page() -> None:
    rep = explore(c13.fork_rogue, "random", budget=100, expected=["dma-foreign-page"], confirm_cycles=False,
                  stop_on_first=False)
    f = rep.by_kind("dma-foreign-page")[0].finding
    assert f.details["owner"].startswith("child#") and f.details["owner_at_map"].startswith("app#")
    assert f.details["cause"] == "cow-owner-moved"
    dirty = rep.by_kind("dirty-while-mapped")[0].finding
    assert dirty.details["event"] == "dirty" and dirty.details["devices"] == ["gpu0"]


def test_c15_invariant_names_the_surviving_mapping() -> None:
    ex = run_first(c15.amdgpu_2018)
    stale = ex.by_kind("stale-mapping")
    assert stale, ex.kinds
    d = stale[0].details
    assert (d["device"], d["event"], d["user_va"]) == ("gpu0", "protection_page", "0x100000")
    assert stale[0].rule.startswith("mmu_notifier R8")


def test_c16_modern_driver_is_the_helper_with_one_lock_per_device() -> None:
    seen: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        proc = Process("app")
        a = proc.mmap(4 * PAGE_SIZE)
        drv = ModernUserptrDriver(dev)
        u1 = drv.create(proc.mm, a, 2)
        u2 = drv.create(proc.mm, a + 2 * PAGE_SIZE, 2)
        seen.append((type(u1) is Userptr, type(u2) is Userptr, u1.lock is u2.lock is drv.notifier_lock))
        drv.close(u1)
        drv.close(u2)
        proc.exit()

    assert run_first(scenario).findings == []
    assert seen == [(True, True, True)]


def test_c17_unsync_is_privileged_only() -> None:
    raised: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        dev = Device("gpu0")
        proc = Process("app")
        a = proc.mmap(PAGE_SIZE)
        try:
            UnsyncUserptr(UserptrBo(dev, proc.mm, a, 1), capable=False)
        except EPERM:
            raised.append("EPERM")
        proc.exit()

    assert run_first(scenario).findings == []
    assert raised == ["EPERM"]
    assert UnsyncUserptr.privileged_only is True


def test_c7_shrinker_cleans_up_and_skips_busy_objects() -> None:
    freed = skipped = 0
    for seed in range(40):
        out: dict[str, Any] = {}

        def scenario(k: ds.Kernel, out: dict[str, Any] = out) -> None:
            out.update(run_lab(k, "i915-2018", race="munmap", user="submit", reclaim=True))

        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.findings == []
        sh = out["handle"].extra["shrinker"]
        freed += sh.nr_freed
        skipped += sh.nr_skipped
    assert freed > 0 and skipped > 0


@pytest.mark.parametrize("design", ["amdgpu-2018", "i915-2018", "helper"])
def test_restart_paths_are_exercised(design: str) -> None:
    """Each coherent-ish design's own retry (restart, cancel, read_retry) runs in some schedule."""
    total = 0
    for seed in range(60):
        out: dict[str, Any] = {}

        def scenario(k: ds.Kernel, out: dict[str, Any] = out, design: str = design) -> None:
            out.update(run_lab(k, design, race="fork", user="submit"))

        ds.Kernel(seed=seed).run(scenario)
        obj = out["handle"].obj
        total += getattr(obj, "nr_restarts", 0) + getattr(obj, "nr_retries", 0)
    assert total > 0


def test_c6_noio_leaves_the_notifier_cycle_and_nowait_none() -> None:
    from dmabufsim.scenarios import c06_noio_notifier as c6

    noio = [ds.Kernel(seed=s, prime_lockdep=False).run(c6.noio_notifier) for s in range(6)]
    for ex in noio:
        cyc = ex.by_kind("circular-locking")
        assert len(cyc) == 1
        # lockdep names the cycle from the lock being taken: either edge may close it
        assert tuple(cyc[0].details["chain"]) in (c6.NOIO_CHAIN, c6.NOIO_CHAIN[::-1])
        assert same_cycle(cyc[0].details["chain"], c6.NOIO_CHAIN)
        assert ex.errors == cyc
    nowait = [ds.Kernel(seed=s, prime_lockdep=False).run(c6.nowait_notifier).findings for s in range(6)]
    assert nowait == [[]] * 6


def _lab(design: str, **kw: Any) -> Any:
    def scenario(k: ds.Kernel) -> None:
        run_lab(k, design, **kw)

    return scenario


def _kinds(design: str, **kw: Any) -> list[str]:
    """Every kind a portfolio search of ``design`` on the bench configuration ``kw`` finds."""
    rep = explore(_lab(design, **kw), budget=300, stop_on_first=False, confirm_cycles=False)
    return sorted({ef.finding.kind for ef in [*rep.findings, *rep.info]})


def test_the_proved_c16_configurations_still_break_the_other_designs() -> None:
    """C16/modern-munmap-reuse and C16/modern-mprotect are proved on a smaller configuration
    (no race-free first job, no wait, the race in the main thread): the designs that break
    on the bench's races still break on it, so the proof says something."""
    from dmabufsim.scenarios import c16_shared_helper as c16

    reuse = {"race": "munmap", "user": "submit", "reuse": True, "broken": True, "linger_ns": 100_000, **c16._PROVED}
    assert {"dma-foreign-page", "dirty-while-mapped", "stale-mapping"} <= set(_kinds("wait-free-keep-sg", **reuse))
    assert _kinds("noretry", race="mprotect", user="submit", **c16._PROVED) == ["user-incoherence"]


def test_inline_race_runs_the_race_in_the_benchs_own_thread() -> None:
    names: list[list[str]] = []

    def scenario(k: ds.Kernel) -> None:
        out = run_lab(k, "helper", race="munmap", user="submit", prebind=False, wait=False, inline_race=True)
        names.append(sorted(t.name for t in k.threads if not t.name.startswith("gpu0")))
        assert out["user"] in ("done", "EFAULT")

    ex = run_first(scenario)
    assert ex.findings == []
    assert names == [["scenario", "submit"]]
