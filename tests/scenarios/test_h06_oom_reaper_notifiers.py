"""H6: the OOM reaper and a notifier that sleeps in a non-blockable invalidation (2018)."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import h06_oom_reaper_notifiers as h6

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h6_rows() -> None:
    rows = rows_of("H6")
    ex = assert_buggy(rows["H6/blocking-notifier"], ["sleep-in-atomic"])
    (f,) = ex.findings
    assert f.rule == "kernel R5: no sleeping in atomic context"
    assert f.details["atomic"][0]["what"] == "non_block"
    assert f.details["atomic"][0]["name"] == "mmu_notifier_invalidate_range_start_nonblock"
    assert_proved(rows["H6/honours-blockable"])


def test_the_reaper_retries_and_reaps_when_the_driver_was_busy() -> None:
    retried = 0
    for seed in range(20):
        ex = ds.Kernel(seed=seed).run(h6.honours_blockable)
        assert ex.findings == [] and ex.outcome == "completed"
        retried += ex.now > 0  # a refused attempt sleeps HZ/10 before the next
    assert retried > 0
