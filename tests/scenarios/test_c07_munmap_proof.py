"""C7/i915-munmap is proved by optimal DPOR: the planted bugs of its shrinker are found on the same configuration.

The row runs the userptr bench's munmap race with kswapd's reclaim
(``userptr_lab.run_lab(k, "i915-2018", race="munmap", user="submit",
reclaim=True)``). The proof is only worth something if a shrinker that
breaks shrinker_designs R3 on that configuration is found by the same
search: one that dirties and puts the pages while the GPU and IOMMU still
map them, one that unbinds without waiting for the job, one that tears
down without the object lock the notifier takes.
"""

from __future__ import annotations

from typing import Any

import pytest

from dmabufsim.drivers.shrinker_designs import I915UserptrShrinker
from dmabufsim.drivers.userptr_i915_2018 import I915Userptr
from dmabufsim.explore.dfs import DFS
from dmabufsim.explore.explorer import explore, run_job
from dmabufsim.explore.odpor import OptimalDPOR
from dmabufsim.kernel.runtime import Kernel
from dmabufsim.scenarios import discover, userptr_lab
from dmabufsim.scenarios.proofs import NOT_PROVED


class _DirtyBeforeUnbind(I915UserptrShrinker):
    """Breaks R3: the pages are dirtied and put before the GPU PTEs and IOMMU entries go."""

    def cleanup_locked(self, obj: I915Userptr) -> None:
        with obj.lock:
            bo = obj.bo
            bo.wait_idle()
            if bo.pages is not None:
                bo.release_pages()
            bo.unbind()
            obj.mn.set_active(obj, False)


class _NoWait(I915UserptrShrinker):
    """Breaks R3: unbinds with the job still running (no dma_resv_wait_timeout first)."""

    def cleanup_locked(self, obj: I915Userptr) -> None:
        with obj.lock:
            bo = obj.bo
            bo.unbind()
            if bo.pages is not None:
                bo.release_pages()
            obj.mn.set_active(obj, False)


class _NoObjectLock(I915UserptrShrinker):
    """Breaks R3: the teardown without the object lock, racing the notifier's and the submission's."""

    def cleanup_locked(self, obj: I915Userptr) -> None:
        bo = obj.bo
        bo.wait_idle()
        bo.unbind()
        if bo.pages is not None:
            bo.release_pages()
        obj.mn.set_active(obj, False)


def _row_config(k: Kernel) -> None:
    userptr_lab.run_lab(k, "i915-2018", race="munmap", user="submit", reclaim=True)


def test_the_row_is_the_bench_configuration_and_is_proved_by_optimal_dpor() -> None:
    row = discover().get("C7/i915-munmap")
    assert "C7/i915-munmap" not in NOT_PROVED and row.unproved == ""
    assert (row.strategy, row.budget) == ("odpor", 1500)
    assert "race=munmap, reclaim=True, user=submit" in (row.scenario.__doc__ or "")
    r = explore(row.scenario, "odpor", budget=row.budget, stop_on_first=False)
    assert r.findings == [] and r.assurance is not None and r.assurance.proved
    # Executions, not traces: 3 are sleep-set blocked (odpor.redundant, counted in the slow test below):
    # kswapd's trylock of the reservation lock leaves the submission at its ww_mutex_lock point and
    # kswapd at the object lock the munmap holds, so the munmap's sleeping event is the only one enabled
    # (odpor R1, R5); each is a trace explored already.
    assert (r.executions, r.assurance.traces) == (1170, False)


@pytest.mark.parametrize(("planted", "kinds"), [
    (_DirtyBeforeUnbind, {"dirty-while-mapped"}),
    (_NoWait, {"iommu-fault"}),
    (_NoObjectLock, {"dirty-while-mapped"}),
])
def test_a_planted_shrinker_bug_is_found_on_the_proved_configuration(
        monkeypatch: pytest.MonkeyPatch, planted: type[I915UserptrShrinker], kinds: set[str]) -> None:
    monkeypatch.setattr(userptr_lab, "I915UserptrShrinker", planted)
    r = explore(_row_config, "odpor", budget=1500)
    assert {f.kind for f in r.findings} == kinds
    assert r.assurance is None


@pytest.mark.slow
def test_dfs_within_one_preemption_reaches_no_terminal_state_optimal_dpor_misses() -> None:
    """Brute force (DFS, which reads no declaration to prune) within 1 preemption against the proof."""
    out: dict[str, Any] = {}

    def scenario(k: Kernel) -> None:
        def state() -> tuple[Any, ...]:
            h = out["handle"]
            fence = out.get("user_fence")
            return (out.get("user"), h.obj.nr_cancelled, h.extra["shrinker"].nr_skipped, h.bo.helper_teardowns,
                    None if fence is None else fence.error)

        k.ext["explore.state"] = state
        out.clear()
        out.update(userptr_lab.run_lab(k, "i915-2018", race="munmap", user="submit", reclaim=True))

    common: dict[str, Any] = {"stop_on_first": False, "collect_states": True, "coverage": False}
    odpor = OptimalDPOR(None)
    proof = run_job(scenario, [(odpor, 2000)], **common)
    dfs = DFS(1)
    brute = run_job(scenario, [(dfs, 20_000)], **common)
    assert odpor.complete and dfs.complete
    assert (proof.executions, odpor.redundant, odpor.deviations, brute.executions) == (1170, 3, 0, 6355)
    assert set(brute.states) <= set(proof.states)
    assert sorted(set(proof.states), key=repr) == sorted([
        ("completed", (), ("EFAULT", 2, 0, 2, None)),
        ("completed", (), ("EFAULT", 2, 1, 2, None)),
        ("completed", (), ("EFAULT", 3, 0, 3, None)),
        ("completed", (), ("done", 2, 1, 2, 0)),
        ("completed", (), ("done", 3, 0, 3, 0)),
    ], key=repr)
