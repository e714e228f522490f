"""H1: the scheduler's kill-jobs callback, five designs from kernel history."""

from __future__ import annotations

from typing import Any

import pytest

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import h01_sched_kill as h1
from dmabufsim.scenarios.runner import merge, run_executions

#: The catalog verdict of every design of the claim (status, kinds found).
EXPECTED: dict[str, tuple[str, list[str] | None]] = {
    "H1/inline-signal": ("match", ["recursive-locking"]),
    "H1/irq-work": ("match", ["recursive-locking", "sleep-in-atomic"]),
    "H1/work-item": ("match", []),
    "H1/callback-takes-xa-lock": ("match", ["circular-locking", "recursive-locking"]),
    "H1/work-walk": ("match", []),
}


def _first(scenario: Any, kind: str, seeds: int = 40) -> ds.Execution:
    for seed in range(seeds):
        ex = ds.Kernel(seed=seed).run(scenario)
        if ex.by_kind(kind):
            return ex
    raise AssertionError(f"no {kind} in {seeds} seeds")


def test_h1_rows_match_over_30_seeds() -> None:
    got: dict[str, tuple[str, list[str] | None]] = {}
    for row in discover().select(["H1"]):
        r = merge(row, [run_executions(row, 0, 30)], 30)
        got[row.key] = (r.status, sorted(r.found.kinds) if r.found else None)
    assert got == EXPECTED


@pytest.mark.slow
def test_h1_rows_match_with_the_catalog_budget() -> None:
    res = check(discover().select(["H1"]), jobs=1)
    got = {r.row.key: (r.status, sorted(r.found.kinds) if r.found else None) for r in res.rows}
    assert got == EXPECTED


def test_rows_name_their_year_and_source() -> None:
    rows = {r.design: r for r in discover().select(["H1"])}
    assert (rows["inline-signal"].year, rows["irq-work"].year, rows["work-item"].year) == (2021, 2021, 2022)
    assert "542cff7893a3" in rows["inline-signal"].source
    assert "20220411221536.283312-1-dmitry.osipenko@collabora.com" in rows["work-item"].source
    assert "487df8b69834" in rows["work-walk"].source


def test_inline_signal_is_recursive_locking_on_the_scheduler_fence_class() -> None:
    ex = _first(h1.inline_signal, "recursive-locking")
    assert ex.kinds == ["recursive-locking"]
    f = ex.findings[0]
    assert f.title == "WARNING: possible recursive locking detected"
    assert f.details["chain"] == ["drm_sched_fence.lock", "drm_sched_fence.lock"]
    # The token replays the same execution.
    again = ds.Kernel(replay=ex.token).run(h1.inline_signal)
    assert again.kinds == ex.kinds and again.trace_digest == ex.trace_digest


def test_irq_work_frees_the_job_under_a_mutex_in_hardirq() -> None:
    ex = _first(h1.irq_work, "sleep-in-atomic")
    assert sorted(ex.kinds) == ["recursive-locking", "sleep-in-atomic"]
    f = ex.by_kind("sleep-in-atomic")[0]
    assert f.details["call"] == "mutex_lock"
    assert f.details["atomic"][0]["what"] == "hardirq"
    assert f.details["atomic"][0]["name"] == "irq_work:L1.kill"
    inc = ex.by_kind("recursive-locking")[0]
    assert inc.title == "WARNING: inconsistent lock state"
    assert inc.details["chain"] == ["panfrost.job_lock"]
    again = ds.Kernel(replay=ex.token).run(h1.irq_work)
    assert again.trace_digest == ex.trace_digest


def test_callback_walking_dependencies_orders_the_fence_lock_before_xa_lock() -> None:
    ex = _first(h1.callback_takes_xa_lock, "circular-locking")
    f = ex.by_kind("circular-locking")[0]
    assert f.title == "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"
    assert f.details["chain"] == ["drm_sched_fence.lock", "&job->dependencies.xa_lock"]
    again = ds.Kernel(replay=ex.token).run(h1.callback_takes_xa_lock)
    assert again.trace_digest == ex.trace_digest


@pytest.mark.parametrize("scenario", [h1.work_item, h1.work_walk])
def test_fixed_designs_are_clean_and_declared(scenario: Any) -> None:
    for seed in range(15):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(scenario)
        assert ex.findings == []


def test_every_access_of_the_scheduler_rows_is_declared() -> None:
    """The scheduler's state is declared per kernel object (drm_sched S6: the entity, the run queue
    and pending list, the fences): the undeclared-access mode over optimal DPOR's schedules and
    random walks finds nothing, and optimal DPOR drops no wakeup sequence."""
    from dmabufsim.explore import OptimalDPOR
    from dmabufsim.explore.explorer import run_job

    bad = []
    for row in [*discover().select(["H1"]), *discover().select(["H8"])]:
        opts = {**dict(row.kernel_options), "check_accesses": True}
        odpor = OptimalDPOR()
        run = run_job(row.scenario, [(odpor, 30)], stop_on_first=False, coverage=False, kernel_options=opts)
        bad += [f"{row.key}: {ef.finding.title}" for ef in run.findings.values()
                if ef.finding.kind == "undeclared-access"]
        bad += [f"{row.key}: {odpor.deviations} dropped"] if odpor.deviations else []
        for seed in range(10):
            ex = ds.Kernel(seed=seed, **opts).run(row.scenario)
            bad += [f"{row.key} seed {seed}: {f.title}" for f in ex.findings if f.kind == "undeclared-access"]
    assert bad == []
