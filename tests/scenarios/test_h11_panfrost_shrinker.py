"""H11: lockdep reports panfrost's shrinker cycle; the explorer never confirms a deadlock (2019)."""

from __future__ import annotations

from dmabufsim.explore import Guarantee

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h11_rows() -> None:
    rows = rows_of("H11")
    r = rows["H11/blocking-purge"]
    assert_buggy(r, ["circular-locking"], ("&shmem->pages_lock", "fs_reclaim"))
    # Every schedule was run (no early stop: the verdict names deadlock as absent), none deadlocked.
    assert "odpor exhausted" in r.found_text
    assert r.row.expected is not None and {"deadlock", "hung-task"} <= r.row.expected.absent
    assert "(never deadlock, hung-task)" in r.row.expected.describe()
    assert r.assurance is None or r.assurance.guarantee is not Guarantee.PROVED
    assert_proved(rows["H11/trylock-purge"])
